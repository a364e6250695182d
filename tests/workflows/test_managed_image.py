"""The managed-image state machine, executed by moto with the real handlers (the Lambda shim) and
the real local image builder: it follows a build to READY and records it without anyone reading
the image, and an image whose build cannot be followed ends FAILED saying why."""
from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Any, Iterator


@contextmanager
def images_followed_by_the_workflow(platform: Any, tmp_path: Any) -> Iterator[Any]:
    """The platform's services with a local image builder in ``tmp_path`` and no wait between polls."""
    from chalicelib import wiring
    from chalicelib.adapters.images.local import LocalImageBuilder

    builder = LocalImageBuilder(tmp_path, python=sys._base_executable)
    services = wiring.build(platform.services.settings.with_values(image_poll_seconds=0), aws=platform.services.aws,
                            image_builder=builder)
    previous = wiring.install(services)
    try:
        yield services
    finally:
        wiring.install(previous)
        services.close()


def developer(services: Any) -> Any:
    from chalicelib.entities import UserType

    admin = services.users.ensure_superadmin("root@wf", "secret1")
    email = f"imager{time.monotonic_ns()}@wf"
    services.users.create_user(admin, email, "Tr4in-the-Model!", UserType.APP_DEVELOPER)
    return services.auth._users.get(email)


def stored(name: str) -> Any:
    """The record as stored: read without the service, which would record the build's state itself."""
    from chalicelib.store.images import ManagedImageRepository

    return ManagedImageRepository().get(name)


def wait_until(condition: Any, what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what} did not happen within {timeout} s")


def executions(services: Any) -> list[dict]:
    sfn = services.aws.client("stepfunctions")
    return sfn.list_executions(stateMachineArn=services.settings.managed_image_state_machine_arn)["executions"]


def test_the_workflow_follows_a_build_to_ready_and_records_its_freeze(platform, tmp_path):
    with images_followed_by_the_workflow(platform, tmp_path) as services:
        name = f"base-{time.monotonic_ns()}"
        services.managed_images.create_managed_image(developer(services), name, [])  # the runtime as it is
        image = wait_until(lambda: (i := stored(name)) and i.status.final and i, "the build's end recorded")
        assert image.status.value == "READY", image.error
        assert "pynamodb" in image.installed and image.image_ref.startswith("venv://")
        wait_until(lambda: any(e["status"] == "SUCCEEDED" for e in executions(services)), "the execution's end")


def test_an_image_whose_build_cannot_be_followed_ends_failed_saying_why(platform, tmp_path):
    from datetime import datetime, timezone

    from chalicelib.entities.images import BuildState, ImageBase, ManagedImage

    with images_followed_by_the_workflow(platform, tmp_path) as services:
        # A record whose build the builder never heard of (lost), followed by the workflow.
        name = f"lost-{time.monotonic_ns()}"
        services.managed_images._images.add(ManagedImage(
            name=name, owner_id="u", base=ImageBase.WORKER, requirements=(), content_key="k",
            status=BuildState.BUILDING, created_at=datetime.now(timezone.utc), build_id="0" * 32))
        services.managed_images._workflows.start(f"image-{name}", {"name": name, "poll_seconds": 0})
        image = wait_until(lambda: (i := stored(name)) and i.status is BuildState.FAILED and i,
                           "the failure recorded")
        assert image.error.startswith("following the build failed: NotFound")
        wait_until(lambda: any(e["name"] == f"image-{name}" and e["status"] == "FAILED" for e in executions(services)),
                   "the execution's failure")
