"""Trial dispatch: ``batch.py`` (AWS Batch) and its local twin ``local.py`` (a worker process)."""
