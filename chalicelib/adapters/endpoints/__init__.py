"""Endpoint runners, chosen by the scheme of ``Settings.endpoints_uri`` (``sagemaker://`` or
``local://``): ``sagemaker.py`` on AWS, ``local.py`` in the local stack."""
