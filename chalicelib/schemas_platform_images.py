"""Request and response schemas of the platform images on demand (issue 13; ``kilele images build``)."""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field

from chalicelib.schemas import Schema
from chalicelib.schemas_responses import Out

PlatformImageName = Literal["worker", "worker-gpu", "inference", "inference-gpu"]


class BuildPlatformImagesRequest(Schema):
    """``images``: which to build (default: all four)."""

    images: Optional[list[PlatformImageName]] = Field(None, min_length=1, max_length=4)


class PlatformImageOut(Out):
    name: PlatformImageName
    tag: str
    image_uri: str
    status: Literal["READY", "PENDING", "BUILDING", "FAILED", "MISSING"]
    build_id: Optional[str]
    log_url: Optional[str]
    reason: Optional[str]
    started: bool


class PlatformImagesOut(Out):
    images: list[PlatformImageOut]


__all__ = ["BuildPlatformImagesRequest", "PlatformImageOut", "PlatformImagesOut"]
