"""Job definitions that run the worker in another image (a managed image, a model's docker_image)
for the Batch trial dispatcher (``batch.py`` beside this file).

A Batch container job cannot override its image at SubmitJob (container overrides take the
command, environment and resources only), so each image gets a job definition of its own: the
base worker definition's container properties with the image replaced, registered once under a
name derived from the base's name and the image (``<base>-img-<12 hex of the image>``), found
again by that name afterwards (by this process, and by any other: the name is the key).
"""
from __future__ import annotations

import hashlib
import threading
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.errors import Unavailable

# What a registered definition carries over from its base besides its container properties.
_CARRIED = ("parameters", "retryStrategy", "timeout", "platformCapabilities", "propagateTags", "tags")


def base_name(definition: str) -> str:
    """The job definition's name, from a name, ``name:revision`` or an ARN."""
    return definition.rsplit("/", 1)[-1].split(":", 1)[0]


def image_definition_name(base: str, image: str) -> str:
    """The name of ``base``'s job definition for ``image`` (at most 128 characters, as Batch allows)."""
    return f"{base_name(base)[:100]}-img-{hashlib.sha256(image.encode()).hexdigest()[:12]}"


class ImageJobDefinitions:
    """Job definitions of the worker in other images, registered on first use."""

    def __init__(self, batch: Any):
        self._batch = batch
        self._known: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def for_image(self, base: str, image: str) -> str:
        """The ARN of ``base``'s job definition running ``image``; :class:`Unavailable` if Batch
        refused or could not be reached (the trial then fails with why)."""
        key = (base, image)
        with self._lock:
            if key in self._known:
                return self._known[key]
        try:
            arn = self._find(base, image) or self._register(base, image)
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            raise Unavailable(f"Batch refused a job definition for image {image!r} ({code})") from e
        except BotoCoreError as e:
            raise Unavailable("Batch could not be reached to make a job definition for the image") from e
        with self._lock:
            self._known[key] = arn
        return arn

    def _find(self, base: str, image: str) -> str:
        found = self._batch.describe_job_definitions(jobDefinitionName=image_definition_name(base, image),
                                                    status="ACTIVE").get("jobDefinitions") or []
        found = [d for d in found if (d.get("containerProperties") or {}).get("image") == image]
        return max(found, key=lambda d: d["revision"])["jobDefinitionArn"] if found else ""

    def _register(self, base: str, image: str) -> str:
        if ":" in base:  # name:revision or an ARN
            found = self._batch.describe_job_definitions(jobDefinitions=[base]).get("jobDefinitions") or []
        else:
            found = self._batch.describe_job_definitions(jobDefinitionName=base, status="ACTIVE").get("jobDefinitions") or []
        if not found:
            raise Unavailable(f"the worker job definition {base!r} was not found in Batch")
        source = max(found, key=lambda d: d["revision"])
        properties = dict(source["containerProperties"], image=image)
        extra = {k: source[k] for k in _CARRIED if source.get(k)}
        return self._batch.register_job_definition(jobDefinitionName=image_definition_name(base, image),
                                                   type=source.get("type", "container"),
                                                   containerProperties=properties, **extra)["jobDefinitionArn"]


__all__ = ["ImageJobDefinitions", "image_definition_name", "base_name"]
