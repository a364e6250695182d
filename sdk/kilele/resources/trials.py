"""Trials: one trained model each (knobs, score, logs, parameters)."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, TypeVar

from kilele._args import _segment
from kilele._transfer import TransferMixin
from kilele.errors import KileleError, WrongModelClassError

if TYPE_CHECKING:  # pragma: no cover
    from kilele.model import BaseModel

ModelT = TypeVar("ModelT", bound="BaseModel")


class TrialsMixin(TransferMixin):
    """``get_trial``, ``get_trial_logs`` and a trial's trained parameters."""

    def get_trial(self, trial_id: str) -> dict[str, Any]:
        """One trial: its model, knobs, status, score, times and errors."""
        return self._request("GET", f"/trials/{_segment(trial_id)}")

    def get_trial_logs(self, trial_id: str) -> dict[str, Any]:
        """A trial's logs: ``{"trial_id", "status", "logs"}`` (``logs`` is the text)."""
        return self._request("GET", f"/trials/{_segment(trial_id)}/logs")

    def get_trial_parameters(self, trial_id: str) -> dict[str, Any]:
        """The trained parameters of a COMPLETED trial: a dict of numpy arrays, str, int, float,
        bool and bytes (what the model's ``dump_parameters()`` returned)."""
        from kilele.model import deserialize_params

        return deserialize_params(self._trial_parameters_bytes(trial_id))

    def download_trial_parameters(self, trial_id: str, out_params_file_path: str) -> dict[str, Any]:
        """Save a COMPLETED trial's parameters, as stored (a numpy ``.npz`` archive without
        pickles; read it with ``kilele.model.deserialize_params``), to ``out_params_file_path``."""
        data = self._trial_parameters_bytes(trial_id)
        with open(out_params_file_path, "wb") as f:
            f.write(data)
        return {"trial_id": trial_id, "format": "npz", "path": os.fspath(out_params_file_path),
                "size_bytes": len(data)}

    def load_trial_model(self, trial_id: str, ModelClass: type[ModelT]) -> ModelT:  # noqa: N803 (seed's name)
        """A trained instance of ``ModelClass`` (the trial's model class, imported locally, its
        dependencies installed): built with the trial's knobs, loaded with its parameters.
        Another class than the trial's (``model_class`` in its details) raises
        :class:`~kilele.errors.WrongModelClassError`, naming the class it needs."""
        trial = self.get_trial(trial_id)
        needed = trial.get("model_class")
        if needed and getattr(ModelClass, "__name__", None) != needed:
            raise WrongModelClassError(
                f"trial {trial_id} is of model {trial.get('model_name')!r}, whose class is {needed!r}; "
                f"got {getattr(ModelClass, '__name__', ModelClass)!r}: pass {needed} (e.g. "
                f"kilele.model.load_model_class(model_file_path, {needed!r}))")
        model = ModelClass(**(trial.get("knobs") or {}))
        model.load_parameters(self.get_trial_parameters(trial_id))
        return model

    def _trial_parameters_bytes(self, trial_id: str) -> bytes:
        """Ask the API for the download URL, then GET it from storage without our credentials (or
        straight from S3 with them, signed as an IAM user: ``_download_answer_bytes``)."""
        answer = self._request("GET", f"/trials/{_segment(trial_id)}/parameters")
        fmt = answer.get("format", "npz")
        if fmt != "npz":
            raise KileleError(f"trial {trial_id} parameters come as {fmt!r}; this SDK reads 'npz' only",
                              code="bad_response")
        return self._download_answer_bytes(answer, f"the parameters of trial {trial_id}",
                                           refused_what=f"trial {trial_id}'s parameters")
