"""Managed images (seed 002; issue 11): pip requirements built once over the worker or inference
runtime, found again by what is installed in them.

An image record is made PENDING and its build started (in the background: the builder answers
at once); each read of a record whose build is not final asks the builder and records what it
says, so READY carries the resolved ``pip freeze`` that list filters match, and FAILED the reason
(the build log is one call away). Names are unique; an image is usable only once READY, and
cannot be deleted while a job uses it.
"""
from __future__ import annotations

import re
import uuid
from typing import Any, Optional

from aws_lambda_powertools import Logger
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from chalicelib.entities import User
from chalicelib.entities.images import (
    BuildState,
    ImageBase,
    ManagedImage,
    PipRequirement,
    content_key,
    normalise,
    parse_freeze,
)
from chalicelib.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound
from chalicelib.permissions import Action, owns_or_admin, require
from chalicelib.ports import ImageBuilder, ManagedImageStore, WorkflowRunner
from chalicelib.services import Clock, utc_now

logger = Logger(service="kilele-images", child=True)

MAX_PAGE_SIZE = 100
# A build not final this long after its image was made is FAILED by the workflow that follows it
# (CodeBuild stops its builds at the project's timeout, 1 h; the local builder at its pip timeout).
BUILD_DEADLINE_SECONDS = 2 * 3600
MAX_FILTERS = 50
PAGE_TOKEN_PATTERN = r"^(?:[0-9a-f]{2}){0,200}$"
_TOKEN = re.compile(PAGE_TOKEN_PATTERN)


def _same_version(installed: str, wanted: str) -> bool:
    try:
        return Version(installed) == Version(wanted)  # "1.0" is "1.0.0"
    except InvalidVersion:
        return installed == wanted


def encode_page_token(name: str) -> str:
    """An opaque token for the page after ``name``: its UTF-8 bytes in hex ("" at the end)."""
    return name.encode().hex()


def decode_page_token(token: str) -> str:
    """The position a page token stands for. Every token of the documented form is a position
    (the pages are in name order; any string has a place in it), so only the form is refused."""
    if not _TOKEN.match(token or ""):
        raise InvalidInput("page_token: not a token this API gave (pass the one list_managed_images returned)")
    return bytes.fromhex(token).decode("utf-8", "replace")


class ManagedImageService:
    def __init__(self, images: ManagedImageStore, builder: ImageBuilder, workflows: WorkflowRunner,
                 poll_seconds: int = 20, clock: Clock = utc_now):
        self._images = images
        self._builder = builder
        self._workflows = workflows  # the managed-image state machine: follows each build
        self._poll_seconds = poll_seconds
        self._clock = clock

    # -- create, read, delete -----------------------------------------------------------------

    def create_managed_image(self, actor: User, name: str, requirements: list[dict[str, Any]],
                             base: str = ImageBase.WORKER.value) -> dict[str, Any]:
        """A new image ``name`` (PENDING, its build started); :class:`Conflict` if the name is taken."""
        require(actor, Action.MANAGE_IMAGES)
        try:
            image_base = ImageBase(base)
        except ValueError:
            raise InvalidInput(f"base: {base!r} is not one of {', '.join(b.value for b in ImageBase)}") from None
        parsed = normalise([PipRequirement.parse(r.get("name"), r.get("version_specifier"), where=f"requirements[{i}]")
                            for i, r in enumerate(requirements)])
        if self._images.get(name) is not None:
            raise Conflict(f"a managed image named {name!r} already exists")
        image = ManagedImage(name=name, owner_id=actor.id, base=image_base, requirements=parsed,
                             content_key=content_key(image_base, parsed), status=BuildState.PENDING,
                             created_at=self._clock())
        self._images.add(image)
        self._start_build(name, image_base, parsed, from_states=(BuildState.PENDING,))
        return self._visible(name).to_dict()

    def ensure(self, owner_id: str, name: str, base: ImageBase, requirements: tuple[PipRequirement, ...]) -> ManagedImage:
        """The image ``name`` of ``requirements`` (normalised) over ``base``, its build started if
        it is new, and started again if it FAILED (a registry that was down, say); an existing
        image of that name is reused as it is. For images the platform names after their content
        (a model's dependencies), so no permission is asked: the caller is the platform."""
        image = self._images.get(name)
        if image is None:
            try:
                self._images.add(ManagedImage(name=name, owner_id=owner_id, base=base, requirements=requirements,
                                              content_key=content_key(base, requirements),
                                              status=BuildState.PENDING, created_at=self._clock()))
            except Conflict:  # made by a concurrent request meanwhile: that one builds it
                return self._visible(name)
            self._start_build(name, base, requirements, from_states=(BuildState.PENDING,))
        elif self._refreshed(image).status is BuildState.FAILED:
            if self._images.set_build(name, BuildState.PENDING, (BuildState.FAILED,), error="", build_id=""):
                logger.info("building a failed image again", extra={"image": name})
                self._start_build(name, base, requirements, from_states=(BuildState.PENDING,))
        return self._visible(name)

    def _start_build(self, name: str, base: ImageBase, requirements: tuple[PipRequirement, ...],
                     from_states: tuple[BuildState, ...]) -> None:
        try:
            build_id = self._builder.start(base, requirements)
        except DomainError as e:
            self._images.set_build(name, BuildState.FAILED, from_states, error=f"the build did not start: "
                                   f"{e.message}", finished_at=self._clock())
            logger.warning("image build did not start", extra={"image": name, "reason": e.message})
            raise
        self._images.set_build(name, BuildState.PENDING, from_states, build_id=build_id)
        try:
            self._workflows.start(f"image-{uuid.uuid4().hex}", {"name": name, "poll_seconds": self._poll_seconds,
                                                                 "polls": 0, "max_polls": self._max_polls()})
        except Exception:  # noqa: BLE001 - the build runs anyway, and each read of the image records its state
            logger.exception("the workflow following the image build did not start", extra={"image": name})

    def current(self, name: str) -> Optional[ManagedImage]:
        """The image ``name`` with its build's state now (None if there is none); no permission
        asked: for the platform's own steps (a train job waiting for its model's image)."""
        image = self._images.get(name)
        return self._refreshed(image) if image is not None else None

    def satisfied_by_base(self, base: ImageBase, requirements: tuple[PipRequirement, ...]) -> bool:
        """Whether ``base`` already has ``requirements`` (no image is needed; see the builder)."""
        return self._builder.satisfied_by_base(base, requirements)

    def attach(self, name: str, user_id: str) -> None:
        """Record ``user_id`` (``model:<id>``, a job's id) as using image ``name``, whatever its
        state: it cannot be deleted until :meth:`release`."""
        self._images.add_user(name, user_id)

    def get_managed_image(self, actor: User, name: str) -> dict[str, Any]:
        require(actor, Action.VIEW_IMAGES)
        return self._visible(name).to_dict()

    def get_build_log(self, actor: User, name: str) -> dict[str, Any]:
        """The image's build log (pip's output; on AWS the build's CloudWatch log)."""
        require(actor, Action.VIEW_IMAGES)
        image = self._visible(name)
        log = self._builder.poll(image.build_id).log if image.build_id else ""
        return {"name": image.name, "status": image.status.value, "error": image.error, "log": log}

    def delete_managed_image(self, actor: User, name: str) -> dict[str, Any]:
        """Delete the record (its owner or an admin); :class:`Conflict` while a job uses it. The
        built image stays in the builder's cache: another image of the same set reuses it."""
        require(actor, Action.MANAGE_IMAGES)
        image = self._visible(name)
        if not owns_or_admin(actor, image.owner_id):
            raise Forbidden(f"managed image {name!r} is not yours to delete")
        self._images.delete_unused(name)
        return {"name": name, "deleted": True}

    # -- list --------------------------------------------------------------------------------

    def list_managed_images(self, actor: User, pip_library_filters: Optional[list[dict[str, Any]]] = None,
                            page_token: str = "", page_size: int = MAX_PAGE_SIZE) -> dict[str, Any]:
        """Images in name order whose installed libraries match every filter (``name``, and
        ``fixed_version`` if given), ``page_size`` at a time; ``next_page_token`` is "" at the end."""
        require(actor, Action.VIEW_IMAGES)
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise InvalidInput(f"page_size: must be between 1 and {MAX_PAGE_SIZE}")
        filters = self._filters(pip_library_filters or [])
        after = decode_page_token(page_token)

        def matches(image: ManagedImage) -> bool:
            if not filters:
                return True
            image = self._refreshed(image)
            return image.status is BuildState.READY and all(
                name in image.installed and (version is None or _same_version(image.installed[name], version))
                for name, version in filters)

        images, last = self._images.list_page(after, page_size, matches)
        return {"images": [self._refreshed(i).to_dict() for i in images], "next_page_token": encode_page_token(last)}

    @staticmethod
    def _filters(raw: list[dict[str, Any]]) -> list[tuple[str, Optional[str]]]:
        if len(raw) > MAX_FILTERS:
            raise InvalidInput(f"pip_library_filters: at most {MAX_FILTERS}")
        filters = []
        for i, f in enumerate(raw):
            req = PipRequirement.parse(f.get("name"), None, where=f"pip_library_filters[{i}]")
            version = f.get("fixed_version")
            if version is not None and (not isinstance(version, str) or not version.strip() or len(version) > 100):
                raise InvalidInput(f"pip_library_filters[{i}].fixed_version: a version such as '1.0.3'")
            filters.append((canonicalize_name(req.name), version.strip() if version else None))
        return filters

    # -- use by jobs -------------------------------------------------------------------------

    def use(self, name: str, job_id: str) -> ManagedImage:
        """The READY image ``name`` for job ``job_id``, which is recorded as its user (so the
        image cannot be deleted under it); :class:`InvalidInput` if it is not READY."""
        image = self._images.get(name)
        if image is None:
            raise NotFound(f"no managed image {name!r}")
        image = self._refreshed(image)
        if image.status is not BuildState.READY:
            raise InvalidInput(f"managed image {name!r} is {image.status.value}: an image is usable once READY"
                               + (f" ({image.error})" if image.error else ""))
        self._images.add_user(name, job_id)
        return image

    def release(self, name: str, job_id: str) -> None:
        """Job ``job_id`` no longer runs in image ``name``."""
        self._images.remove_user(name, job_id)

    # -- the managed-image workflow's steps ---------------------------------------------------

    def follow_build(self, event: dict[str, Any]) -> dict[str, Any]:
        """One poll of the workflow: record what the builder says; ``final`` once READY or FAILED
        (or the image was deleted). A build past the deadline is FAILED."""
        name = str(event["name"])
        answer = {"name": name, "poll_seconds": int(event.get("poll_seconds", self._poll_seconds)),
                  "polls": int(event.get("polls", 0)) + 1, "max_polls": int(event.get("max_polls", self._max_polls()))}
        image = self._images.get(name)
        if image is None:
            return {**answer, "final": True, "status": None}
        image = self._refreshed(image)
        if not image.status.final and (self._clock() - image.created_at).total_seconds() > BUILD_DEADLINE_SECONDS:
            reason = f"the build did not finish within {BUILD_DEADLINE_SECONDS // 3600} h"
            self._images.set_build(name, BuildState.FAILED, (BuildState.PENDING, BuildState.BUILDING), error=reason,
                                   finished_at=self._clock())
            logger.warning("image build timed out", extra={"image": name})
            image = self._images.get(name) or image
        return {**answer, "final": image.status.final, "status": image.status.value}

    def _max_polls(self) -> int:
        """The workflow's own bound on its polls: the build deadline's worth, and some (a poll
        that is retried takes longer than poll_seconds)."""
        return BUILD_DEADLINE_SECONDS // max(self._poll_seconds, 1) + 10

    def build_event(self, event: dict[str, Any]) -> dict[str, Any]:
        """A build-state event of the builder's service (CodeBuild's, on AWS): the builder records
        it, and every image its build serves records its state now, without waiting for a poll."""
        key = self._builder.record_event(event)
        if key is None:
            return {"recorded": False, "images": []}
        images = [self._refreshed(image) for image in self._images.with_content_key(key) if not image.status.final]
        for image in images:
            logger.info("image build ended", extra={"image": image.name, "status": image.status.value})
        return {"recorded": True, "images": [{"name": i.name, "status": i.status.value} for i in images]}

    def record_follow_failure(self, event: dict[str, Any]) -> dict[str, Any]:
        """The workflow could not follow the build (the builder kept failing): the image is
        FAILED with why, unless it already ended."""
        failure = event.get("failure") or {}
        reason = f"following the build failed: {failure.get('Error') or 'error'}"
        if failure.get("Cause"):
            reason += f": {str(failure['Cause'])[:500]}"
        name = str(event["name"])
        if self._images.set_build(name, BuildState.FAILED, (BuildState.PENDING, BuildState.BUILDING), error=reason,
                                  finished_at=self._clock()):
            logger.warning("image build not followed", extra={"image": name, "reason": reason})
        return {"name": name, "final": True}

    def close(self) -> None:
        """Stop the builder (locally: builds in progress end FAILED, saying the stack stopped)."""
        self._builder.close()

    # -- the build's state ---------------------------------------------------------------------

    def _visible(self, name: str) -> ManagedImage:
        image = self._images.get(name)
        if image is None:
            raise NotFound(f"no managed image {name!r}")
        return self._refreshed(image)

    def _refreshed(self, image: ManagedImage) -> ManagedImage:
        """``image`` with what its builder says now, recorded if it changed."""
        if image.status.final or not image.build_id:
            return image
        build = self._builder.poll(image.build_id)
        if build.state is image.status:
            return image
        fields: dict[str, Any] = {}
        if build.state is BuildState.READY:
            fields = {"image_ref": build.image_ref, "installed": parse_freeze(list(build.pip_freeze)),
                      "finished_at": self._clock()}
        elif build.state is BuildState.FAILED:
            fields = {"error": build.reason or "the build failed", "finished_at": self._clock()}
            logger.warning("image build failed", extra={"image": image.name, "reason": fields["error"]})
        self._images.set_build(image.name, build.state, (BuildState.PENDING, BuildState.BUILDING), **fields)
        return self._images.get(image.name) or image


__all__ = ["ManagedImageService", "MAX_PAGE_SIZE", "PAGE_TOKEN_PATTERN", "encode_page_token", "decode_page_token"]
