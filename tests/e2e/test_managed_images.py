"""End-to-end: seed 002's managed-image calls on the real local stack, through RIMEClient. One
image with a small pure-Python package from the package registry that the worker runtime lacks
(inflection), built for real (a layered virtual environment), waited for READY, found by a
pip_library_filter on what was installed, and not found by a version it does not have."""
from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

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


def test_a_dozen_images_of_one_set_build_once_list_by_filters_and_pages_and_a_bad_requirement_fails(
        stack, make_user, capsys):
    """Issue 11's e2e: twelve images asked for at once with one requirement set are one build (one
    pip run in the builder's log folder, one image for all); filters on installed versions,
    intersected; stable pages of 5; a requirement pip cannot resolve ends FAILED with pip's output."""
    developer = make_user("APP_DEVELOPER")
    domain = stack.url.removeprefix("http://")

    def rime() -> RIMEClient:
        client = RIMEClient(domain=domain)
        client.token = developer.token
        return client

    tag = uuid.uuid4().hex[:8]
    names = [f"dozen-{tag}-{i:02d}" for i in range(12)]
    requirement = [RIMEClient.pip_requirement("inflection", "==0.5.0")]  # a set no other test builds

    def create(name: str):
        client = rime()
        try:
            return client.create_managed_image(name, requirement).get_status(wait_until_finish=True, poll_rate_sec=0.5)
        finally:
            client.close()

    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(create, names))
    assert [s["status"] for s in statuses] == ["READY"] * 12, statuses
    assert len({s["image_ref"] for s in statuses}) == 1  # one image for the twelve
    builds = [log for log in (stack.data_dir / "images" / "builds").glob("*.log")
              if "inflection==0.5.0" in log.read_text(errors="replace") and "installed:" in log.read_text(errors="replace")]
    assert len(builds) == 1, [b.name for b in builds]  # pip ran once

    client = rime()
    mine = [client.pip_library_filter("inflection", "0.5.0")]
    seen, token, pages = [], "", 0
    while True:
        images, token = client.list_managed_images(pip_library_filters=mine, page_token=token, page_size=5)
        seen += [i["name"] for i in images]
        pages += 1
        if not token:
            break
    assert pages == 3 and seen == names  # in name order, each once
    both = mine + [client.pip_library_filter("scikit-learn")]  # the runtime's, layered under every image
    assert [i["name"] for i in client.list_managed_images(pip_library_filters=both, page_size=100)[0]] == names
    none = mine + [client.pip_library_filter("scikit-learn", "0.0.1")]
    assert client.list_managed_images(pip_library_filters=none)[0] == []

    bad = client.create_managed_image(f"bad-{tag}", [client.pip_requirement(f"kilele-no-such-package-{tag}", "==1.0")])
    status = bad.get_status(verbose=True, wait_until_finish=True, poll_rate_sec=0.5)
    assert status["status"] == "FAILED" and status["error"]
    assert f"kilele-no-such-package-{tag}" in bad.get_logs()  # pip's own words, one call away
    assert "build log of managed image" in capsys.readouterr().out
    for name in names + [f"bad-{tag}"]:
        client.delete_managed_image(name)
    client.close()
