"""End-to-end: seed 002's managed-image calls on the real local stack, through RIMEClient. One
image with a small pure-Python package from the package registry that the worker runtime lacks
(inflection), built for real (a layered virtual environment), waited for READY, found by a
pip_library_filter on what was installed, and not found by a version it does not have."""
from __future__ import annotations

import uuid

import pytest

from kilele.rime import RIMEClient

pytestmark = pytest.mark.slow


def test_create_wait_until_ready_and_list_with_a_filter(stack, make_user, capsys):
    developer = make_user("APP_DEVELOPER")
    rime = RIMEClient(domain=stack.url.removeprefix("http://"))  # a loopback domain: plain HTTP
    rime.token = developer.token

    name = f"inflection-{uuid.uuid4().hex[:8]}"
    builder = rime.create_managed_image(name, [rime.pip_requirement("inflection", "==0.5.1")])
    status = builder.get_status(verbose=True, wait_until_finish=True, poll_rate_sec=0.5)
    assert status["status"] == "READY", builder.get_logs()
    assert "READY" in capsys.readouterr().out

    images, token = rime.list_managed_images(pip_library_filters=[rime.pip_library_filter("inflection", "0.5.1")])
    assert name in [i["name"] for i in images]
    image = next(i for i in images if i["name"] == name)
    assert "inflection==0.5.1" in image["package_requirements"]
    assert "scikit-learn" in {lib["name"] for lib in image["pip_libraries"]}  # the runtime's, layered under it
    missing, _ = rime.list_managed_images(pip_library_filters=[rime.pip_library_filter("inflection", "0.5.0")])
    assert name not in [i["name"] for i in missing]
    rime.delete_managed_image(name)
    rime.close()  # an open keep-alive connection holds the API server's stop for 10 s
