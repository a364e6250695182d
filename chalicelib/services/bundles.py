"""Bundles: a self-contained archive of an ensemble (model files, parameters, ONNX graphs,
pinned requirements, a manifest) that the inference server serves anywhere. The platform
deploys bundles to endpoints; users export them (BentoML's saved bundle)."""
from __future__ import annotations

from typing import Any, Optional

from chalicelib.bundle_format import BundleMember, bundle_bytes
from chalicelib.entities import Task, Trial
from chalicelib.errors import NotFound
from chalicelib.services import Clock, utc_now
from chalicelib.services.model_images import ModelImages
from chalicelib.ports import BlobStore, ModelStore


class BundleBuilder:
    def __init__(self, blobs: BlobStore, models: ModelStore, clock: Clock = utc_now,
                 images: Optional[ModelImages] = None):
        """``images``: the managed images models run in (a bundle records and pins its image)."""
        self._blobs = blobs
        self._models = models
        self._clock = clock
        self._images = images

    def serving_image(self, trials: list[Trial]) -> Optional[dict[str, Any]]:
        """The managed image the trials' models are served in (``name``, ``ref``, ``pip_freeze``;
        None: the inference runtime); see :meth:`ModelImages.serving`."""
        if self._images is None:
            return None
        models = [m for m in (self._models.get(t.model_id) for t in trials) if m is not None]
        return self._images.serving(models)

    def build(self, key: str, app: str, app_version: int, task: Task, trials: list[Trial]) -> dict[str, Any]:
        """Write the bundle of ``trials`` (one ensemble) as a tar.gz at ``key``; returns its manifest.
        The layout and the manifest are :mod:`chalicelib.bundle_format`'s (the one bundle writer)."""
        members = []
        for trial in trials:
            model = self._models.get(trial.model_id)
            if model is None:
                raise NotFound(f"the model of trial {trial.id} was deleted")
            onnx = None
            if trial.onnx_key:
                try:
                    onnx = self._blobs.get_bytes(trial.onnx_key)
                except NotFound:
                    pass  # the model exported no ONNX graph: the server uses its predict()
            members.append(BundleMember(
                trial_id=trial.id, model_class=model.model_class,
                model_source=self._blobs.get_bytes(model.object_key),
                params=self._blobs.get_bytes(trial.params_key or ""), onnx=onnx, model_name=trial.model_name,
                knobs=trial.knobs, score=trial.score, dependencies=model.dependencies,
            ))
        data, manifest = bundle_bytes(app, app_version, task.value, members, created_at=self._clock().isoformat(),
                                      image=self.serving_image(trials))
        self._blobs.put_bytes(key, data, content_type="application/gzip")
        return manifest
