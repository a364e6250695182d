"""The Chalice app under moto: real DynamoDB and S3 semantics, in process."""
from __future__ import annotations

import base64
import json
from typing import Any, Optional

import pytest
from moto import mock_aws

from chalicelib.local.provision import provision
from chalicelib.settings import get_settings

SUPERADMIN = ("superadmin@kilele", "kilele")


class Api:
    """A small JSON client over Chalice's test client."""

    def __init__(self, client: Any):
        self._client = client
        self.headers: dict[str, str] = {}

    def call(self, method: str, path: str, body: Any = None, headers: Optional[dict] = None, raw: Optional[bytes] = None):
        all_headers = {"Content-Type": "application/json", **self.headers, **(headers or {})}
        payload = raw if raw is not None else (json.dumps(body) if body is not None else None)
        response = self._client.http.request(method, path, headers=all_headers, body=payload)
        try:
            response.data = json.loads(response.body) if response.body else None
        except ValueError:
            response.data = response.body
        return response

    def login(self, email: str, password: str) -> "Api":
        response = self.call("POST", "/tokens", {"email": email, "password": password})
        assert response.status_code == 200, response.data
        other = Api(self._client)
        other.headers = {"Authorization": f"Bearer {response.data['token']}"}
        return other

    def user(self, email: str, user_type: str, password: str = "secret1") -> "Api":
        response = self.call("POST", "/users", {"email": email, "password": password, "user_type": user_type})
        assert response.status_code == 201, response.data
        return self.login(email, password)


@pytest.fixture
def aws():
    with mock_aws():
        provision(get_settings())
        yield


@pytest.fixture
def client(aws):
    from chalice.test import Client

    from app import app
    from chalicelib import wiring

    wiring.services.cache_clear()
    wiring.services().users.ensure_superadmin(*SUPERADMIN)
    with Client(app) as chalice_client:
        yield Api(chalice_client)
    wiring.services.cache_clear()


@pytest.fixture
def superadmin(client) -> Api:
    return client.login(*SUPERADMIN)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
