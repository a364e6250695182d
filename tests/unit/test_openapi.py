"""GET /openapi.json: built from every endpoint the app registers, with no dangling $ref."""
from __future__ import annotations

import json
import typing
from typing import Any, Iterator

import pytest

from app import app
from chalicelib import SERVICE_NAME, __version__
from chalicelib.api.http import REGISTRY
from chalicelib.errors import ModelFailed
from chalicelib.openapi import build_openapi


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return build_openapi(REGISTRY.operations, SERVICE_NAME, __version__)


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        assert isinstance(node, dict) and part in node, f"dangling $ref {ref}"
        node = node[part]
    return node


def test_header_and_json_serializable(document):
    assert document["openapi"] == "3.1.0"
    assert document["info"] == {"title": SERVICE_NAME, "version": __version__}
    json.dumps(document)


def test_registry_matches_the_app_routes():
    registered = {(op.path, op.method) for op in REGISTRY.operations}
    routed = {(path, method) for path, methods in app.routes.items() for method in methods}
    assert registered == routed
    assert len(registered) == len(REGISTRY.operations), "an endpoint is registered twice"


def test_every_registered_operation_is_documented(document):
    for op in REGISTRY.operations:
        assert op.method.lower() in document["paths"].get(op.path, {}), (op.method, op.path)
    assert {"/users", "/tokens", "/datasets", "/models/{model_id}", "/api-keys/{key_id}"} <= set(document["paths"])


def test_request_bodies_reference_existing_component_schemas(document):
    schemas = document["components"]["schemas"]
    for op in REGISTRY.operations:
        spec = document["paths"][op.path][op.method.lower()]
        if op.body is None:
            assert "requestBody" not in spec
            continue
        ref = spec["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        assert ref == f"#/components/schemas/{op.body.__name__}"
        schema = schemas[op.body.__name__]
        assert schema["type"] == "object"
        if "oneOf" in schema and "properties" not in schema:  # one of several shapes (predict's styles): objects
            for alternative in schema["oneOf"]:
                assert resolve(document, alternative["$ref"])["type"] == "object"
            continue
        assert set(schema["properties"]) == set(op.body.model_fields)


def test_no_dangling_ref(document):
    all_refs = set(refs(document))
    assert "#/components/schemas/Error" in all_refs
    assert "#/components/schemas/Task" in all_refs  # enums land in components, not in $defs
    for ref in all_refs:
        resolve(document, ref)
    assert "$defs" not in json.dumps(document)


def test_path_and_query_parameters(document):
    complete = document["paths"]["/datasets/{dataset_id}/complete"]["post"]
    [parameter] = complete["parameters"]
    assert (parameter["name"], parameter["in"], parameter["required"]) == ("dataset_id", "path", True)
    assert parameter["schema"]["type"] == "string" and parameter["schema"]["minLength"] == 1
    version = document["paths"]["/train-jobs/{app}/{version}"]["get"]["parameters"][1]
    assert version["schema"]["pattern"] == "^(?:-1|[1-9][0-9]{0,8})$"
    listing = document["paths"]["/datasets"]["get"]
    assert [(p["name"], p["in"], p["required"]) for p in listing["parameters"]] == [("task", "query", False)]


def test_security_and_statuses(document):
    for op in REGISTRY.operations:
        spec = document["paths"][op.path][op.method.lower()]
        assert spec["security"] == ([] if op.public else [{"bearer": []}, {"apiKey": []}])
        assert str(op.status) in spec["responses"]
        error = spec["responses"]["400"]["content"]["application/json"]["schema"]
        assert error == {"$ref": "#/components/schemas/Error"}
    public = {(op.path, op.method) for op in REGISTRY.operations if op.public}
    assert public == {("/", "GET"), ("/openapi.json", "GET"), ("/tokens", "POST")}
    assert set(document["components"]["securitySchemes"]) == {"bearer", "apiKey"}


def test_served_at_openapi_json():
    from chalice.test import Client

    from chalicelib.openapi import settings_limits
    from chalicelib.wiring import services

    with Client(app) as client:  # public endpoint: no AWS needed
        response = client.http.get("/openapi.json")
    assert response.status_code == 200
    served = build_openapi(REGISTRY.operations, SERVICE_NAME, __version__, settings_limits(services().settings))
    assert json.loads(response.body) == json.loads(json.dumps(served))


def test_no_pydantic_keyword_is_left_in_a_schema(document):
    """Optional[Int] with Field(ge=...) once gave {"ge": 1} in an anyOf, which JSON Schema
    readers ignore: schemathesis sent top_n 10**16 as valid and got a 400."""
    def keys(node: Any, inside_properties: bool = False) -> Iterator[str]:
        if isinstance(node, dict):
            for key, value in node.items():
                if not inside_properties:
                    yield key
                yield from keys(value, key == "properties" and not inside_properties)
        elif isinstance(node, list):
            for value in node:
                yield from keys(value)

    found = set(keys(document["components"])) & {"ge", "gt", "le", "lt", "min_length", "max_length", "multiple_of"}
    assert not found
    top_n = document["components"]["schemas"]["UpdateApplicationRequest"]["properties"]["top_n"]
    assert {"type": "integer", "minimum": 1, "maximum": 1000} in top_n["anyOf"]


def test_the_settings_limits_are_in_the_document():
    from chalicelib.openapi import settings_limits
    from settings_support import make_settings

    settings = make_settings(max_dataset_bytes=12345, password_min_length=11)
    schemas = build_openapi(REGISTRY.operations, SERVICE_NAME, __version__, settings_limits(settings))["components"]["schemas"]
    assert schemas["StartDatasetUploadRequest"]["properties"]["size_bytes"]["maximum"] == 12345
    assert schemas["CreateUserRequest"]["properties"]["password"]["minLength"] == 11


def test_a_batch_predict_style_is_a_non_empty_array(document):
    schemas = document["components"]["schemas"]
    for style in ("RafikiQueries", "ClipperInputBatch", "ServingInstances"):
        [value] = schemas[style]["properties"].values()
        assert (value["type"], value["minItems"]) == ("array", 1), style


def test_the_audit_page_token_pattern_is_what_the_log_reads():
    """Every string the document's pattern allows is a token the log takes (a position), and
    the tokens the log gives match it."""
    import re
    from datetime import datetime, timezone

    from chalicelib.errors import InvalidInput
    from chalicelib.ports_logins import AUDIT_PAGE_TOKEN_PATTERN
    from chalicelib.store.logins import _decode_token, _encode_token

    now = datetime(2026, 12, 1, tzinfo=timezone.utc)
    given = _encode_token("2026-11", "2026-11-30T23:59:59.000001Z#9f201109-d58d-48b2-9e78-b4e788cc5276")
    assert re.match(AUDIT_PAGE_TOKEN_PATTERN, given)
    assert _decode_token(given, now) == ("2026-11", "2026-11-30T23:59:59.000001Z#9f201109-d58d-48b2-9e78-b4e788cc5276")
    # A month to come is read as this month's: a token cannot make a page query centuries of months.
    assert _decode_token("9999-12.00000000000000000000.x", now)[0] == "2026-12"
    for bad in ("bm9wZQ", "2026-13.00000000000000000000.x", "2026-11.0.x", "2026-11.00000000000000000000.a b"):
        assert not re.match(AUDIT_PAGE_TOKEN_PATTERN, bad)
        with pytest.raises(InvalidInput, match="page_token"):
            _decode_token(bad, now)


def described(document: dict[str, Any], schema: dict[str, Any]) -> bool:
    """Does ``schema`` say what the body holds: an object with properties, an array of such,
    or one of several such (never a bare ``object``, ``array`` or ``{}``)?"""
    if "$ref" in schema:
        return described(document, resolve(document, schema["$ref"]))
    if "anyOf" in schema or "oneOf" in schema:
        options = schema.get("anyOf") or schema.get("oneOf")
        return bool(options) and all(described(document, option) for option in options)
    if schema.get("type") == "array":
        return "items" in schema and described(document, schema["items"])
    return schema.get("type") == "object" and bool(schema.get("properties"))


def test_every_route_declares_a_response_model_and_its_2xx_body_is_described(document):
    """Issue 9: 53 of 68 operations said only ``{"type": "object"}``, 14 a bare array."""
    from pydantic import BaseModel

    for op in REGISTRY.operations:
        responses = document["paths"][op.path][op.method.lower()]["responses"]
        [(media_type, content)] = responses[str(op.status)]["content"].items()
        if media_type != "application/json":  # a file (the model's source)
            assert content["schema"] == {"type": "string"}, (op.method, op.path)
            continue
        assert op.response is not None, f"{op.method} {op.path}: declare response= on its endpoint"
        assert described(document, content["schema"]), (op.method, op.path, content["schema"])
        assert leaves(op.response) and all(isinstance(leaf, type) and issubclass(leaf, BaseModel)
                                           for leaf in leaves(op.response)), (op.method, op.path, op.response)


def leaves(annotation: Any) -> list[Any]:
    """The types a response annotation is made of: a model, ``list[Model]``, a Union of them."""
    args = typing.get_args(annotation)
    return [leaf for arg in args for leaf in leaves(arg)] if args else [annotation]


def test_described_refuses_bare_bodies(document):
    for bare in ({"type": "object"}, {"type": "array"}, {}, {"type": "string"}, {"type": "array", "items": {}},
                 {"anyOf": [{"$ref": "#/components/schemas/UserOut"}, {"type": "object"}]}):
        assert not described(document, bare), bare
    assert described(document, {"type": "array", "items": {"$ref": "#/components/schemas/UserOut"}})


def test_response_models_are_exact(document):
    """Every response object states whether it allows other fields, and no field shows
    pydantic's ``"default": null`` (a field that is only sometimes there is not nullable)."""
    schemas = document["components"]["schemas"]
    seen: set[str] = set()
    todo = [ref for op in REGISTRY.operations
            for ref in refs(document["paths"][op.path][op.method.lower()]["responses"][str(op.status)]["content"])]
    while todo:
        name = todo.pop().rsplit("/", 1)[-1]
        if name in seen:
            continue
        seen.add(name)
        schema = schemas[name]
        todo.extend(refs(schema))
        if schema.get("type") == "object":
            assert "additionalProperties" in schema, name
        assert not any(node.get("default", 0) is None for node in nodes(schema)), name
    assert {"UserOut", "TrialOut", "InferenceWorkerOut", "PresignedPostOut"} <= seen


def nodes(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from nodes(value)
    elif isinstance(node, list):
        for value in node:
            yield from nodes(value)


def test_every_operation_describes_every_error_status(document):
    """Issue 9, finding 8: no 405/500/503/504 were declared."""
    for op in REGISTRY.operations:
        responses = document["paths"][op.path][op.method.lower()]["responses"]
        expected = {"400", "404", "405", "429", "500", "503", "504"}
        if op.body is not None:
            expected |= {"413", "415"}
        if not op.public:
            expected |= {"401", "403"}
        assert expected <= set(responses), (op.method, op.path, expected - set(responses))
        if op.body is None and not op.errors:  # a 413 without a body only where the view declares it
            assert "413" not in responses and "415" not in responses, (op.method, op.path)
        assert ("502" in responses) == any(issubclass(e, ModelFailed) for e in op.errors), (op.method, op.path)
    model_file = document["paths"]["/models/{model_id}/file"]["get"]["responses"]["200"]["content"]
    assert set(model_file) == {"text/x-python"}


def test_statuses_only_some_operations_answer_are_declared_by_them(document):
    """The 502 of a model that failed is predict's alone; completing a presigned upload has no
    body but checks the uploaded file's size (413, found by checking the API tests' answers)."""
    paths = document["paths"]
    assert "502" in paths["/apps/{app}/predict"]["post"]["responses"]
    assert "502" not in paths["/datasets"]["get"]["responses"]
    assert "413" in paths["/datasets/{dataset_id}/complete"]["post"]["responses"]
    assert "413" not in paths["/datasets/{dataset_id}"]["get"]["responses"]


def test_an_error_without_a_status_cannot_be_declared():
    from chalicelib.api.http import Operation
    from chalicelib.errors import DomainError
    from chalicelib.openapi import build_openapi

    class Unmapped(DomainError):
        pass

    with pytest.raises(ValueError, match="Unmapped has no HTTP status"):
        build_openapi([Operation("/x", "GET", "x", None, None, True, 200, errors=(Unmapped,))], "t", "1")


def test_a_body_that_may_be_empty_is_optional(document):
    assert document["paths"]["/apps/{app}"]["patch"]["requestBody"]["required"] is False
    assert document["paths"]["/apps"]["post"]["requestBody"]["required"] is True


def test_query_parameters_have_no_null(document):
    for op in REGISTRY.operations:
        for parameter in document["paths"][op.path][op.method.lower()].get("parameters", []):
            assert "null" not in json.dumps(parameter["schema"]), (op.path, parameter)


_DATA = {"label_col": "y", "ref_path": "s3://b/ref.csv", "eval_path": "s3://b/eval.csv"}


@pytest.mark.parametrize("config", [
    {"data_info": _DATA},  # neither a model nor predictions
    {"data_info": {**_DATA, "pred_col": "p"}},
    {"data_info": _DATA, "model_info": {"path": "s3://b/m.py"}},
    {"data_info": _DATA, "model_info": {"path": "m.py"}},  # a local path: the SDK uploads it
    {"data_info": {**_DATA, "eval_path": "kilele://datasets/d-1", "pred_col": "p"}},
    {"data_info": {**_DATA, "eval_path": "kilele://datasets/d 1", "pred_col": "p"}},
    {"data_info": {**_DATA, "ref_path": "/home/me/ref.csv", "pred_col": "p"}},
    {"data_info": {**_DATA, "pred_col": "p"}, "model_info": {"path": "kilele://datasets/d"}},  # models: uploads only
    {"data_info": _DATA, "model_info": {"path": "s3://b/m.py", "app": "x"}},  # two model sources
    {"data_info": _DATA, "model_info": {"app": "x", "app_version": 0}},
    {"data_info": _DATA, "model_info": {"trial_id": "t", "app_version": 2}},  # app_version without app
    {"data_info": _DATA, "model_info": {"app": "x", "app_version": -1}},
    {"data_info": {**_DATA, "pred_col": ""}, "model_info": {"path": None}},
])
def test_the_test_run_config_schema_accepts_what_the_service_accepts(config):
    """The document's test_run_config schema and the service's check agree, rules between keys included."""
    import jsonschema

    from chalicelib.errors import InvalidInput
    from chalicelib.stress_config import parse_test_run_config, test_run_config_schema

    try:
        parse_test_run_config(config)
        accepted = True
    except InvalidInput:
        accepted = False
    assert jsonschema.Draft202012Validator(test_run_config_schema()).is_valid(config) is accepted


def test_an_empty_optional_query_value_is_documented_as_not_given(document):
    """The decorator reads ?task= as no task; the document says so (schemathesis: ST201)."""
    import jsonschema

    [task] = document["paths"]["/datasets"]["get"]["parameters"]
    schema = {**task["schema"], "components": document["components"]}  # so its $ref resolves
    validator = jsonschema.Draft202012Validator(schema)
    assert validator.is_valid("") and validator.is_valid("TABULAR_REGRESSION") and not validator.is_valid("nope")


def test_the_principal_arn_pattern_takes_only_arns_the_route_takes():
    """schemathesis sent '00000000000000000000' (20 characters, no pattern) and got a 400."""
    import re

    from hypothesis import given, settings, strategies as st

    from chalicelib.iam_principals import PATTERN, principal_of

    @settings(max_examples=300, deadline=None)
    @given(st.from_regex(PATTERN, fullmatch=True).filter(lambda arn: 20 <= len(arn) <= 2048))
    def accepted(arn: str) -> None:
        principal_of(arn)  # raises InvalidInput if the route would refuse it

    accepted()
    assert not re.match(PATTERN, "0" * 20)
    assert re.match(PATTERN, "arn:aws:sts::123456789012:assumed-role/ml/alice-laptop")


def test_a_label_is_any_json_value_but_null(document):
    import jsonschema

    label = document["components"]["schemas"]["LabelItem"]["properties"]["label"]
    validator = jsonschema.Draft202012Validator(label)
    assert not validator.is_valid(None) and validator.is_valid(0) and validator.is_valid({"a": None})


def test_an_integral_query_id_is_taken_as_json_schema_says():
    """JSON Schema's integer includes 4466.0; schemathesis sent it and the route answered 400."""
    from chalicelib.schemas_capture import LabelsRequest

    body = LabelsRequest.model_validate_json('{"labels": [{"query_id": 4466.0, "label": true}]}', strict=True)
    assert body.pairs() == [("4466", True)]
    for bad in ('{"labels": [{"query_id": 4466.5, "label": 1}]}', '{"labels": [{"query_id": true, "label": 1}]}'):
        with pytest.raises(ValueError):
            LabelsRequest.model_validate_json(bad, strict=True)


@pytest.mark.parametrize("info", [
    None, {}, {"timestamp_col": "t", "bin_size": "hour"}, {"timestamp_col": "t", "bin_size": "week"},
    {"timestamp_col": "", "bin_size": "day"}, {"timestamp_col": "t", "bin_size": "day", "reference": "fixed"},
    {"timestamp_col": "t", "bin_size": "day", "reference": {"rolling_bins": 5.0}},
    {"timestamp_col": "t", "bin_size": "day", "reference": {"rolling_bins": 0}},
    {"timestamp_col": "t", "bin_size": "day", "reference": {"rolling_bins": True}},
    {"timestamp_col": "t", "bin_size": "day", "extra": 1},
])
def test_the_continuous_info_schema_accepts_what_the_service_accepts(info):
    """schemathesis sent {"test_run_config": {}} to POST /continuous-tests as allowed: a 400."""
    import jsonschema

    from chalicelib.errors import InvalidInput
    from chalicelib.schemas_continuous import _CONTINUOUS_INFO
    from chalicelib.services.continuous_tests import parse_continuous_info

    try:
        parse_continuous_info(info)
        accepted = True
    except InvalidInput:
        accepted = False
    assert jsonschema.Draft202012Validator(_CONTINUOUS_INFO).is_valid(info) is accepted
