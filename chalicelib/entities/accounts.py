"""Accounts and uploads: users, sessions, API keys, datasets and models."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Optional


class UserType(str, Enum):
    SUPERADMIN = "SUPERADMIN"
    ADMIN = "ADMIN"
    MODEL_DEVELOPER = "MODEL_DEVELOPER"
    APP_DEVELOPER = "APP_DEVELOPER"

    @property
    def is_admin(self) -> bool:
        return self in (UserType.SUPERADMIN, UserType.ADMIN)


class Task(str, Enum):
    TABULAR_CLASSIFICATION = "TABULAR_CLASSIFICATION"
    TABULAR_REGRESSION = "TABULAR_REGRESSION"
    IMAGE_CLASSIFICATION = "IMAGE_CLASSIFICATION"


class AccessRight(str, Enum):
    PRIVATE = "PRIVATE"
    PUBLIC = "PUBLIC"


class DatasetStatus(str, Enum):
    UPLOADING = "UPLOADING"  # presigned upload handed out, file not yet checked
    PENDING = "PENDING"  # a large upload waits for its check job (issue 13, finding 3)
    READY = "READY"
    INVALID = "INVALID"  # the check job refused the file (or failed); ``error`` says why


def iso_or_none(value: Optional[datetime]) -> Optional[str]:
    return value.isoformat() if value else None


@dataclass
class User:
    id: str
    email: str
    user_type: UserType
    password_hash: str
    created_at: datetime
    banned_at: Optional[datetime] = None
    #: IAM principals (user or role ARNs, ``chalicelib.iam_principals``) whose SigV4-signed
    #: requests act as this user.
    iam_principals: tuple[str, ...] = ()

    @property
    def is_banned(self) -> bool:
        return self.banned_at is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "email": self.email,
            "user_type": self.user_type.value,
            "datetime_created": iso_or_none(self.created_at),
            "banned_date": iso_or_none(self.banned_at),
            "iam_principals": sorted(self.iam_principals),
        }


@dataclass
class Session:
    token_hash: str
    user_email: str
    created_at: datetime
    expires_at: datetime


@dataclass
class ApiKey:
    key_id: str
    owner_email: str
    name: str
    secret_hash: str
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.key_id, "name": self.name, "datetime_created": iso_or_none(self.created_at)}


@dataclass
class Dataset:
    id: str
    owner_id: str
    name: str
    task: Task
    status: DatasetStatus
    object_key: str
    created_at: datetime
    size_bytes: int = 0
    target_column: Optional[str] = None
    stats: dict[str, Any] = field(default_factory=dict)
    error: Optional[str] = None  # why an INVALID dataset was refused
    check_started_at: Optional[datetime] = None  # when it became PENDING (its check job's bound counts from here)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "task": self.task.value,
            "status": self.status.value,
            "error": self.error,
            "size_bytes": self.size_bytes,
            "target_column": self.target_column,
            "stats": self.stats,
            "owner_id": self.owner_id,
            "datetime_created": iso_or_none(self.created_at),
        }


@dataclass
class Model:
    id: str
    owner_id: str
    name: str
    task: Task
    model_class: str
    object_key: str
    created_at: datetime
    access_right: AccessRight = AccessRight.PRIVATE
    dependencies: dict[str, str] = field(default_factory=dict)
    docker_image: Optional[str] = None
    image: Optional[str] = None  # the managed image its dependencies resolved to (None: the worker runtime)
    train_job_count: int = 0  # train jobs that use the model; deletion is refused while > 0
    knob_config: Optional[dict[str, Any]] = None  # learnt from the worker on first training

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("object_key")
        data["user_id"] = data.pop("owner_id")
        data["task"] = self.task.value
        data["access_right"] = self.access_right.value
        data["datetime_created"] = iso_or_none(data.pop("created_at"))
        return data
