"""The platform images on demand (issue 13; ``kilele images build``): admins build the worker and
inference images (CPU and GPU) at the content tags the deployment runs."""
from __future__ import annotations

import time
from typing import Any, Callable, Optional, Sequence

from kilele._http import HttpClient

#: A platform image's statuses after which it changes no more by itself.
FINAL_PLATFORM_IMAGE_STATUSES = ("READY", "FAILED", "MISSING")


class PlatformImagesMixin(HttpClient):
    """``build_platform_images`` and ``get_platform_images`` (admins)."""

    def build_platform_images(self, images: Optional[Sequence[str]] = None, wait: bool = False,
                              poll_rate_sec: float = 20.0, timeout_sec: float = 3 * 3600,
                              show: Optional[Callable[[dict[str, Any]], None]] = None) -> dict[str, Any]:
        """Start building ``images`` (default: ``worker``, ``worker-gpu``, ``inference``,
        ``inference-gpu``) at the deployment's content tags; an image already built is not built
        again, and one being built is followed. Each entry of ``images`` in the answer has its
        ``status`` (READY, PENDING, BUILDING, FAILED, MISSING), ``tag``, ``image_uri``,
        ``build_id``, ``log_url`` and ``reason``. With ``wait``, polls every ``poll_rate_sec``
        until every one is READY, FAILED or MISSING (``show`` gets each answer), at most
        ``timeout_sec`` (then :class:`TimeoutError`). The local stack answers 422: it runs no
        container images."""
        body: dict[str, Any] = {} if images is None else {"images": list(images)}
        answer = self._request("POST", "/platform-images/builds", json=body)
        if show is not None:
            show(answer)
        if not wait:
            return answer
        names = [i["name"] for i in answer["images"]]
        deadline = time.monotonic() + timeout_sec
        while any(i["status"] not in FINAL_PLATFORM_IMAGE_STATUSES for i in answer["images"]):
            if time.monotonic() > deadline:
                raise TimeoutError(f"platform image builds not finished after {timeout_sec:g} s")
            time.sleep(poll_rate_sec)
            current = self.get_platform_images()
            answer = {"images": [i for i in current["images"] if i["name"] in names]}
            if show is not None:
                show(answer)
        return answer

    def get_platform_images(self) -> dict[str, Any]:
        """Every platform image at the deployment's content tag, with its status (admins)."""
        return self._request("GET", "/platform-images")


__all__ = ["PlatformImagesMixin", "FINAL_PLATFORM_IMAGE_STATUSES"]
