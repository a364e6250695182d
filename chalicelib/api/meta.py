"""Service identity and self-description."""
from __future__ import annotations

from chalice import Blueprint

from chalicelib import SERVICE_NAME, __version__
from chalicelib.api.http import REGISTRY, Call, endpoint
from chalicelib.openapi import build_openapi, settings_limits
from chalicelib.schemas_responses import HealthOut, OpenApiDocumentOut
from chalicelib.wiring import services

bp = Blueprint(__name__)


@endpoint(bp, "/", "GET", "Service name and version", public=True, response=HealthOut)
def index(call: Call) -> dict:
    settings = services().settings
    return {
        "service": SERVICE_NAME,
        "version": __version__,
        "status": "ok",
        "limits": {
            "max_direct_upload_bytes": settings.max_direct_upload_bytes,
            "max_dataset_bytes": settings.max_dataset_bytes,
            "max_model_file_bytes": settings.max_model_file_bytes,
        },
    }


@endpoint(bp, "/openapi.json", "GET", "This API's OpenAPI 3.1 description", public=True,
          response=OpenApiDocumentOut)
def openapi(call: Call) -> dict:
    return build_openapi(REGISTRY.operations, SERVICE_NAME, __version__, settings_limits(services().settings))
