"""The local stack's twin of the platform image builder: it refuses, saying why. The local stack
runs no container image (like :class:`~chalicelib.adapters.images.registry.LocalContainerImages`):
trials, stress tests and endpoints run from this checkout's Python, and its managed images are
virtual environments layered on that runtime (``local.py`` beside this file), so there is no
worker or inference image to build. ``kilele images build`` is an AWS operation."""
from __future__ import annotations

from typing import Any, Optional

from chalicelib.adapters.images.platform import PLATFORM_DOCKERFILES
from chalicelib.errors import NotFound, Unprocessable
from chalicelib.ports_images import PlatformImageBuild

REFUSAL = ("the local stack runs no container images: the worker and the inference server run from this "
           "checkout's Python (its managed images are virtual environments over that runtime), so there is "
           "no platform image to build. `kilele images build` builds the worker and inference images on an "
           "AWS stack (CodeBuild)")


class LocalPlatformImages:
    """Refuses every build and poll with :class:`Unprocessable` (422) saying why."""

    def names(self) -> tuple[str, ...]:
        return tuple(PLATFORM_DOCKERFILES)

    def start(self, name: str) -> PlatformImageBuild:
        self._known(name)
        raise Unprocessable(REFUSAL)

    def poll(self, name: str) -> PlatformImageBuild:
        self._known(name)
        raise Unprocessable(REFUSAL)

    @staticmethod
    def _known(name: str) -> None:
        if name not in PLATFORM_DOCKERFILES:
            raise NotFound(f"no platform image {name!r} (there are: {', '.join(PLATFORM_DOCKERFILES)})")

    def record_event(self, event: dict[str, Any]) -> Optional[PlatformImageBuild]:
        return None  # no build service sends it events


__all__ = ["LocalPlatformImages", "REFUSAL"]
