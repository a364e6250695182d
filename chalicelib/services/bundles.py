"""Bundles: a self-contained archive of an ensemble (model files, parameters, ONNX graphs,
pinned requirements, a manifest) that the inference server serves anywhere. The platform
deploys bundles to endpoints; users export them (BentoML's saved bundle)."""
from __future__ import annotations

import io
import json
import tarfile
from typing import Any

from chalicelib.adapters.blobs import BlobStore
from chalicelib.entities import Task, Trial
from chalicelib.errors import NotFound
from chalicelib.services import Clock, utc_now
from chalicelib.store.repositories import ModelRepository

MANIFEST = "kilele-bundle.json"
FORMAT = 1
SERVE_README = """# Kilele bundle: {app} v{app_version}

Serve it on any machine with Python 3.11:

    python3 -m venv .venv && .venv/bin/pip install -r requirements.txt kilele-inference
    .venv/bin/kilele-serve --bundle . --host 127.0.0.1 --port 8080

then POST {{"queries": [...]}} to http://127.0.0.1:8080/invocations (GET /ping, GET /metrics).
"""


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    archive.addfile(info, io.BytesIO(data))


class BundleBuilder:
    def __init__(self, blobs: BlobStore, models: ModelRepository, clock: Clock = utc_now):
        self._blobs = blobs
        self._models = models
        self._clock = clock

    def build(self, key: str, app: str, app_version: int, task: Task, trials: list[Trial]) -> dict[str, Any]:
        """Write the bundle of ``trials`` (one ensemble) as a tar.gz at ``key``; returns its manifest."""
        members, requirements = [], set()
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            for trial in trials:
                model = self._models.get(trial.model_id)
                if model is None:
                    raise NotFound(f"the model of trial {trial.id} was deleted")
                base = f"members/{trial.id}"
                _add(archive, f"{base}/model.py", self._blobs.get_bytes(model.object_key))
                _add(archive, f"{base}/params.npz", self._blobs.get_bytes(trial.params_key or ""))
                onnx = None
                if trial.onnx_key:
                    try:
                        _add(archive, f"{base}/model.onnx", self._blobs.get_bytes(trial.onnx_key))
                        onnx = f"{base}/model.onnx"
                    except NotFound:
                        pass  # the model exported no ONNX graph
                members.append({
                    "trial_id": trial.id, "model_name": trial.model_name, "model_class": model.model_class,
                    "model_file": f"{base}/model.py", "params": f"{base}/params.npz", "onnx": onnx,
                    "knobs": trial.knobs, "score": trial.score, "dependencies": model.dependencies,
                })
                requirements.update(f"{name}=={version}" if version else name
                                    for name, version in sorted(model.dependencies.items()))
            manifest = {"format": FORMAT, "app": app, "app_version": app_version, "task": task.value,
                        "created_at": self._clock().isoformat(), "members": members,
                        "requirements": sorted(requirements)}
            _add(archive, MANIFEST, json.dumps(manifest, indent=2).encode())
            _add(archive, "requirements.txt", ("\n".join(sorted(requirements)) + "\n").encode())
            _add(archive, "README.md", SERVE_README.format(app=app, app_version=app_version).encode())
        self._blobs.put_bytes(key, buffer.getvalue(), content_type="application/gzip")
        return manifest
