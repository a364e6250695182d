"""The one module that builds objects: adapters, repositories and services, from settings."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from chalicelib.adapters.blobs import BlobStore
from chalicelib.adapters.passwords import PasswordHasher
from chalicelib.adapters.url_fetcher import UrlFetcher
from chalicelib.services.auth import AuthService
from chalicelib.services.datasets import DatasetService
from chalicelib.services.models import ModelService
from chalicelib.services.users import UserService
from chalicelib.settings import Settings, get_settings
from chalicelib.store.repositories import (
    ApiKeyRepository,
    DatasetRepository,
    ModelRepository,
    SessionRepository,
    UserRepository,
)


@dataclass(frozen=True)
class Services:
    settings: Settings
    auth: AuthService
    users: UserService
    datasets: DatasetService
    models: ModelService


def build_services(settings: Settings) -> Services:
    hasher = PasswordHasher(settings.password_hash_time_cost, settings.password_hash_memory_kib)
    users = UserRepository()
    blobs = BlobStore(settings.data_bucket)
    return Services(
        settings=settings,
        auth=AuthService(users, SessionRepository(), ApiKeyRepository(), hasher, settings.session_ttl_seconds),
        users=UserService(users, hasher),
        datasets=DatasetService(
            DatasetRepository(),
            blobs,
            UrlFetcher(settings.dataset_url_timeout_seconds),
            max_direct_upload_bytes=settings.max_direct_upload_bytes,
            max_dataset_bytes=settings.max_dataset_bytes,
            presigned_url_seconds=settings.presigned_url_seconds,
        ),
        models=ModelService(ModelRepository(), blobs, settings.max_model_file_bytes),
    )


@lru_cache(maxsize=1)
def services() -> Services:
    """The process-wide services (built on first use, so importing the app stays cheap)."""
    return build_services(get_settings())
