"""Managed images (seed 002): pip requirements built once into an image that stress tests (and
later trials and endpoints) run in.

::

    requirements = [client.pip_requirement("xgboost", "==1.0.2"), client.pip_requirement("six")]
    builder = client.create_managed_image("xgboost102", requirements)
    builder.get_status(verbose=True, wait_until_finish=True)        # READY (or FAILED, with the log)
    images, token = client.list_managed_images([client.pip_library_filter("xgboost", "1.0.2")])
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from kilele._args import _segment
from kilele._polling import follow

if TYPE_CHECKING:
    from kilele._http import HttpClient

FINAL_IMAGE_STATUSES = frozenset({"READY", "FAILED"})
STATUS_KEYS = ("name", "status", "error", "image_ref")


@dataclass(frozen=True)
class PipRequirement:
    """RIME's ``ManagedImage.PipRequirement``: a library and an optional PEP 440 version specifier."""

    name: str
    version_specifier: Optional[str] = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version_specifier": self.version_specifier}


@dataclass(frozen=True)
class PipLibraryFilter:
    """RIME's ``ListImagesRequest.PipLibraryFilter``: images with ``name`` installed (at
    ``fixed_version`` if given), as the build resolved it."""

    name: str
    fixed_version: Optional[str] = None

    def query_value(self) -> str:
        return f"{self.name}=={self.fixed_version}" if self.fixed_version else self.name


class ImageBuilder:
    """RIME's ``RIMEImageBuilder``: follows the build of one managed image."""

    def __init__(self, client: "HttpClient", name: str, info: Optional[dict[str, Any]] = None):
        self._client = client
        self.name = name
        self.info: dict[str, Any] = dict(info or {})
        self._path = f"/managed-images/{_segment(name)}"

    def __repr__(self) -> str:
        return f"ImageBuilder(name={self.name!r}, status={self.info.get('status')!r})"

    def refresh(self) -> dict[str, Any]:
        """Fetch the image (every field of the API's answer) and keep it in ``info``."""
        self.info = dict(self._client._request("GET", self._path))
        return self.info

    def get_status(self, verbose: bool = False, wait_until_finish: bool = False,
                   poll_rate_sec: float = 5.0) -> dict[str, Any]:
        """The image's status: ``{"name", "status", "error", "image_ref"}`` (PENDING, BUILDING,
        then READY or FAILED).

        :param verbose: print the status (at every poll when waiting) and, once FAILED, the build log
        :param wait_until_finish: block until the image is READY or FAILED
        :param poll_rate_sec: seconds between two polls while waiting
        """
        def show(info: dict[str, Any]) -> None:
            print(f"Managed image {self.name}: status {info.get('status')}", flush=True)

        info = follow(self.refresh, FINAL_IMAGE_STATUSES, wait=wait_until_finish, poll_rate_sec=poll_rate_sec,
                      show=show if verbose else None)
        if verbose and info.get("status") == "FAILED":
            print(f"Error: {info.get('error')}")
            print(f"---- build log of managed image {self.name} ----")
            print(self.get_logs().rstrip("\n"))
            print("---- end of log ----", flush=True)
        elif verbose and info.get("status") == "READY":
            libraries = ", ".join(info.get("package_requirements") or [])
            print(f"Managed image {self.name} is READY ({info.get('image_ref')}): {libraries}", flush=True)
        return {key: info.get(key) for key in STATUS_KEYS}

    def get_logs(self) -> str:
        """The build log so far (pip's output)."""
        return str(self._client._request("GET", f"{self._path}/logs").get("log") or "")


__all__ = ["PipRequirement", "PipLibraryFilter", "ImageBuilder", "FINAL_IMAGE_STATUSES"]
