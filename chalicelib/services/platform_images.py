"""The platform images on demand (issue 13; ``kilele images build``): an admin starts the builds
of the worker and inference images (CPU and GPU) at the content tags this deployment's job
definitions and SageMaker models name, through the same image project (and the same build
ledger) as managed images; on deploy the stack does the same itself (infra/kilele_infra/platform_images.py).

Idempotent per content tag: an image already in its repository is READY and not built again; a
build of it that runs is followed, not doubled. Each build this asks for publishes a
``Kilele Image Build State Change`` event (id ``platform/<name>``) when it starts and when it
ends (CodeBuild's build-state event, ``build_event``), as managed images' builds do.
"""
from __future__ import annotations

from typing import Any, Optional

from aws_lambda_powertools import Logger

from chalicelib.entities import User
from chalicelib.entities.events import EventKind, KileleEvent
from chalicelib.errors import InvalidInput, Unavailable
from chalicelib.permissions import Action, require
from chalicelib.ports_images import PlatformImageBuild, PlatformImageBuilder
from chalicelib.services import Clock, utc_now
from chalicelib.services.job_events import JobEvents

logger = Logger(service="kilele-images", child=True)

#: Who owns the events of builds the platform itself reports (CodeBuild's end of a build).
PLATFORM_OWNER = "platform"
LINK = "/platform-images"


def build_dict(build: PlatformImageBuild) -> dict[str, Any]:
    return {"name": build.name, "tag": build.tag, "image_uri": build.image_uri, "status": build.status,
            "build_id": build.build_id or None, "log_url": build.log_url or None, "reason": build.reason or None,
            "started": build.started}


class PlatformImageService:
    def __init__(self, builder: PlatformImageBuilder, events: JobEvents, clock: Clock = utc_now):
        self._builder = builder
        self._events = events
        self._clock = clock

    def build(self, actor: User, names: Optional[list[str]] = None) -> dict[str, Any]:
        """Start building each of ``names`` (default: every platform image) whose content tag is
        not in its repository and not being built; what each image is now."""
        require(actor, Action.BUILD_PLATFORM_IMAGES)
        chosen = self._chosen(names)
        builds = []
        for name in chosen:
            build = self._builder.start(name)
            if build.started:
                logger.info("platform image build started", extra={"image": name, "tag": build.tag,
                                                                   "build_id": build.build_id, "by": actor.id})
                self._publish(build, actor.id)
            builds.append(build)
        return {"images": [build_dict(b) for b in builds]}

    def status(self, actor: User) -> dict[str, Any]:
        """Every platform image at its content tag: READY, PENDING, BUILDING, FAILED or MISSING."""
        require(actor, Action.BUILD_PLATFORM_IMAGES)
        return {"images": [build_dict(self._builder.poll(name)) for name in self._builder.names()]}

    def build_event(self, event: dict[str, Any]) -> Optional[dict[str, Any]]:
        """CodeBuild's event of a finished build: published if it is a platform image's, else None."""
        build = self._builder.record_event(event)
        if build is None:
            return None
        logger.info("platform image build ended", extra={"image": build.name, "status": build.status,
                                                         "reason": build.reason})
        self._publish(build, PLATFORM_OWNER, previous="BUILDING")
        return build_dict(build)

    def _chosen(self, names: Optional[list[str]]) -> list[str]:
        known = self._builder.names()
        if not known:  # a stack deployed before these settings existed
            raise Unavailable("this deployment names no platform images to build (KILELE_PLATFORM_IMAGE_TAGS "
                              "is not set): deploy the stack again")
        if not names:
            return list(known)
        unknown = sorted(set(names) - set(known))
        if unknown:
            raise InvalidInput(f"images: no platform image {', '.join(map(repr, unknown))} "
                               f"(there are: {', '.join(known)})")
        return [n for n in known if n in names]

    def _publish(self, build: PlatformImageBuild, owner_id: str, previous: Optional[str] = None) -> None:
        self._events.publish(KileleEvent.state_change(
            EventKind.IMAGE_BUILD, f"platform/{build.name}", build.status, owner_id, self._clock(),
            previous_status=previous, reason=build.reason or None, links={"images": LINK},
            data={"platform_image": build.name, "tag": build.tag, "image_uri": build.image_uri,
                  "build_id": build.build_id, "log_url": build.log_url}))


__all__ = ["PlatformImageService", "build_dict"]
