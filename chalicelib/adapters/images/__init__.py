"""Image builders: CodeBuild on AWS (``codebuild.py``), layered virtual environments locally (``local.py``)."""
