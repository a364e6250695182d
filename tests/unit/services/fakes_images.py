"""In-memory fakes of the managed-image ports (kept apart from fakes.py, which is long): an image
builder whose builds end when the test says (``finish``, ``fail``), and the record store."""
from __future__ import annotations

import copy
import itertools
from typing import Any, Callable, Optional

from chalicelib import ports, ports_images
from chalicelib.entities.images import BuildState, ImageBase, ImageBuild, ManagedImage, PipRequirement
from chalicelib.errors import Conflict, NotFound

from unit.services.fakes import Fake, implements


@implements(ports.ImageBuilder)
class FakeImageBuilder(Fake):
    def __init__(self) -> None:
        super().__init__()
        self.started: list[tuple[ImageBase, tuple[PipRequirement, ...]]] = []
        self.builds: dict[str, ImageBuild] = {}
        self.base_installed: dict[str, str] = {}  # what the base runtime has (satisfied_by_base)
        self._ids = itertools.count(1)

    def start(self, base: ImageBase, requirements: tuple[PipRequirement, ...]) -> str:
        build_id = f"build-{next(self._ids)}"
        self.started.append((base, requirements))
        self.builds[build_id] = ImageBuild(build_id, BuildState.PENDING, log="queued\n")
        return build_id

    def poll(self, build_id: str) -> ImageBuild:
        if build_id not in self.builds:
            raise NotFound(f"no image build {build_id!r}")
        return self.builds[build_id]

    def satisfied_by_base(self, base: ImageBase, requirements: tuple[PipRequirement, ...]) -> bool:
        return all(r.name in self.base_installed and r.allows(self.base_installed[r.name]) for r in requirements)

    def record_event(self, event: dict[str, Any]) -> Optional[str]:
        """A test's event {"key", "build_id", "status"}: the build ends as it says (FAILED or
        READY); None for an event without a key (not one of this builder's)."""
        if "key" not in event:
            return None
        if event["status"] == "FAILED":
            self.fail(event["build_id"], "the build died\n")
        else:
            self.finish(event["build_id"], event.get("freeze", []))
        return str(event["key"])

    def close(self) -> None:
        pass

    def finish(self, build_id: str, freeze: list[str]) -> None:
        self.builds[build_id] = ImageBuild(build_id, BuildState.READY, log="done\n", pip_freeze=tuple(freeze),
                                           image_ref=f"repo:{build_id}")

    def fail(self, build_id: str, log: str) -> None:
        self.builds[build_id] = ImageBuild(build_id, BuildState.FAILED, log=log, reason="pip install failed")

    def last(self) -> str:
        return f"build-{len(self.started)}"


@implements(ports.ManagedImageStore)
class FakeManagedImageStore(Fake):
    def __init__(self) -> None:
        super().__init__()
        self.images: dict[str, ManagedImage] = {}

    def add(self, image: ManagedImage) -> None:
        if image.name in self.images:
            raise Conflict(f"a managed image named {image.name!r} already exists")
        self.images[image.name] = copy.deepcopy(image)

    def get(self, name: str) -> Optional[ManagedImage]:
        return copy.deepcopy(self.images.get(name))

    def list_page(self, after: str, limit: int,
                  matches: Optional[Callable[[ManagedImage], bool]] = None) -> tuple[list[ManagedImage], str]:
        found: list[ManagedImage] = []
        for name in sorted(n for n in self.images if n > after):
            image = self.get(name)
            if matches is not None and not matches(image):
                continue
            if len(found) == limit:
                return found, found[-1].name
            found.append(image)
        return found, ""

    def set_build(self, name: str, status: BuildState, only_from: tuple[BuildState, ...], **fields: Any) -> bool:
        image = self.images.get(name)
        if image is None or image.status not in only_from:
            return False
        image.status = status
        for key, value in fields.items():
            if value is not None:
                setattr(image, key, value)
        return True

    def add_user(self, name: str, job_id: str) -> None:
        if name not in self.images:
            raise NotFound(f"no managed image {name!r}")
        image = self.images[name]
        image.in_use_by = tuple(sorted({*image.in_use_by, job_id}))

    def remove_user(self, name: str, job_id: str) -> None:
        if name in self.images:
            image = self.images[name]
            image.in_use_by = tuple(j for j in image.in_use_by if j != job_id)

    def with_content_key(self, key: str) -> list[ManagedImage]:
        return [copy.deepcopy(i) for i in self.images.values() if i.content_key == key]

    def delete_unused(self, name: str) -> None:
        image = self.images.get(name)
        if image is None:
            raise NotFound(f"no managed image {name!r}")
        if image.in_use_by:
            raise Conflict(f"managed image {name!r} is used by {', '.join(image.in_use_by)}")
        del self.images[name]


@implements(ports_images.PlatformImageBuilder)
class FakePlatformImageBuilder(Fake):
    """The platform images in memory: ``pushed`` names are in their repository; ``start`` of
    another "builds" it (BUILDING) until ``finish(name, ok)``; a build running is not doubled."""

    NAMES = ("worker", "worker-gpu", "inference", "inference-gpu")

    def __init__(self) -> None:
        super().__init__()
        self.pushed: set[str] = set()
        self.building: dict[str, str] = {}
        self.failed: dict[str, str] = {}
        self.started: list[str] = []
        self._ids = itertools.count(1)

    def names(self) -> tuple[str, ...]:
        return self.NAMES

    def _known(self, name: str) -> None:
        if name not in self.NAMES:
            raise NotFound(f"no platform image {name!r}")

    def _build(self, name: str, status: str, **fields: Any) -> ports_images.PlatformImageBuild:
        return ports_images.PlatformImageBuild(name=name, tag=f"tag-{name}", image_uri=f"registry/{name}:tag-{name}",
                                               status=status, **fields)

    def start(self, name: str) -> ports_images.PlatformImageBuild:
        self._known(name)
        if name in self.pushed or name in self.building:
            return self.poll(name)
        self.building[name] = f"build-{next(self._ids)}"
        self.failed.pop(name, None)
        self.started.append(name)
        return self._build(name, "PENDING", build_id=self.building[name], started=True)

    def poll(self, name: str) -> ports_images.PlatformImageBuild:
        self._known(name)
        if name in self.pushed:
            return self._build(name, "READY")
        if name in self.building:
            return self._build(name, "BUILDING", build_id=self.building[name])
        if name in self.failed:
            return self._build(name, "FAILED", reason=self.failed[name])
        return self._build(name, "MISSING", reason="never built at this tag")

    def finish(self, name: str, ok: bool) -> dict[str, Any]:
        """What CodeBuild's event of the build's end says (the detail ``record_event`` reads)."""
        build_id = self.building.pop(name)
        if ok:
            self.pushed.add(name)
        else:
            self.failed[name] = "the build ended FAILED"
        return {"fake-platform-build": name, "build-id": build_id, "ok": ok}

    def record_event(self, event: dict[str, Any]) -> Optional[ports_images.PlatformImageBuild]:
        name = event.get("fake-platform-build")
        if name is None:
            return None
        build = self.poll(name)
        return ports_images.PlatformImageBuild(**{**build.__dict__, "build_id": event["build-id"],
                                                  "log_url": "https://logs/fake"})
