"""The one definition of Kilele's stateful AWS resources.

Both the CDK app (infra/) and the embedded local stack (chalicelib/local/provision.py) build
their tables, buckets and queues from these specs, so the two can never drift apart. Names
here are logical; the deployed name is ``f"{prefix}-{name}"`` (see ``Settings.resource_name``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

AttrType = Literal["S", "N", "B"]


@dataclass(frozen=True)
class Key:
    name: str
    type: AttrType = "S"


@dataclass(frozen=True)
class Index:
    """A global secondary index projecting all attributes."""

    name: str
    hash_key: Key
    range_key: Optional[Key] = None


@dataclass(frozen=True)
class TableSpec:
    name: str
    hash_key: Key
    range_key: Optional[Key] = None
    indexes: tuple[Index, ...] = ()
    ttl_attribute: Optional[str] = None

    def attribute_definitions(self) -> dict[str, AttrType]:
        """Every key attribute of the table and its indexes, by name."""
        attrs: dict[str, AttrType] = {}
        for key in (self.hash_key, self.range_key):
            if key:
                attrs[key.name] = key.type
        for index in self.indexes:
            for key in (index.hash_key, index.range_key):
                if key:
                    attrs[key.name] = key.type
        return attrs


@dataclass(frozen=True)
class BucketSpec:
    name: str


@dataclass(frozen=True)
class QueueSpec:
    name: str
    visibility_timeout_seconds: int = 60


@dataclass(frozen=True)
class Resources:
    tables: tuple[TableSpec, ...] = field(default_factory=tuple)
    buckets: tuple[BucketSpec, ...] = field(default_factory=tuple)
    queues: tuple[QueueSpec, ...] = field(default_factory=tuple)

    def table(self, name: str) -> TableSpec:
        return next(t for t in self.tables if t.name == name)


USERS = TableSpec("users", hash_key=Key("email"), indexes=(Index("by_id", Key("id")),))
SESSIONS = TableSpec("sessions", hash_key=Key("token_hash"), ttl_attribute="expires_at")
API_KEYS = TableSpec(
    "api-keys",
    hash_key=Key("key_id"),
    indexes=(Index("by_owner", Key("owner_email"), Key("created_at")),),
)
DATASETS = TableSpec(
    "datasets",
    hash_key=Key("id"),
    indexes=(Index("by_owner", Key("owner_id"), Key("created_at")),),
)
MODELS = TableSpec(
    "models",
    hash_key=Key("id"),
    indexes=(
        Index("by_owner", Key("owner_id"), Key("created_at")),
        Index("by_access", Key("access_right"), Key("created_at")),
    ),
)
# Uniqueness guards written in the same transaction as the item they protect
# (e.g. a model's name per owner), since DynamoDB has no unique secondary keys.
UNIQUES = TableSpec("uniques", hash_key=Key("key"))

DATA_BUCKET = BucketSpec("data")

RESOURCES = Resources(
    tables=(USERS, SESSIONS, API_KEYS, DATASETS, MODELS, UNIQUES),
    buckets=(DATA_BUCKET,),
    queues=(),
)
