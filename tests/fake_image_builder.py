"""An in-memory :class:`chalicelib.ports.ImageBuilder` for service and API tests: builds end
when the test says so (``finish``), with the freeze the test gives."""
from __future__ import annotations

import itertools

from chalicelib.entities.images import BuildState, ImageBase, ImageBuild, PipRequirement
from chalicelib.errors import NotFound


class FakeImageBuilder:
    def __init__(self) -> None:
        self.started: list[tuple[ImageBase, tuple[PipRequirement, ...]]] = []
        self.builds: dict[str, ImageBuild] = {}
        self.polls = 0
        self._ids = itertools.count(1)

    def start(self, base: ImageBase, requirements: tuple[PipRequirement, ...]) -> str:
        build_id = f"build-{next(self._ids)}"
        self.started.append((base, requirements))
        self.builds[build_id] = ImageBuild(build_id, BuildState.PENDING, log="queued\n")
        return build_id

    def poll(self, build_id: str) -> ImageBuild:
        self.polls += 1
        if build_id not in self.builds:
            raise NotFound(f"no image build {build_id!r}")
        return self.builds[build_id]

    def close(self) -> None:
        pass

    def finish(self, build_id: str, freeze: list[str]) -> None:
        self.builds[build_id] = ImageBuild(build_id, BuildState.READY, log="done\n", pip_freeze=tuple(freeze),
                                           image_ref=f"repo:{build_id}")

    def fail(self, build_id: str, log: str) -> None:
        self.builds[build_id] = ImageBuild(build_id, BuildState.FAILED, log=log, reason="pip install failed")

    def last(self) -> str:
        return f"build-{len(self.started)}"
