"""The local stack's dataset check dispatcher: runs the check job on a background thread of the
local API process (the local stack is one long-lived process, unlike a Lambda, so a thread
outlives the request). One thread: checks are I/O- and CPU-bound and the local stack is small."""
from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Optional

from chalicelib.errors import Unavailable

log = logging.getLogger("kilele.dataset_checks")


class LocalDatasetCheckDispatcher:
    """Runs ``run(dataset_id)`` (a :meth:`DatasetCheckJob.run`) on a worker thread."""

    def __init__(self, run: Callable[[str], object]):
        self._run = run
        self._pool: Optional[ThreadPoolExecutor] = ThreadPoolExecutor(1, thread_name_prefix="dataset-check")

    def dispatch(self, dataset_id: str) -> None:
        """Queue the check of ``dataset_id``; raises Unavailable once closed."""
        if self._pool is None:
            raise Unavailable("the local dataset checker is stopped")
        try:
            future: Future = self._pool.submit(self._run, dataset_id)
        except RuntimeError as e:  # submit after shutdown
            raise Unavailable(f"the local dataset checker is stopped: {e}") from e
        future.add_done_callback(_log_failure)

    def close(self, wait: bool = True) -> None:
        """Stop taking checks; ``wait`` for the queued ones (the local stack's stop)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=wait)


def _log_failure(future: Future) -> None:
    # DatasetCheckJob.run records its own failures; this catches a failure to record them.
    error = future.exception()
    if error is not None:
        log.error("a dataset check job raised", exc_info=error)
