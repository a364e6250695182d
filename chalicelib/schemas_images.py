"""Request schemas of managed images (seed 002; issue 11). The service checks each requirement
with PyPA's parser too (a clear 400 naming the field), so these say the shape for the OpenAPI
document and refuse what is plainly wrong before it."""
from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import BaseModel, Field

from chalicelib.path_parameters import register_path_parameter
from chalicelib.schemas import Schema
from chalicelib.services.managed_images import PAGE_TOKEN_PATTERN

# An image's name is its id (it appears in paths and in stress tests' rime_managed_image).
ImageName = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
PackageName = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$")]
register_path_parameter("image_name", ImageName,
                        "a managed image name (letters, digits, '_', '.', '-', starting with a letter or digit; at most 100)")


# The shape of a PEP 440 specifier set; packaging's parser is the judge (a 400 naming the field).
SPECIFIER_PATTERN = (r"^\s*(?:(?:~=|===|==|!=|<=|>=|<|>)\s*[A-Za-z0-9.*+!_-]+\s*"
                     r"(?:,\s*(?:~=|===|==|!=|<=|>=|<|>)\s*[A-Za-z0-9.*+!_-]+\s*)*)?$")
# A pip_library filter: a package name, optionally ==version (a version as pip freeze writes it).
PIP_LIBRARY_PATTERN = r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9])?(?:==[A-Za-z0-9.*+!_-]{1,100})?$"


class PipRequirementSpec(Schema):
    name: PackageName
    version_specifier: Optional[str] = Field(None, max_length=200, pattern=SPECIFIER_PATTERN)


class CreateManagedImageRequest(Schema):
    name: ImageName
    requirements: list[PipRequirementSpec] = Field(default_factory=list, max_length=100)
    base: Literal["worker", "inference"] = "worker"


class ManagedImageListQuery(BaseModel):
    """``pip_library`` may repeat: ``name`` or ``name==version`` (the view reads every value)."""

    pip_library: Optional[str] = Field(None, max_length=200, pattern=PIP_LIBRARY_PATTERN)
    page_token: Optional[str] = Field(None, max_length=400, pattern=PAGE_TOKEN_PATTERN)
    page_size: int = Field(100, ge=1, le=100)


__all__ = ["CreateManagedImageRequest", "ManagedImageListQuery", "ImageName"]
