"""Pydantic schemas for every request body and query string of the API.

Field constraints here are the API's validation: a body that does not fit is answered 400
with the field and the reason, before any service runs.
"""
from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Annotated, Any, ClassVar, Optional, Union

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, RootModel, Tag, WithJsonSchema,
                      model_validator)

from chalicelib.entities import AccessRight, BudgetOption, InputType, Task, UserType
from chalicelib.errors import InvalidInput
from chalicelib.iam_principals import EXPECTED as EXPECTED_PRINCIPAL
from chalicelib.iam_principals import PATTERN as PRINCIPAL_PATTERN
from chalicelib.ports_logins import AUDIT_PAGE_TOKEN_PATTERN
from chalicelib.services.payloads import STYLES, Payload, queries_of, style_of
from chalicelib.services.trial_messages import TRAIN_ARGS_MAX_BYTES

# White space spelt out (exactly what str.isspace() and Python's \s match): JSON Schema readers
# use ECMA-262 regexes, whose \s is another set, and would disagree with this API about \x85.
WS = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_EMAIL = re.compile(rf"^[^@{WS}]+@[^@{WS}]+$")
_IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"


def _email(value: str) -> str:
    if not _EMAIL.match(value):
        raise ValueError("must look like name@domain")
    return value.lower()


def _base64(value: str) -> str:
    if not value:  # the user sent an empty file, not an empty wire field: say so without the field
        raise InvalidInput("the file is empty")
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ValueError("must be base64-encoded file content") from e
    return value


# A JSON value the platform stores in a DynamoDB item (default outputs, train args, configs):
# bounded so that no item nears DynamoDB's 400 KB limit, and DynamoDB's 32 levels of nesting.
MAX_JSON_FIELD_BYTES = 64 * 1024
MAX_JSON_FIELD_DEPTH = 32
MAX_DEPENDENCIES = 200


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of ``value``, counting stops past ``limit``."""
    if limit < 0 or not isinstance(value, (dict, list)):
        return 0
    children = value.values() if isinstance(value, dict) else value
    return 1 + max((_depth(child, limit - 1) for child in children), default=0)


def _bounded_json(value: Any) -> Any:
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    if size > MAX_JSON_FIELD_BYTES:
        raise ValueError(f"is {size} bytes as JSON; the limit is {MAX_JSON_FIELD_BYTES} bytes")
    if _depth(value, MAX_JSON_FIELD_DEPTH) > MAX_JSON_FIELD_DEPTH:
        raise ValueError(f"is nested deeper than the limit of {MAX_JSON_FIELD_DEPTH} levels")
    return value


def _shallow_json(value: Any) -> Any:
    if _depth(value, MAX_JSON_FIELD_DEPTH) > MAX_JSON_FIELD_DEPTH:
        raise ValueError(f"is nested deeper than the limit of {MAX_JSON_FIELD_DEPTH} levels")
    return value


def train_args_json(annotation: Any) -> Any:
    """``annotation``, at most MAX_JSON_FIELD_DEPTH levels deep; its size is the train-job
    service's rule (a 413 naming the workflow's limit, trial_messages.TRAIN_ARGS_MAX_BYTES)."""
    return Annotated[annotation, AfterValidator(_shallow_json), Field(
        description=f"at most {TRAIN_ARGS_MAX_BYTES} bytes as JSON with non-ASCII escaped (413 past it), "
                    f"{MAX_JSON_FIELD_DEPTH} levels deep")]


def bounded_json(annotation: Any) -> Any:
    """``annotation``, at most MAX_JSON_FIELD_BYTES of JSON and MAX_JSON_FIELD_DEPTH levels deep."""
    return Annotated[annotation, AfterValidator(_bounded_json), Field(
        description=f"at most {MAX_JSON_FIELD_BYTES} bytes as JSON, {MAX_JSON_FIELD_DEPTH} levels deep")]


def _whole(value: Any) -> Any:
    # JSON Schema's "integer" includes 5.0 (and clients send it); bodies are parsed strictly, so
    # an integral float becomes the int here, while true and "5" stay refused.
    return int(value) if isinstance(value, float) and value.is_integer() else value


Int = Annotated[int, BeforeValidator(_whole)]


def whole(ge: Optional[int] = None, le: Optional[int] = None) -> Any:
    """An :data:`Int` between ``ge`` and ``le``, for use inside ``Optional[...]``: there the
    constraints must sit on the integer itself, or the JSON schema carries pydantic's own
    ``ge``/``le`` keys, which JSON Schema readers ignore (schemathesis sent top_n 10**16)."""
    return Annotated[int, Field(ge=ge, le=le), BeforeValidator(_whole)]
Email = Annotated[str, Field(min_length=3, max_length=254, json_schema_extra={"pattern": _EMAIL.pattern}),
                  AfterValidator(_email)]
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=rf"^[^{WS}](?:[^\n]*[^{WS}])?$")]
# What base64.b64decode(validate=True) accepts, said for the OpenAPI document's readers.
_BASE64 = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{4})$"
# minLength documented, enforced by _base64 (whose message names the file, not the field)
Base64File = Annotated[str, Field(json_schema_extra={"minLength": 1, "pattern": _BASE64}), AfterValidator(_base64)]
# The fetcher checks the URL (chalicelib/adapters/url_fetcher.py); this says what it takes.
_HTTP_URL = (r"^[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9.-]+"
             r"(?::(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?"
             r"(?:[/?#][!-~]*)?$")

# Budgets stay a dict of floats (they come back as given); their JSON schema says the rules
# the validators below check.
_WHOLE = {"type": "number", "multipleOf": 1}
_GPU_COUNT = {**_WHOLE, "minimum": 0}
TRAIN_BUDGET = WithJsonSchema({
    "type": "object", "additionalProperties": False, "properties": {
        "TIME_HOURS": {"type": "number", "exclusiveMinimum": 0, "maximum": 720},
        "GPU_COUNT": _GPU_COUNT,
        "MODEL_TRIAL_COUNT": {"anyOf": [{"const": -1}, {**_WHOLE, "minimum": 1}]},
    }})
APP_VERSION = WithJsonSchema({"anyOf": [{"const": -1}, {"type": "integer", "minimum": 1}],
                              "description": "-1: the latest"})
INFERENCE_BUDGET = WithJsonSchema({"type": "object", "additionalProperties": False,
                                   "properties": {"GPU_COUNT": _GPU_COUNT}})


class Schema(BaseModel):
    # python-re: the patterns mean here what they mean to the OpenAPI document's readers (Python
    # and JSON Schema tools), not the Rust engine's slightly different \s and \w.
    model_config = ConfigDict(extra="forbid", use_enum_values=False, regex_engine="python-re")


class LoginRequest(Schema):
    email: Email
    password: str = Field(min_length=1, max_length=256)


class CreateUserRequest(Schema):
    email: Email
    # Length and strength are the password policy's (Settings.password_min_length/_min_score),
    # checked by the users service so the answer can say why a password is too weak; the
    # document's minLength is the setting's (openapi.settings_limits).
    password: str = Field(min_length=1, max_length=256, description=(
        "at least the policy's length, and strong enough by zxcvbn's score (the answer says why not: 400)"))
    user_type: UserType


class BanUserRequest(Schema):
    email: Email


class IamPrincipalRequest(Schema):
    email: Email
    principal_arn: str = Field(min_length=20, max_length=2048, description=EXPECTED_PRINCIPAL,
                               json_schema_extra={"pattern": PRINCIPAL_PATTERN})


class CreateApiKeyRequest(Schema):
    name: Name = "default"


class TaskQuery(Schema):
    task: Optional[Task] = None


class CreateDatasetRequest(Schema):
    """A dataset from file content in the body (``content_base64``) or from ``dataset_url``."""

    name: Name
    task: Task
    target_column: Optional[Name] = None
    content_base64: Optional[Base64File] = None
    dataset_url: Optional[str] = Field(None, min_length=1, max_length=2048, json_schema_extra={"pattern": _HTTP_URL})

    # Exactly one source: a branch per field, each a string (null counts as not given).
    model_config = ConfigDict(json_schema_extra={"oneOf": [
        {"required": ["content_base64"], "properties": {"content_base64": {"type": "string"}}},
        {"required": ["dataset_url"], "properties": {"dataset_url": {"type": "string"}}},
    ]})

    @model_validator(mode="after")
    def _one_source(self) -> "CreateDatasetRequest":
        if (self.content_base64 is None) == (self.dataset_url is None):
            raise ValueError("give exactly one of content_base64 and dataset_url")
        return self

    def content(self) -> bytes:
        return base64.b64decode(self.content_base64 or "")


class StartDatasetUploadRequest(Schema):
    name: Name
    task: Task
    size_bytes: Int = Field(gt=0)
    target_column: Optional[Name] = None


class CreateModelRequest(Schema):
    name: Name
    task: Task
    model_class: str = Field(min_length=1, max_length=200, pattern=_IDENTIFIER)
    model_file_base64: Base64File
    dependencies: Annotated[
        dict[Annotated[str, Field(min_length=1, max_length=200)], Annotated[str, Field(max_length=100)]],
        Field(max_length=MAX_DEPENDENCIES),
    ] = {}
    access_right: AccessRight = AccessRight.PRIVATE
    docker_image: Optional[str] = Field(None, min_length=1, max_length=512)

    def source(self) -> bytes:
        return base64.b64decode(self.model_file_base64)


AppName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
Id = Annotated[str, Field(min_length=1, max_length=100)]


def budget_dict(budget: dict[BudgetOption, float]) -> dict[str, Union[int, float]]:
    """A budget by option name, its counts (``MODEL_TRIAL_COUNT``, ``GPU_COUNT``; checked to be
    whole) as ints: the user's ``5`` comes back as 5, not the 5.0 a float field made of it."""
    counts = (BudgetOption.MODEL_TRIAL_COUNT, BudgetOption.GPU_COUNT)
    return {option.value: int(value) if option in counts else value for option, value in budget.items()}


class CreateTrainJobRequest(Schema):
    app: AppName
    task: Task
    train_dataset_id: Id
    val_dataset_id: Id
    budget: Annotated[dict[BudgetOption, float], TRAIN_BUDGET] = {}
    models: Optional[list[Id]] = Field(None, min_length=1, max_length=50)
    train_args: train_args_json(dict[str, Any]) = {}

    @model_validator(mode="after")
    def _budget_values(self) -> "CreateTrainJobRequest":
        hours = self.budget.get(BudgetOption.TIME_HOURS)
        if hours is not None and not 0 < hours <= 24 * 30:
            raise ValueError("budget TIME_HOURS must be above 0 and at most 720")
        gpus = self.budget.get(BudgetOption.GPU_COUNT)
        if gpus is not None and (gpus < 0 or gpus != int(gpus)):
            raise ValueError("budget GPU_COUNT must be a whole number >= 0")
        trials = self.budget.get(BudgetOption.MODEL_TRIAL_COUNT)
        if trials is not None and (trials != int(trials) or not (trials == -1 or trials >= 1)):
            raise ValueError("budget MODEL_TRIAL_COUNT must be -1 (unlimited) or a whole number >= 1")
        return self

    def budget_dict(self) -> dict[str, Union[int, float]]:
        return budget_dict(self.budget)


class AuditEventsQuery(Schema):
    limit: Int = Field(50, ge=1, le=500)
    page_token: Optional[str] = Field(None, max_length=200, json_schema_extra={"pattern": AUDIT_PAGE_TOKEN_PATTERN},
                                      description="the next_page_token of the previous page")


class UserQuery(Schema):
    user_id: Optional[Id] = None


class BestTrialsQuery(Schema):
    max_count: Int = Field(2, ge=1, le=1000)


def app_version(value: str) -> int:
    """An app version from a path: a whole number >= 1, or -1 for the latest."""
    try:
        version = int(value)
    except ValueError:
        version = 0
    if version == 0 or version < -1:
        raise InvalidInput(f"app_version must be a whole number >= 1, or -1 for the latest; got {value!r}")
    return version


class CreateInferenceJobRequest(Schema):
    app: AppName
    app_version: Annotated[Int, APP_VERSION] = Field(-1, ge=-1)
    budget: Annotated[dict[BudgetOption, float], INFERENCE_BUDGET] = {}

    @model_validator(mode="after")
    def _budget(self) -> "CreateInferenceJobRequest":
        if self.app_version == 0:
            raise ValueError("app_version must be >= 1, or -1 for the latest")
        extra = set(self.budget) - {BudgetOption.GPU_COUNT}
        if extra:
            raise ValueError(f"an inference budget takes only GPU_COUNT, not {', '.join(sorted(o.value for o in extra))}")
        gpus = self.budget.get(BudgetOption.GPU_COUNT, 0)
        if gpus < 0 or gpus != int(gpus):
            raise ValueError("budget GPU_COUNT must be a whole number >= 0")
        return self

    def budget_dict(self) -> dict[str, Union[int, float]]:
        return budget_dict(self.budget)


# Traffic capture: the percentage of an app's predict requests captured (0: off; see capture_format.py).
CapturePercent = Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]


class RegisterApplicationRequest(Schema):
    """Clipper's register_application(name, input_type, default_output, slo_micros)."""

    name: AppName
    input_type: InputType
    default_output: bounded_json(Any)
    slo_micros: Int = Field(ge=1000, le=60_000_000)
    top_n: Optional[whole(1, 1000)] = None
    capture_percent: Optional[CapturePercent] = None


class UpdateApplicationRequest(Schema):
    input_type: Optional[InputType] = None
    default_output: bounded_json(Any) = None
    slo_micros: Optional[whole(1000, 60_000_000)] = None
    top_n: Optional[whole(1, 1000)] = None
    capture_percent: Optional[CapturePercent] = None


class SetVersionRequest(Schema):
    version: Int = Field(ge=1)


def _queries_under(key: str) -> Any:
    """A style's value, turned into its list of queries (``InvalidInput`` says what is wrong).
    A batch key's value is a non-empty list (queries_of's rule, said in the document); what
    each query must be is the app's input type's and the model's, so any JSON value here."""
    check = AfterValidator(lambda value: queries_of(key, value))
    if STYLES[key][1]:
        return Annotated[Any, check, WithJsonSchema({"type": "array", "minItems": 1})]
    return Annotated[Any, check]


class _Style(Schema):
    key: ClassVar[str]

    def payload(self) -> Payload:
        return Payload(self.key, getattr(self, self.key))


class RafikiQuery(_Style):
    key: ClassVar[str] = "query"
    query: _queries_under("query")


class RafikiQueries(_Style):
    key: ClassVar[str] = "queries"
    queries: _queries_under("queries")


class ClipperInput(_Style):
    key: ClassVar[str] = "input"
    input: _queries_under("input")


class ClipperInputBatch(_Style):
    key: ClassVar[str] = "input_batch"
    input_batch: _queries_under("input_batch")


class ServingInstances(_Style):
    key: ClassVar[str] = "instances"
    instances: _queries_under("instances")


class PredictRequest(RootModel):
    """A predict body in one of the three payload styles, told apart by its one key: Rafiki
    ``{"query"}``/``{"queries"}``, Clipper ``{"input"}``/``{"input_batch"}``, Cluster Serving
    ``{"instances"}``. Parsed once from the raw JSON; a body with no style key, several, or an
    unknown one, and a batch that is not a non-empty list, are refused with what is wrong."""

    model_config = ConfigDict(json_schema_extra={"type": "object"})  # each style is a JSON object

    root: Annotated[
        Union[
            Annotated[RafikiQuery, Tag("query")],
            Annotated[RafikiQueries, Tag("queries")],
            Annotated[ClipperInput, Tag("input")],
            Annotated[ClipperInputBatch, Tag("input_batch")],
            Annotated[ServingInstances, Tag("instances")],
        ],
        Discriminator(style_of),
    ]

    def payload(self) -> Payload:
        return self.root.payload()


class MetricsQuery(Schema):
    minutes: Int = Field(60, ge=1, le=7 * 24 * 60)


class ExportBundleRequest(Schema):
    app: AppName
    app_version: Annotated[Int, APP_VERSION] = Field(-1, ge=-1)
    trial_id: Optional[Id] = None


# -- projects and stress tests (seed 002; docs/stress-tests-api.md) ----------------------------
