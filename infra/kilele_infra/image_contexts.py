"""The platform images' build contexts and their content tags (issue 13), without CDK.

Each of the four images (worker and inference, CPU and GPU) is built from the repository root
with ``docker build -f containers/<name>/<Dockerfile>``; BuildKit sends only what the
Dockerfile's ``<Dockerfile>.dockerignore`` lets through. The image's content tag is a hash of
the Dockerfile and of every file of that context (path and bytes), so a tag names exactly one
context: the same sources give the same tag on any machine, and any change to what the image
is built from gives a new one. The stack builds each tag once (platform_images.py) and the Batch
job definitions and SageMaker models name those tags, never a moving ``latest``.

The ``.dockerignore`` reading covers what Docker's syntax means for the patterns these files use
(``*``, ``!dir/``, ``**/name``, comments, last match wins, a matched directory's contents
matched too); tests/infra checks it against the files the contexts must and must not hold.
"""
from __future__ import annotations

import fnmatch
import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CONTAINERS = REPO_ROOT / "containers"
TAG_CHARS = 32


@dataclass(frozen=True)
class PlatformImage:
    """One platform image: ``repository`` is ``worker`` or ``inference``; ``dockerfile`` is
    relative to the repository root."""

    name: str
    repository: str
    dockerfile: str
    gpu: bool

    def dockerignore(self, root: Path = REPO_ROOT) -> Path:
        return root / f"{self.dockerfile}.dockerignore"


PLATFORM_IMAGES = (
    PlatformImage("worker", "worker", "containers/worker/Dockerfile", gpu=False),
    PlatformImage("worker-gpu", "worker", "containers/worker/Dockerfile.gpu", gpu=True),
    PlatformImage("inference", "inference", "containers/inference/Dockerfile", gpu=False),
    PlatformImage("inference-gpu", "inference", "containers/inference/Dockerfile.gpu", gpu=True),
)


def _patterns(dockerignore: Path) -> list[tuple[bool, str]]:
    """(negated, pattern) per line, in order."""
    found = []
    for line in dockerignore.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        found.append((negated, line.lstrip("!").strip().strip("/")))
    return found


def _matches(pattern: str, path: str) -> bool:
    """Whether ``pattern`` matches ``path`` or one of the directories it is in."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    if pattern.startswith("**/"):
        rest = pattern[3:]
        # Any run of components: match the tail of every prefix.
        return any(fnmatch.fnmatchcase("/".join(parts[j:i]), rest)
                   for i in range(1, len(parts) + 1) for j in range(i))
    return any(fnmatch.fnmatchcase(prefix, pattern) for prefix in prefixes)


def _excluded(patterns: list[tuple[bool, str]], path: str) -> bool:
    excluded = False
    for negated, pattern in patterns:  # the last matching line wins
        if _matches(pattern, path):
            excluded = not negated
    return excluded


def _may_reinclude(patterns: list[tuple[bool, str]], directory: str) -> bool:
    """Whether a negated pattern could bring back something under the excluded ``directory``."""
    return any(negated and (pattern.startswith(f"{directory}/") or pattern.startswith("**"))
               for negated, pattern in patterns)


def context_files(image: PlatformImage, root: Path = REPO_ROOT) -> list[str]:
    """The files (relative to ``root``, the repository, sorted) the image's build context holds."""
    patterns = _patterns(image.dockerignore(root))
    files = []
    for top, directories, names in os.walk(root):
        base = Path(top).relative_to(root).as_posix()
        prefix = "" if base == "." else f"{base}/"
        # Never descend where nothing can be in the context (.venv, .git: thousands of files).
        directories[:] = sorted(d for d in directories if not (
            _excluded(patterns, prefix + d) and not _may_reinclude(patterns, prefix + d)))
        files += [prefix + n for n in names if not _excluded(patterns, prefix + n)]
    return sorted(files)


def content_tag(image: PlatformImage, root: Path = REPO_ROOT) -> str:
    """A hash of the Dockerfile and every file of the context (paths and bytes)."""
    digest = hashlib.sha256()
    for relative in [image.dockerfile, *context_files(image, root)]:
        digest.update(relative.encode() + b"\0")
        digest.update(hashlib.sha256((root / relative).read_bytes()).digest())
    return digest.hexdigest()[:TAG_CHARS]


@functools.lru_cache(maxsize=1)
def content_tags() -> dict[str, str]:
    """Image name -> content tag, for the four platform images."""
    return {image.name: content_tag(image) for image in PLATFORM_IMAGES}


__all__ = ["PlatformImage", "PLATFORM_IMAGES", "context_files", "content_tag", "content_tags"]
