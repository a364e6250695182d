"""HTTP plumbing of the :class:`~kilele.Client`: the session, authentication headers, and the
one request path every public method takes (errors become :class:`~kilele.errors.KileleError`
subclasses, unreachable servers :class:`~kilele.errors.ConnectionFailedError`)."""
from __future__ import annotations

from enum import Enum
from typing import Any, Mapping, Optional

import requests

from kilele._args import _enum_value
from kilele.errors import ConnectionFailedError, KileleError, error_from_response

JSON = Any

MiB = 1024 * 1024


class HttpClient:
    """A connection to a Kilele API: where it is, how to authenticate, one ``requests`` session.

    The resource mixins in :mod:`kilele.resources` build on this class; :class:`kilele.Client`
    puts them all together.
    """

    #: Files up to this size go through the API in the request body; larger ones are uploaded
    #: straight to object storage with a presigned POST (the API's KILELE_MAX_DIRECT_UPLOAD_BYTES).
    MAX_DIRECT_UPLOAD_BYTES = 4 * MiB

    def __init__(
        self,
        admin_host: str = "127.0.0.1",
        admin_port: int = 8000,
        *,
        base_url: Optional[str] = None,
        api_key: Optional[str] = None,
        token: Optional[str] = None,
        timeout: float = 60,
        aws_session: Any = None,
        sign_requests: Optional[bool] = None,
        region: Optional[str] = None,
    ):
        self.base_url = (base_url or f"http://{admin_host}:{admin_port}").rstrip("/")
        self.api_key = api_key
        self.token = token
        self.token_expires_at: Optional[str] = None
        self.timeout = timeout
        self.max_direct_upload_bytes = self.MAX_DIRECT_UPLOAD_BYTES
        # boto3 managed-transfer knobs for direct S3 uploads of signed clients (kilele._s3_direct).
        from kilele._s3_direct import TransferSettings

        self.transfer = TransferSettings()
        self._session = requests.Session()
        self._session.headers.update({"Accept": "application/json", "User-Agent": "kilele-sdk"})
        # SigV4 with the caller's AWS credentials (kilele._aws): on when a boto3 session is
        # given, or asked for with sign_requests=True (then boto3's default credential chain).
        self.aws_session = aws_session
        self._signer = None
        if sign_requests or (sign_requests is None and aws_session is not None):
            from kilele._aws import SigV4, default_session, region_of

            self.aws_session = aws_session or default_session(region)
            self._signer = SigV4(self.aws_session, region or region_of(self.base_url, self.aws_session))

    @classmethod
    def from_stack(cls, stack_name: str, aws_session: Any = None, *, iam: bool = True, region: Optional[str] = None,
                   **kwargs: Any) -> Any:
        """A client for the deployed stack ``stack_name``, its API found in the stack's
        CloudFormation outputs. With ``iam`` (the default) requests are signed with the
        session's credentials (the IAM user or role must be linked to a Kilele user); without,
        log in or pass ``api_key`` as usual."""
        from kilele._aws import default_session, stack_api_url

        session = aws_session or default_session(region)
        url = stack_api_url(stack_name, session, iam)
        if iam:
            return cls(base_url=url, aws_session=session, region=region, **kwargs)
        return cls(base_url=url, aws_session=session, sign_requests=False, **kwargs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    def __enter__(self) -> "HttpClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Close the underlying HTTP connections."""
        self._session.close()

    def _auth_headers(self) -> dict[str, str]:
        if self.token:
            return {"Authorization": f"Bearer {self.token}"}
        if self.api_key:
            return {"x-api-key": self.api_key}
        return {}

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: JSON = None,
        params: Optional[Mapping[str, Any]] = None,
        auth: bool = True,
        raw: bool = False,
    ) -> Any:
        """Call the API and return its decoded JSON (the :class:`requests.Response` if ``raw``).

        Every public method goes through here: authentication headers, ``None`` query
        parameters dropped, unreachable servers and error answers turned into
        :class:`KileleError` subclasses.
        """
        url = f"{self.base_url}{path}"
        headers = self._auth_headers() if auth else {}
        query = {k: _enum_value(v) if isinstance(v, Enum) else v for k, v in (params or {}).items() if v is not None}
        response = self._send(method, url, headers=headers, json=json, params=query or None)
        if response.status_code >= 400:
            raise self._error(response)
        if raw:
            return response
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as e:
            raise KileleError(
                f"{method} {url} answered {response.status_code} with a body that is not JSON: "
                f"{response.text[:200]!r}",
                status_code=response.status_code,
                code="bad_response",
            ) from e

    def _send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        try:
            if self._signer is not None and url.startswith(self.base_url):  # never a presigned URL
                kwargs.setdefault("auth", self._signer)
            return self._session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.exceptions.Timeout as e:
            raise ConnectionFailedError(f"{url} did not answer within {self.timeout} s ({e})") from e
        except (requests.exceptions.ConnectionError, requests.exceptions.InvalidURL,
                requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema) as e:
            raise ConnectionFailedError(
                f"could not reach the Kilele API at {self.base_url} ({type(e).__name__} for {method} {url}); "
                "is the server running and the URL right?"
            ) from e

    @staticmethod
    def _error(response: requests.Response) -> KileleError:
        try:
            payload = response.json()
        except ValueError:
            payload = None
        return error_from_response(response.status_code, payload, response.text, response.reason or "",
                                   retry_after=response.headers.get("Retry-After"))
