"""The bundle format, and its one writer.

A bundle is what an inference job deploys and what users export (BentoML's saved bundle): an
ensemble's model files, parameters and ONNX graphs with a manifest, served anywhere by
``kilele-serve`` (containers/inference). Its layout::

    <bundle>/kilele-bundle.json                 the manifest (below)
    <bundle>/requirements.txt                   the members' pinned dependencies, one a line
    <bundle>/README.md                          how to serve it
    <bundle>/members/<trial_id>/model.py        the model file as uploaded
    <bundle>/members/<trial_id>/params.npz      kilele.model.serialize_params(model.dump_parameters())
    <bundle>/members/<trial_id>/model.onnx      model.export_onnx(), when the member has one

The manifest (format :data:`FORMAT`)::

    {"format": 1, "app": "iris_app", "app_version": 1, "task": "TABULAR_CLASSIFICATION",
     "created_at": "2026-12-01T10:00:00+00:00",                      (only when given)
     "members": [{"trial_id": "...", "model_name": "tree", "model_class": "SkDecisionTree",
                  "model_file": "members/<trial_id>/model.py", "params": "members/<trial_id>/params.npz",
                  "onnx": "members/<trial_id>/model.onnx" or null,
                  "knobs": {...}, "score": 0.97, "dependencies": {"scikit-learn": "1.9.1"}}],
     "requirements": ["scikit-learn==1.9.1"],
     "image": {"name": "deps-...", "ref": "...", "pip_freeze": ["inflection==0.5.1", ...]}}  (optional)

``image`` (since format 1; readers ignore keys they do not know, so no new format): the managed
image the members' dependencies resolved to, with the ``pip freeze`` recorded when it was built.
With it, ``requirements`` pins every member dependency to the version the image resolved (a free
``numpy`` is written ``numpy==<what was installed>``), so the bundle installs what it ran with.

This module is the only writer: the platform's ``BundleBuilder``, the inference server's tests and
the serving benchmark all call it. The only reader is ``kilele_inference.bundle`` (in the inference
image, which does not ship chalicelib); tests/contract/test_bundle_roundtrip.py keeps the two in
step. Pure standard library and no AWS: the Lambda package, the tests and the benchmark import it
alike.
"""
from __future__ import annotations

import io
import json
import os
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Mapping, Optional, Union

MANIFEST = "kilele-bundle.json"
FORMAT = 1
REQUIREMENTS = "requirements.txt"
README = "README.md"

SERVE_README = """# Kilele bundle: {app} v{app_version}

Serve it on any machine with Python 3.11:

    python3 -m venv .venv && .venv/bin/pip install -r requirements.txt kilele-inference
    .venv/bin/kilele-serve --bundle . --host 127.0.0.1 --port 8080

then POST {{"queries": [...]}} to http://127.0.0.1:8080/invocations (GET /ping, GET /metrics).
"""


@dataclass(frozen=True)
class BundleMember:
    """One member of the ensemble: a trained trial, with the bytes the bundle holds for it."""

    trial_id: str
    model_class: str
    model_source: bytes  # the model file as uploaded
    params: bytes  # kilele.model.serialize_params(model.dump_parameters())
    onnx: Optional[bytes] = None  # model.export_onnx(); None: the server uses the model's predict()
    model_name: str = ""  # "" names the member by its class
    knobs: Mapping[str, Any] = field(default_factory=dict)
    score: Optional[float] = None
    dependencies: Mapping[str, str] = field(default_factory=dict)  # package -> version ("" unpinned)

    @property
    def folder(self) -> str:
        """The member's folder inside the bundle."""
        return f"members/{self.trial_id}"


def requirements_of(members: Iterable[BundleMember], resolved: Optional[Mapping[str, str]] = None) -> list[str]:
    """The pip requirements of a bundle: every member's dependencies, pinned to the version
    ``resolved`` ({canonical name: version}, an image's freeze) has, else when one is given."""
    resolved = resolved or {}

    def pinned(name: str, version: str) -> str:
        found = resolved.get(_canonical(name))
        if found:
            return f"{name}=={found}"
        return f"{name}=={version}" if version and version[0].isdigit() else f"{name}{version}" if version else name

    return sorted({pinned(name, version) for member in members for name, version in (member.dependencies or {}).items()})


def _canonical(name: str) -> str:
    # PEP 503's normalised name (packaging.utils.canonicalize_name, without the dependency).
    return re.sub(r"[-_.]+", "-", name).lower()


def _resolved(image: Optional[Mapping[str, Any]]) -> dict[str, str]:
    """{canonical name: version} of an image's ``pip_freeze`` lines."""
    found = {}
    for line in (image or {}).get("pip_freeze") or ():
        name, sep, version = str(line).partition("==")
        if sep:
            found[_canonical(name.strip())] = version.strip()
    return found


def _check(members: list[BundleMember]) -> None:
    if not members:
        raise ValueError("a bundle needs at least one member")
    seen = set()
    for member in members:
        # The trial id names a folder: it must stay one path segment inside the bundle.
        if not member.trial_id or member.trial_id in (".", "..") or "/" in member.trial_id or "\\" in member.trial_id:
            raise ValueError(f"trial id {member.trial_id!r} cannot name a folder in a bundle")
        if member.trial_id in seen:
            raise ValueError(f"trial {member.trial_id} is in the bundle twice")
        seen.add(member.trial_id)


def build_manifest(app: str, app_version: Any, task: str, members: list[BundleMember],
                   created_at: Optional[str] = None, image: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
    """The manifest (``kilele-bundle.json``) of a bundle of ``members``; ``image``: the managed
    image they run in (``name``, ``ref``, ``pip_freeze``), recorded and pinned (module doc)."""
    _check(members)
    entries = []
    for member in members:
        entries.append({
            "trial_id": member.trial_id, "model_name": member.model_name or member.model_class,
            "model_class": member.model_class, "model_file": f"{member.folder}/model.py",
            "params": f"{member.folder}/params.npz",
            "onnx": f"{member.folder}/model.onnx" if member.onnx is not None else None,
            "knobs": dict(member.knobs or {}), "score": member.score,
            "dependencies": dict(member.dependencies or {}),
        })
    manifest: dict[str, Any] = {"format": FORMAT, "app": app, "app_version": app_version, "task": task}
    if created_at is not None:
        manifest["created_at"] = created_at
    manifest.update({"members": entries, "requirements": requirements_of(members, _resolved(image))})
    if image:
        manifest["image"] = {"name": str(image.get("name") or ""), "ref": str(image.get("ref") or ""),
                             "pip_freeze": [str(line) for line in image.get("pip_freeze") or ()]}
    return manifest


def bundle_files(app: str, app_version: Any, task: str, members: list[BundleMember],
                 created_at: Optional[str] = None,
                 image: Optional[Mapping[str, Any]] = None) -> tuple[dict[str, Any], list[tuple[str, bytes]]]:
    """The manifest and every file of the bundle as ``(relative path, bytes)``, members first."""
    manifest = build_manifest(app, app_version, task, members, created_at, image)
    files: list[tuple[str, bytes]] = []
    for member in members:
        files.append((f"{member.folder}/model.py", member.model_source))
        files.append((f"{member.folder}/params.npz", member.params))
        if member.onnx is not None:
            files.append((f"{member.folder}/model.onnx", member.onnx))
    files.append((MANIFEST, json.dumps(manifest, indent=2).encode()))
    files.append((REQUIREMENTS, ("\n".join(manifest["requirements"]) + "\n").encode()))
    files.append((README, SERVE_README.format(app=app, app_version=app_version).encode()))
    return manifest, files


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    archive.addfile(info, io.BytesIO(data))


def write_bundle(target: Union[str, os.PathLike, BinaryIO], app: str, app_version: Any, task: str,
                 members: list[BundleMember], created_at: Optional[str] = None,
                 image: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
    """Writes a bundle of ``members`` and returns its manifest.

    ``target`` is a directory path (created if needed; the files are written in it, as
    ``kilele-serve --bundle DIR`` serves them) or a binary file object (a ``.tar.gz`` of the files
    at its top level is written into it, as the platform stores bundles and SageMaker extracts
    them into ``/opt/ml/model``).
    """
    manifest, files = bundle_files(app, app_version, task, members, created_at, image)
    if isinstance(target, (str, os.PathLike)):
        root = Path(target)
        for relative, data in files:
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    else:
        with tarfile.open(fileobj=target, mode="w:gz") as archive:
            for relative, data in files:
                _add(archive, relative, data)
    return manifest


def bundle_bytes(app: str, app_version: Any, task: str, members: list[BundleMember],
                 created_at: Optional[str] = None,
                 image: Optional[Mapping[str, Any]] = None) -> tuple[bytes, dict[str, Any]]:
    """A bundle of ``members`` as ``.tar.gz`` bytes, with its manifest."""
    buffer = io.BytesIO()
    manifest = write_bundle(buffer, app, app_version, task, members, created_at, image)
    return buffer.getvalue(), manifest
