"""Serves the Chalice app over WSGI (with waitress) the way API Gateway would invoke it.

``chalice local`` has two problems for a platform: a ~40 ms delayed-ACK stall per keep-alive
request, and a race, since Chalice keeps ``current_request`` on the app object while its
server handles requests in threads. Here waitress serves HTTP, Chalice's own LocalGateway
turns each request into the Lambda event, and the app's per-request attributes are made
thread-local.
"""
from __future__ import annotations

import json
import threading
from http import HTTPStatus
from typing import Any, Callable, Iterable, Optional
from urllib.parse import quote, unquote

from chalice import Chalice
from chalice.config import Config
from chalice.local import LocalGateway, LocalGatewayException

from chalicelib.local.sigv4 import SignatureRejected, is_signed, verify

_THREAD_LOCAL_ATTRS = ("current_request", "lambda_context")


def _make_thread_local(app: Chalice) -> None:
    """Give ``app`` per-thread ``current_request``/``lambda_context`` (idempotent)."""
    if getattr(type(app), "_kilele_thread_local", False):
        return
    state = threading.local()

    def attr(name: str) -> property:
        return property(lambda self: getattr(state, name, None), lambda self, value: setattr(state, name, value))

    namespace = {name: attr(name) for name in _THREAD_LOCAL_ATTRS}
    namespace["_kilele_thread_local"] = True
    for name in _THREAD_LOCAL_ATTRS:
        app.__dict__.pop(name, None)
    app.__class__ = type(f"ThreadLocal{type(app).__name__}", (type(app),), namespace)


class _PeerAddressGateway(LocalGateway):
    """Chalice's LocalGateway with the request's ``identity.sourceIp`` set to the TCP peer's
    address, as API Gateway sets it (Chalice's says 127.0.0.1 for everyone); the login
    throttle counts failures per address. Never from a header: a client could forge that."""

    def __init__(self, app: Chalice, config: Config):
        super().__init__(app, config)
        self._peer = threading.local()

    def handle_peer_request(self, peer: Optional[str], user_arn: Optional[str] = None, **request: Any) -> Any:
        self._peer.address, self._peer.user_arn = peer, user_arn
        try:
            return self.handle_request(**request)
        finally:
            self._peer.address = self._peer.user_arn = None

    def _generate_lambda_event(self, method: str, path: str, headers: Any, body: Optional[bytes]) -> Any:
        event = super()._generate_lambda_event(method, path, headers, body)
        # Routes are matched on the still-encoded path (an encoded '?' or '/' stays inside its
        # segment); API Gateway hands the Lambda decoded path parameters, and so does this.
        if event.get("pathParameters"):
            event["pathParameters"] = {k: unquote(v) for k, v in event["pathParameters"].items()}
        address = getattr(self._peer, "address", None)
        if address:
            event["requestContext"]["identity"]["sourceIp"] = address
        # Only a verified SigV4 signature (ChaliceWsgiApp's verifier) names a caller, as API
        # Gateway's IAM authorization does; never a header.
        event["requestContext"]["identity"]["userArn"] = getattr(self._peer, "user_arn", None)
        return event


def _forbidden(message: str) -> tuple[int, dict[str, str], bytes]:
    body = json.dumps({"error": {"code": "forbidden", "message": message}}).encode()
    return 403, {"Content-Type": "application/json", "Content-Length": str(len(body))}, body


def _not_found(method: str, path: str) -> tuple[int, dict[str, str], bytes]:
    body = {"error": {"code": "not_found", "message": f"no route {method} {path}"}}
    return 404, {"Content-Type": "application/json"}, json.dumps(body).encode()


class ChaliceWsgiApp:
    """A WSGI application that runs a Chalice app through Chalice's LocalGateway."""

    def __init__(self, app: Chalice, stage: str = "local", timeout_seconds: int = 900,
                 credentials_of: Optional[Callable[[str], Any]] = None):
        """``credentials_of(access_key_id)``: the issued key's :class:`~chalicelib.local.sigv4.Credentials`
        (None if unknown), for SigV4-signed requests; without it a signed request is refused."""
        self._credentials_of = credentials_of
        _make_thread_local(app)
        config = Config.create(chalice_app=app, app_name=app.app_name, chalice_stage=stage,
                               lambda_timeout=timeout_seconds, lambda_memory_size=1024)
        self._gateway = _PeerAddressGateway(app, config)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        # PATH_INFO arrives percent-decoded (as latin-1 text of the raw bytes); encode it again so
        # a decoded '?', '#', ';' (urlparse's parameters), tab or newline cannot change how Chalice
        # splits and matches the path.
        path = quote((environ.get("PATH_INFO") or "/").encode("latin-1"), safe="/!$&'()*+,=:@-._~")
        query = environ.get("QUERY_STRING")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        headers = {
            key[5:].replace("_", "-").lower(): value for key, value in environ.items() if key.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        target = f"{path}?{query}" if query else path
        try:
            user_arn = self._caller(method, environ, target, headers, body)
        except SignatureRejected as e:
            status, response_headers, payload = _forbidden(str(e))
        else:
            status, response_headers, payload = self._dispatch(method, target, headers, body, environ.get("REMOTE_ADDR"),
                                                               user_arn)
        reason = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
        start_response(f"{status} {reason}", list(response_headers.items()))
        return [payload]

    def _caller(self, method: str, environ: dict[str, Any], target: str, headers: dict[str, str],
                body: bytes) -> Optional[str]:
        """The ARN behind a SigV4-signed request (None when unsigned); SignatureRejected if the
        signature does not hold."""
        if not is_signed(headers):
            return None
        if self._credentials_of is None:
            raise SignatureRejected("this gateway has no IAM to check SigV4 signatures against")
        url = f"{environ.get('wsgi.url_scheme', 'http')}://{headers.get('host', '')}{target}"
        if environ.get("CONTENT_LENGTH"):  # WSGI keeps it out of HTTP_*; a client may have signed it
            headers = {**headers, "content-length": environ["CONTENT_LENGTH"]}
        return verify(method, url, headers, body, self._credentials_of)

    def _dispatch(
        self, method: str, path: str, headers: dict[str, str], body: bytes, peer: Optional[str] = None,
        user_arn: Optional[str] = None,
    ) -> tuple[int, dict[str, str], bytes]:
        try:
            response = self._gateway.handle_peer_request(peer, user_arn, method=method, path=path, headers=headers,
                                                         body=body)
        except LocalGatewayException as e:
            if e.CODE == 403:  # API Gateway's answer to an unknown route
                return _not_found(method, path.split("?", 1)[0])
            return e.CODE, {"Content-Type": "application/json"}, e.body or b""
        response_headers = {"Content-Type": "application/json", **dict(response.get("headers") or {})}
        payload: Optional[Any] = response.get("body")
        if payload is None:
            data = b""
        elif isinstance(payload, bytes):
            data = payload
        else:
            data = payload.encode("utf-8")
        response_headers["Content-Length"] = str(len(data))
        return int(response["statusCode"]), response_headers, data
