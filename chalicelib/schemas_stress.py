"""Request schemas of projects and stress tests (seed 002). The test run config's own shape is
checked by the service (chalicelib/stress_config.py), so its errors name the config's keys."""
from __future__ import annotations

from typing import Annotated, Any, Optional

from pydantic import BaseModel, Field, WithJsonSchema

from chalicelib.entities import StressTestStatus
from chalicelib.schemas import WS, Name, Schema, bounded_json, whole
from chalicelib.stress_config import test_run_config_schema


class CreateProjectRequest(Schema):
    name: Name
    description: Optional[str] = Field(None, max_length=2000)


class StartStressUploadRequest(Schema):
    # The service keeps the base name (after the last '/') and checks it.
    filename: str = Field(min_length=1, max_length=200,
                          json_schema_extra={"pattern": r"^(?:[^/]*/)*[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}$"})


class CustomImageSpec(Schema):
    name: str = Field(min_length=1, max_length=500)
    pull_secret: Optional[bounded_json(dict[str, Any])] = None


class StartStressTestRequest(Schema):
    """The config's own shape is checked by the service (chalicelib/stress_config.py), so its
    errors name the config's keys (``data_info.ref_path: ...``)."""

    test_run_config: Annotated[bounded_json(dict[str, Any]), WithJsonSchema(test_run_config_schema())]
    project_id: Optional[str] = Field(None, min_length=1, max_length=100)
    rime_managed_image: Optional[str] = Field(None, min_length=1, max_length=200)
    custom_image: Optional[CustomImageSpec] = None
    ram_request_megabytes: Optional[whole(128, 512_000)] = None
    cpu_request_millicores: Optional[whole(100, 96_000)] = None


_STATUS = "|".join(s.value for s in StressTestStatus)


class StressTestListQuery(BaseModel):
    """``status`` may repeat (the view reads every value); unknown query keys are ignored."""

    status: Optional[str] = Field(None, json_schema_extra={
        "pattern": rf"^[{WS}]*(?:(?:{_STATUS})[{WS}]*)?(?:,[{WS}]*(?:(?:{_STATUS})[{WS}]*)?)*$"})
    project_id: Optional[str] = None


class ResultVersionQuery(BaseModel):
    version: Optional[str] = Field(None, json_schema_extra={"enum": ["1.0"]})  # the one result format
