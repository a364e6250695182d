"""A real HTTP server on 127.0.0.1 that answers canned JSON and records every request.

The SDK is tested through its real ``requests`` plumbing; no mocking library and no platform.
"""
from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional, Union
from urllib.parse import parse_qs, urlsplit

import pytest


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Canned:
    status: int = 200
    body: Union[bytes, str, dict, list, None] = None
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Recorded], Canned]


class FakeServer:
    """``server.route("POST", "/tokens", 200, {...})`` then point a Client at ``server.url``.

    ``server.handler(method, path, fn)`` answers with ``fn(recorded)``, a ``server.Canned``.
    """

    Canned = Canned

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._routes: dict[tuple[str, str], Union[Canned, Handler]] = {}
        self._lock = threading.Lock()
        fake = self

        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep pytest output clean
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                recorded = Recorded(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
                with fake._lock:
                    fake.requests.append(recorded)
                    route = fake._routes.get((self.command, parts.path))
                if route is None:
                    canned = Canned(404, {"error": {"code": "not_found", "message": f"no route {parts.path}"}})
                elif callable(route):
                    canned = route(recorded)
                else:
                    canned = route
                payload = canned.body
                headers = dict(canned.headers)
                if isinstance(payload, (dict, list)):
                    payload = json.dumps(payload).encode()
                    headers.setdefault("Content-Type", "application/json")
                elif isinstance(payload, str):
                    payload = payload.encode()
                payload = payload or b""
                self.send_response(canned.status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _handle

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), RequestHandler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-kilele", daemon=True
        )
        self._thread.start()

    def route(self, method: str, path: str, status: int = 200, body: Any = None,
              headers: Optional[dict[str, str]] = None) -> None:
        self._routes[(method, path)] = Canned(status, body, headers or {})

    def handler(self, method: str, path: str, handler: Handler) -> None:
        self._routes[(method, path)] = handler

    def last(self, method: Optional[str] = None, path: Optional[str] = None) -> Recorded:
        for r in reversed(self.requests):
            if (method is None or r.method == method) and (path is None or r.path == path):
                return r
        raise AssertionError(f"no {method or ''} {path or ''} request; got {[(r.method, r.path) for r in self.requests]}")

    def paths(self) -> list[tuple[str, str]]:
        return [(r.method, r.path) for r in self.requests]

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def server():
    fake = FakeServer()
    yield fake
    fake.stop()


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

