"""Models: one Python file each, with its class name and PyPI dependencies."""
from __future__ import annotations

import base64
from typing import Any, Iterable, Mapping, Optional, Union

from kilele._args import StrOrEnum, _enum_value, _segment
from kilele._http import HttpClient
from kilele.constants import ModelAccessRight


def _dependencies(dependencies: Union[Mapping[str, str], Iterable[str], None]) -> dict[str, str]:
    """``{"numpy": "1.26.4"}`` as is; ``["numpy==1.26.4", "scipy"]`` parsed into that shape."""
    if dependencies is None:
        return {}
    if isinstance(dependencies, Mapping):
        return {str(k): str(v) for k, v in dependencies.items()}
    if isinstance(dependencies, str):
        dependencies = [dependencies]
    parsed: dict[str, str] = {}
    for item in dependencies:
        name, _, version = str(item).partition("==")
        if not name.strip():
            raise ValueError(f"dependency {item!r} should look like name==version")
        parsed[name.strip()] = version.strip()
    return parsed


class ModelsMixin(HttpClient):
    """``create_model``, ``get_model``, ``download_model_file``, ``get_available_models``
    (seed 000's ``get_models_of_task``) and ``delete_model``."""

    def create_model(
        self,
        name: str,
        task: StrOrEnum,
        model_file_path: str,
        model_class: str,
        dependencies: Union[Mapping[str, str], Iterable[str], None] = None,
        access_right: StrOrEnum = ModelAccessRight.PRIVATE,
        docker_image: Optional[str] = None,
    ) -> dict[str, Any]:
        """Upload a model: one Python file whose ``model_class`` subclasses
        ``kilele.model.BaseModel``. ``dependencies`` is ``{pypi_name: version}``. Returns the model."""
        with open(model_file_path, "rb") as f:
            source = f.read()
        body: dict[str, Any] = {
            "name": name,
            "task": _enum_value(task),
            "model_class": model_class,
            "model_file_base64": base64.b64encode(source).decode("ascii"),
            "dependencies": _dependencies(dependencies),
            "access_right": _enum_value(access_right),
        }
        if docker_image is not None:
            body["docker_image"] = docker_image
        return self._request("POST", "/models", json=body)

    def get_model(self, model_id: str) -> dict[str, Any]:
        """One model by id."""
        return self._request("GET", f"/models/{_segment(model_id)}")

    def download_model_file(self, model_id: str, out_model_file_path: str) -> dict[str, Any]:
        """Save the model's Python file to ``out_model_file_path``. Returns the model."""
        model = self.get_model(model_id)
        response = self._request("GET", f"/models/{_segment(model_id)}/file", raw=True)
        with open(out_model_file_path, "wb") as f:
            f.write(response.content)
        return model

    def get_available_models(self, task: Optional[StrOrEnum] = None) -> list[dict[str, Any]]:
        """Models you can use (yours and PUBLIC ones), optionally of one task."""
        return self._request("GET", "/models", params={"task": _enum_value(task) if task else None})

    def get_models_of_task(self, task: StrOrEnum) -> list[dict[str, Any]]:
        """Seed 000's call: the models of ``task`` you can use (yours and PUBLIC ones)."""
        return self.get_available_models(task=task)

    def delete_model(self, model_id: str) -> dict[str, Any]:
        """Delete a model that no train job uses. Returns the deleted model."""
        return self._request("DELETE", f"/models/{_segment(model_id)}")
