"""The local API server stops at once although a client keeps a connection open (keep-alive,
as an SDK session does): waitress's loop ran on while any connection was open, and every e2e
stack's stop waited here the join's full 10 s (chalicelib/local/api_server.py)."""
from __future__ import annotations

import http.client
import time

from chalicelib.local.api_server import ApiServer


def _app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


def test_stop_ends_the_server_thread_with_a_keep_alive_connection_still_open():
    server = ApiServer(_app, port=0, threads=2)
    server.start()
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request("GET", "/")
        response = connection.getresponse()
        assert response.status == 200 and response.read() == b"ok"  # HTTP/1.1: the connection stays open
        started = time.monotonic()
        server.stop()
        took = time.monotonic() - started
        assert not server.alive()
        assert took < 5, took
    finally:
        connection.close()
