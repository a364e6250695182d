"""The thread that runs model code, one call at a time, and that can be abandoned.

A model call cannot be interrupted from outside (Python threads cannot be killed), so a call
past its deadline is *abandoned*: the server stops sending work to this thread, starts a new
one with freshly loaded models (kilele_inference.app), and lets the stuck call finish, or never,
on its own. The thread is a daemon so that a call that never returns does not keep the process
alive at exit (``ThreadPoolExecutor``'s threads are joined at exit, which would hang).
"""
from __future__ import annotations

import itertools
import queue
import threading
from concurrent.futures import Executor, Future
from typing import Any, Callable, Optional

_names = itertools.count(1)


class ModelThread(Executor):
    """An executor of one daemon thread (``run_in_executor`` accepts it)."""

    def __init__(self, name: str = "kilele-model"):
        self._calls: "queue.SimpleQueue[Optional[tuple[Future, Callable[..., Any], tuple, dict]]]" = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"{name}-{next(_names)}", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        """Whether its thread still runs (an abandoned one stops once its stuck call returns)."""
        return self._thread.is_alive()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        if self._closed:
            raise RuntimeError("this model thread takes no more calls")
        future: Future = Future()
        self._calls.put((future, fn, args, kwargs))
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """No more calls; the thread ends after the queued ones (``wait``: wait for that)."""
        if not self._closed:
            self._closed = True
            self._calls.put(None)
        if wait:
            self._thread.join()

    def abandon(self) -> None:
        """No more calls, and nobody waits for the one running: its thread ends when (if) it returns."""
        self.shutdown(wait=False)

    def _run(self) -> None:
        while True:
            item = self._calls.get()
            if item is None:
                return
            future, fn, args, kwargs = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args, **kwargs)
            except BaseException as e:  # noqa: BLE001 - handed to whoever awaits the call
                future.set_exception(e)
            else:
                future.set_result(result)
