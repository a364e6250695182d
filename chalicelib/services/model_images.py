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
from chalicelib.errors import Conflict, DomainError, InvalidInput, NotFound, Unprocessable
from chalicelib.ports_images import ContainerImages
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

    def __init__(self, images: ManagedImageService, wait_seconds: int = 5,
                 serving_base: ImageBase = ImageBase.WORKER, containers: Optional[ContainerImages] = None):
        """``serving_base``: what endpoints' images are built over. Locally both bases are the
        same runtime, so a model is served in the image it trained in (WORKER); on AWS the
        inference image differs from the worker's, and each set gets an INFERENCE image too.
        ``containers``: whether a ``docker_image`` can run as given (None: any is taken)."""
        self._images = images
        self._containers = containers
        self._wait_seconds = wait_seconds
        self._serving_base = serving_base

    def resolve(self, owner_id: str, dependencies: dict[str, Any]) -> Optional[str]:
        """The name of the image ``dependencies`` need (its build started if it is new), or None
        when the worker runtime already has them. :class:`InvalidInput` for a dependency pip
        would not take (a name or version that is not one)."""
        requirements = from_dependencies(dependencies or {})
        if not requirements or self._images.satisfied_by_base(ImageBase.WORKER, requirements):
            return None
        name = dependency_image_name(ImageBase.WORKER, requirements)
        self._images.ensure(owner_id, name, ImageBase.WORKER, requirements)
        if self._serving_base is not ImageBase.WORKER:  # built now too: ready when the model is served
            self._images.ensure(owner_id, dependency_image_name(self._serving_base, requirements), self._serving_base,
                                requirements)
        return name

    def check_docker_image(self, uri: str) -> str:
        """A model's ``docker_image``, if the platform can run it as given (on AWS: in the
        stack's ECR, or a registry it may pull from); :class:`Unprocessable` saying why not
        (locally: always, the local stack runs no container images)."""
        return self._containers.check(uri, "docker_image") if self._containers else uri

    def attach(self, model: Model) -> None:
        """Record the model as a user of its image(s)."""
        for name in self._names(model):
            self._images.attach(name, model_user(model.id))

    def release(self, model: Model) -> None:
        """The model is gone: it no longer holds its image(s)."""
        for name in self._names(model):
            self._images.release(name, model_user(model.id))

    def _names(self, model: Model) -> list[str]:
        return list(dict.fromkeys([model.image, self._serving_name(model)])) if model.image else []

    def _serving_name(self, model: Model) -> str:
        if self._serving_base is ImageBase.WORKER:
            return model.image or ""
        return dependency_image_name(self._serving_base, from_dependencies(model.dependencies))

    def serving(self, models: list[Model]) -> Optional[dict[str, Any]]:
        """The image an endpoint serving ``models`` (an ensemble) runs in: ``{"name", "ref",
        "pip_freeze"}`` (None: the inference runtime). A model without an image runs in any of
        them (each image layers on the runtime); models needing different images cannot share one
        endpoint (:class:`Unprocessable`); an image not READY is a :class:`Conflict`."""
        names = sorted({self._serving_name(m) for m in models if m.image})
        docker = sorted({m.docker_image for m in models if m.docker_image})
        if docker:  # a model's own image, as given: the endpoint runs in it
            if len(docker) > 1 or names:
                raise Unprocessable(f"the models to serve need different images ({', '.join(docker + names)}); one "
                                    "endpoint runs in one image")
            return {"name": docker[0], "ref": docker[0], "pip_freeze": []}
        if not names:
            return None
        if len(names) > 1:
            raise Unprocessable(f"the models to serve need different managed images ({', '.join(names)}); one "
                                "endpoint runs in one image: give the models the same dependencies")
        image = self._images.current(names[0])
        runtime = image_runtime(image, names[0], error=Conflict)
        freeze = [f"{name}=={version}" for name, version in sorted(image.installed.items())] if image else []
        return {**runtime, "pip_freeze": freeze}

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
            return None  # the runtime, or the model's own docker_image: nothing to wait for
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
        (None: the worker runtime); a model's own ``docker_image`` as given. :class:`InvalidInput`
        if the image is not READY."""
        if model.docker_image:
            return {"name": model.docker_image, "ref": model.docker_image}
        if not model.image:
            return None
        image = self._images.current(model.image)
        return image_runtime(image, model.image)


class StressImages:
    """Where a stress test's engine runs (seed 002's ``rime_managed_image``; the model under
    test's own image otherwise). A named image must be READY and over the worker runtime; the
    job is recorded as its user until it ends, so it is not deleted under the job."""

    def __init__(self, images: ManagedImageService, containers: Optional[ContainerImages] = None):
        self._images = images
        self._containers = containers

    def resolve(self, job_id: str, rime_managed_image: Optional[str], model: Optional[Model],
                custom_image: Optional[dict[str, Any]] = None) -> Optional[dict[str, str]]:
        """``{"name", "ref"}`` of the image the job runs in (None: the worker runtime).
        :class:`NotFound` for an unknown image, :class:`InvalidInput` naming its status for one
        not READY (or built over the inference image); a ``custom_image`` (seed 002's
        ``{"name": <image reference>, ...}``) runs as given if the platform can run it
        (:class:`Unprocessable` saying why not: locally, never)."""
        if rime_managed_image is not None and custom_image:
            raise InvalidInput("give rime_managed_image or custom_image, not both")
        if custom_image:
            uri = custom_image.get("name")
            if not isinstance(uri, str) or not uri:
                raise InvalidInput("custom_image.name: the image reference to run (registry/repository:tag)")
            uri = self._containers.check(uri, "custom_image.name") if self._containers else uri
            return {"name": uri, "ref": uri}
        if rime_managed_image is not None:
            image = self._images.current(rime_managed_image)
            if image is None:
                raise NotFound(f"rime_managed_image: no managed image {rime_managed_image!r}")
            if image.base is not ImageBase.WORKER:
                raise InvalidInput(f"rime_managed_image: {image.name!r} is built over the {image.base.value} image; "
                                   "stress tests run on the worker (create it with base 'worker')")
            runtime = image_runtime(image, rime_managed_image)
            self._images.attach(image.name, job_id)
            return runtime
        if model is not None and model.docker_image:
            return {"name": model.docker_image, "ref": model.docker_image}
        if model is not None and model.image:
            return image_runtime(self._images.current(model.image), model.image, error=Conflict)
        return None

    def release(self, image: Optional[dict[str, Any]], job_id: str) -> None:
        """The job ended: it no longer holds the image its message named (nothing if none)."""
        if image and image.get("name"):
            self._images.release(str(image["name"]), job_id)


def image_runtime(image: Optional[ManagedImage], name: str, error: type[DomainError] = InvalidInput) -> dict[str, str]:
    """``{"name", "ref"}`` of a READY image; ``error`` naming its status if not."""
    if image is None:
        raise error(f"no managed image {name!r}")
    if image.status is not BuildState.READY or not image.image_ref:
        raise error(f"managed image {name!r} is {image.status.value}: an image is usable once READY"
                           + (f" ({image.error})" if image.error else ""))
    return {"name": image.name, "ref": image.image_ref}


def _stop(detail: str) -> dict[str, Any]:
    return {"action": "stop", "reason": StopReason.IMAGE_FAILED.value, "detail": detail}


__all__ = ["ModelImages", "StressImages", "DEPENDENCY_IMAGE_PREFIX", "dependency_image_name", "image_runtime", "model_user"]
