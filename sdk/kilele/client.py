"""The Kilele client: Rafiki's ``Client`` (seed 001) over Kilele's HTTPS API.

::

    from kilele import Client
    client = Client()                       # http://127.0.0.1:8000, the local stack
    client.login(email="superadmin@kilele", password="kilele")
    client.create_dataset("iris", "TABULAR_CLASSIFICATION", dataset_path="iris.csv",
                          target_column="species")

Every call returns the API's JSON as plain dicts and lists, and raises a
:class:`~kilele.errors.KileleError` subclass when the API answers an error.
"""
from __future__ import annotations

import base64
import os
import xml.etree.ElementTree as ET
from enum import Enum
from typing import Any, Iterable, Mapping, Optional, Union
from urllib.parse import quote

import requests

from kilele._multipart import MultipartFileBody
from kilele.constants import ModelAccessRight
from kilele.errors import (
    ConnectionFailedError,
    KileleError,
    PayloadTooLargeError,
    UnauthorizedError,
    UploadFailedError,
    error_from_response,
)

JSON = Any
StrOrEnum = Union[str, Enum]

MiB = 1024 * 1024


def _enum_value(value: StrOrEnum) -> str:
    """``Task.X`` or ``"x"`` -> ``"X"`` (the API's enums are upper case)."""
    if isinstance(value, Enum):
        return str(value.value)
    return str(value).strip().upper()


def _segment(value: str) -> str:
    """One path segment, escaped (ids never contain ``/``, but a typo must not change the route)."""
    return quote(str(value), safe="")


def _dependencies(dependencies: Union[Mapping[str, str], Iterable[str], None]) -> dict[str, str]:
    """``{"numpy": "1.26.4"}`` as is; ``["numpy==1.26.4", "scipy"]`` parsed into that shape."""
    if dependencies is None:
        return {}
    if isinstance(dependencies, Mapping):
        return {str(k): str(v) for k, v in dependencies.items()}
    if isinstance(dependencies, str):
        dependencies = [dependencies]
    parsed: dict[str, str] = {}
    for item in dependencies:
        name, _, version = str(item).partition("==")
        if not name.strip():
            raise ValueError(f"dependency {item!r} should look like name==version")
        parsed[name.strip()] = version.strip()
    return parsed


class Client:
    """A connection to a Kilele API.

    :param admin_host: host of the API (Rafiki's name for it); ignored when ``base_url`` is given
    :param admin_port: port of the API
    :param base_url: full API root, e.g. ``https://abc123.execute-api.eu-west-1.amazonaws.com/api``
    :param api_key: an API key, sent as ``x-api-key`` (a login session token takes precedence)
    :param token: a session token from an earlier :meth:`login`
    :param timeout: seconds to wait for each answer
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
    ):
        self.base_url = (base_url or f"http://{admin_host}:{admin_port}").rstrip("/")
        self.api_key = api_key
        self.token = token
        self.token_expires_at: Optional[str] = None
        self.timeout = timeout
        self.max_direct_upload_bytes = self.MAX_DIRECT_UPLOAD_BYTES
        self._session = requests.Session()
        self._session.headers.update({"Accept": "application/json", "User-Agent": "kilele-sdk"})

    def __repr__(self) -> str:
        return f"Client(base_url={self.base_url!r})"

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Close the underlying HTTP connections."""
        self._session.close()

    # ------------------------------------------------------------------ HTTP plumbing

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
        return error_from_response(response.status_code, payload, response.text, response.reason or "")

    # ------------------------------------------------------------------ service

    def service_info(self) -> dict[str, Any]:
        """Service name, version and status (``GET /``; needs no login)."""
        return self._request("GET", "/", auth=False)

    # ------------------------------------------------------------------ sessions and API keys

    def login(self, email: str, password: str) -> dict[str, Any]:
        """Log in; later calls use the session token (valid one hour). Returns the user."""
        answer = self._request("POST", "/tokens", json={"email": email, "password": password}, auth=False)
        self.token = answer["token"]
        self.token_expires_at = answer.get("expires_at")
        return answer["user"]

    def logout(self) -> Optional[dict[str, Any]]:
        """End the login session (revokes the token on the server, then forgets it)."""
        if not self.token:
            return None
        try:
            return self._request("DELETE", "/tokens/current")
        except UnauthorizedError:  # already expired or revoked: logged out either way
            return {"logged_out": True}
        finally:
            self.token = None
            self.token_expires_at = None

    def get_current_user(self) -> Optional[dict[str, Any]]:
        """The logged-in user (or the owner of the API key); None without a login or a key."""
        if not self.token and not self.api_key:
            return None
        return self._request("GET", "/users/me")

    def create_api_key(self, name: str = "default") -> dict[str, Any]:
        """Create an API key for yourself; the answer's ``key`` is shown only this once."""
        return self._request("POST", "/api-keys", json={"name": name})

    def get_api_keys(self) -> list[dict[str, Any]]:
        """Your API keys (ids and names, never the keys)."""
        return self._request("GET", "/api-keys")

    def revoke_api_key(self, key_id: str) -> dict[str, Any]:
        """Revoke one of your API keys by its id."""
        return self._request("DELETE", f"/api-keys/{_segment(key_id)}")

    # ------------------------------------------------------------------ users

    def create_user(self, email: str, password: str, user_type: StrOrEnum) -> dict[str, Any]:
        """Create a user (admins; only a superadmin creates admins). Returns the user."""
        body = {"email": email, "password": password, "user_type": _enum_value(user_type)}
        return self._request("POST", "/users", json=body)

    def get_users(self) -> list[dict[str, Any]]:
        """List all users (admins only)."""
        return self._request("GET", "/users")

    def ban_user(self, email: str) -> dict[str, Any]:
        """Ban a user: logins, sessions and API keys stop working. Irreversible."""
        return self._request("POST", "/users/ban", json={"email": email})

    # ------------------------------------------------------------------ datasets

    def create_dataset(
        self,
        name: str,
        task: StrOrEnum,
        dataset_path: Optional[str] = None,
        dataset_url: Optional[str] = None,
        target_column: Optional[str] = None,
    ) -> dict[str, Any]:
        """Create a dataset from a local file (``dataset_path``) or a URL the platform downloads
        (``dataset_url``); give exactly one. Files above :attr:`max_direct_upload_bytes` are
        uploaded straight to object storage. Returns the READY dataset."""
        if (dataset_path is None) == (dataset_url is None):
            raise ValueError("give exactly one of dataset_path and dataset_url")
        base: dict[str, Any] = {"name": name, "task": _enum_value(task)}
        if target_column is not None:
            base["target_column"] = target_column
        if dataset_url is not None:
            return self._request("POST", "/datasets", json={**base, "dataset_url": dataset_url})

        path = os.fspath(dataset_path)  # type: ignore[arg-type]
        size = os.path.getsize(path)  # FileNotFoundError before any call
        if size > self.max_direct_upload_bytes:
            return self._create_dataset_presigned(base, path, size)
        with open(path, "rb") as f:
            content = base64.b64encode(f.read()).decode("ascii")
        try:
            return self._request("POST", "/datasets", json={**base, "content_base64": content})
        except PayloadTooLargeError:
            if size == 0:
                raise
            # The server's direct-upload limit is lower than ours: take the presigned path.
            return self._create_dataset_presigned(base, path, size)

    def _create_dataset_presigned(self, base: dict[str, Any], path: str, size: int) -> dict[str, Any]:
        started = self._request("POST", "/datasets/uploads", json={**base, "size_bytes": size})
        dataset_id = started["dataset"]["id"]
        self._upload_presigned(started["upload"], path, dataset_id)
        return self._request("POST", f"/datasets/{_segment(dataset_id)}/complete")

    def _upload_presigned(self, upload: Mapping[str, Any], path: str, dataset_id: str) -> None:
        """POST the file to the presigned S3 form (never with our credentials)."""
        url = upload["url"]
        with open(path, "rb") as f:
            body = MultipartFileBody(upload.get("fields") or {}, f, os.path.basename(path))
            try:
                response = requests.post(
                    url, data=body, headers={"Content-Type": body.content_type}, timeout=self.timeout
                )
            except requests.exceptions.RequestException as e:
                raise ConnectionFailedError(
                    f"the upload of {path} for dataset {dataset_id} could not reach the storage URL {url} "
                    f"({type(e).__name__}: {e})"
                ) from e
        if response.status_code >= 300:
            code, reason = _s3_error(response)
            raise UploadFailedError(
                f"the storage service refused the upload of {path} for dataset {dataset_id} "
                f"(HTTP {response.status_code} {code}: {reason}); the dataset stays UPLOADING and unusable",
                status_code=response.status_code,
                code=code or "upload_failed",
            )

    def get_datasets(self, task: Optional[StrOrEnum] = None) -> list[dict[str, Any]]:
        """Your datasets (admins: all), optionally of one task."""
        return self._request("GET", "/datasets", params={"task": _enum_value(task) if task else None})

    def get_dataset(self, dataset_id: str) -> dict[str, Any]:
        """One dataset by id."""
        return self._request("GET", f"/datasets/{_segment(dataset_id)}")

    # ------------------------------------------------------------------ models

    def create_model(
        self,
        name: str,
        task: StrOrEnum,
        model_file_path: str,
        model_class: str,
        dependencies: Union[Mapping[str, str], Iterable[str], None] = None,
        access_right: StrOrEnum = ModelAccessRight.PRIVATE,
        docker_image: Optional[str] = None,
    ) -> dict[str, Any]:
        """Upload a model: one Python file whose ``model_class`` subclasses
        ``kilele.model.BaseModel``. ``dependencies`` is ``{pypi_name: version}``. Returns the model."""
        with open(model_file_path, "rb") as f:
            source = f.read()
        body: dict[str, Any] = {
            "name": name,
            "task": _enum_value(task),
            "model_class": model_class,
            "model_file_base64": base64.b64encode(source).decode("ascii"),
            "dependencies": _dependencies(dependencies),
            "access_right": _enum_value(access_right),
        }
        if docker_image is not None:
            body["docker_image"] = docker_image
        return self._request("POST", "/models", json=body)

    def get_model(self, model_id: str) -> dict[str, Any]:
        """One model by id."""
        return self._request("GET", f"/models/{_segment(model_id)}")

    def download_model_file(self, model_id: str, out_model_file_path: str) -> dict[str, Any]:
        """Save the model's Python file to ``out_model_file_path``. Returns the model."""
        model = self.get_model(model_id)
        response = self._request("GET", f"/models/{_segment(model_id)}/file", raw=True)
        with open(out_model_file_path, "wb") as f:
            f.write(response.content)
        return model

    def get_available_models(self, task: Optional[StrOrEnum] = None) -> list[dict[str, Any]]:
        """Models you can use (yours and PUBLIC ones), optionally of one task."""
        return self._request("GET", "/models", params={"task": _enum_value(task) if task else None})

    def delete_model(self, model_id: str) -> dict[str, Any]:
        """Delete a model that no train job uses. Returns the deleted model."""
        return self._request("DELETE", f"/models/{_segment(model_id)}")


def _s3_error(response: requests.Response) -> tuple[str, str]:
    """(code, message) from S3's XML error document, or from the raw text."""
    text = response.text or ""
    try:
        root = ET.fromstring(text)
        code = root.findtext("Code") or ""
        message = root.findtext("Message") or ""
        if code or message:
            return code or "upload_failed", message or text[:300]
    except ET.ParseError:
        pass
    return "upload_failed", text.strip()[:300] or (response.reason or "no reason given")


__all__ = ["Client"]
