"""The ports of managed images: the image builder and the managed-image records.

A section of :mod:`chalicelib.ports` kept in its own module (ports.py re-exports every name).
The builder has an AWS twin (CodeBuild, ``adapters/images/codebuild.py``) and a local twin (a
virtual environment layered on the worker runtime, ``adapters/images/local.py``), both under
``tests/contract/test_image_builders.py``.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Optional, Protocol

from chalicelib.entities.images import BuildState, ImageBase, ImageBuild, ManagedImage, PipRequirement


class ImageBuilder(Protocol):
    """Builds an image: a base runtime plus pip requirements. Builds run in the background; a
    caller starts one and polls it. Unknown build ids raise ``errors.NotFound``; the builder's
    service failing raises ``errors.Unavailable``."""

    def start(self, base: ImageBase, requirements: tuple[PipRequirement, ...]) -> str:
        """Start building ``base`` plus ``requirements`` (normalised); returns the build id at
        once. The same set is never built twice: a later build of a set already built is READY
        at once, and concurrent builds of one set do the work once."""

    def poll(self, build_id: str) -> ImageBuild:
        """The build's state and log; on READY its resolved ``pip freeze`` and image reference."""

    def satisfied_by_base(self, base: ImageBase, requirements: tuple[PipRequirement, ...]) -> bool:
        """True only if ``base`` already has every requirement at a version its specifier allows
        (a model needing nothing more runs in the base); False when the builder cannot tell."""

    def record_event(self, event: dict[str, Any]) -> Optional[str]:
        """A build-state event from the builder's service (CodeBuild's "Build State Change" on
        EventBridge): recorded, so polls answer from it (a build that died is FAILED with its log
        link without anyone asking CodeBuild). Returns the content key of the images it concerns,
        or None if it is not one of this builder's builds. The local twin gets no events (its
        builds report themselves) and returns None."""

    def close(self) -> None:
        """Release what the builder holds (local builds in progress end FAILED when it stops)."""


@dataclass(frozen=True)
class BuildClaim:
    """The build of one content key on AWS: who claimed it, CodeBuild's id once started, and its
    outcome once known (``status``: STARTING, BUILDING, SUCCEEDED or FAILED)."""

    key: str
    token: str
    status: str
    claimed_at: datetime
    codebuild_id: str = ""
    reason: str = ""
    log_url: str = ""


class ImageBuildLedger(Protocol):
    """One record per content key, so concurrent requests for one requirement set start one
    CodeBuild build (DynamoDB conditional writes; ``store/image_builds.py``)."""

    def claim(self, key: str, token: str, now: datetime, stale_before: datetime) -> Optional[BuildClaim]:
        """Claim the build of ``key`` for ``token`` (STARTING) if nobody holds it, its last build
        FAILED, or a claim never started a build before ``stale_before``: None if claimed, else the
        claim that holds it."""

    def started(self, key: str, token: str, codebuild_id: str) -> None:
        """The claim of ``token`` started CodeBuild build ``codebuild_id`` (BUILDING)."""

    def release(self, key: str, token: str) -> None:
        """Give up the claim of ``token`` (its build did not start): the next request claims."""

    def get(self, key: str) -> Optional[BuildClaim]: ...

    def finish(self, key: str, codebuild_id: str, status: str, reason: str = "", log_url: str = "") -> bool:
        """Record the outcome (SUCCEEDED or FAILED) of build ``codebuild_id`` if it is still the
        key's build and not already recorded; False if not."""


class ManagedImageStore(Protocol):
    """Managed-image records; names are unique across the platform."""

    def add(self, image: ManagedImage) -> None:
        """Store a new image; :class:`errors.Conflict` if its name is taken."""

    def get(self, name: str) -> Optional[ManagedImage]: ...

    def list_page(self, after: str, limit: int,
                  matches: Optional[Callable[[ManagedImage], bool]] = None) -> tuple[list[ManagedImage], str]:
        """Up to ``limit`` images that ``matches`` (all if None), in name order, with names after
        ``after`` ("": from the start); and the last one's name if another follows ("" if not)."""

    def set_build(self, name: str, status: BuildState, only_from: tuple[BuildState, ...],
                  **fields: object) -> bool:
        """Set the status (and ``image_ref``, ``installed``, ``error``, ``finished_at``, ``build_id``)
        if the status is one of ``only_from``; False if it was not."""

    def add_user(self, name: str, job_id: str) -> None:
        """Record that ``job_id`` runs in the image; :class:`errors.NotFound` if it is gone."""

    def remove_user(self, name: str, job_id: str) -> None:
        """Forget that ``job_id`` runs in the image (nothing if it is gone)."""

    def with_content_key(self, key: str) -> list[ManagedImage]:
        """Every image whose content key is ``key`` (the images one build serves)."""

    def delete_unused(self, name: str) -> None:
        """Delete the record if no job uses it: :class:`errors.Conflict` if one does,
        :class:`errors.NotFound` if there is none."""


class ContainerImages(Protocol):
    """Container images users name to run as given (a model's ``docker_image``, a stress test's
    ``custom_image``): ECR on AWS (``adapters/images/registry.py``), refused by the local stack."""

    def check(self, uri: str, where: str = "image") -> str:
        """``uri`` if the platform can run it as given; :class:`errors.Unprocessable` saying why
        not (``where`` names the field in the message), :class:`errors.Unavailable` if the
        registry did not answer."""


@dataclass(frozen=True)
class PlatformImageBuild:
    """One platform image (the worker or inference image, CPU or GPU) at the content tag this
    deployment names: ``status`` READY (the tag is in its repository), PENDING or BUILDING (a
    build of it runs), FAILED (its last build failed: ``reason``, ``log_url``) or MISSING (never
    built). ``started``: this request started the build."""

    name: str
    tag: str
    image_uri: str
    status: str
    build_id: str = ""
    log_url: str = ""
    reason: str = ""
    started: bool = False


class PlatformImageBuilder(Protocol):
    """Builds the platform images from ``containers/`` on demand (issue 13; ``kilele images
    build``): on AWS through the image project that builds managed images (CodeBuild,
    ``adapters/images/platform.py``), as the deploy does. Its local twin refuses: the local stack
    runs no container image (``adapters/images/platform_local.py``). Both are under
    ``tests/contract/test_platform_image_builders.py``."""

    def names(self) -> tuple[str, ...]:
        """The platform images this deployment names, in a stable order."""

    def start(self, name: str) -> PlatformImageBuild:
        """Build image ``name`` at its content tag unless it is there already (READY, no build)
        or a build of that tag runs (that build, not a second). :class:`errors.NotFound` for an
        unknown name, :class:`errors.Unprocessable` where images cannot be built,
        :class:`errors.Unavailable` if the build service did not answer."""

    def poll(self, name: str) -> PlatformImageBuild:
        """Image ``name`` at its content tag, now."""

    def record_event(self, event: dict[str, Any]) -> Optional[PlatformImageBuild]:
        """A build-state event of the build service (CodeBuild's "Build State Change"): recorded
        if it ends a platform image's build (the image as it now is), else None."""


__all__ = ["ImageBuilder", "ManagedImageStore", "ContainerImages", "BuildClaim", "ImageBuildLedger",
           "PlatformImageBuild", "PlatformImageBuilder"]
