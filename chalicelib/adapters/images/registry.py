"""The twins of :class:`chalicelib.ports.ContainerImages`: whether an image a user names (a model's
``docker_image``, a stress test's ``custom_image``) can run as given.

- :class:`EcrContainerImages` (AWS): an image in the stack's own ECR registry must exist there
  (``ecr:DescribeImages`` on its repository and tag or digest); an image of a registry the stack
  is configured to pull from (``image_pull_registries``) is taken as given (the pull will say if
  it is missing: the stack holds no credentials to look); any other registry is refused.
- :class:`LocalContainerImages` (the local stack): refuses every image, saying why: user code
  runs in processes on this machine, never in a container image.

Both are under tests/contract/test_container_images.py.
"""
from __future__ import annotations

import re
from typing import Any, Callable, Iterable, Optional

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.errors import Unavailable, Unprocessable

# registry/repository[:tag][@digest]; a first segment with a dot or colon (or "localhost") is a
# registry host, as Docker reads a reference; none means Docker Hub.
_REFERENCE = re.compile(r"^(?:(?P<host>[A-Za-z0-9.-]+(?::\d+)?)/)?(?P<repo>[a-z0-9]+(?:[._/-][a-z0-9]+)*)"
                        r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$")
_ECR_HOST = re.compile(r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com$")
DOCKER_HUB = "docker.io"


def parse_reference(uri: str, where: str) -> tuple[str, str, Optional[str], Optional[str]]:
    """(registry host, repository, tag, digest) of an image reference; :class:`Unprocessable` if
    it is not one. A reference without a registry is Docker Hub's (``docker.io``)."""
    match = _REFERENCE.match(uri or "")
    if match is None:
        raise Unprocessable(f"{where}: {uri!r} is not an image reference (registry/repository:tag)")
    host = match["host"]
    repo = match["repo"]
    if host is not None and "." not in host and ":" not in host and host != "localhost":
        host, repo = None, f"{host}/{repo}"  # "user/repo": a Docker Hub namespace, not a host
    return host or DOCKER_HUB, repo, match["tag"], match["digest"]


class EcrContainerImages:
    """``registry``: the stack's ECR registry host (``<account>.dkr.ecr.<region>.amazonaws.com``;
    "" when the stack has none); ``pull_registries``: other registry hosts the stack's roles may
    pull from (Docker Hub is ``docker.io``)."""

    def __init__(self, ecr: Callable[[], Any], registry: str, pull_registries: Iterable[str] = ()):
        """``ecr``: makes the ECR client, on first use (most requests never check an image)."""
        self._ecr_factory = ecr
        self._ecr: Any = None
        self._registry = registry
        self._pull = {r.strip() for r in pull_registries if r.strip()}

    def check(self, uri: str, where: str = "image") -> str:
        host, repo, tag, digest = parse_reference(uri, where)
        if host == self._registry or (host not in self._pull and _ECR_HOST.match(host)):
            if host != self._registry:
                raise Unprocessable(f"{where}: {uri!r} is in another account's or region's ECR registry; the stack "
                                    f"pulls from its own ({self._registry or 'none configured'})"
                                    + (f" and {', '.join(sorted(self._pull))}" if self._pull else ""))
            self._describe(uri, repo, tag, digest, where)
            return uri
        if host in self._pull:
            return uri
        allowed = ", ".join(sorted({self._registry, *self._pull} - {""})) or "none configured"
        raise Unprocessable(f"{where}: the stack may not pull images from {host} (it pulls from: {allowed})")

    def _describe(self, uri: str, repo: str, tag: Optional[str], digest: Optional[str], where: str) -> None:
        image_id = {"imageDigest": digest} if digest else {"imageTag": tag or "latest"}
        if self._ecr is None:
            self._ecr = self._ecr_factory()
        try:
            found = self._ecr.describe_images(repositoryName=repo, imageIds=[image_id]).get("imageDetails") or []
        except ClientError as e:
            code = str(e.response.get("Error", {}).get("Code", ""))
            if code in ("ImageNotFoundException", "RepositoryNotFoundException"):
                raise Unprocessable(f"{where}: no image {uri!r} in ECR ({code})") from e
            raise Unavailable(f"ECR did not answer whether {uri!r} exists ({code})") from e
        except BotoCoreError as e:
            raise Unavailable("ECR could not be reached to check the image") from e
        if not found:
            raise Unprocessable(f"{where}: no image {uri!r} in ECR")


class LocalContainerImages:
    """The local stack runs no container images: every one is refused, saying why."""

    def check(self, uri: str, where: str = "image") -> str:
        raise Unprocessable(f"{where}: the local stack cannot run the container image {uri!r} as given: it runs user "
                            "code in sandboxed processes on this machine, not in containers. Name the model's "
                            "pip dependencies instead (they are built into a managed image), or use the AWS stack")


def ecr_registry(repository_uri: str) -> str:
    """The registry host of an ECR repository URI ("" for none)."""
    return repository_uri.split("/", 1)[0] if "/" in repository_uri else ""


__all__ = ["EcrContainerImages", "LocalContainerImages", "parse_reference", "ecr_registry", "DOCKER_HUB"]
