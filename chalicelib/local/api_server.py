"""The API on 127.0.0.1, served by waitress in a background thread."""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Optional

from waitress import wasyncore
from waitress.server import create_server

from chalicelib.local.ports import LOOPBACK


class QueueDepthLog:
    """What waitress's task dispatcher warns through (its ``queue_logger``): its queue-depth
    warning at most once per ``seconds``, with how many requests waited since the last one and
    the deepest the queue was.

    waitress warns "Task queue depth is N" for every request that arrives while all its threads
    are busy, from its one I/O thread and while holding the lock its threads take their next
    request under. On a saturated stack (a benchmark's 16 or 64 clients) that was a log record, a
    format and a write per request (about one per request measured), in the thread every request
    passes through, while the worker threads wait on that lock: CPU the saturated process lacks,
    spent on a line that says the same thing each time."""

    def __init__(self, logger: logging.Logger, seconds: float = 10.0, ticker: Callable[[], float] = time.monotonic):
        self._logger, self._seconds, self._ticker = logger, seconds, ticker
        self._next: Optional[float] = None  # the first warning goes out at once
        self._waited = 0
        self._deepest = 0

    def warning(self, message: str, *args: Any, **kwargs: Any) -> None:
        self._waited += 1
        depth = args[0] if args and isinstance(args[0], int) else 0
        self._deepest = max(self._deepest, depth)
        now = self._ticker()
        if self._next is not None and now < self._next:
            return
        self._next = now + self._seconds
        waited, deepest, self._waited, self._deepest = self._waited, self._deepest, 0, 0
        self._logger.warning(message + " (%d requests queued behind busy threads since the last such warning, the "
                             "queue at most %d deep; warned once per %g s)", *args, waited, deepest, self._seconds,
                             **kwargs)

    def __getattr__(self, name: str) -> Any:  # any other level waitress may log at, as it would
        return getattr(self._logger, name)


class ApiServer:
    def __init__(self, wsgi_app: Any, port: int = 8000, threads: int = 8):
        self._server = create_server(wsgi_app, host=LOOPBACK, port=port, threads=threads, ident="kilele")
        # An instance attribute: shadows the class's logger for this server's dispatcher only.
        self._server.task_dispatcher.queue_logger = QueueDepthLog(logging.getLogger("waitress.queue"))
        self._thread: Optional[threading.Thread] = None
        self._stopping = False

    @property
    def port(self) -> int:
        return int(self._server.effective_port)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._serve, name="kilele-api", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            self._server.run()
        except (OSError, ValueError):
            if not self._stopping:
                raise
            # stop() closed the connections under the loop's select (EBADF, or a closed socket's
            # fileno -1): the loop is done.

    def alive(self) -> bool:
        """Whether the server's thread still serves (the stack's watcher stops the stack if not)."""
        return bool(self._thread and self._thread.is_alive())

    def stop(self) -> None:
        """Stop listening, end the open connections and the request threads (each bounded)."""
        self._stopping = True
        self._server.close()
        # waitress's loop runs while any connection is open: a client's keep-alive connection (an
        # SDK session in a test) held every e2e stack's stop here for the join's full 10 s. As
        # waitress's own multi-socket close does: the task threads, then every channel.
        self._server.task_dispatcher.shutdown(timeout=5)
        channels = getattr(self._server, "_map", None)  # None: not the one-socket server; nothing to close
        if channels is not None:
            wasyncore.close_all(channels)
        if self._thread:
            self._thread.join(timeout=10)
