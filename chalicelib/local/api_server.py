"""The API on 127.0.0.1, served by waitress in a background thread."""
from __future__ import annotations

import threading
from typing import Any, Optional

from waitress.server import create_server

from chalicelib.local.ports import LOOPBACK


class ApiServer:
    def __init__(self, wsgi_app: Any, port: int = 8000, threads: int = 8):
        self._server = create_server(wsgi_app, host=LOOPBACK, port=port, threads=threads, ident="kilele")
        self._thread: Optional[threading.Thread] = None

    @property
    def port(self) -> int:
        return int(self._server.effective_port)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.run, name="kilele-api", daemon=True)
        self._thread.start()

    def alive(self) -> bool:
        """Whether the server's thread still serves (the stack's watcher stops the stack if not)."""
        return bool(self._thread and self._thread.is_alive())

    def stop(self) -> None:
        self._server.close()
        if self._thread:
            self._thread.join(timeout=10)
