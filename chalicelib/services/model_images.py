"""Where a model's code runs (issue 11): the managed image its ``dependencies`` resolve to.

A model's dependencies ({package: version}) are a requirement set (``entities.images.
from_dependencies``). A set the worker runtime already has needs no image: the model runs in
the runtime, as before. Any other set resolves to one managed image per distinct normalised set,
named after its content (``deps-<16 hex>``), built on the first model that needs it (through
:class:`ManagedImageService`, so it is an image like any other: listed, filtered, its build log
one call away) and reused by every later one. The model records the image's name and is
recorded as its user (``model:<id>``), so the image cannot be deleted under it.

The train job's worker slots wait while the image builds (:meth:`ModelImages.gate` answers a
``wait`` proposal; the slot's state machine waits and asks again) and stop with the build's
reason if it FAILED; once READY each trial's message names the image (``image``: its name and
reference: a virtual environment locally, an ECR image URI on AWS), and the trial dispatchers
run the worker in it.
"""
from __future__ import annotations

from typing import Any, Optional

from chalicelib.entities import Model, StopReason
from chalicelib.entities.images import BuildState, ImageBase, ManagedImage, content_key, from_dependencies
from chalicelib.errors import InvalidInput
from chalicelib.services.managed_images import ManagedImageService

#: The name prefix of the images models' dependencies resolve to.
DEPENDENCY_IMAGE_PREFIX = "deps-"


def dependency_image_name(base: ImageBase, requirements: Any) -> str:
    """The deterministic name of the image of a normalised requirement set over ``base``."""
    return f"{DEPENDENCY_IMAGE_PREFIX}{content_key(base, requirements)[:16]}"


def model_user(model_id: str) -> str:
    """How a model is recorded among an image's users."""
    return f"model:{model_id}"


class ModelImages:
    """Resolves models' dependencies to managed images and says when their trials may run.

    ``wait_seconds``: how long a worker slot waits before asking again while the image builds."""

    def __init__(self, images: ManagedImageService, wait_seconds: int = 5):
        self._images = images
        self._wait_seconds = wait_seconds

    def resolve(self, owner_id: str, dependencies: dict[str, Any]) -> Optional[str]:
        """The name of the image ``dependencies`` need (its build started if it is new), or None
        when the worker runtime already has them. :class:`InvalidInput` for a dependency pip
        would not take (a name or version that is not one)."""
        requirements = from_dependencies(dependencies or {})
        if not requirements or self._images.satisfied_by_base(ImageBase.WORKER, requirements):
            return None
        name = dependency_image_name(ImageBase.WORKER, requirements)
        self._images.ensure(owner_id, name, ImageBase.WORKER, requirements)
        return name

    def attach(self, name: str, model_id: str) -> None:
        """Record the model as a user of its image."""
        self._images.attach(name, model_user(model_id))

    def release(self, name: str, model_id: str) -> None:
        """The model is gone: it no longer holds its image."""
        self._images.release(name, model_user(model_id))

    def describe(self, model: Model) -> Optional[dict[str, Any]]:
        """What a model's ``image`` field shows: the image's name, build status and reason."""
        if not model.image:
            return None
        image = self._images.current(model.image)
        if image is None:
            return {"name": model.image, "status": None, "error": "the image was deleted"}
        return {"name": image.name, "status": image.status.value, "error": image.error or None}

    def gate(self, model: Model) -> Optional[dict[str, Any]]:
        """None when the model's trials may run now (no image, or it is READY); else the worker
        slot's proposal: ``wait`` while the image builds, ``stop`` (an error) if it FAILED or is
        gone."""
        if not model.image:
            return None
        image = self._images.current(model.image)
        if image is None:
            return _stop(f"the model's managed image {model.image!r} was deleted")
        if image.status is BuildState.READY:
            return None
        if image.status is BuildState.FAILED:
            return _stop(f"the model's managed image {image.name!r} FAILED to build: {image.error or 'no reason given'}"
                         f" (its pip output: kilele managed-images logs {image.name}, or GET /managed-images/"
                         f"{image.name}/log)")
        return {"action": "wait", "seconds": self._wait_seconds, "image": image.name, "status": image.status.value}

    def runtime(self, model: Model) -> Optional[dict[str, str]]:
        """What a trial's message says of where it runs: the READY image's name and reference
        (None: the worker runtime). :class:`InvalidInput` if the image is not READY."""
        if not model.image:
            return None
        image = self._images.current(model.image)
        return image_runtime(image, model.image)


def image_runtime(image: Optional[ManagedImage], name: str) -> dict[str, str]:
    """``{"name", "ref"}`` of a READY image; :class:`InvalidInput` naming its status if not."""
    if image is None:
        raise InvalidInput(f"no managed image {name!r}")
    if image.status is not BuildState.READY or not image.image_ref:
        raise InvalidInput(f"managed image {name!r} is {image.status.value}: an image is usable once READY"
                           + (f" ({image.error})" if image.error else ""))
    return {"name": image.name, "ref": image.image_ref}


def _stop(detail: str) -> dict[str, Any]:
    return {"action": "stop", "reason": StopReason.IMAGE_FAILED.value, "detail": detail}


__all__ = ["ModelImages", "DEPENDENCY_IMAGE_PREFIX", "dependency_image_name", "image_runtime", "model_user"]
