"""GET /openapi.json: built from every endpoint the app registers, with no dangling $ref."""
from __future__ import annotations

import json
from typing import Any, Iterator

import pytest

from app import app
from chalicelib import SERVICE_NAME, __version__
from chalicelib.api.http import REGISTRY
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


def test_served_at_openapi_json(document):
    from chalice.test import Client

    with Client(app) as client:  # public endpoint: no AWS needed
        response = client.http.get("/openapi.json")
    assert response.status_code == 200
    assert json.loads(response.body) == json.loads(json.dumps(document))


def test_every_operation_describes_its_2xx_body_and_every_error_status(document):
    """Issue 9, finding 8: no 2xx schemas and no 405/500/503/504 were declared."""
    for op in REGISTRY.operations:
        responses = document["paths"][op.path][op.method.lower()]["responses"]
        [(media_type, content)] = responses[str(op.status)]["content"].items()
        assert content["schema"].get("type") in ("object", "array", "string"), (op.method, op.path)
        expected = {"400", "404", "405", "429", "500", "503", "504"}
        if op.body is not None:
            expected |= {"413", "415"}
        if not op.public:
            expected |= {"401", "403"}
        assert expected <= set(responses), (op.method, op.path, expected - set(responses))
    model_file = document["paths"]["/models/{model_id}/file"]["get"]["responses"]["200"]["content"]
    assert set(model_file) == {"text/x-python"}


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
    {"data_info": _DATA, "model_info": {"path": "m.py"}},
    {"data_info": _DATA, "model_info": {"path": "m.py", "app": "x"}},  # two model sources
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
