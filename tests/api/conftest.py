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

from api_support import PASSWORD, SUPERADMIN, Api  # noqa: E402 - shared with the test modules
from settings_support import make_settings


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
def settings():
    """The settings the tests' resources are provisioned with."""
    return make_settings()


@pytest.fixture
def aws(settings):
    with mock_aws():
        provision(settings)
        yield


@pytest.fixture
def install_services(aws, settings) -> Iterator[Callable[..., Any]]:
    """``install_services(settings_values={...}, **overrides)``: build the services (from the
    test's settings with those values changed, and these parts replaced) and make them the ones
    the app's handlers use; the previous ones are put back after the test."""
    from chalicelib import wiring

    previous = wiring.install(None)
    built: list[Any] = []

    def install(settings_values: Optional[dict[str, Any]] = None, **overrides: Any) -> Any:
        services = wiring.build(settings.with_values(**(settings_values or {})), **overrides)
        wiring.install(services)
        built.append(services)
        return services

    yield install
    for services in built:
        services.close()
    wiring.install(previous)


@pytest.fixture
def service_overrides() -> dict[str, Any]:
    """Parts the app under test is built with instead of the real ones (a test module may
    override this fixture, e.g. with fake endpoints)."""
    return {}


@pytest.fixture
def client(install_services, service_overrides):
    from chalice.test import Client

    from app import app

    install_services(**service_overrides).users.ensure_superadmin(*SUPERADMIN)
    with Client(app) as chalice_client:
        yield Api(chalice_client)


@pytest.fixture
def superadmin(client) -> Api:
    return client.login(*SUPERADMIN)


@pytest.fixture
def make_user(superadmin) -> Callable[..., Api]:
    """``make_user("MODEL_DEVELOPER")``: a new user of that type (created by the superadmin), logged in."""
    numbers = itertools.count(1)

    def make(user_type: str, email: Optional[str] = None, password: str = PASSWORD) -> Api:
        email = email or f"{user_type.lower().replace('_', '-')}-{next(numbers)}@example.com"
        return superadmin.user(email, user_type, password)

    return make


class Bucket:
    """The data bucket, seen directly through S3 (to check what the API left behind)."""

    def __init__(self, settings: Any) -> None:
        self.name = settings.data_bucket
        self._s3 = boto3.client("s3", region_name=settings.region)

    def keys(self, prefix: str = "") -> list[str]:
        listing = self._s3.list_objects_v2(Bucket=self.name, Prefix=prefix)
        return sorted(item["Key"] for item in listing.get("Contents", []))

    def read(self, key: str) -> bytes:
        return self._s3.get_object(Bucket=self.name, Key=key)["Body"].read()


@pytest.fixture
def bucket(aws, settings) -> Bucket:
    return Bucket(settings)


@pytest.fixture
def override_settings(client, install_services, service_overrides) -> Callable[..., Any]:
    """``override_settings(max_direct_upload_bytes=100)``: rebuild the services with these
    settings values (the superadmin and everything stored stay: they live in moto)."""

    def override(**values: Any) -> Any:
        return install_services(settings_values=values, **service_overrides)

    return override


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()

