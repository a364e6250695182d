"""The platform images on demand (issue 13): admins build the worker and inference images at the
content tags this deployment runs (``kilele images build``) and read where they are."""
from __future__ import annotations

from chalice import Blueprint

from chalicelib.api.http import Call, endpoint
from chalicelib.schemas_platform_images import BuildPlatformImagesRequest, PlatformImagesOut
from chalicelib.wiring import services

bp = Blueprint(__name__)


@endpoint(bp, "/platform-images/builds", "POST",
          "Build the worker and inference images at this deployment's content tags (admins; "
          "an image already built is not built again)",
          body=BuildPlatformImagesRequest, status=202, response=PlatformImagesOut)
def build_platform_images(call: Call) -> dict:
    return services().platform_images.build(call.user, call.body.images)


@endpoint(bp, "/platform-images", "GET", "The worker and inference images at this deployment's content tags (admins)",
          response=PlatformImagesOut)
def get_platform_images(call: Call) -> dict:
    return services().platform_images.status(call.user)
