"""pynamodb models: the only module that defines DynamoDB items.

Table and index names come from chalicelib/resources.py through the settings, so these models
always match what infra/ and the local stack create.
"""
from __future__ import annotations

from pynamodb.attributes import (
    MapAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from chalicelib import resources
from chalicelib.settings import get_settings

_settings = get_settings()


def _meta(spec: resources.TableSpec) -> type:
    return type("Meta", (), {"table_name": _settings.resource_name(spec.name), "region": _settings.region})


def _index_meta(name: str) -> type:
    return type("Meta", (), {"index_name": name, "projection": AllProjection()})


class UserItem(Model):
    Meta = _meta(resources.USERS)

    class ById(GlobalSecondaryIndex):
        Meta = _index_meta("by_id")
        id = UnicodeAttribute(hash_key=True)

    email = UnicodeAttribute(hash_key=True)
    id = UnicodeAttribute()
    user_type = UnicodeAttribute()
    password_hash = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    banned_at = UTCDateTimeAttribute(null=True)
    by_id = ById()


class SessionItem(Model):
    Meta = _meta(resources.SESSIONS)

    token_hash = UnicodeAttribute(hash_key=True)
    user_email = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    # Epoch seconds: DynamoDB's TTL needs a number. Readers still check it, since TTL deletion
    # lags by up to days on AWS and never happens in moto.
    expires_at = NumberAttribute()


class ApiKeyItem(Model):
    Meta = _meta(resources.API_KEYS)

    class ByOwner(GlobalSecondaryIndex):
        Meta = _index_meta("by_owner")
        owner_email = UnicodeAttribute(hash_key=True)
        created_at = UnicodeAttribute(range_key=True)

    key_id = UnicodeAttribute(hash_key=True)
    owner_email = UnicodeAttribute()
    name = UnicodeAttribute()
    secret_hash = UnicodeAttribute()
    created_at = UnicodeAttribute()  # ISO-8601, sortable, used as the index range key
    by_owner = ByOwner()


class DatasetItem(Model):
    Meta = _meta(resources.DATASETS)

    class ByOwner(GlobalSecondaryIndex):
        Meta = _index_meta("by_owner")
        owner_id = UnicodeAttribute(hash_key=True)
        created_at = UnicodeAttribute(range_key=True)

    id = UnicodeAttribute(hash_key=True)
    owner_id = UnicodeAttribute()
    name = UnicodeAttribute()
    task = UnicodeAttribute()
    status = UnicodeAttribute()
    object_key = UnicodeAttribute()
    created_at = UnicodeAttribute()
    size_bytes = NumberAttribute(default=0)
    target_column = UnicodeAttribute(null=True)
    stats = MapAttribute(default=dict)
    by_owner = ByOwner()


class ModelItem(Model):
    Meta = _meta(resources.MODELS)

    class ByOwner(GlobalSecondaryIndex):
        Meta = _index_meta("by_owner")
        owner_id = UnicodeAttribute(hash_key=True)
        created_at = UnicodeAttribute(range_key=True)

    class ByAccess(GlobalSecondaryIndex):
        Meta = _index_meta("by_access")
        access_right = UnicodeAttribute(hash_key=True)
        created_at = UnicodeAttribute(range_key=True)

    id = UnicodeAttribute(hash_key=True)
    owner_id = UnicodeAttribute()
    name = UnicodeAttribute()
    task = UnicodeAttribute()
    model_class = UnicodeAttribute()
    object_key = UnicodeAttribute()
    created_at = UnicodeAttribute()
    access_right = UnicodeAttribute()
    dependencies = MapAttribute(default=dict)
    docker_image = UnicodeAttribute(null=True)
    train_job_count = NumberAttribute(default=0)
    by_owner = ByOwner()
    by_access = ByAccess()


class UniqueItem(Model):
    """A claimed unique value (``kind#scope#value``), written in the transaction it guards."""

    Meta = _meta(resources.UNIQUES)

    key = UnicodeAttribute(hash_key=True)
    owner = UnicodeAttribute()


ALL_MODELS: tuple[type[Model], ...] = (UserItem, SessionItem, ApiKeyItem, DatasetItem, ModelItem, UniqueItem)
