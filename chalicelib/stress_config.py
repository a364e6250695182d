"""The SHAPE of a stress test's test run config (seed 002), checked by the API.

The engine (``kilele_stress.config``) needs pandas, pyarrow and scipy, which the API Lambda does
not carry; so the API checks here what it can without the data or the catalogue (keys, types,
one model source), and the engine, in the worker, checks the rest (columns exist, test keys and
thresholds): its errors make the job FAILING with the reason. Keys follow
docs/stress-tests-api.md and stress/README.md.
"""
from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Optional

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from chalicelib.errors import InvalidInput

#: A dataset of the platform as a stress-test input (the stress-test service resolves it).
DATASET_URI = r"^kilele://datasets/([A-Za-z0-9_-]{1,100})$"
# What the service takes as an input file: one of the caller's uploads (s3://, whose owner and
# existence are state: 404 otherwise) or a dataset; a model file only as an upload.
_INPUT_URI = {"pattern": r"^(?:s3://|kilele://datasets/[A-Za-z0-9_-]{1,100}$)",
              "description": "s3://... from POST /stress-tests/uploads, or kilele://datasets/<id>"}
_MODEL_URI = {"pattern": r"^s3://", "description": "s3://... from POST /stress-tests/uploads"}


def _of_form(value: Optional[str], form: dict[str, str]) -> Optional[str]:
    if value is not None and not re.match(form["pattern"], value):
        raise ValueError(f"{value!r} is not {form['description']} (the SDK uploads local files for you)")
    return value


def _input_uri(value: str) -> str:
    return _of_form(value, _INPUT_URI)


def _model_uri(value: Optional[str]) -> Optional[str]:
    return _of_form(value, _MODEL_URI)

ModelTaskName = Literal["Binary Classification", "Multi-class Classification", "Regression"]
Column = Field(min_length=1, max_length=500)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataInfoShape(_Strict):
    label_col: str = Column
    ref_path: Annotated[str, AfterValidator(_input_uri)] = Field(min_length=1, max_length=2000,
                                                                  json_schema_extra=_INPUT_URI)
    eval_path: Annotated[str, AfterValidator(_input_uri)] = Field(min_length=1, max_length=2000,
                                                                   json_schema_extra=_INPUT_URI)
    pred_col: Optional[str] = None
    timestamp_col: Optional[str] = None
    categorical_features: Optional[list[str]] = None
    protected_features: Optional[list[str]] = None
    features_not_in_model: Optional[list[str]] = None


class ModelInfoShape(_Strict):
    path: Annotated[Optional[str], AfterValidator(_model_uri)] = Field(None, min_length=1, max_length=2000,
                                                                        json_schema_extra=_MODEL_URI)
    trial_id: Optional[str] = Field(None, min_length=1, max_length=200)
    app: Optional[str] = Field(None, min_length=1, max_length=200)
    app_version: Optional[int] = None

    @model_validator(mode="after")
    def _one_source(self) -> "ModelInfoShape":
        sources = [name for name in ("path", "trial_id", "app") if getattr(self, name) is not None]
        if len(sources) > 1:
            raise ValueError(f"give one of path, trial_id or app, not {' and '.join(sources)}")
        if self.app_version is not None and self.app is None:
            raise ValueError("app_version goes with app")
        if self.app_version is not None and self.app_version != -1 and self.app_version < 1:
            raise ValueError(f"app_version: -1 (the app's serving version) or a version number from 1, "
                             f"not {self.app_version}")
        return self

    @property
    def is_empty(self) -> bool:
        return self.path is None and self.trial_id is None and self.app is None


class TestRunConfigShape(_Strict):
    run_name: str = Field("stress test", min_length=1, max_length=200)
    data_info: DataInfoShape
    model_info: ModelInfoShape = ModelInfoShape()
    model_task: Optional[ModelTaskName] = None
    tests_config: dict[str, dict[str, Any]] = {}
    random_seed: int = 42
    continuous_info: Optional[dict[str, Any]] = None

    @model_validator(mode="after")
    def _model_or_predictions(self) -> "TestRunConfigShape":
        if self.model_info.is_empty and not self.data_info.pred_col:
            raise ValueError("model_info: give a model (path, trial_id or app), or data_info.pred_col")
        return self


def parse_test_run_config(value: Any) -> TestRunConfigShape:
    """The config's shape checked; :class:`InvalidInput` naming the first bad key
    (``data_info.ref_path: Field required``)."""
    if not isinstance(value, dict):
        raise InvalidInput("test_run_config: must be an object")
    try:
        return TestRunConfigShape.model_validate(value)
    except ValidationError as e:
        item = e.errors()[0]
        where = ".".join(str(p) for p in item["loc"]) or "test_run_config"
        message = item["msg"].removeprefix("Value error, ")
        raise InvalidInput(f"{where}: {message}") from None


def test_run_config_schema() -> dict[str, Any]:
    """The config's JSON schema with its definitions inlined (for the OpenAPI document; the
    rules between keys, one model source, are in the validators)."""
    schema = TestRunConfigShape.model_json_schema()
    definitions = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(definitions[node["$ref"].rsplit("/", 1)[-1]])
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    schema = inline(schema)
    # The validators' rules between keys, for the document's readers ("given" means a non-null value).
    def given(key: str, kind: str = "string") -> dict[str, Any]:
        return {"required": [key], "properties": {key: {"type": kind}}}

    sources = ("path", "trial_id", "app")
    model_info = schema["properties"]["model_info"]
    model_info["properties"]["app_version"] = {"anyOf": [{"type": "null"}, {"const": -1},
                                                         {"type": "integer", "minimum": 1}]}
    model_info["not"] = {"anyOf": [{"allOf": [given(a), given(b)]}
                                   for i, a in enumerate(sources) for b in sources[i + 1:]]}
    model_info["anyOf"] = [{"not": given("app_version", "integer")}, given("app")]
    schema["anyOf"] = [
        {"required": ["model_info"], "properties": {"model_info": {"anyOf": [given(k) for k in sources]}}},
        {"properties": {"data_info": {"required": ["pred_col"],
                                      "properties": {"pred_col": {"type": "string", "minLength": 1}}}}},
    ]
    return schema


__all__ = ["DATASET_URI", "TestRunConfigShape", "parse_test_run_config", "test_run_config_schema"]
