"""Managed images (seed 002; issue 11): pip requirements built once, found by what is installed."""
from __future__ import annotations

from chalice import Blueprint

from chalicelib.api.http import Call, endpoint
from chalicelib.schemas_images import CreateManagedImageRequest, ManagedImageListQuery
from chalicelib.schemas_responses_serving import BuildLogOut, DeletedImageOut, ManagedImageOut, ManagedImagePageOut
from chalicelib.wiring import services

bp = Blueprint(__name__)


@endpoint(bp, "/managed-images", "POST", "Create a managed image: its build starts (PENDING until READY or FAILED)",
          body=CreateManagedImageRequest, status=201, response=ManagedImageOut)
def create_managed_image(call: Call) -> dict:
    req = call.body
    return services().managed_images.create_managed_image(
        call.user, req.name, [r.model_dump() for r in req.requirements], base=req.base)


def _pip_library_filters() -> list[dict]:
    # ?pip_library=catboost==1.0.3&pip_library=tensorflow: each a filter, intersected.
    params = bp.current_request.query_params or {}
    if "pip_library" not in params:
        return []
    values = params.getlist("pip_library") if hasattr(params, "getlist") else [params.get("pip_library")]
    filters = []
    for value in values:
        if value:
            name, _, version = value.partition("==")
            filters.append({"name": name.strip(), "fixed_version": version.strip() or None})
    return filters


@endpoint(bp, "/managed-images", "GET", "Managed images in name order, filtered by installed libraries, in pages",
          query=ManagedImageListQuery, response=ManagedImagePageOut)
def list_managed_images(call: Call) -> dict:
    return services().managed_images.list_managed_images(
        call.user, _pip_library_filters(), page_token=call.query.page_token or "", page_size=call.query.page_size)


@endpoint(bp, "/managed-images/{image_name}", "GET", "One managed image and its build's state",
          response=ManagedImageOut)
def get_managed_image(call: Call, image_name: str) -> dict:
    return services().managed_images.get_managed_image(call.user, image_name)


@endpoint(bp, "/managed-images/{image_name}/logs", "GET", "A managed image's build log", response=BuildLogOut)
def get_build_log(call: Call, image_name: str) -> dict:
    return services().managed_images.get_build_log(call.user, image_name)


@endpoint(bp, "/managed-images/{image_name}", "DELETE", "Delete a managed image (refused while a job uses it)",
          response=DeletedImageOut)
def delete_managed_image(call: Call, image_name: str) -> dict:
    return services().managed_images.delete_managed_image(call.user, image_name)
