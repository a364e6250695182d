"""Model code: upload, listing, download and deletion."""
from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib.api.http import Call, endpoint
from chalicelib.schemas import CreateModelRequest, TaskQuery
from chalicelib.schemas_responses import ModelOut
from chalicelib.wiring import services

bp = Blueprint(__name__)


@endpoint(bp, "/models", "POST", "Upload a model (one Python file, base64)", body=CreateModelRequest, status=201,
          response=ModelOut)
def create_model(call: Call) -> dict:
    req = call.body
    return services().models.create(
        call.user, req.name, req.task, req.model_class, req.source(),
        dependencies=req.dependencies, access_right=req.access_right, docker_image=req.docker_image,
    )


@endpoint(bp, "/models", "GET", "Models available to you (yours and PUBLIC ones)", query=TaskQuery,
          response=list[ModelOut])
def list_models(call: Call) -> list:
    return services().models.list_available(call.user, call.query.task)


@endpoint(bp, "/models/{model_id}", "GET", "One model", response=ModelOut)
def get_model(call: Call, model_id: str) -> dict:
    return services().models.get(call.user, model_id)


@endpoint(bp, "/models/{model_id}/file", "GET", "The model's Python file", media_type="text/x-python")
def download_model_file(call: Call, model_id: str) -> Response:
    model, source = services().models.download(call.user, model_id)
    return Response(
        body=source.decode("utf-8"),
        headers={"Content-Type": "text/x-python; charset=utf-8",
                 "Content-Disposition": f'attachment; filename="{model.name}.py"'},
    )


@endpoint(bp, "/models/{model_id}", "DELETE", "Delete a model no train job uses", response=ModelOut)
def delete_model(call: Call, model_id: str) -> dict:
    return services().models.delete(call.user, model_id)
