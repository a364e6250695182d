"""Step Functions workflows: ASL templates (shared by infra/ and the local stack), the Python
handlers of their Lambda states, and the renderer that fills the templates in."""
