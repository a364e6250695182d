"""The scheduler's twins: EventBridge Scheduler (``eventbridge.py``) and the local scheduler (``local.py``)."""
