"""The Chalice app under moto: real DynamoDB and S3 semantics, in process."""
from __future__ import annotations

import base64
import functools
import itertools
from typing import Any, Callable, Iterator, Optional

import boto3
import botocore.loaders
import botocore.session
import pytest
from moto import mock_aws

from chalicelib.local.provision import provision
from chalicelib.settings import get_settings

from api_support import SUPERADMIN, Api  # noqa: E402 - shared with the test modules


@pytest.fixture(scope="session", autouse=True)
def _shared_botocore_loader() -> Iterator[None]:
    """One botocore data loader for every session the tests create.

    moto resets boto3's default session on every ``mock_aws`` and each new botocore session
    parses botocore's JSON service models again (~0.1 s per client); sharing the loader keeps
    a test's set-up near 0.1 s. botocore already shares loaded models between the clients of
    one session; this shares them between sessions too.
    """
    patch = pytest.MonkeyPatch()
    patch.setattr(botocore.session, "create_loader", functools.lru_cache(maxsize=None)(botocore.loaders.create_loader))
    yield
    patch.undo()


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


@pytest.fixture
def make_user(superadmin) -> Callable[..., Api]:
    """``make_user("MODEL_DEVELOPER")``: a new user of that type (created by the superadmin), logged in."""
    numbers = itertools.count(1)

    def make(user_type: str, email: Optional[str] = None, password: str = "secret1") -> Api:
        email = email or f"{user_type.lower().replace('_', '-')}-{next(numbers)}@example.com"
        return superadmin.user(email, user_type, password)

    return make


class Bucket:
    """The data bucket, seen directly through S3 (to check what the API left behind)."""

    def __init__(self) -> None:
        self.name = get_settings().data_bucket
        self._s3 = boto3.client("s3", region_name=get_settings().region)

    def keys(self, prefix: str = "") -> list[str]:
        listing = self._s3.list_objects_v2(Bucket=self.name, Prefix=prefix)
        return sorted(item["Key"] for item in listing.get("Contents", []))

    def read(self, key: str) -> bytes:
        return self._s3.get_object(Bucket=self.name, Key=key)["Body"].read()


@pytest.fixture
def bucket(aws) -> Bucket:
    return Bucket()


@pytest.fixture
def override_settings(client) -> Iterator[Callable[..., None]]:
    """``override_settings(max_direct_upload_bytes=100)``: rebuild the services from settings
    with these ``KILELE_*`` values; everything is restored after the test."""
    from chalicelib import wiring

    patch = pytest.MonkeyPatch()

    def override(**values: Any) -> None:
        for name, value in values.items():
            patch.setenv(f"KILELE_{name.upper()}", str(value))
        get_settings.cache_clear()
        wiring.services.cache_clear()
        # Build now, not inside a request: Chalice's test Client runs each request with
        # .chalice/config.json's stage variables (KILELE_STAGE=dev), while moto holds the
        # resources of the settings the tests provisioned.
        wiring.services()

    yield override
    patch.undo()
    get_settings.cache_clear()
    wiring.services.cache_clear()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()

