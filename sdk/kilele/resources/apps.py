"""Applications (Clipper's calls): input type, latency SLO, default output, served version."""
from __future__ import annotations

from enum import Enum
from typing import Any, Optional, Union

from kilele._args import StrOrEnum, _segment, _version
from kilele.resources.inference import InferenceJobsMixin


def _input_type(value: StrOrEnum) -> str:
    """``InputType.FLOATS`` or ``"Floats"`` -> ``"floats"`` (Clipper's input types are lower case)."""
    if isinstance(value, Enum):
        return str(value.value)
    return str(value).strip().lower()


def _fixed_version(version: Union[int, str]) -> int:
    """An app version that names one version: a whole number >= 1."""
    try:
        number = int(version)
    except (TypeError, ValueError):
        number = 0
    if number < 1 or isinstance(version, bool):
        raise ValueError(f"version must be a whole number >= 1; got {version!r}")
    return number


class ApplicationsMixin(InferenceJobsMixin):
    """Register, change and delete applications; choose and roll back the version they serve
    (``link_model_to_app`` looks up the running inference job)."""

    def register_application(
        self,
        name: str,
        input_type: StrOrEnum,
        default_output: Any,
        slo_micros: int,
        top_n: Optional[int] = None,
        capture_percent: Optional[float] = None,
    ) -> dict[str, Any]:
        """Register an application: its ``input_type`` (ints, floats, doubles, strings, bytes),
        the ``default_output`` answered when the model misses the ``slo_micros`` latency SLO,
        and optionally a top-N filter of class probabilities and the percentage of its predict
        requests captured (``capture_percent``, default 0: see :meth:`set_capture`). Returns the
        application."""
        body: dict[str, Any] = {"name": name, "input_type": _input_type(input_type),
                                "default_output": default_output, "slo_micros": int(slo_micros)}
        if top_n is not None:
            body["top_n"] = int(top_n)
        if capture_percent is not None:
            body["capture_percent"] = float(capture_percent)
        return self._request("POST", "/apps", json=body)

    def get_application(self, name: str) -> dict[str, Any]:
        """An application, with the version it serves now (``serving_version``)."""
        return self._request("GET", f"/apps/{_segment(name)}")

    def get_applications(self) -> list[dict[str, Any]]:
        """Your applications."""
        return self._request("GET", "/apps")

    def update_application(
        self,
        name: str,
        input_type: Optional[StrOrEnum] = None,
        default_output: Any = None,
        slo_micros: Optional[int] = None,
        top_n: Optional[int] = None,
    ) -> dict[str, Any]:
        """Change an application's settings; the ones left None stay as they are."""
        body: dict[str, Any] = {}
        if input_type is not None:
            body["input_type"] = _input_type(input_type)
        if default_output is not None:
            body["default_output"] = default_output
        if slo_micros is not None:
            body["slo_micros"] = int(slo_micros)
        if top_n is not None:
            body["top_n"] = int(top_n)
        if not body:
            raise ValueError("nothing to update: give input_type, default_output, slo_micros or top_n")
        return self._request("PATCH", f"/apps/{_segment(name)}", json=body)

    def delete_application(self, name: str) -> dict[str, Any]:
        """Unregister an application (its inference jobs keep running). Returns it."""
        return self._request("DELETE", f"/apps/{_segment(name)}")

    def set_model_version(self, name: str, version: int) -> dict[str, Any]:
        """Serve ``version`` of the app (it needs a running inference job); the version served
        until now is kept for :meth:`rollback_application`. Returns the application."""
        return self._request("POST", f"/apps/{_segment(name)}/version", json={"version": _fixed_version(version)})

    def rollback_application(self, name: str) -> dict[str, Any]:
        """Serve the version served before the last switch again. Returns the application."""
        return self._request("POST", f"/apps/{_segment(name)}/rollback")

    def link_model_to_app(self, app_name: str, version: int = -1) -> dict[str, Any]:
        """Clipper's call: make the app serve ``version`` (-1: the version of the newest running
        inference job of the app). Returns the application."""
        if int(_version(version)) == -1:
            version = int(self.get_running_inference_job(app_name, -1)["app_version"])
        return self.set_model_version(app_name, version)

    def get_query_addr(self) -> str:
        """The API root that answers ``POST /apps/{app}/predict``."""
        return self.base_url
