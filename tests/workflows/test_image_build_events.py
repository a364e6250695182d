"""The managed-image workflow's bounds and CodeBuild's build-state events, on the moto server with
the real handlers: a build that never ends is FAILED by the machine's own bound (max_polls), and
on the AWS path (the CodeBuild builder against moto's CodeBuild, its ledger in moto's DynamoDB) a
build that died is FAILED from its EventBridge event, through app.image_build_changed's handler,
with its log link -- moto calls every build SUCCEEDED, so a TIMED_OUT image can only come from the
event. moto delivers no CodeBuild events (the test hands the handler the event's detail in the
shape CodeBuild documents) and runs no build: its BatchGetBuilds calls every build SUCCEEDED at
once, so the test's CodeBuild client reports the builds it started IN_PROGRESS, as a real build
is while it runs (``StillRunning``); everything else is moto's."""
from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator


def wait_until(condition: Any, what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what} did not happen within {timeout} s")


def stored(name: str) -> Any:
    from chalicelib.store.images import ManagedImageRepository

    return ManagedImageRepository().get(name)


def developer(services: Any) -> Any:
    from chalicelib.entities import UserType

    admin = services.users.ensure_superadmin("root@wf", "secret1")
    email = f"imager{time.monotonic_ns()}@wf"
    services.users.create_user(admin, email, "Tr4in-the-Model!", UserType.APP_DEVELOPER)
    return services.auth._users.get(email)


def executions(services: Any) -> list[dict]:
    sfn = services.aws.client("stepfunctions")
    return sfn.list_executions(stateMachineArn=services.settings.managed_image_state_machine_arn)["executions"]


@contextmanager
def installed(platform: Any, builder: Any, **values: Any) -> Iterator[Any]:
    from chalicelib import wiring

    services = wiring.build(platform.services.settings.with_values(**values), aws=platform.services.aws,
                            image_builder=builder)
    previous = wiring.install(services)
    try:
        yield services
    finally:
        wiring.install(previous)
        services.close()


class StillRunning:
    """moto's CodeBuild client, except that the builds it started are IN_PROGRESS (BUILD phase)."""

    def __init__(self, client: Any):
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def batch_get_builds(self, **kwargs: Any) -> Any:
        answer = self._client.batch_get_builds(**kwargs)
        for build in answer.get("builds", []):
            build.update(buildStatus="IN_PROGRESS", currentPhase="BUILD")
        return answer


def test_a_build_that_never_ends_is_failed_by_the_workflows_own_bound(platform, tmp_path):
    from chalicelib.adapters.images.local import LocalImageBuilder
    from chalicelib.entities.images import BuildState

    gate = threading.Event()
    builder = LocalImageBuilder(tmp_path, python=sys._base_executable, max_parallel=1)
    builder._pool.submit(gate.wait)  # the only build slot is taken: the image's build stays PENDING
    try:
        with installed(platform, builder, image_poll_seconds=0) as services:
            name = f"stuck-{time.monotonic_ns()}"
            services.managed_images.create_managed_image(developer(services), name, [])
            services.managed_images._workflows.start(f"image-bound-{name}",
                                                     {"name": name, "poll_seconds": 0, "polls": 0, "max_polls": 3})
            image = wait_until(lambda: (i := stored(name)) and i.status is BuildState.FAILED and i,
                               "the bound's failure recorded")
            assert image.error.startswith("following the build failed: ImageBuildWaitExceeded")
            assert "polled 3 times" in image.error
            wait_until(lambda: any(e["name"] == f"image-bound-{name}" and e["status"] == "FAILED"
                                   for e in executions(services)), "the execution's failure")
    finally:
        gate.set()


def test_a_codebuild_build_that_died_is_failed_from_its_event_with_its_log_link(platform):
    from chalicelib.adapters.blobs import BlobStore
    from chalicelib.adapters.images.codebuild import CodeBuildImageBuilder
    from chalicelib.entities.images import BuildState, ImageBase
    from chalicelib.store.image_builds import ImageBuildRepository
    from chalicelib.workflows import aws_events

    aws = platform.services.aws
    project = f"kilele-images-{time.monotonic_ns()}"
    codebuild = aws.client("codebuild")
    codebuild.create_project(
        # infra's project is NO_SOURCE; moto wrongly requires a location for it, so S3 here.
        name=project, source={"type": "S3", "location": "data/builder.zip"}, artifacts={"type": "NO_ARTIFACTS"},
        environment={"type": "LINUX_CONTAINER", "image": "aws/codebuild/standard:7.0",
                     "computeType": "BUILD_GENERAL1_SMALL", "privilegedMode": True},
        serviceRole="arn:aws:iam::123456789012:role/kilele-images")
    settings = platform.services.settings
    blobs = BlobStore(settings.resource_name("data"), aws.client("s3"))
    bases = {base: f"123456789012.dkr.ecr.us-east-1.amazonaws.com/kilele-{base.value}:c0ffee" for base in ImageBase}
    builder = CodeBuildImageBuilder(project, "123456789012.dkr.ecr.us-east-1.amazonaws.com/managed", bases, blobs,
                                    StillRunning(codebuild), ImageBuildRepository())
    # Polls an hour apart: whatever ends the image before then is the event.
    with installed(platform, builder, image_poll_seconds=3600) as services:
        names = [f"died-{time.monotonic_ns()}-{i}" for i in range(2)]
        user = developer(services)
        for name in names:  # two images of one set: one build
            services.managed_images.create_managed_image(user, name, [{"name": "six", "version_specifier": "==1.16.0"}])
        build_ids = [stored(n).build_id for n in names]
        assert [stored(n).status for n in names] == [BuildState.BUILDING] * 2
        assert build_ids[0].partition("@")[0] == build_ids[1].partition("@")[0] and build_ids[1].endswith("@")
        [codebuild_id] = codebuild.list_builds_for_project(projectName=project)["ids"]
        key = build_ids[0].partition("@")[0]
        answer = aws_events.image_build_changed({
            "build-status": "TIMED_OUT", "project-name": project,
            "build-id": f"arn:aws:codebuild:us-east-1:123456789012:build/{codebuild_id}",
            "additional-information": {
                "environment": {"environment-variables": [
                    {"name": "IMAGE_TAG", "value": key, "type": "PLAINTEXT"},
                    {"name": "FREEZE_KEY", "value": builder.freeze_key(key), "type": "PLAINTEXT"}]},
                "phases": [{"phase-type": "BUILD", "phase-status": "TIMED_OUT"}],
                "logs": {"deep-link": "https://console.aws.amazon.com/cloudwatch/home#logEvent:group=g;stream=s"},
            },
        })
        assert answer["recorded"] and sorted(i["name"] for i in answer["images"]) == sorted(names)
        for name in names:
            image = stored(name)
            assert image.status is BuildState.FAILED
            assert "the build ended TIMED_OUT in its BUILD phase" in image.error
            assert "console.aws.amazon.com/cloudwatch" in image.error
        sfn = services.aws.client("stepfunctions")
        for execution in executions(services):
            if execution["status"] == "RUNNING":
                sfn.stop_execution(executionArn=execution["executionArn"])
