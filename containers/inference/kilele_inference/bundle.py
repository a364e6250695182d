"""The bundle: what the platform deploys and what users export (a BentoML-style saved bundle).

```
<bundle>/kilele-bundle.json
<bundle>/requirements.txt
<bundle>/members/<trial_id>/{model.py, params.npz, model.onnx}
```

This module only reads and checks the manifest; :mod:`kilele_inference.members` loads the models.
The one writer is the platform's ``chalicelib/bundle_format.py`` (not in this image);
tests/contract/test_bundle_roundtrip.py keeps the two in step.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from kilele_inference.errors import BundleError

MANIFEST = "kilele-bundle.json"
FORMAT = 1
CLASSIFICATION_TASKS = frozenset({"TABULAR_CLASSIFICATION", "IMAGE_CLASSIFICATION"})
REGRESSION_TASKS = frozenset({"TABULAR_REGRESSION"})


@dataclass(frozen=True)
class MemberSpec:
    trial_id: str
    model_name: str
    model_class: str
    model_file: Path
    params: Path
    onnx: Optional[Path]
    knobs: dict[str, Any] = field(default_factory=dict)
    score: Optional[float] = None
    dependencies: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        return f"{self.model_name} ({self.model_class}, trial {self.trial_id})"


@dataclass(frozen=True)
class BundleSpec:
    root: Path
    app: str
    app_version: Any
    task: str
    members: list[MemberSpec]
    requirements: list[str] = field(default_factory=list)

    @property
    def is_classification(self) -> bool:
        return self.task in CLASSIFICATION_TASKS

    @property
    def is_regression(self) -> bool:
        return self.task in REGRESSION_TASKS


def find_bundle_root(path: str | Path) -> Path:
    """The directory holding ``kilele-bundle.json``: ``path`` itself or, as when a tarball with a
    top-level folder is extracted into SageMaker's ``/opt/ml/model``, its only subdirectory with one."""
    root = Path(path)
    if not root.is_dir():
        raise BundleError(f"bundle directory {root} does not exist")
    if (root / MANIFEST).is_file():
        return root
    candidates = [child for child in sorted(root.iterdir()) if child.is_dir() and (child / MANIFEST).is_file()]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise BundleError(f"{root} holds no {MANIFEST} (neither at its top nor in a subdirectory)")
    raise BundleError(f"{root} holds several bundles: {', '.join(c.name for c in candidates)}")


def _inside(root: Path, relative: Any, what: str) -> Path:
    if not isinstance(relative, str) or not relative:
        raise BundleError(f"{what} must be a relative path inside the bundle, got {relative!r}")
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()):
        raise BundleError(f"{what} {relative!r} points outside the bundle")
    if not path.is_file():
        raise BundleError(f"{what} {relative!r} is missing from the bundle")
    return path


def _member(root: Path, index: int, raw: Any) -> MemberSpec:
    where = f"members[{index}]"
    if not isinstance(raw, dict):
        raise BundleError(f"{where} must be an object")
    for key in ("trial_id", "model_class", "model_file", "params"):
        if not raw.get(key):
            raise BundleError(f"{where} has no {key!r}")
    knobs = raw.get("knobs") or {}
    dependencies = raw.get("dependencies") or {}
    if not isinstance(knobs, dict) or not isinstance(dependencies, dict):
        raise BundleError(f"{where}: 'knobs' and 'dependencies' must be objects")
    onnx = raw.get("onnx")
    return MemberSpec(
        trial_id=str(raw["trial_id"]),
        model_name=str(raw.get("model_name") or raw["model_class"]),
        model_class=str(raw["model_class"]),
        model_file=_inside(root, raw["model_file"], f"{where}.model_file"),
        params=_inside(root, raw["params"], f"{where}.params"),
        onnx=_inside(root, onnx, f"{where}.onnx") if onnx else None,
        knobs=knobs,
        score=raw.get("score"),
        dependencies={str(k): str(v) for k, v in dependencies.items()},
    )


def read_bundle(path: str | Path) -> BundleSpec:
    """Reads and checks the manifest of the bundle at ``path`` (see :func:`find_bundle_root`)."""
    root = find_bundle_root(path)
    try:
        manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BundleError(f"{root / MANIFEST} is not readable JSON: {e}") from e
    if not isinstance(manifest, dict):
        raise BundleError(f"{MANIFEST} must hold a JSON object")
    if manifest.get("format") != FORMAT:
        raise BundleError(f"{MANIFEST} has format {manifest.get('format')!r}; this server reads format {FORMAT}")
    task = manifest.get("task")
    if not isinstance(task, str) or not task:
        raise BundleError(f"{MANIFEST} has no 'task'")
    members = manifest.get("members")
    if not isinstance(members, list) or not members:
        raise BundleError(f"{MANIFEST} must list at least one member")
    requirements = manifest.get("requirements") or []
    return BundleSpec(
        root=root,
        app=str(manifest.get("app") or root.name),
        app_version=manifest.get("app_version"),
        task=task,
        members=[_member(root, i, raw) for i, raw in enumerate(members)],
        requirements=[str(r) for r in requirements],
    )
