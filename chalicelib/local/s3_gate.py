"""The local twin of IAM's check on direct S3 transfers: an S3 endpoint in front of moto that
lets each IAM user read and write only its own ``direct/<name>/`` prefix of the data bucket.

On AWS, IAM users who move files straight to and from S3 (the SDK's ``kilele._s3_direct``) do
so under infra's managed policy ``kilele-<stage>-direct-transfers``, built from
:mod:`chalicelib.direct_transfers`. moto checks no signature and no policy, so against it any
key would be readable by anyone: the local stack hands IAM users this gate's URL instead
(``Settings.direct_s3_endpoint_url``). For every request it

1. verifies the SigV4 signature (service ``s3``) against the access keys moto issued, with
   botocore's own signer (:func:`chalicelib.local.sigv4.verify`), and the payload's SHA-256;
2. names the IAM action the S3 operation needs (:func:`action_of`) and asks
   :func:`chalicelib.direct_transfers.may` whether the caller's IAM user name allows it on that
   key of the data bucket (roles never: they have no ``aws:username``);
3. forwards what is allowed to moto unchanged and streams the answer back; anything else is
   S3's own 403 ``AccessDenied`` (or ``SignatureDoesNotMatch``, ``InvalidAccessKeyId``) XML.

Locally every IAM user is treated as if the managed policy were attached to it: what the gate
checks is that policy's reach, not whether an admin attached it.
"""
from __future__ import annotations

import hashlib
import http.client
import logging
import re
from typing import Any, Callable, Iterator, Optional
from urllib.parse import parse_qs, quote, urlsplit
from xml.sax.saxutils import escape

from waitress.server import create_server

from chalicelib import direct_transfers
from chalicelib.iam_principals import iam_user_name
from chalicelib.local.ports import LOOPBACK
from chalicelib.local.sigv4 import Credentials, SignatureRejected, verify

log = logging.getLogger(__name__)

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "expect", "host", "te", "upgrade", "proxy-connection"}
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_BLOCK = 1024 * 1024


def action_of(method: str, query: dict[str, list[str]], headers: dict[str, str]) -> Optional[str]:
    """The IAM action an S3 object request needs, or None for one the direct grant never covers
    (copies, deletes, tagging, ACLs...)."""
    if set(query) - {"uploads", "uploadId", "partNumber", "x-id", "max-parts", "part-number-marker"}:
        return None  # ?tagging, ?acl, ?restore, ?attributes...: not granted
    if "x-amz-copy-source" in headers:
        return None  # CopyObject and UploadPartCopy would read another key
    if method in ("GET", "HEAD"):
        return "s3:ListMultipartUploadParts" if "uploadId" in query else "s3:GetObject"
    if method == "PUT" or (method == "POST" and ("uploads" in query or "uploadId" in query)):
        return "s3:PutObject"  # PutObject, CreateMultipartUpload, UploadPart, CompleteMultipartUpload
    if method == "DELETE" and "uploadId" in query:
        return "s3:AbortMultipartUpload"
    return None


class S3Gate:
    """A WSGI app (served on 127.0.0.1 by :meth:`start`) passing allowed requests to ``upstream_url``."""

    def __init__(self, upstream_url: str, bucket: str, credentials_of: Callable[[str], Optional[Credentials]],
                 port: int = 0, threads: int = 4):
        upstream = urlsplit(upstream_url)
        self._upstream = (upstream.hostname or LOOPBACK, upstream.port or 80)
        self._bucket = bucket
        self._credentials_of = credentials_of
        self._server = create_server(self, host=LOOPBACK, port=port, threads=threads, ident="kilele-s3-gate")
        self._thread: Any = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{int(self._server.effective_port)}"

    def start(self) -> None:
        import threading

        self._thread = threading.Thread(target=self._server.run, name="kilele-s3-gate", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, and close the clients' kept-alive connections too (waitress's loop runs
        while any is open, and boto3 keeps its pool open)."""
        self._server.close()
        for channel in list(self._server._map.values()):
            channel.close()
        self._server.task_dispatcher.shutdown()
        if self._thread:
            self._thread.join(timeout=10)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        method = environ["REQUEST_METHOD"]
        # PATH_INFO arrives percent-decoded as latin-1 text of the raw bytes: quote it as botocore
        # does (S3 signs the path as sent, every byte but unreserved ones and "/" encoded).
        raw_path = (environ.get("PATH_INFO") or "/").encode("latin-1")
        path = quote(raw_path, safe="/~")
        query_string = environ.get("QUERY_STRING") or ""
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        for name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if environ.get(name):
                headers[name.replace("_", "-").lower()] = environ[name]
        length = int(headers.get("content-length") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        bucket, _, key = raw_path.decode("utf-8", "replace").lstrip("/").partition("/")
        resource = f"/{bucket}/{key}"
        url = f"http://{headers.get('host', '')}{path}" + (f"?{query_string}" if query_string else "")
        try:
            arn = verify(method, url, headers, body, self._credentials_of, service="s3")
        except SignatureRejected as e:
            return self._refuse(start_response, method, "SignatureDoesNotMatch", str(e), resource)
        declared = headers.get("x-amz-content-sha256", "")
        if _SHA256_HEX.match(declared) and hashlib.sha256(body).hexdigest() != declared:
            return self._refuse(start_response, method, "XAmzContentSHA256Mismatch",
                                "The provided 'x-amz-content-sha256' header does not match what was computed.",
                                resource, status="400 Bad Request")
        action = action_of(method, parse_qs(query_string, keep_blank_values=True), headers)
        user = iam_user_name(arn)
        if not (bucket == self._bucket and action and direct_transfers.may(user, action, key)):
            return self._refuse(start_response, method, "AccessDenied",
                                f"User: {arn} is not authorized to perform: {action or method} on resource: "
                                f"arn:aws:s3:::{bucket}/{key} (only {direct_transfers.user_prefix(user or '<IAM user>')}"
                                f" of {self._bucket} is granted)", resource)
        return self._forward(start_response, method, path, query_string, headers, body)

    def _forward(self, start_response: Callable[..., Any], method: str, path: str, query_string: str,
                 headers: dict[str, str], body: bytes) -> Iterator[bytes]:
        connection = http.client.HTTPConnection(*self._upstream, timeout=120)
        target = path + (f"?{query_string}" if query_string else "")
        connection.request(method, target, body=body or None,
                           headers={k: v for k, v in headers.items() if k not in _HOP_BY_HOP})
        response = connection.getresponse()
        start_response(f"{response.status} {response.reason}",
                       [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP])
        return _stream(connection, response, method)

    @staticmethod
    def _refuse(start_response: Callable[..., Any], method: str, code: str, message: str, resource: str,
                status: str = "403 Forbidden") -> list[bytes]:
        log.warning("S3 gate refused %s %s: %s (%s)", method, resource, code, message)
        document = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
                    f"<Message>{escape(message)}</Message><Resource>{escape(resource)}</Resource></Error>").encode()
        start_response(status, [("Content-Type", "application/xml"), ("Content-Length", str(len(document)))])
        return [document]  # waitress sends no body to a HEAD


def _stream(connection: http.client.HTTPConnection, response: http.client.HTTPResponse, method: str) -> Iterator[bytes]:
    try:
        if method != "HEAD":
            while True:
                block = response.read(_BLOCK)
                if not block:
                    break
                yield block
    finally:
        connection.close()
