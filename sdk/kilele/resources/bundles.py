"""Bundles: a self-contained tar.gz of trained models, to serve anywhere with kilele-serve."""
from __future__ import annotations

import os
from typing import Any, Optional

from kilele._args import _version
from kilele._transfer import TransferMixin


class BundlesMixin(TransferMixin):
    """``export_bundle``."""

    def export_bundle(
        self,
        app: str,
        app_version: int = -1,
        trial_id: Optional[str] = None,
        out_path: Optional[str] = None,
    ) -> dict[str, Any]:
        """Export a self-contained bundle (model files, parameters, ONNX graphs, requirements,
        manifest, README) of one COMPLETED trial (``trial_id``) or of the ensemble an inference
        job of ``app`` v``app_version`` would serve, and save the tar.gz to ``out_path``
        (default ``./<app>-v<version>.tar.gz``). Serve it with ``kilele bundle serve PATH``.
        Returns ``{"path", "manifest"}``."""
        answer = self._export(app, app_version, trial_id)
        manifest = answer.get("manifest") or {}
        if out_path is None:
            out_path = f"{manifest.get('app') or app}-v{manifest.get('app_version', app_version)}.tar.gz"
        path = os.fspath(out_path)
        self._download_file(answer, path, f"the bundle of {app}")
        return {"path": path, "manifest": manifest}

    def _export(self, app: str, app_version: int, trial_id: Optional[str]) -> dict[str, Any]:
        """The API's export answer: ``{"url", "manifest", "direct", "image_uri"}``."""
        body: dict[str, Any] = {"app": app, "app_version": int(_version(app_version))}
        if trial_id is not None:
            body["trial_id"] = trial_id
        return self._request("POST", "/bundles", json=body)
