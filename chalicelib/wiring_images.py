"""The composition root's section for managed images (kept apart so wiring.py stays short):
which image builder ``image_builder_uri`` names, made from the settings."""
from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any, Callable

from chalicelib.ports import BlobStore
from chalicelib.settings import Settings, process_environment
from chalicelib.wiring_runtimes import default_work_dir, scheme_of


class _MadeOnFirstUse:
    """Holds a factory and makes its object once, when a method first needs it (most functions
    build every service and never touch an image build, whose clients cost a cold start)."""

    def __init__(self, factory: Callable[[], Any]):
        self._factory = factory
        self._built: Any = None
        self._lock = threading.Lock()

    def _builder(self) -> Any:
        with self._lock:
            if self._built is None:
                self._built = self._factory()
            return self._built


def image_builder(settings: Settings, blobs: BlobStore, aws: Any) -> Any:
    """Where managed images are built, chosen by the scheme of ``image_builder_uri``."""
    scheme, rest = scheme_of(settings.image_builder_uri, "KILELE_IMAGE_BUILDER_URI", ("codebuild", "local"))
    from chalicelib.entities.images import ImageBase

    if scheme == "codebuild":
        def codebuild() -> Any:
            from chalicelib.adapters.images.codebuild import CodeBuildImageBuilder

            bases = {ImageBase.WORKER: settings.image_base_worker_uri,
                     ImageBase.INFERENCE: settings.image_base_inference_uri}
            from chalicelib.store.image_builds import ImageBuildRepository

            return CodeBuildImageBuilder(rest, settings.image_repository_uri, bases, blobs, aws.client("codebuild"),
                                         ImageBuildRepository(), logs=aws.client("logs"))

        # Made on first use: most functions build every service and never touch an image build.
        return _OnFirstUse(codebuild)
    from chalicelib.adapters.images.local import LocalImageBuilder

    # pip runs sdists' build code: it gets no AWS or Kilele settings (the machine's pip config stays).
    return LocalImageBuilder(Path(rest) if rest else default_work_dir("images"), python=sys._base_executable,
                             environment=process_environment(drop_prefixes=("AWS_", "KILELE_")),
                             timeout_seconds=settings.image_build_timeout_seconds,
                             wheels_only=settings.local_image_wheels_only)


def platform_image_builder(settings: Settings, aws: Any) -> Any:
    """Where the platform images are built on demand: the image project, as the deploy does
    (codebuild://), else nowhere (the local stack runs no container image: its twin refuses)."""
    scheme, rest = scheme_of(settings.image_builder_uri, "KILELE_IMAGE_BUILDER_URI", ("codebuild", "local"))
    if scheme == "local":
        from chalicelib.adapters.images.platform_local import LocalPlatformImages

        return LocalPlatformImages()
    from chalicelib.adapters.images.platform import CodeBuildPlatformImages, platform_specs

    def repository(image_uri: str) -> str:  # the base image URIs carry their tag
        return image_uri.rsplit(":", 1)[0] if ":" in image_uri.rsplit("/", 1)[-1] else image_uri

    def build() -> Any:
        from chalicelib.store.image_builds import ImageBuildRepository

        specs = platform_specs(settings.platform_image_tags, repository(settings.image_base_worker_uri),
                               repository(settings.image_base_inference_uri))
        return CodeBuildPlatformImages(rest, specs, settings.platform_image_source, settings.platform_image_role_arn,
                                       aws.client("codebuild"), aws.client("ecr"), ImageBuildRepository())

    return _PlatformOnFirstUse(build)


class _PlatformOnFirstUse(_MadeOnFirstUse):
    """A platform image builder made when first used (most requests never build an image)."""

    def names(self) -> Any:
        return self._builder().names()

    def start(self, name: str) -> Any:
        return self._builder().start(name)

    def poll(self, name: str) -> Any:
        return self._builder().poll(name)

    def record_event(self, event: Any) -> Any:
        return self._builder().record_event(event)


def container_images(settings: Settings, aws: Any) -> Any:
    """Whether a container image a user names can run as given: ECR where images are built by
    CodeBuild (the AWS stack), else refused (the local stack runs none)."""
    from chalicelib.adapters.images.registry import EcrContainerImages, LocalContainerImages, ecr_registry

    scheme, _ = scheme_of(settings.image_builder_uri, "KILELE_IMAGE_BUILDER_URI", ("codebuild", "local"))
    if scheme == "local":
        return LocalContainerImages()
    return EcrContainerImages(lambda: aws.client("ecr"), ecr_registry(settings.image_repository_uri),
                              settings.image_pull_registries.split(","))


def serving_base(settings: Settings) -> Any:
    """What the images endpoints serve in are built over: the inference image where it differs
    from the worker's (CodeBuild: two base images), else the worker runtime (locally both are
    this runtime, so a model is served in the very image it trained in)."""
    from chalicelib.entities.images import ImageBase

    scheme, _ = scheme_of(settings.image_builder_uri, "KILELE_IMAGE_BUILDER_URI", ("codebuild", "local"))
    return ImageBase.INFERENCE if scheme == "codebuild" else ImageBase.WORKER


class _OnFirstUse(_MadeOnFirstUse):
    """An image builder made by ``factory`` when first used (its clients cost a cold start)."""

    def start(self, base: Any, requirements: Any) -> str:
        return self._builder().start(base, requirements)

    def poll(self, build_id: str) -> Any:
        return self._builder().poll(build_id)

    def satisfied_by_base(self, base: Any, requirements: Any) -> bool:
        return self._builder().satisfied_by_base(base, requirements)

    def record_event(self, event: Any) -> Any:
        return self._builder().record_event(event)

    def close(self) -> None:
        if self._built is not None:
            self._built.close()



__all__ = ["image_builder", "serving_base", "container_images", "platform_image_builder"]
