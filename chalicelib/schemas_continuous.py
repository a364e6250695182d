"""Request and response schemas of continuous tests (seed 002's CT instances).

The test run configs' own shapes are checked by the service (``continuous_tests.py``, and the
stress-test service for the rest), so their errors name the config's keys."""
from __future__ import annotations

from typing import Annotated, Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from chalicelib.entities.continuous import AGGREGATIONS, OPERATORS, SEVERITIES
from chalicelib.schemas import Name, Schema, bounded_json, whole
from chalicelib.schemas_stress import CustomImageSpec
from chalicelib.services.continuous_tests import BIN_SIZE_NAMES
from chalicelib.services.ct_monitors import MAX_WINDOW_BINS, METRIC_PATTERN
from chalicelib.stress_config import test_run_config_schema

Aggregation = Literal[AGGREGATIONS]  # type: ignore[valid-type]
Operator = Literal[OPERATORS]  # type: ignore[valid-type]
SeverityName = Literal[SEVERITIES]  # type: ignore[valid-type]
_METRIC = {"min_length": 1, "max_length": 200, "pattern": METRIC_PATTERN}


class CreateCTInstanceRequest(Schema):
    name: Name
    bin_size_seconds: Literal[3600, 86400]
    ot_test_run_id: str = Field(min_length=1, max_length=200)
    project_id: str = Field(min_length=1, max_length=100)


class _JobOptions(Schema):
    rime_managed_image: Optional[str] = Field(None, min_length=1, max_length=200)
    custom_image: Optional[CustomImageSpec] = None
    ram_request_megabytes: Optional[whole(128, 512_000)] = None
    cpu_request_millicores: Optional[whole(100, 96_000)] = None

    def job_options(self) -> dict[str, Any]:
        return {"rime_managed_image": self.rime_managed_image,
                "custom_image": self.custom_image.model_dump() if self.custom_image else None,
                "ram_request_megabytes": self.ram_request_megabytes,
                "cpu_request_millicores": self.cpu_request_millicores}


# What the service checks (continuous_tests.parse_continuous_info, start_incremental_continuous_test),
# said for the document: the schemathesis pass sends what it allows and expects no 400.
_COLUMN = {"type": "string", "minLength": 1, "maxLength": 500}
_CONTINUOUS_INFO = {
    "type": "object", "additionalProperties": False, "required": ["timestamp_col", "bin_size"],
    "properties": {
        "timestamp_col": _COLUMN,
        "bin_size": {"enum": sorted(BIN_SIZE_NAMES)},
        "reference": {"anyOf": [{"const": "fixed"}, {
            "type": "object", "additionalProperties": False, "required": ["rolling_bins"],
            "properties": {"rolling_bins": {"type": "integer", "minimum": 1, "maximum": 10_000}}}]},
    },
}


def _from_reference_schema() -> dict[str, Any]:
    return {"allOf": [test_run_config_schema(),
                      {"required": ["continuous_info"], "properties": {"continuous_info": _CONTINUOUS_INFO}}]}


def _incremental_schema() -> dict[str, Any]:
    eval_path = test_run_config_schema()["properties"]["data_info"]["properties"]["eval_path"]
    return {"type": "object", "additionalProperties": False, "required": ["eval_path", "timestamp_col"],
            "properties": {"eval_path": {"allOf": [_COLUMN, eval_path]}, "timestamp_col": _COLUMN}}


class StartFromReferenceRequest(_JobOptions):
    """``test_run_config``: a stress test's config with ``continuous_info: {"timestamp_col",
    "bin_size": "hour" | "day", "reference"?: "fixed" | {"rolling_bins": N}}``."""
    test_run_config: Annotated[bounded_json(dict[str, Any]), WithJsonSchema(_from_reference_schema())]
    project_id: Optional[str] = Field(None, min_length=1, max_length=100)


class StartIncrementalRequest(_JobOptions):
    """``test_run_config``: ``{"eval_path", "timestamp_col"}``."""
    test_run_config: Annotated[bounded_json(dict[str, Any]), WithJsonSchema(_incremental_schema())]


class MonitorChange(Schema):
    metric: Optional[str] = Field(None, **_METRIC)
    operator: Optional[Operator] = None
    bound: Optional[float] = Field(None, allow_inf_nan=False)
    aggregation: Optional[Aggregation] = None
    window_bins: Optional[whole(1, MAX_WINDOW_BINS)] = None
    severity: Optional[SeverityName] = None
    enabled: Optional[bool] = None
    description: Optional[str] = Field(None, max_length=500)


class NewMonitor(MonitorChange):
    metric: str = Field(**_METRIC)
    operator: Operator
    bound: float = Field(allow_inf_nan=False)


# -- responses ------------------------------------------------------------------------------------

class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MonitorOut(_Out):
    monitor_id: str
    metric: str
    operator: Operator
    bound: float
    aggregation: Aggregation
    window_bins: int
    severity: SeverityName
    enabled: bool
    description: str


class CTInstanceOut(_Out):
    ct_instance_id: str
    name: str
    project_id: str
    owner_id: str
    bin_size_seconds: int
    bin_size: Optional[str]
    ot_test_run_id: str
    active: bool
    timestamp_col: Optional[str]
    created_at: Optional[str]
    running_job_id: Optional[str]
    last_job_id: Optional[str]
    error: Optional[str]
    reference: Any
    monitors: list[MonitorOut]
    num_breaches: int


class BreachOut(_Out):
    monitor_id: str
    metric: str
    value: float
    operator: Operator
    bound: float
    severity: SeverityName
    time_bin_start: str
    time_bin_end: str
    job_id: str
    report: str
    created_at: Optional[str]


class BinOut(BaseModel):
    """A bin's summary as the worker reported it (its metrics' names vary with the tests run)."""
    model_config = ConfigDict(extra="allow")
    time_bin_start: str
    time_bin_end: str
    severity: str
    job_id: str
    metrics: dict[str, Optional[float]]


class CTJobOut(BaseModel):
    """The started stress-test job (``GET /stress-tests/{job_id}`` follows it) and its CT instance."""
    model_config = ConfigDict(extra="allow")
    job_id: str
    status: str
    test_run_id: Optional[str]
    project_id: str
    ct_instance_id: str
