"""Managed images (seed 002): pip requirements built once over a base runtime.

A requirement set is normalised (canonical names, specifiers parsed and re-written, sorted, no
duplicates) before anything uses it, so the same set always has the same content key and is
built once, whoever asks and in whatever order they wrote it.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Optional

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion

from chalicelib.entities.accounts import iso_or_none
from chalicelib.errors import InvalidInput

# PEP 508 distribution names: letters, digits, '.', '_', '-', starting and ending alphanumeric.
# Nothing else reaches pip: no options ("-e", "--index-url"), URLs, paths or extras.
_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9])?$")
MAX_REQUIREMENTS = 100
MAX_SPECIFIER_CHARS = 200


class ImageBase(str, Enum):
    """The runtime an image is layered on: the trial/stress-test worker or the inference server."""

    WORKER = "worker"
    INFERENCE = "inference"


class BuildState(str, Enum):
    """A build's state; READY and FAILED are final."""

    PENDING = "PENDING"
    BUILDING = "BUILDING"
    READY = "READY"
    FAILED = "FAILED"

    @property
    def final(self) -> bool:
        return self in (BuildState.READY, BuildState.FAILED)


@dataclass(frozen=True, order=True)
class PipRequirement:
    """A library and an optional PEP 440 version specifier (``">=0.1.2"``, ``"==1.0.2"``)."""

    name: str
    version_specifier: str = ""

    @classmethod
    def parse(cls, name: Any, version_specifier: Any = None, where: str = "requirements") -> "PipRequirement":
        """The normalised requirement; :class:`InvalidInput` naming ``where`` if it is not valid."""
        if not isinstance(name, str) or not _NAME.match(name):
            raise InvalidInput(f"{where}.name: {name!r} is not a package name (letters, digits, '.', '_', '-')")
        spec = "" if version_specifier is None else version_specifier
        if not isinstance(spec, str) or len(spec) > MAX_SPECIFIER_CHARS:
            raise InvalidInput(f"{where}.version_specifier: must be a string of at most {MAX_SPECIFIER_CHARS} characters")
        try:
            parsed = SpecifierSet(spec.strip())
        except InvalidSpecifier:
            raise InvalidInput(f"{where}.version_specifier: {spec!r} is not a PEP 440 version specifier "
                               "(such as '==1.0.2' or '>=0.1,<2')") from None
        return cls(canonicalize_name(name), ",".join(sorted(str(s) for s in parsed)))

    def pip_argument(self) -> str:
        """What pip is given: ``name`` followed by the specifier."""
        return f"{self.name}{self.version_specifier}"

    def allows(self, version: str) -> bool:
        """Whether ``version`` satisfies the specifier (pre-releases included: pip installed it)."""
        try:
            return SpecifierSet(self.version_specifier).contains(version, prereleases=True)
        except InvalidVersion:
            return False

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version_specifier": self.version_specifier or None}


def from_dependencies(dependencies: dict[str, Any]) -> tuple[PipRequirement, ...]:
    """A model's ``dependencies`` ({package: version}) as a normalised requirement set: a version
    ("1.9.1") pins it (``==``), "" or None leaves it free, a specifier (">=1.0,<2") is kept."""
    requirements = []
    for name, version in dependencies.items():
        text = "" if version is None else str(version).strip()
        spec = f"=={text}" if text and (text[0].isdigit() or text[0] == "v") else text
        requirements.append(PipRequirement.parse(name, spec, where=f"dependencies[{name!r}]"))
    return normalise(requirements)


def normalise(requirements: list[PipRequirement]) -> tuple[PipRequirement, ...]:
    """Sorted and without duplicates; :class:`InvalidInput` if a library is named twice with
    different specifiers (pip would refuse or pick one silently)."""
    by_name: dict[str, PipRequirement] = {}
    for req in requirements:
        seen = by_name.get(req.name)
        if seen is not None and seen != req:
            raise InvalidInput(f"requirements: {req.name!r} is given twice with different version specifiers")
        by_name[req.name] = req
    if len(by_name) > MAX_REQUIREMENTS:
        raise InvalidInput(f"requirements: at most {MAX_REQUIREMENTS} libraries")
    return tuple(sorted(by_name.values()))


def content_key(base: ImageBase, requirements: tuple[PipRequirement, ...]) -> str:
    """The content address of an image: a hash of its base and normalised requirements."""
    text = json.dumps([base.value, [r.pip_argument() for r in requirements]], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def parse_freeze(lines: list[str]) -> dict[str, str]:
    """``pip freeze`` lines as {canonical name: version}; lines that pin no version (editable
    installs, direct URLs) keep their text after the name as the version."""
    installed: dict[str, str] = {}
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, version = line.partition("==")
        if not sep:
            name, _, version = line.partition(" @ ")
        installed[canonicalize_name(name.strip())] = version.strip()
    return installed


@dataclass(frozen=True)
class ImageBuild:
    """What an image builder reports about one build. ``pip_freeze`` and ``image_ref`` are set
    once READY; ``log`` is the build's output so far (the pip output on failure)."""

    build_id: str
    state: BuildState
    log: str = ""
    reason: str = ""
    pip_freeze: tuple[str, ...] = ()
    image_ref: str = ""


@dataclass
class ManagedImage:
    """A named image a user asked for, and what its build resolved. The name is its id."""

    name: str
    owner_id: str
    base: ImageBase
    requirements: tuple[PipRequirement, ...]
    content_key: str
    status: BuildState
    created_at: datetime
    build_id: str = ""
    image_ref: str = ""
    installed: dict[str, str] = field(default_factory=dict)  # from pip freeze, once READY
    error: Optional[str] = None
    finished_at: Optional[datetime] = None
    in_use_by: tuple[str, ...] = ()  # ids of the jobs that run in it

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "owner_id": self.owner_id,
            "base": self.base.value,
            "requirements": [r.to_dict() for r in self.requirements],
            "status": self.status.value,
            "image_ref": self.image_ref or None,
            "package_requirements": [f"{n}=={v}" for n, v in sorted(self.installed.items())],
            "pip_libraries": [{"name": n, "version": v} for n, v in sorted(self.installed.items())],
            "error": self.error,
            "created_at": iso_or_none(self.created_at),
            "finished_at": iso_or_none(self.finished_at),
            "in_use_by": list(self.in_use_by),
        }


__all__ = ["ImageBase", "BuildState", "PipRequirement", "normalise", "content_key", "parse_freeze", "ImageBuild",
           "ManagedImage", "MAX_REQUIREMENTS"]
