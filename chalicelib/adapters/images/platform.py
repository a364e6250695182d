"""The platform images built on demand on AWS (issue 13; ``kilele images build``): the worker and
inference images, CPU and GPU, built from ``containers/`` by the image project that builds
managed images, exactly as the deploy builds them (infra/kilele_infra/platform_images.py): the
same build context in S3, the same buildspec (``containers/builder/platform-buildspec.yml``, read
from that context), the same role of its own, the same content tags. The job definitions and
SageMaker models name those tags, so this rebuilds what they run, never something else.

Idempotent per content tag: an image whose tag is in its ECR repository is READY without a
build; a build of that tag that runs is followed, not started twice (the build ledger's
conditional claim, as managed images do: ``platform:<tag>``). A tag built before and since
deleted from its repository (a lifecycle rule, a person) is built again, under the next key of
its chain (``platform:<tag>@<the previous CodeBuild id>``), so the ledger's history is kept.
Its local twin, which refuses, is ``platform_local.py`` beside this file.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Optional

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.adapters.images.codebuild import CLAIM_STALE_AFTER, _code, start_build
from chalicelib.errors import NotFound, Unavailable
from chalicelib.ports_images import BuildClaim, ImageBuildLedger, PlatformImageBuild

#: The four platform images: name -> (repository kind, Dockerfile). infra's image_contexts.py
#: lists the same (tests/infra/test_platform_image_builds_on_demand.py pins the two together).
PLATFORM_DOCKERFILES = {
    "worker": ("worker", "containers/worker/Dockerfile"),
    "worker-gpu": ("worker", "containers/worker/Dockerfile.gpu"),
    "inference": ("inference", "containers/inference/Dockerfile"),
    "inference-gpu": ("inference", "containers/inference/Dockerfile.gpu"),
}
#: Where the build context holds the platform buildspec (infra stages it there).
BUILDSPEC_PATH = "containers/builder/platform-buildspec.yml"
#: The environment variable that marks a platform image's build (the deploy's builds carry it too).
PLATFORM_VARIABLE = "KILELE_PLATFORM_IMAGE"
BUILD_TIMEOUT_MINUTES = 120
_FINAL_FAILED = ("FAILED", "FAULT", "TIMED_OUT", "STOPPED")
_WAITING_PHASES = {"SUBMITTED", "QUEUED", "PROVISIONING"}
_MAX_CHAIN = 50  # rebuilds of one tag followed at most (each one a deletion of the image since)


@dataclass(frozen=True)
class PlatformImageSpec:
    """One platform image of this deployment: its content tag and repository URI."""

    name: str
    tag: str
    repository_uri: str
    dockerfile: str

    @property
    def uri(self) -> str:
        return f"{self.repository_uri}:{self.tag}"

    @property
    def repository_name(self) -> str:
        return self.repository_uri.split("/", 1)[-1]


class CodeBuildPlatformImages:
    """``images``: name -> spec; ``source``: ``bucket/key`` of the build context zip;
    ``role_arn``: the platform builds' role (not the project's, which runs users' pip)."""

    def __init__(self, project: str, images: dict[str, PlatformImageSpec], source: str, role_arn: str,
                 codebuild: Any, ecr: Any, ledger: ImageBuildLedger,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)):
        self._project, self._images, self._source, self._role = project, images, source, role_arn
        self._codebuild, self._ecr, self._ledger, self._clock = codebuild, ecr, ledger, clock

    def names(self) -> tuple[str, ...]:
        return tuple(n for n in PLATFORM_DOCKERFILES if n in self._images)

    def start(self, name: str) -> PlatformImageBuild:
        spec = self._spec(name)
        if self._pushed(spec):
            return self._ready(spec)
        key, claim = self._current(spec)
        if claim is not None and claim.status in ("STARTING", "BUILDING"):
            return self._followed(spec, key, claim)
        token, now = uuid.uuid4().hex, self._clock()
        held = self._ledger.claim(key, token, now, now - CLAIM_STALE_AFTER)
        if held is not None:  # another request claimed it meanwhile: that build is the tag's
            return self._followed(spec, key, held)
        try:
            codebuild_id = self._start_codebuild(spec)
        except Unavailable:
            self._ledger.release(key, token)  # nothing started: the next request may try again
            raise
        self._ledger.started(key, token, codebuild_id)
        return self._build(spec, "PENDING", build_id=codebuild_id, started=True)

    def poll(self, name: str) -> PlatformImageBuild:
        spec = self._spec(name)
        if self._pushed(spec):
            return self._ready(spec)
        key, claim = self._current(spec)
        if claim is None:
            return self._build(spec, "MISSING", reason="never built at this tag")
        return self._followed(spec, key, claim)

    def record_event(self, event: dict[str, Any]) -> Optional[PlatformImageBuild]:
        """The ``detail`` of CodeBuild's "Build State Change" for a finished platform build."""
        if event.get("project-name") != self._project:
            return None
        info = event.get("additional-information") or {}
        variables = {str(v.get("name")): str(v.get("value", ""))
                     for v in (info.get("environment") or {}).get("environment-variables") or []}
        spec = self._images.get(variables.get(PLATFORM_VARIABLE, ""))
        status = str(event.get("build-status", ""))
        if spec is None or variables.get("IMAGE_TAG") != spec.tag or status not in ("SUCCEEDED", *_FINAL_FAILED):
            return None  # a managed image's build, another deployment's tag, or not over yet
        codebuild_id = str(event.get("build-id", "")).rpartition("build/")[2]
        log_url = str((info.get("logs") or {}).get("deep-link") or "")
        key, _ = self._current(spec)
        if status == "SUCCEEDED":
            self._ledger.finish(key, codebuild_id, "SUCCEEDED", log_url=log_url)
            return self._build(spec, "READY", build_id=codebuild_id, log_url=log_url)
        reason = f"the build ended {status}"
        self._ledger.finish(key, codebuild_id, "FAILED", reason, log_url)
        return self._build(spec, "FAILED", build_id=codebuild_id, log_url=log_url, reason=reason)

    # -- the ledger's chain of builds of one tag ------------------------------------------------

    def _ready(self, spec: PlatformImageSpec) -> PlatformImageBuild:
        """The image is in its repository: a build of it still recorded as running is over (its
        event may not have come yet), recorded SUCCEEDED so a later deletion is built again."""
        key, claim = self._current(spec)
        if claim is not None and claim.status == "BUILDING" and claim.codebuild_id:
            self._ledger.finish(key, claim.codebuild_id, "SUCCEEDED")
            return self._build(spec, "READY", build_id=claim.codebuild_id, log_url=claim.log_url)
        return self._build(spec, "READY")

    def _current(self, spec: PlatformImageSpec) -> tuple[str, Optional[BuildClaim]]:
        """The key of the tag's latest build and its claim (None: no build yet under that key).
        Called when the image is not in its repository, so a SUCCEEDED build was deleted since."""
        key = f"platform:{spec.tag}"
        for _ in range(_MAX_CHAIN):
            claim = self._ledger.get(key)
            if claim is None or claim.status != "SUCCEEDED":
                return key, claim
            key = f"platform:{spec.tag}@{claim.codebuild_id}"
        raise Unavailable(f"image {spec.name} was built and deleted more than {_MAX_CHAIN} times")

    def _followed(self, spec: PlatformImageSpec, key: str, claim: BuildClaim) -> PlatformImageBuild:
        """The state of the build ``claim`` stands for, asking CodeBuild while it runs."""
        if claim.status == "FAILED":
            return self._build(spec, "FAILED", build_id=claim.codebuild_id, log_url=claim.log_url,
                               reason=claim.reason or "the build failed")
        if not claim.codebuild_id:  # claimed, not started yet
            if claim.claimed_at < self._clock() - CLAIM_STALE_AFTER:
                return self._build(spec, "FAILED", reason="the request that claimed this build never started it")
            return self._build(spec, "PENDING")
        try:
            builds = self._codebuild.batch_get_builds(ids=[claim.codebuild_id]).get("builds") or []
        except ClientError as e:
            raise Unavailable(f"CodeBuild did not answer for build {claim.codebuild_id} ({_code(e)})") from e
        except BotoCoreError as e:
            raise Unavailable("CodeBuild could not be reached") from e
        if not builds:
            return self._build(spec, "FAILED", build_id=claim.codebuild_id,
                               reason="CodeBuild no longer knows this build")
        build = builds[0]
        status = str(build.get("buildStatus", "IN_PROGRESS"))
        log_url = str((build.get("logs") or {}).get("deepLink") or "")
        if status == "IN_PROGRESS":
            waiting = str(build.get("currentPhase", "")) in _WAITING_PHASES
            return self._build(spec, "PENDING" if waiting else "BUILDING", build_id=claim.codebuild_id, log_url=log_url)
        if status == "SUCCEEDED" and self._pushed(spec):
            self._ledger.finish(key, claim.codebuild_id, "SUCCEEDED", log_url=log_url)
            return self._build(spec, "READY", build_id=claim.codebuild_id, log_url=log_url)
        reason = (f"the build ended {status}" if status != "SUCCEEDED"
                  else f"CodeBuild reports the build SUCCEEDED but {spec.uri} is not in its repository")
        self._ledger.finish(key, claim.codebuild_id, "FAILED", reason, log_url)
        return self._build(spec, "FAILED", build_id=claim.codebuild_id, log_url=log_url, reason=reason)

    # -- AWS -------------------------------------------------------------------------------------

    def _start_codebuild(self, spec: PlatformImageSpec) -> str:
        variables = {"DOCKERFILE": spec.dockerfile, "IMAGE_REPOSITORY": spec.repository_uri, "IMAGE_TAG": spec.tag,
                     PLATFORM_VARIABLE: spec.name}
        return start_build(self._codebuild, self._project, f"the build of {spec.name}", variables=variables,
                           sourceTypeOverride="S3", sourceLocationOverride=self._source,
                           buildspecOverride=BUILDSPEC_PATH, serviceRoleOverride=self._role,
                           timeoutInMinutesOverride=BUILD_TIMEOUT_MINUTES)

    def _pushed(self, spec: PlatformImageSpec) -> bool:
        try:
            self._ecr.describe_images(repositoryName=spec.repository_name, imageIds=[{"imageTag": spec.tag}])
            return True
        except ClientError as e:
            if _code(e) in ("ImageNotFoundException", "RepositoryNotFoundException"):
                return False
            raise Unavailable(f"ECR did not answer whether {spec.uri} exists ({_code(e)})") from e
        except BotoCoreError as e:
            raise Unavailable("ECR could not be reached") from e

    def _spec(self, name: str) -> PlatformImageSpec:
        spec = self._images.get(name)
        if spec is None:
            raise NotFound(f"no platform image {name!r} (there are: {', '.join(self.names())})")
        return spec

    @staticmethod
    def _build(spec: PlatformImageSpec, status: str, **fields: Any) -> PlatformImageBuild:
        return PlatformImageBuild(name=spec.name, tag=spec.tag, image_uri=spec.uri, status=status, **fields)


def platform_specs(tags: str, worker_repository_uri: str, inference_repository_uri: str) -> dict[str, PlatformImageSpec]:
    """The specs from the settings: ``tags`` is ``name=tag,...`` (infra writes it)."""
    repositories = {"worker": worker_repository_uri, "inference": inference_repository_uri}
    specs = {}
    for pair in filter(None, (p.strip() for p in tags.split(","))):
        name, _, tag = pair.partition("=")
        if name in PLATFORM_DOCKERFILES and tag:
            kind, dockerfile = PLATFORM_DOCKERFILES[name]
            specs[name] = PlatformImageSpec(name, tag, repositories[kind], dockerfile)
    return specs


__all__ = ["CodeBuildPlatformImages", "PlatformImageSpec", "PLATFORM_DOCKERFILES", "platform_specs",
           "BUILDSPEC_PATH", "PLATFORM_VARIABLE"]
