"""The image-builder contract: one suite run against both twins of :class:`chalicelib.ports.ImageBuilder`.

- **local**: :class:`LocalImageBuilder` really builds: a virtual environment layered on this
  test's own runtime, pip installing from the package index this machine's pip configuration
  names (six==1.16.0, older than the runtime's six, so the layering is put to the test).
- **codebuild**: :class:`CodeBuildImageBuilder` against moto's CodeBuild and S3. moto cannot
  execute a build: its ``batch_get_builds`` calls every build SUCCEEDED at once and runs nothing,
  so nothing is pushed and no ``pip freeze`` is written. The twin therefore reports such a build
  FAILED ("recorded no pip freeze") -- which the suite checks -- and only where the suite needs
  a build that succeeded does the test write the freeze object itself, as the buildspec's
  post_build step would (``complete``). That is the one step faked, and it is the build's output,
  not the adapter's answer: the adapter still reads it from S3 to say READY.

Dedupe: the local twin serialises builds of one set with a file lock; the CodeBuild twin claims
the set's content key in the build ledger (DynamoDB, moto here) with a conditional write, so of N
concurrent requests one calls StartBuild (counted as sent) and the others follow its build.

The contract: start answers at once with a build id; polling an unknown id is NotFound; a build
ends READY with its resolved ``pip freeze`` (the pinned version in it) and an image reference, or
FAILED with a reason and a log, never READY without an image; a set built before is READY again
with the same image, without building it again.
"""
from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import boto3
import pytest
from moto import mock_aws

from chalicelib.adapters.blobs import BlobStore
from chalicelib.adapters.images.codebuild import CodeBuildImageBuilder
from chalicelib.adapters.images.local import LocalImageBuilder, installed_versions, runtime_site_packages
from chalicelib.entities.images import (BuildState, ImageBase, ImageBuild, PipRequirement, content_key, normalise,
                                       parse_freeze)
from chalicelib.errors import NotFound

SIX_OLD = normalise([PipRequirement.parse("six", "==1.16.0")])
MISSING = normalise([PipRequirement.parse("kilele-no-such-package-xyz")])
BUILD_SECONDS = 240.0


def wait_final(builder: Any, build_id: str, timeout: float = BUILD_SECONDS) -> ImageBuild:
    deadline = time.monotonic() + timeout
    while True:
        build = builder.poll(build_id)
        if build.state.final:
            return build
        assert time.monotonic() < deadline, f"build {build_id} still {build.state.value} after {timeout} s"
        time.sleep(0.2)


class LocalTwin:
    def __init__(self, root: Path):
        self.root = root
        self.builder = LocalImageBuilder(root, python=sys._base_executable, max_parallel=4)

    def builds_made(self) -> int:
        """Virtual environments made (one per build that really ran pip)."""
        return len(list((self.root / "envs").iterdir()))

    def complete(self, build_id: str, freeze: list[str]) -> None:
        """Nothing to do: the local builder really builds."""

    def record_base(self) -> None:
        """Nothing to do: the local builder reads its runtime's packages."""

    def close(self) -> None:
        self.builder.close()


class CodeBuildTwin:
    REPOSITORY = "123456789012.dkr.ecr.us-east-1.amazonaws.com/kilele-managed-images"

    def __init__(self) -> None:
        from chalicelib.store import models
        from chalicelib.store.image_builds import ImageBuildRepository

        self._mock = mock_aws()
        self._mock.start()
        boto3.client("dynamodb", region_name="us-east-1").create_table(
            TableName="image-builds", BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "key", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "key", "AttributeType": "S"}])
        models.bind(lambda name: name, "us-east-1")
        self.ledger = ImageBuildRepository()
        self.now = [datetime(2026, 1, 1, tzinfo=timezone.utc)]
        self.s3 = boto3.client("s3", region_name="us-east-1")
        self.s3.create_bucket(Bucket="data")
        self.codebuild = boto3.client("codebuild", region_name="us-east-1")
        self.codebuild.create_project(
            # infra's project is NO_SOURCE; moto 5.2.5 wrongly requires a location for it, so S3 here.
            name="kilele-images", source={"type": "S3", "location": "data/builder.zip"},
            artifacts={"type": "NO_ARTIFACTS"},
            environment={"type": "LINUX_CONTAINER", "image": "aws/codebuild/standard:7.0",
                         "computeType": "BUILD_GENERAL1_SMALL", "privilegedMode": True},
            serviceRole="arn:aws:iam::123456789012:role/kilele-images",
        )
        self.blobs = BlobStore("data", self.s3)
        bases = {ImageBase.WORKER: "123456789012.dkr.ecr.us-east-1.amazonaws.com/kilele-worker:1",
                 ImageBase.INFERENCE: "123456789012.dkr.ecr.us-east-1.amazonaws.com/kilele-inference:1"}
        self.started: list[dict[str, Any]] = []
        real: Callable[..., Any] = self.codebuild.start_build

        def counted(**kwargs: Any) -> Any:  # the StartBuild requests sent (moto keeps no count)
            self.started.append(kwargs)
            return real(**kwargs)

        self.codebuild.start_build = counted
        self.builder = CodeBuildImageBuilder("kilele-images", self.REPOSITORY, bases, self.blobs, self.codebuild,
                                             self.ledger, clock=lambda: self.now[0])

    def builds_made(self) -> int:
        return len(self.started)

    def complete(self, build_id: str, freeze: list[str]) -> None:
        # What the buildspec's post_build does on a real build (moto runs none): write the freeze.
        key = build_id.partition("@")[0].rpartition(":")[2]
        self.blobs.put_bytes(self.builder.freeze_key(key), ("\n".join(freeze) + "\n").encode())

    def record_base(self) -> None:
        # What a build of the empty set records (a real one: the base image's pip freeze).
        from chalicelib.entities.images import content_key

        freeze = "".join(f"{n}=={v}\n" for n, v in installed_versions(runtime_site_packages()).items())
        self.blobs.put_bytes(self.builder.freeze_key(content_key(ImageBase.WORKER, ())), freeze.encode())

    def close(self) -> None:
        self._mock.stop()


@pytest.fixture(params=["local", "codebuild"])
def twin(request: Any, tmp_path: Path) -> Iterator[Any]:
    made = LocalTwin(tmp_path / "images") if request.param == "local" else CodeBuildTwin()
    made.name = request.param
    yield made
    made.close()


def test_start_answers_at_once_and_the_build_ends_ready_with_its_freeze(twin: Any) -> None:
    started = time.monotonic()
    build_id = twin.builder.start(ImageBase.WORKER, SIX_OLD)
    assert time.monotonic() - started < 2.0, "start must not build in the caller's thread"
    # Before any poll: moto's build is over at once, and a finished build that wrote no freeze
    # is recorded FAILED (on AWS the freeze is written before the build can end SUCCEEDED).
    twin.complete(build_id, ["six==1.16.0", "numpy==2.0.0"])
    assert twin.builder.poll(build_id).state in set(BuildState)
    build = wait_final(twin.builder, build_id)
    assert build.state is BuildState.READY, (build.reason, build.log)
    assert parse_freeze(list(build.pip_freeze))["six"] == "1.16.0"
    assert build.image_ref


def test_a_set_built_before_is_ready_again_with_the_same_image(twin: Any) -> None:
    first = twin.builder.start(ImageBase.WORKER, SIX_OLD)
    twin.complete(first, ["six==1.16.0"])
    built = wait_final(twin.builder, first)
    assert built.state is BuildState.READY, (built.reason, built.log)

    again = twin.builder.start(ImageBase.WORKER, SIX_OLD)
    rebuilt = wait_final(twin.builder, again)
    assert rebuilt.state is BuildState.READY
    assert (rebuilt.image_ref, rebuilt.pip_freeze) == (built.image_ref, built.pip_freeze)
    assert "reused" in rebuilt.log and "pip install" not in rebuilt.log  # not built again


def test_a_build_that_made_no_image_is_failed_with_a_reason_never_ready(twin: Any) -> None:
    # local: pip cannot resolve the package; codebuild: moto's build "succeeds" and writes nothing.
    build_id = twin.builder.start(ImageBase.WORKER, MISSING)
    build = wait_final(twin.builder, build_id)
    assert build.state is BuildState.FAILED
    assert build.reason and not build.image_ref and not build.pip_freeze
    if twin.name == "local":
        assert "kilele-no-such-package-xyz" in build.log  # pip's own words
    else:
        assert "no pip freeze" in build.reason


def test_concurrent_requests_for_one_set_build_it_once_and_all_see_ready(twin: Any) -> None:
    n = 6
    with ThreadPoolExecutor(max_workers=n) as pool:
        ids = list(pool.map(lambda _: twin.builder.start(ImageBase.WORKER, SIX_OLD), range(n)))
    assert len(ids) == n
    for build_id in ids:
        twin.complete(build_id, ["six==1.16.0"])
    builds = [wait_final(twin.builder, i) for i in ids]
    assert [b.state for b in builds] == [BuildState.READY] * n, [(b.reason, b.log) for b in builds]
    assert len({b.image_ref for b in builds}) == 1
    assert twin.builds_made() == 1


@pytest.mark.parametrize("build_id", ["nope", "0" * 32, "cached:worker:" + "0" * 32, "0" * 32 + "@kilele-images:x"])
def test_an_unknown_build_is_not_found(twin: Any, build_id: str) -> None:
    with pytest.raises(NotFound):
        twin.builder.poll(build_id)


def test_satisfied_by_base_only_when_the_base_has_every_requirement_at_an_allowed_version(twin: Any) -> None:
    import six

    have = normalise([PipRequirement.parse("six", f"=={six.__version__}"), PipRequirement.parse("pynamodb")])
    twin.record_base()
    assert twin.builder.satisfied_by_base(ImageBase.WORKER, have) is True
    assert twin.builder.satisfied_by_base(ImageBase.WORKER, ()) is True
    assert twin.builder.satisfied_by_base(ImageBase.WORKER, SIX_OLD) is False  # another version: an image
    assert twin.builder.satisfied_by_base(ImageBase.WORKER, MISSING) is False


def test_codebuild_cannot_tell_what_the_base_has_before_its_freeze_is_recorded() -> None:
    twin = CodeBuildTwin()
    try:
        assert twin.builder.satisfied_by_base(ImageBase.WORKER, normalise([PipRequirement.parse("six")])) is False
    finally:
        twin.close()


# -- the local twin's own guarantees -------------------------------------------------------------


def test_local_the_pinned_older_version_is_the_one_imported_inside_the_image(tmp_path: Path) -> None:
    import subprocess

    import six

    assert six.__version__ != "1.16.0", "the runtime must have another six for this test to mean anything"
    builder = LocalImageBuilder(tmp_path, python=sys._base_executable)
    try:
        build = wait_final(builder, builder.start(ImageBase.WORKER, SIX_OLD))
    finally:
        builder.close()
    assert build.state is BuildState.READY, (build.reason, build.log)
    python = Path(build.image_ref.removeprefix("venv://")) / "bin" / "python"
    out = subprocess.run([str(python), "-c", "import six, pynamodb; print(six.__version__)"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == "1.16.0"  # the image's six, and the runtime's pynamodb still importable
    # The platform's own packages (installed editable in the runtime: their .pth files must run)
    # import in the image: the worker and the inference server run there.
    out = subprocess.run([str(python), "-c", "import kilele_worker, kilele_inference, kilele.sandbox"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "--only-binary=:all:" in build.log  # no sdist's setup code runs on the stack's machine


def test_local_concurrent_requests_for_one_set_build_it_once(tmp_path: Path) -> None:
    builder = LocalImageBuilder(tmp_path, python=sys._base_executable, max_parallel=2)
    try:
        ids = [builder.start(ImageBase.WORKER, SIX_OLD) for _ in range(2)]
        builds = [wait_final(builder, i) for i in ids]
    finally:
        builder.close()
    assert [b.state for b in builds] == [BuildState.READY] * 2
    assert sum("reused" in b.log for b in builds) == 1
    assert sum("pip install" in b.log for b in builds) == 1
    assert len(list((tmp_path / "envs").iterdir())) == 1


def test_local_a_failed_build_leaves_no_half_built_environment(tmp_path: Path) -> None:
    builder = LocalImageBuilder(tmp_path, python=sys._base_executable)
    try:
        build = wait_final(builder, builder.start(ImageBase.WORKER, MISSING))
    finally:
        builder.close()
    assert build.state is BuildState.FAILED
    assert list((tmp_path / "envs").iterdir()) == [] and list((tmp_path / "images").iterdir()) == []


def test_local_a_build_cut_short_by_a_stopped_stack_is_failed(tmp_path: Path) -> None:
    gate = threading.Event()
    builder = LocalImageBuilder(tmp_path, python=sys._base_executable, max_parallel=1)
    builder._pool.submit(gate.wait)  # occupy the only worker so the build stays queued
    build_id = builder.start(ImageBase.WORKER, SIX_OLD)
    builder.close(wait=False)
    gate.set()
    build = builder.poll(build_id)
    assert build.state is BuildState.FAILED and "stopped" in build.reason


def test_codebuild_start_passes_the_set_and_where_to_record_its_freeze() -> None:
    twin = CodeBuildTwin()
    try:
        build_id = twin.builder.start(ImageBase.INFERENCE, SIX_OLD)
        # the request moto drops: checked as sent
        variables = {v["name"]: v["value"] for v in twin.started[0]["environmentVariablesOverride"]}
        key = build_id.partition("@")[0]
        assert variables == {"BASE_IMAGE": "123456789012.dkr.ecr.us-east-1.amazonaws.com/kilele-inference:1",
                             "IMAGE_USER": "kilele-model", "IMAGE_TAG": key, "REQUIREMENTS": "six==1.16.0",
                             "FREEZE_KEY": twin.builder.freeze_key(key)}
    finally:
        twin.close()


# -- the CodeBuild twin: build-state events and the ledger ---------------------------------------


def _event(twin: CodeBuildTwin, build_id: str, status: str, project: str = "kilele-images") -> dict[str, Any]:
    """The ``detail`` of CodeBuild's "Build State Change" event for ``build_id`` (its documented shape)."""
    key, _, codebuild_id = build_id.partition("@")
    codebuild_id = codebuild_id or twin.ledger.get(key).codebuild_id
    variables = {v["name"]: v["value"] for v in twin.started[-1]["environmentVariablesOverride"]}
    return {
        "build-status": status, "project-name": project,
        "build-id": f"arn:aws:codebuild:us-east-1:123456789012:build/{codebuild_id}",
        "additional-information": {
            "environment": {"environment-variables": [{"name": k, "value": v, "type": "PLAINTEXT"}
                                                      for k, v in variables.items()]},
            "phases": [{"phase-type": "SUBMITTED", "phase-status": "SUCCEEDED"},
                       {"phase-type": "BUILD", "phase-status": "FAILED"}],
            "logs": {"deep-link": "https://console.aws.amazon.com/cloudwatch/home#logEvent:group=x;stream=y"},
        },
    }


def test_codebuild_a_build_that_died_is_failed_from_its_event_with_its_log_link() -> None:
    twin = CodeBuildTwin()
    try:
        first = twin.builder.start(ImageBase.WORKER, SIX_OLD)
        joined = twin.builder.start(ImageBase.WORKER, SIX_OLD)
        assert joined.endswith("@") and twin.builds_made() == 1
        key = twin.builder.record_event(_event(twin, first, "TIMED_OUT"))
        assert key == first.partition("@")[0]
        # moto calls every build SUCCEEDED: FAILED here can only come from the recorded event.
        for build_id in (first, joined):
            build = twin.builder.poll(build_id)
            assert build.state is BuildState.FAILED
            assert "TIMED_OUT in its BUILD phase" in build.reason and "console.aws.amazon.com" in build.reason
        # A set whose build failed is built again by the next request.
        again = twin.builder.start(ImageBase.WORKER, SIX_OLD)
        assert not again.endswith("@") and twin.builds_made() == 2
    finally:
        twin.close()


def test_codebuild_a_succeeded_event_without_a_freeze_is_failed_and_foreign_events_are_ignored() -> None:
    twin = CodeBuildTwin()
    try:
        build_id = twin.builder.start(ImageBase.WORKER, SIX_OLD)
        assert twin.builder.record_event(_event(twin, build_id, "SUCCEEDED", project="someone-else")) is None
        not_ours = _event(twin, build_id, "FAILED")
        not_ours["additional-information"]["environment"]["environment-variables"] = [
            {"name": "IMAGE_TAG", "value": "0" * 32}]  # a platform-image build: no FREEZE_KEY
        assert twin.builder.record_event(not_ours) is None
        assert twin.builder.record_event(_event(twin, build_id, "SUCCEEDED")) is not None
        build = twin.builder.poll(build_id)
        assert build.state is BuildState.FAILED and "no pip freeze" in build.reason
    finally:
        twin.close()


def test_codebuild_a_claim_that_never_started_a_build_is_failed_then_claimed_again() -> None:
    twin = CodeBuildTwin()
    try:
        key = content_key(ImageBase.WORKER, SIX_OLD)
        assert twin.ledger.claim(key, "dead-request", twin.now[0], twin.now[0] - timedelta(minutes=5)) is None
        joined = twin.builder.start(ImageBase.WORKER, SIX_OLD)
        assert joined == f"{key}@" and twin.builds_made() == 0
        assert twin.builder.poll(joined).state is BuildState.PENDING
        twin.now[0] += timedelta(minutes=6)
        assert twin.builder.poll(joined).state is BuildState.FAILED
        fresh = twin.builder.start(ImageBase.WORKER, SIX_OLD)
        assert fresh.startswith(f"{key}@kilele-images:") and twin.builds_made() == 1
    finally:
        twin.close()
