"""Downloads a dataset from a URL the user gave, without becoming a proxy into private networks.

The URL is user input aimed at the platform's own network, so every hop is checked:

* only ``http`` and ``https``;
* the host is resolved once, every address it resolves to must be public (:class:`AddressPolicy`),
  and the connection goes to the checked address (no second lookup a rebinding DNS could answer
  differently), with the URL's host kept for ``Host``, SNI and certificate checks;
* redirects are followed here, each target checked like the first URL, at most ``max_redirects``;
* one deadline covers the whole download (lookups, connects, headers, every read), enforced by a
  watchdog that shuts the socket, so a server dripping one byte a second cannot hold a thread;
* at most ``max_bytes`` are read.

Errors never quote what a server sent, and every failure to get an answer (refused, closed,
filtered, timed out, TLS, DNS) gets the same message, so the endpoint cannot be used to map ports.
"""
from __future__ import annotations

import concurrent.futures
import http.client
import ipaddress
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import IO, Callable, Iterable, Optional, Union
from urllib.parse import urljoin, urlsplit

from chalicelib.errors import InvalidInput, PayloadTooLarge, Unprocessable

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]

_CHUNK = 256 * 1024
_REDIRECTS = {301, 302, 303, 307, 308}
# Prefixes that embed an IPv4 address the packet really goes to (NAT64, RFC 6052).
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class AddressPolicy:
    """Which addresses outbound fetches may connect to: public unicast ones only, plus the
    networks in ``allowed_networks`` (empty by default; a test's loopback server, a private mirror)."""

    def __init__(self, allowed_networks: Iterable[str] = ()):
        self.allowed_networks = tuple(ipaddress.ip_network(n, strict=False) for n in allowed_networks)

    def allows(self, address: IPAddress) -> bool:
        """True if ``address`` may be connected to."""
        if any(address.version == n.version and address in n for n in self.allowed_networks):
            return True
        return all(_is_public(a) for a in _embedded(address))


def _embedded(address: IPAddress) -> list[IPAddress]:
    """``address`` and the IPv4 addresses it carries (mapped, NAT64, 6to4, Teredo): each must be public."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return [address.ipv4_mapped]  # ::ffff:0:0/96 itself counts as reserved: judge the IPv4 address
    found: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        for inner in (address.sixtofour, (address.teredo or (None, None))[1]):
            if inner is not None:
                found.append(inner)
        if address in _NAT64:
            found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


def _is_public(address: IPAddress) -> bool:
    # is_global alone lets some special ranges through (e.g. multicast is "global" in places).
    return address.is_global and not (
        address.is_multicast or address.is_private or address.is_loopback or address.is_link_local
        or address.is_reserved or address.is_unspecified
    )


@dataclass
class _Target:
    scheme: str
    host: str
    port: int
    path: str


class UrlFetcher:
    """Streams a user-given http(s) URL into a file, within a byte limit and a deadline."""

    def __init__(self, timeout_seconds: float = 30.0, policy: Optional[AddressPolicy] = None,
                 max_redirects: int = 5, ssl_context: Optional[ssl.SSLContext] = None,
                 resolve: Callable[..., list] = socket.getaddrinfo):
        """``resolve`` has ``socket.getaddrinfo``'s signature (a test's resolver replaces DNS)."""
        self.timeout_seconds = timeout_seconds
        self.policy = policy or AddressPolicy()
        self.max_redirects = max_redirects
        self._ssl_context = ssl_context or ssl.create_default_context()
        self._resolve_name = resolve

    def fetch(self, url: str, out: IO[bytes], max_bytes: int) -> int:
        """Stream ``url`` into ``out``; returns the byte count."""
        deadline = time.monotonic() + self.timeout_seconds
        current = url
        for _ in range(self.max_redirects + 1):
            target = _target(current, original=url)
            response, connection, location = self._request(target, url, deadline)
            try:
                if location is None:
                    return self._read_body(response, connection, out, max_bytes, url, deadline)
            finally:
                connection.disarm()
            current = urljoin(current, location)
        raise Unprocessable(f"could not download {url}: more than {self.max_redirects} redirects")

    def _request(self, target: _Target, url: str, deadline: float):
        addresses = self._resolve(target, url, deadline)
        for address in addresses:
            connection = self._connection(target, address, deadline)
            try:
                connection.request("GET", target.path, headers={"User-Agent": "kilele-dataset-fetch",
                                                                  "Accept-Encoding": "identity"})
                response = connection.getresponse()
            except (OSError, http.client.HTTPException, ssl.SSLError):
                connection.disarm()
                if time.monotonic() >= deadline:
                    break
                continue
            if response.status in _REDIRECTS:
                location = response.getheader("Location")
                if not location:
                    connection.disarm()
                    raise Unprocessable(f"could not download {url}: HTTP {response.status} without a Location")
                return response, connection, location
            if response.status != 200:
                connection.disarm()
                raise Unprocessable(f"could not download {url}: HTTP {response.status}")
            return response, connection, None
        raise Unprocessable(_unreachable(url, self.timeout_seconds))

    def _resolve(self, target: _Target, url: str, deadline: float) -> list[str]:
        """Every address of the host, all checked; a lookup that fails or outlasts the deadline
        reads like any other unreachable server."""
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        try:
            future = pool.submit(self._resolve_name, target.host, target.port, type=socket.SOCK_STREAM)
            infos = future.result(timeout=max(0.0, deadline - time.monotonic()))
        except (OSError, UnicodeError, concurrent.futures.TimeoutError):
            raise Unprocessable(_unreachable(url, self.timeout_seconds)) from None
        finally:
            pool.shutdown(wait=False)  # a hung lookup finishes on its own; nobody waits for it
        addresses = list(dict.fromkeys(info[4][0] for info in infos))
        for text in addresses:
            address = ipaddress.ip_address(text.split("%", 1)[0])
            if not self.policy.allows(address):
                raise Unprocessable(
                    f"could not download {url}: {target.host} is not a public address "
                    "(datasets are fetched only from public http(s) servers)"
                )
        return addresses

    def _connection(self, target: _Target, address: str, deadline: float) -> "_Pinned":
        remaining = max(0.001, deadline - time.monotonic())
        if target.scheme == "https":
            return _PinnedHTTPSConnection(target.host, address, target.port, remaining, deadline, self._ssl_context)
        return _PinnedHTTPConnection(target.host, address, target.port, remaining, deadline)

    def _read_body(self, response: http.client.HTTPResponse, connection: "_Pinned", out: IO[bytes],
                   max_bytes: int, url: str, deadline: float) -> int:
        declared = response.getheader("Content-Length")
        if declared and declared.strip().isdigit() and int(declared) > max_bytes:
            raise PayloadTooLarge(f"{url} is {int(declared)} bytes; the limit is {max_bytes}")
        total = 0
        try:
            while True:
                # read1: one receive at a time, so the deadline is checked between small reads.
                chunk = response.read1(_CHUNK)
                if time.monotonic() >= deadline:
                    raise TimeoutError
                if not chunk:
                    break
                total += len(chunk)
                if total > max_bytes:
                    raise PayloadTooLarge(f"{url} is larger than the limit of {max_bytes} bytes")
                out.write(chunk)
        except (OSError, http.client.HTTPException, ssl.SSLError):
            raise Unprocessable(_unreachable(url, self.timeout_seconds)) from None
        if connection.watchdog_fired:
            raise Unprocessable(_unreachable(url, self.timeout_seconds))
        return total


def _unreachable(url: str, timeout_seconds: float) -> str:
    # One message for refused, closed, filtered, reset, timed out, TLS and DNS failures.
    return (f"could not download {url}: the server could not be reached or did not send the file "
            f"within {timeout_seconds:g} s")


def _target(url: str, original: str) -> _Target:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise InvalidInput(f"dataset_url is not a valid URL: {e}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        if url == original:
            raise InvalidInput(f"dataset_url must be an http(s) URL, got {url!r}")
        raise Unprocessable(f"could not download {original}: it redirects to a URL that is not http(s)")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return _Target(parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80), path)


class _Pinned:
    """Mixin: connect to the checked address, and shut the socket at the deadline.

    The watchdog is disarmed by :meth:`disarm`, not by ``close()``: http.client closes the
    connection as soon as a ``Connection: close`` response's headers are in, while its body is
    still to be read through the same socket."""

    address: str
    deadline: float
    watchdog_fired = False
    _watchdog: Optional[threading.Timer] = None
    _live: Optional[socket.socket] = None

    def _open_socket(self) -> socket.socket:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        sock = socket.create_connection((self.address, self.port), timeout=remaining)  # type: ignore[attr-defined]
        self._live = sock
        self._watchdog = threading.Timer(remaining, self._expire)
        self._watchdog.daemon = True
        self._watchdog.start()
        return sock

    def _expire(self) -> None:
        self.watchdog_fired = True
        try:
            if self._live is not None:
                self._live.shutdown(socket.SHUT_RDWR)  # wakes a blocked read: it returns EOF or fails
        except OSError:
            pass

    def disarm(self) -> None:
        """Stop the watchdog and close the connection."""
        if self._watchdog is not None:
            self._watchdog.cancel()
        self.close()  # type: ignore[attr-defined]


class _PinnedHTTPConnection(_Pinned, http.client.HTTPConnection):
    def __init__(self, host: str, address: str, port: int, timeout: float, deadline: float):
        super().__init__(host, port, timeout=timeout)
        self.address, self.deadline = address, deadline

    def connect(self) -> None:
        self.sock = self._open_socket()


class _PinnedHTTPSConnection(_Pinned, http.client.HTTPSConnection):
    def __init__(self, host: str, address: str, port: int, timeout: float, deadline: float,
                 context: ssl.SSLContext):
        super().__init__(host, port, timeout=timeout, context=context)
        self.address, self.deadline = address, deadline

    def connect(self) -> None:
        # SNI and the certificate check use the URL's host, the TCP connection the checked address.
        tls = self._context.wrap_socket(self._open_socket(), server_hostname=self.host,  # type: ignore[attr-defined]
                                        do_handshake_on_connect=False)
        self._live = tls  # the watchdog now shuts the TLS socket (the plain one was detached)
        tls.do_handshake()
        self.sock = tls


__all__ = ["AddressPolicy", "UrlFetcher"]
