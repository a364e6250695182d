"""The event publisher's twins: EventBridge (``eventbridge.py``) and the local event log (``local.py``)."""
