"""The AWS image builder: a CodeBuild build per image (containers/builder/buildspec.yml).

The build makes the image FROM the worker or inference image, pushes it to ECR tagged with its
content key (our build id is ``<key>@<CodeBuild build id>``), and writes its ``pip freeze`` to ``<freeze_prefix><key>/pip-freeze.txt`` in the data
bucket, last and only on success. So an image is READY when its freeze object exists: a set
built before is READY at once without a build (its build id is ``cached:<base>:<key>``), and a
build CodeBuild calls SUCCEEDED that wrote no freeze is FAILED, never READY.

One CodeBuild build per set, however many ask at once: the first request claims the set's
content key in the build ledger (a DynamoDB conditional write) and starts the build; the others
get ``<key>@`` and follow the claimed build through the ledger. CodeBuild's "Build State Change"
events (EventBridge -> ``record_event``) record each build's outcome and log link in the ledger,
so a build that died is FAILED at once; polls that see a final build record it too, in case an
event is lost.
Its local twin is ``local.py`` beside this file; both are under tests/contract.
"""
from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Optional

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.entities.images import BuildState, ImageBase, ImageBuild, PipRequirement, content_key, parse_freeze
from chalicelib.errors import NotFound, Unavailable
from chalicelib.ports import BlobStore, BuildClaim, ImageBuildLedger

_CACHED = "cached"
_KEY = re.compile(r"^[0-9a-f]{32}$")
# CodeBuild's buildStatus and phases -> ours (IN_PROGRESS splits on the phase).
_FINAL = {"SUCCEEDED": BuildState.READY, "FAILED": BuildState.FAILED, "FAULT": BuildState.FAILED,
          "TIMED_OUT": BuildState.FAILED, "STOPPED": BuildState.FAILED}
_WAITING_PHASES = {"SUBMITTED", "QUEUED", "PROVISIONING"}
#: Where builds write their ``pip freeze`` in the data bucket (infra grants the build this prefix).
FREEZE_PREFIX = "managed-images/"
# The user each base image runs as (containers/*/Dockerfile): the build puts it back after pip.
IMAGE_USERS = {ImageBase.WORKER: "root", ImageBase.INFERENCE: "kilele-model"}
MAX_LOG_EVENTS = 200
# A claim that started no build this long after it was made belongs to a request that died
# between its claim and StartBuild: the next request claims the set again.
CLAIM_STALE_AFTER = timedelta(minutes=5)
# The environment variable every managed-image build carries and platform-image builds do not:
# how an event is known to be one of this builder's builds.
_FREEZE_VARIABLE = "FREEZE_KEY"


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def start_build(codebuild: Any, project: str, subject: str, **overrides: Any) -> str:
    """StartBuild of ``project`` with ``overrides`` (``variables`` as a dict becomes the
    environment override); its build id, or :class:`Unavailable` naming ``subject`` ("the image
    build") and why. Managed-image and platform-image builds both start here."""
    variables = overrides.pop("variables", {})
    try:
        response = codebuild.start_build(
            projectName=project, **overrides,
            environmentVariablesOverride=[{"name": k, "value": v, "type": "PLAINTEXT"} for k, v in variables.items()],
        )
    except ClientError as e:
        if _code(e) == "ResourceNotFoundException":
            raise Unavailable(f"the image build project {project!r} does not exist") from e
        raise Unavailable(f"CodeBuild refused to start {subject} ({_code(e)})") from e
    except BotoCoreError as e:
        raise Unavailable(f"CodeBuild could not be reached to start {subject}") from e
    return str(response["build"]["id"])


class CodeBuildImageBuilder:
    """``base_images``: the image URI of each base; ``repository_uri``: the ECR repository images
    are pushed to; ``blobs``: the data bucket (where builds write their freeze); ``logs``: a
    CloudWatch Logs client for the log of a failed build (None: phases' messages only)."""

    def __init__(self, project_name: str, repository_uri: str, base_images: dict[ImageBase, str], blobs: BlobStore,
                 codebuild: Any, ledger: ImageBuildLedger, logs: Optional[Any] = None,
                 freeze_prefix: str = FREEZE_PREFIX,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)):
        self._ledger = ledger
        self._clock = clock
        self._project = project_name
        self._repository = repository_uri
        self._bases = base_images
        self._blobs = blobs
        self._codebuild = codebuild
        self._logs = logs
        self._prefix = freeze_prefix

    def freeze_key(self, key: str) -> str:
        """Where a build of content ``key`` writes its ``pip freeze``."""
        return f"{self._prefix}{key}/pip-freeze.txt"

    def start(self, base: ImageBase, requirements: tuple[PipRequirement, ...]) -> str:
        key = content_key(base, requirements)
        if self._freeze(key) is not None:
            return f"{_CACHED}:{base.value}:{key}"
        if not self._bases.get(base):
            raise Unavailable(f"no {base.value} image is configured to build managed images from")
        token, now = uuid.uuid4().hex, self._clock()
        if self._ledger.claim(key, token, now, now - CLAIM_STALE_AFTER) is not None:
            return f"{key}@"  # another request's build of this set: followed through the ledger
        try:
            codebuild_id = self._start_codebuild(key, base, requirements)
        except Unavailable:
            self._ledger.release(key, token)  # nothing started: the next request may try again
            raise
        self._ledger.started(key, token, codebuild_id)
        # The content key travels in our build id: the key is what the poll reads the freeze by.
        return f"{key}@{codebuild_id}"

    def _start_codebuild(self, key: str, base: ImageBase, requirements: tuple[PipRequirement, ...]) -> str:
        variables = {"BASE_IMAGE": self._bases[base], "IMAGE_USER": IMAGE_USERS[base], "IMAGE_TAG": key,
                     "REQUIREMENTS": "\n".join(r.pip_argument() for r in requirements),
                     "FREEZE_KEY": self.freeze_key(key)}
        return start_build(self._codebuild, self._project, "the image build", variables=variables)

    def poll(self, build_id: str) -> ImageBuild:
        if build_id.startswith(f"{_CACHED}:"):
            return self._poll_cached(build_id)
        key, sep, codebuild_id = build_id.partition("@")
        if not sep or not _KEY.match(key):
            raise NotFound(f"no image build {build_id!r}")
        claim = self._ledger.get(key)
        if not codebuild_id:  # a request that joined the set's claimed build
            if claim is None:
                raise NotFound(f"no image build {build_id!r}")
            if not claim.codebuild_id:
                return self._unstarted(build_id, claim)
            codebuild_id = claim.codebuild_id
        if claim is not None and claim.codebuild_id == codebuild_id and claim.status == "FAILED":
            # Recorded from the build's event (or an earlier poll): no need to ask CodeBuild.
            return ImageBuild(build_id, BuildState.FAILED, reason=claim.reason, log=self._log_of_claim(claim))
        try:
            builds = self._codebuild.batch_get_builds(ids=[codebuild_id]).get("builds") or []
        except ClientError as e:
            if _code(e) in ("InvalidInputException", "ResourceNotFoundException"):
                raise NotFound(f"no image build {build_id!r}") from e
            raise Unavailable(f"CodeBuild did not answer for build {build_id!r} ({_code(e)})") from e
        except BotoCoreError as e:
            raise Unavailable("CodeBuild could not be reached") from e
        if not builds:
            raise NotFound(f"no image build {build_id!r}")
        build = builds[0]
        status = str(build.get("buildStatus", "IN_PROGRESS"))
        if status == "IN_PROGRESS":
            waiting = str(build.get("currentPhase", "")) in _WAITING_PHASES
            return ImageBuild(build_id, BuildState.PENDING if waiting else BuildState.BUILDING)
        log_url = str((build.get("logs") or {}).get("deepLink") or "")
        outcome = self._outcome(key, status, _failed_phase(build), log_url)
        self._ledger.finish(key, codebuild_id, "SUCCEEDED" if outcome.state is BuildState.READY else "FAILED",
                            outcome.reason, log_url)
        if outcome.state is BuildState.READY:
            return ImageBuild(build_id, BuildState.READY, pip_freeze=outcome.pip_freeze, image_ref=outcome.image_ref)
        return ImageBuild(build_id, BuildState.FAILED, log=self._log(build), reason=outcome.reason)

    def record_event(self, event: dict[str, Any]) -> Optional[str]:
        """Record a "CodeBuild Build State Change" event's ``detail`` of a finished build of this
        project in the ledger; the build's content key, or None if it is not a managed-image build."""
        if event.get("project-name") != self._project:
            return None
        status = str(event.get("build-status", ""))
        info = event.get("additional-information") or {}
        variables = {str(v.get("name")): str(v.get("value", ""))
                     for v in (info.get("environment") or {}).get("environment-variables") or []}
        key = variables.get("IMAGE_TAG", "")
        if _FREEZE_VARIABLE not in variables or not _KEY.match(key) or status not in _FINAL:
            return None
        # The event names the build by ARN (arn:...:build/<project>:<uuid>); our ids use <project>:<uuid>.
        codebuild_id = str(event.get("build-id", "")).rpartition("build/")[2]
        phases = [{"phaseType": p.get("phase-type"), "phaseStatus": p.get("phase-status")}
                  for p in info.get("phases") or []]
        log_url = str((info.get("logs") or {}).get("deep-link") or "")
        outcome = self._outcome(key, status, _failed_phase({"phases": phases}), log_url)
        self._ledger.finish(key, codebuild_id, "SUCCEEDED" if outcome.state is BuildState.READY else "FAILED",
                            outcome.reason, log_url)
        return key

    def _outcome(self, key: str, status: str, failed_phase: str, log_url: str) -> ImageBuild:
        """What a finished build of ``key`` made: READY only if it recorded its freeze."""
        see_log = f" (log: {log_url})" if log_url else ""
        if _FINAL.get(status, BuildState.FAILED) is BuildState.READY:
            freeze = self._freeze(key)
            if freeze is not None:
                return ImageBuild(key, BuildState.READY, pip_freeze=freeze, image_ref=f"{self._repository}:{key}")
            return ImageBuild(key, BuildState.FAILED,
                              reason="CodeBuild reports the build SUCCEEDED but it recorded no pip freeze "
                                     f"(s3 key {self.freeze_key(key)}): the image was not built{see_log}")
        return ImageBuild(key, BuildState.FAILED, reason=f"the build ended {status}{failed_phase}{see_log}")

    def _unstarted(self, build_id: str, claim: BuildClaim) -> ImageBuild:
        """A joined build whose claim has not started CodeBuild yet: PENDING, FAILED once stale."""
        if claim.claimed_at < self._clock() - CLAIM_STALE_AFTER:
            return ImageBuild(build_id, BuildState.FAILED,
                              reason="the request that claimed this requirement set's build never started it")
        return ImageBuild(build_id, BuildState.PENDING)

    def _log_of_claim(self, claim: BuildClaim) -> str:
        """The log of a build known FAILED from the ledger: CloudWatch's, else the link to it."""
        if claim.codebuild_id:
            try:
                builds = self._codebuild.batch_get_builds(ids=[claim.codebuild_id]).get("builds") or []
            except (ClientError, BotoCoreError):
                builds = []  # the reason and link below still say what failed and where to look
            if builds:
                return self._log(builds[0])
        return f"see {claim.log_url}\n" if claim.log_url else ""

    def satisfied_by_base(self, base: ImageBase, requirements: tuple[PipRequirement, ...]) -> bool:
        """Told by the freeze of ``base`` with no requirements (an image of the empty set records
        it); without one the builder cannot tell (False: the set is built)."""
        freeze = self._freeze(content_key(base, ()))
        if freeze is None:
            return False
        installed = parse_freeze(list(freeze))
        return all(r.name in installed and r.allows(installed[r.name]) for r in requirements)

    def close(self) -> None:
        """Nothing to release: builds run in CodeBuild."""

    def _poll_cached(self, build_id: str) -> ImageBuild:
        _, _, rest = build_id.partition(":")
        _, _, key = rest.partition(":")
        freeze = self._freeze(key) if _KEY.match(key) else None
        if freeze is None:
            raise NotFound(f"no image build {build_id!r}")
        return ImageBuild(build_id, BuildState.READY, log=f"reused image {key}, built before\n",
                          pip_freeze=freeze, image_ref=f"{self._repository}:{key}")

    def _freeze(self, key: str) -> Optional[tuple[str, ...]]:
        try:
            text = self._blobs.get_bytes(self.freeze_key(key)).decode()
        except NotFound:
            return None
        return tuple(line for line in text.splitlines() if line.strip())

    def _log(self, build: dict[str, Any]) -> str:
        """The build's CloudWatch log (its last events), else the phases' messages."""
        logs = build.get("logs") or {}
        group, stream = logs.get("groupName"), logs.get("streamName")
        if self._logs is not None and group and stream:
            try:
                events = self._logs.get_log_events(logGroupName=group, logStreamName=stream,
                                                   limit=MAX_LOG_EVENTS, startFromHead=False)["events"]
                return "".join(e.get("message", "") for e in events)
            except (ClientError, BotoCoreError):
                pass  # the phases' messages below still say what failed
        lines = []
        for phase in build.get("phases") or []:
            for context in phase.get("contexts") or []:
                if context.get("message"):
                    lines.append(f"{phase.get('phaseType')}: {context['message']}\n")
        return "".join(lines)


def _failed_phase(build: dict[str, Any]) -> str:
    for phase in build.get("phases") or []:
        if phase.get("phaseStatus") not in (None, "SUCCEEDED"):
            return f" in its {phase.get('phaseType')} phase"
    return ""


__all__ = ["CodeBuildImageBuilder", "IMAGE_USERS", "FREEZE_PREFIX", "CLAIM_STALE_AFTER"]
