"""dataset_url as an attacker uses it (issue 9, finding 2): a server-side request forgery into
loopback, the instance metadata address and private networks, through redirects and DNS, slow
servers, big files, and error messages that quote what was fetched or tell open ports from closed.

Each test names the defence that stopped the attack. The servers here listen on 127.0.0.1,
which the default policy refuses; tests that need a successful download allow that one address
explicitly (``AddressPolicy(["127.0.0.1/32"])``), the way settings do for a private mirror.
"""
from __future__ import annotations

import http.server
import io
import socket
import threading
import time
from typing import Any, Callable, Iterator

import pytest

from chalicelib.adapters.url_fetcher import AddressPolicy, UrlFetcher
from chalicelib.errors import InvalidInput, PayloadTooLarge, Unprocessable

SECRET = b"moto-internal-state: AKIA-SECRET-1234"
LOOPBACK_ONLY = AddressPolicy(["127.0.0.1/32"])


class _Handler(http.server.BaseHTTPRequestHandler):
    """Routes: /file, /secret-error, /redirect?to=..., /loop, /drip-body, /drip-headers, /big, /big-declared."""

    protocol_version = "HTTP/1.1"
    requests: list[tuple[str, str]]

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.requests.append((self.path, self.headers.get("Host", "")))
        route, _, query = self.path.partition("?")
        if route == "/file":
            self._send(200, SECRET)
        elif route == "/secret-error":
            self._send(500, SECRET)
        elif route == "/redirect":
            self._redirect(query.removeprefix("to="))
        elif route == "/loop":
            self._redirect("/loop")
        elif route == "/drip-body":
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self._drip(b"x")
        elif route == "/drip-headers":
            self.wfile.write(b"HTTP/1.1 200 OK\r\n")
            self._drip(b"X-Slow: y\r\n")
        elif route == "/big":  # no Content-Length: only counting the bytes read can stop it
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            try:
                for _ in range(100):
                    self.wfile.write(b"0" * 65536)
            except OSError:
                pass
        elif route == "/big-declared":
            self.send_response(200)
            self.send_header("Content-Length", str(10**12))
            self.end_headers()
        else:
            self._send(404, b"nothing here")

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _drip(self, piece: bytes) -> None:
        try:
            for _ in range(600):  # a minute at most, whatever the client does
                self.wfile.write(piece)
                self.wfile.flush()
                time.sleep(0.1)
        except OSError:
            pass

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[Any]:
    """A loopback HTTP server; ``server.url`` is its base URL, ``server.requests`` what it was asked."""
    handler = type("Handler", (_Handler,), {"requests": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"  # type: ignore[attr-defined]
    httpd.requests = handler.requests  # type: ignore[attr-defined]
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def fetch(url: str, fetcher: UrlFetcher = None, max_bytes: int = 10**6) -> bytes:  # type: ignore[assignment]
    out = io.BytesIO()
    (fetcher or UrlFetcher(timeout_seconds=5)).fetch(url, out, max_bytes)
    return out.getvalue()


def refused(call: Callable[[], Any], error: type = Unprocessable) -> str:
    with pytest.raises(error) as caught:
        call()
    message = caught.value.message
    assert SECRET.decode() not in message, "the error quotes what the server sent"
    return message


# --- where the platform may connect ------------------------------------------------------------

def test_a_loopback_server_is_refused_before_any_request(server):
    message = refused(lambda: fetch(f"{server.url}/file"))
    assert "not a public address" in message
    assert server.requests == [], "defence: the address check after DNS resolution (no request was sent)"


@pytest.mark.parametrize("url", [
    "http://169.254.169.254/latest/meta-data/",  # instance metadata (link-local)
    "http://[fd00:ec2::254]/latest/meta-data/",  # instance metadata, IPv6 (unique local)
    "http://10.0.0.1/", "http://172.16.0.1/", "http://192.168.1.1/",  # private
    "http://100.64.0.1/",  # carrier-grade NAT (shared)
    "http://0.0.0.0:5000/", "http://[::]/",  # unspecified: reaches the local host on Linux
    "http://localhost:5000/moto-api/", "http://[::1]/",  # loopback by name and IPv6
    "http://2130706433/", "http://0x7f.1/", "http://017700000001/",  # 127.0.0.1 spelt as a number
    "http://[::ffff:127.0.0.1]/", "http://[::ffff:a9fe:a9fe]/",  # IPv4-mapped loopback, metadata
    "http://[64:ff9b::7f00:1]/",  # NAT64 of 127.0.0.1
    "http://[2002:7f00:1::]/",  # 6to4 of 127.0.0.1
    "http://224.0.0.1/", "http://[ff02::1]/",  # multicast
    "http://240.0.0.1/", "http://255.255.255.255/",  # reserved, broadcast
    "http://192.0.2.1/", "http://198.18.0.1/",  # documentation, benchmarking
])
def test_non_public_addresses_are_refused(url):
    started = time.monotonic()
    message = refused(lambda: fetch(url))
    assert "not a public address" in message, "defence: the address policy"
    assert time.monotonic() - started < 2, "refused before trying to connect"


@pytest.mark.parametrize("address, public", [
    ("8.8.8.8", True), ("2606:4700:4700::1111", True), ("::ffff:8.8.8.8", True),
    ("127.0.0.1", False), ("169.254.169.254", False), ("::ffff:169.254.169.254", False), ("fe80::1", False),
    ("fc00::1", False), ("::1", False), ("::", False), ("100.64.0.1", False), ("239.1.1.1", False),
])
def test_the_default_policy(address, public):
    import ipaddress

    assert AddressPolicy().allows(ipaddress.ip_address(address)) is public


def test_an_allowed_network_is_the_only_exception():
    import ipaddress

    policy = AddressPolicy(["127.0.0.1/32"])
    assert policy.allows(ipaddress.ip_address("127.0.0.1"))
    assert not policy.allows(ipaddress.ip_address("127.0.0.2"))
    assert not policy.allows(ipaddress.ip_address("169.254.169.254"))


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/x.csv", "gopher://127.0.0.1:6379/_x",
                                 "example.com/x.csv", "http:///nohost", "http://example.com:99999/"])
def test_only_http_urls(url):
    refused(lambda: fetch(url), InvalidInput)


def test_a_name_that_does_not_resolve_reads_like_any_unreachable_server():
    message = refused(lambda: fetch("http://no-such-host.invalid/x.csv"))
    assert "could not be reached" in message


# --- DNS rebinding: the address checked is the address connected to ----------------------------

def test_the_connection_goes_to_the_checked_address_with_the_urls_host(server):
    port = server.server_address[1]
    answers = iter([[(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))],
                    [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.9.9.9", port))]])
    lookups: list[str] = []

    def rebinding_dns(host: str, *args: Any, **kwargs: Any) -> list:
        lookups.append(host)
        return next(answers)  # a second lookup would get another address

    fetcher = UrlFetcher(timeout_seconds=5, policy=LOOPBACK_ONLY, resolve=rebinding_dns)
    assert fetch(f"http://files.example:{port}/file", fetcher) == SECRET
    assert lookups == ["files.example"], "defence: one lookup per hop, the connection pinned to its answer"
    assert server.requests == [("/file", f"files.example:{port}")]


def test_a_name_with_one_private_address_among_public_ones_is_refused():
    def mixed(host: str, port: int, *args: Any, **kwargs: Any) -> list:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("8.8.8.8", port)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    message = refused(lambda: fetch("http://mixed.example/x", UrlFetcher(timeout_seconds=5, resolve=mixed)))
    assert "not a public address" in message


# --- redirects ----------------------------------------------------------------------------------

def test_allowed_server_downloads(server):
    assert fetch(f"{server.url}/file", UrlFetcher(timeout_seconds=5, policy=LOOPBACK_ONLY)) == SECRET


def test_a_redirect_is_followed_and_checked(server):
    fetcher = UrlFetcher(timeout_seconds=5, policy=LOOPBACK_ONLY)
    assert fetch(f"{server.url}/redirect?to=/file", fetcher) == SECRET


@pytest.mark.parametrize("target", [
    "http://127.0.0.2:{port}/file",  # loopback, but not the allowed address
    "http://169.254.169.254/latest/meta-data/iam/",
    "http://[::1]:{port}/file",
])
def test_a_redirect_to_a_non_public_address_is_refused(server, target):
    port = server.server_address[1]
    fetcher = UrlFetcher(timeout_seconds=5, policy=LOOPBACK_ONLY)
    message = refused(lambda: fetch(f"{server.url}/redirect?to={target.format(port=port)}", fetcher))
    assert "not a public address" in message, "defence: every redirect target is checked like the URL"
    assert [path for path, _ in server.requests] == [f"/redirect?to={target.format(port=port)}"]


def test_a_redirect_to_another_scheme_is_refused(server):
    fetcher = UrlFetcher(timeout_seconds=5, policy=LOOPBACK_ONLY)
    message = refused(lambda: fetch(f"{server.url}/redirect?to=file:///etc/passwd", fetcher))
    assert "not http(s)" in message


def test_redirects_are_bounded(server):
    fetcher = UrlFetcher(timeout_seconds=5, policy=LOOPBACK_ONLY, max_redirects=3)
    message = refused(lambda: fetch(f"{server.url}/loop", fetcher))
    assert "more than 3 redirects" in message
    assert len(server.requests) == 4


# --- size and time ------------------------------------------------------------------------------

def test_a_declared_size_over_the_limit_is_refused_before_reading(server):
    fetcher = UrlFetcher(timeout_seconds=5, policy=LOOPBACK_ONLY)
    message = refused(lambda: fetch(f"{server.url}/big-declared", fetcher, max_bytes=1000), PayloadTooLarge)
    assert "the limit is 1000" in message


def test_an_undeclared_size_over_the_limit_stops_the_download(server):
    fetcher = UrlFetcher(timeout_seconds=5, policy=LOOPBACK_ONLY)
    message = refused(lambda: fetch(f"{server.url}/big", fetcher, max_bytes=100_000), PayloadTooLarge)
    assert "limit of 100000 bytes" in message


@pytest.mark.parametrize("route", ["/drip-body", "/drip-headers"])
def test_a_slow_server_is_cut_at_the_total_deadline(server, route):
    """One byte (or header) every 0.1 s never trips a per-read timeout; the total deadline stops it."""
    fetcher = UrlFetcher(timeout_seconds=1, policy=LOOPBACK_ONLY)
    started = time.monotonic()
    message = refused(lambda: fetch(f"{server.url}{route}", fetcher))
    assert time.monotonic() - started < 2.5, "defence: the total deadline (watchdog)"
    assert "within 1 s" in message


# --- what errors say ----------------------------------------------------------------------------

def test_an_http_error_does_not_quote_the_body(server):
    message = refused(lambda: fetch(f"{server.url}/secret-error", UrlFetcher(timeout_seconds=5, policy=LOOPBACK_ONLY)))
    assert message.endswith("HTTP 500")


def test_refused_and_filtered_ports_read_the_same():
    """A closed port answers at once, a port that accepts and never answers waits for the deadline:
    the messages (URL aside) are identical, so they cannot be told apart by reading them."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        closed_port = closed.getsockname()[1]
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # the handshake completes, nothing is ever sent back
        silent_port = silent.getsockname()[1]
        fetcher = UrlFetcher(timeout_seconds=0.5, policy=LOOPBACK_ONLY)
        closed_message = refused(lambda: fetch(f"http://127.0.0.1:{closed_port}/x", fetcher))
        silent_message = refused(lambda: fetch(f"http://127.0.0.1:{silent_port}/x", fetcher))
    assert closed_message.replace(str(closed_port), "PORT") == silent_message.replace(str(silent_port), "PORT")


# --- what a downloaded file's check says ----------------------------------------------------------

def test_a_downloaded_file_that_fails_its_check_is_not_quoted(server):
    """The server's answer (a CSV whose header and values hold secrets) is checked, and the
    refusal says where the file is wrong, never what it holds."""
    from chalicelib.services.datasets import DatasetService
    from chalicelib.entities import Task, User, UserType

    class Fetcher:
        def fetch(self, url: str, out: io.BytesIO, max_bytes: int) -> int:
            body = b"AKIA_HEADER,target\n" + SECRET + b",x\n"
            out.write(body)
            return len(body)

    class Nowhere:  # neither store is reached: the check refuses first
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"{name} was called")

    service = DatasetService(Nowhere(), Nowhere(), Fetcher(), max_direct_upload_bytes=10, max_dataset_bytes=10**6,
                             presigned_url_seconds=60)
    admin = User(id="u1", email="a@b.c", user_type=UserType.ADMIN, password_hash="", created_at=None)
    message = refused(lambda: service.create_from_url(admin, "d", Task.TABULAR_CLASSIFICATION, "http://x.example/d.csv"))
    assert message == "http://x.example/d.csv: line 2, column 1 is not a number"
    assert "AKIA" not in message, "defence: checks of downloaded files report positions only"
