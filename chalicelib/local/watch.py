"""The local stack watches itself.

- :func:`health_overlay` puts each component's health into ``GET /`` and answers 503, naming the
  components that are down, when one is (the route itself only knows the API answers).
- :class:`Watcher` looks at the components every second: moto that died is started again from
  its saved state (the writes of its last few seconds are lost, its running executions end and
  :mod:`~chalicelib.local.recovery` puts their jobs right); a consumer whose thread ended is
  started again. More than ``max_restarts`` restarts within ``window_seconds`` stop the stack
  loudly (exit code 1 and the reason on stderr) rather than limp on.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from typing import Any, Callable, Iterable, Optional

log = logging.getLogger("kilele.local")

Health = dict[str, Any]


def health_overlay(app: Callable[..., Any], report: Callable[[], dict[str, Health]]) -> Callable[..., Any]:
    """Wrap the API's WSGI ``app``: ``GET /`` gains ``components`` (name -> ``{"ok", "detail"}``),
    and is a 503 with an ``error`` naming the components that are down when one is."""

    def serve(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "GET" or (environ.get("PATH_INFO") or "/") != "/":
            return app(environ, start_response)
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            captured.update(status=status, headers=headers)

        body = b"".join(app(environ, capture))
        try:
            document = json.loads(body)
        except ValueError:
            start_response(captured["status"], captured["headers"])
            return [body]
        components = report()
        down = sorted(name for name, health in components.items() if not health.get("ok"))
        document["components"] = components
        status = captured["status"]
        if down and status.startswith("200"):
            status = "503 Service Unavailable"
            document["status"] = "unavailable"
            details = "; ".join(f"{name}: {components[name].get('detail')}" for name in down)
            document["error"] = {"code": "unavailable", "message": f"down: {', '.join(down)} ({details})"}
        data = json.dumps(document).encode()
        headers = [(k, v) for k, v in captured["headers"] if k.lower() != "content-length"]
        start_response(status, headers + [("Content-Length", str(len(data)))])
        return [data]

    return serve


class Restarts:
    """Counts restarts in a sliding window."""

    def __init__(self, limit: int, window_seconds: float, clock: Callable[[], float] = time.monotonic):
        self.limit = limit
        self.window = window_seconds
        self._clock = clock
        self._times: list[float] = []

    def allow(self) -> bool:
        """Record one more restart; False when that would be more than ``limit`` in the window."""
        now = self._clock()
        self._times = [t for t in self._times if now - t < self.window] + [now]
        return len(self._times) <= self.limit


class Watcher:
    """Keeps ``stack``'s components running, or stops the stack loudly (see the module doc).

    ``stack`` provides ``moto`` (with ``alive()``, ``pid``), ``components``, ``restart_moto()``
    and ``fail(reason)``.
    """

    name = "watcher"

    def __init__(self, stack: Any, interval_seconds: float = 1.0, max_restarts: int = 3,
                 window_seconds: float = 300.0):
        self._stack = stack
        self._interval = interval_seconds
        self._moto_restarts = Restarts(max_restarts, window_seconds)
        self._component_restarts: dict[str, Restarts] = {}
        self._max_restarts, self._window = max_restarts, window_seconds
        self._stop = threading.Event()  # no more checks
        self._exit = threading.Event()  # the thread may end (see stop)
        self._thread: Optional[threading.Thread] = None
        self.events: deque[str] = deque(maxlen=5)  # the latest restarts, for GET / and the log

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="kilele-watcher", daemon=True)
        self._thread.start()

    def halt(self) -> None:
        """Stop watching (nothing is restarted from now on); the thread lives on until :meth:`stop`."""
        self._stop.set()

    def stop(self) -> None:
        # Call it after moto has stopped: the kernel ends a child whose parent *thread* exits
        # (PR_SET_PDEATHSIG), and a moto restarted by this thread is such a child.
        self._stop.set()
        self._exit.set()
        if self._thread and self._thread is not threading.current_thread():
            self._thread.join(timeout=60)

    def health(self) -> Health:
        alive = bool(self._thread and self._thread.is_alive() and not self._stop.is_set())
        detail = "watching" if alive else "not running"
        return {"ok": alive, "detail": detail + "".join(f"; {event}" for event in self.events)}

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.check()
            except Exception as e:  # noqa: BLE001 - a watcher that cannot watch stops the stack
                log.exception("watcher failed")
                self._give_up(f"the local stack's watcher failed: {type(e).__name__}: {e}")
        self._exit.wait()

    def check(self) -> None:
        """One look at every component (restarting what died)."""
        api = getattr(self._stack, "api", None)
        if not self._stop.is_set() and api is not None and not api.alive():
            self._give_up("the API server's thread ended")  # its socket went with it: nothing to restart
            return
        moto = self._stack.moto
        if not self._stop.is_set() and not moto.alive():
            self._moto_died(moto.health().get("detail"))
        for component in list(self._stack.components):
            alive = getattr(component, "alive", None)
            if self._stop.is_set() or alive is None or alive():
                continue
            restarts = self._component_restarts.setdefault(component.name, Restarts(self._max_restarts, self._window))
            if not restarts.allow():
                self._give_up(f"{component.name} stopped more than {self._max_restarts} times in {self._window:g} s")
                return
            self.events.append(f"{component.name} stopped; started again at {time.strftime('%H:%M:%S')}")
            log.warning("watcher: %s", self.events[-1])
            component.start(self._stack.context)

    def _moto_died(self, detail: Optional[str]) -> None:
        if not getattr(self._stack.moto, "restartable", True):
            # An emulator the stack did not start (kilele local up --aws-endpoint-url): nothing
            # to restart, and its state is its own, so the stack stops rather than pretend.
            self._give_up(f"the AWS emulator the stack uses stopped answering ({detail}); it is not the stack's "
                          "to restart")
            return
        if not self._moto_restarts.allow():
            self._give_up(f"moto (the emulated AWS) stopped more than {self._max_restarts} times in "
                          f"{self._window:g} s, last: {detail}")
            return
        # Said before the restart: GET / answers again as soon as moto does, while the jobs it was
        # running are still being put right.
        self.events.append(f"moto stopped ({detail}) at {time.strftime('%H:%M:%S')}; "
                           "started again from its saved state")
        log.warning("watcher: %s", self.events[-1])
        try:
            self._stack.restart_moto()
        except Exception as e:  # noqa: BLE001 - reported, and the stack stops
            self._give_up(f"moto (the emulated AWS) stopped ({detail}) and could not be started again: {e}")

    def _give_up(self, reason: str) -> None:
        self._stop.set()
        self._stack.fail(reason)
