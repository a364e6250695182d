"""Managed images (seed 002): ``create_managed_image``, ``list_managed_images`` and their helpers."""
from __future__ import annotations

from typing import Any, Optional, Sequence

from kilele._args import _segment
from kilele._http import HttpClient
from kilele.images import ImageBuilder, PipLibraryFilter, PipRequirement


class ManagedImagesMixin(HttpClient):
    """``create_managed_image``, ``get_managed_image``, ``list_managed_images``,
    ``delete_managed_image``, ``pip_requirement`` and ``pip_library_filter``."""

    @staticmethod
    def pip_requirement(name: str, version_specifier: Optional[str] = None) -> PipRequirement:
        """A requirement for :meth:`create_managed_image`: ``pip_requirement("xgboost", "==1.0.2")``."""
        return PipRequirement(name, version_specifier)

    @staticmethod
    def pip_library_filter(name: str, fixed_version: Optional[str] = None) -> PipLibraryFilter:
        """A filter for :meth:`list_managed_images`: images with ``name`` installed (at ``fixed_version``)."""
        return PipLibraryFilter(name, fixed_version)

    def create_managed_image(self, name: str, requirements: Sequence[PipRequirement],
                             base: str = "worker") -> ImageBuilder:
        """Start building image ``name`` (unique: a taken name is a 409) with ``requirements``
        installed over the worker runtime (``base="inference"``: the inference server's). The
        image is usable once READY: follow it with the returned builder's ``get_status``."""
        body = {"name": name, "requirements": [_requirement(r) for r in requirements], "base": base}
        info = self._request("POST", "/managed-images", json=body)
        return ImageBuilder(self, info["name"], info)

    def get_managed_image(self, name: str) -> dict[str, Any]:
        """One managed image: its requirements, status, and once READY what is installed."""
        return self._request("GET", f"/managed-images/{_segment(name)}")

    def get_image_builder(self, name: str) -> ImageBuilder:
        """A builder object for an existing image (to follow or wait for its build)."""
        return ImageBuilder(self, name, self.get_managed_image(name))

    def list_managed_images(self, pip_library_filters: Optional[Sequence[PipLibraryFilter]] = None,
                            page_token: str = "", page_size: int = 100) -> tuple[list[dict[str, Any]], str]:
        """``(images, next_page_token)``: images in name order with every filter's library
        installed; pass ``next_page_token`` back for the next page ("" after the last)."""
        params: dict[str, Any] = {"page_size": page_size, "page_token": page_token or None}
        if pip_library_filters:
            params["pip_library"] = [_filter(f).query_value() for f in pip_library_filters]
        answer = self._request("GET", "/managed-images", params=params)
        return list(answer["images"]), str(answer.get("next_page_token") or "")

    def delete_managed_image(self, name: str) -> dict[str, Any]:
        """Delete one of your images (admins: any); refused (409) while a job uses it."""
        return self._request("DELETE", f"/managed-images/{_segment(name)}")


def _requirement(value: Any) -> dict[str, Any]:
    if isinstance(value, PipRequirement):
        return value.to_dict()
    if isinstance(value, str):
        return {"name": value}
    raise TypeError(f"requirements: expected pip_requirement(...) objects, got {type(value).__name__}")


def _filter(value: Any) -> PipLibraryFilter:
    if isinstance(value, PipLibraryFilter):
        return value
    if isinstance(value, str):
        return PipLibraryFilter(value)
    raise TypeError(f"pip_library_filters: expected pip_library_filter(...) objects, got {type(value).__name__}")
