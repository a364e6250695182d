"""The container-images contract: one suite on both twins of :class:`chalicelib.ports_images.ContainerImages`
(``adapters/images/registry.py``) -- whether an image a user names (a model's docker_image, a
stress test's custom_image) can run as given.

- **ecr**: :class:`EcrContainerImages` against moto's ECR, with an image pushed the way the
  registry records one (``put_image`` of a manifest: moto stores no layers, and DescribeImages
  is what the twin asks).
- **local**: :class:`LocalContainerImages`, which runs none.

The contract: what it accepts comes back as given; what it cannot run is Unprocessable with a
reason naming the field; never an image that does not exist in the registry it checks.
"""
from __future__ import annotations

import json
from typing import Any, Iterator

import boto3
import pytest
from moto import mock_aws

from chalicelib.adapters.images.registry import EcrContainerImages, LocalContainerImages, parse_reference
from chalicelib.errors import Unprocessable

REGISTRY = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
PRESENT = f"{REGISTRY}/team/xgb:1.7"


class EcrTwin:
    runs_images = True

    def __init__(self) -> None:
        self._mock = mock_aws()
        self._mock.start()
        ecr = boto3.client("ecr", region_name="us-east-1")
        ecr.create_repository(repositoryName="team/xgb")
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                    "config": {"digest": "sha256:" + "0" * 64, "size": 1, "mediaType": "x"}, "layers": []}
        ecr.put_image(repositoryName="team/xgb", imageManifest=json.dumps(manifest), imageTag="1.7")
        self.images = EcrContainerImages(lambda: ecr, REGISTRY, ["docker.io", "public.ecr.aws"])

    def close(self) -> None:
        self._mock.stop()


class LocalTwin:
    runs_images = False

    def __init__(self) -> None:
        self.images = LocalContainerImages()

    def close(self) -> None:
        pass


@pytest.fixture(params=["ecr", "local"])
def twin(request: Any) -> Iterator[Any]:
    made = EcrTwin() if request.param == "ecr" else LocalTwin()
    yield made
    made.close()


def test_an_image_present_in_the_registry_runs_as_given_where_images_run(twin: Any) -> None:
    if twin.runs_images:
        assert twin.images.check(PRESENT, "docker_image") == PRESENT
    else:
        with pytest.raises(Unprocessable, match="docker_image: the local stack cannot run"):
            twin.images.check(PRESENT, "docker_image")


@pytest.mark.parametrize("uri", [f"{REGISTRY}/team/xgb:1.8", f"{REGISTRY}/team/missing:1",
                                 f"{REGISTRY}/team/xgb@sha256:{'f' * 64}"])
def test_an_image_missing_from_the_registry_is_refused_saying_so(twin: Any, uri: str) -> None:
    with pytest.raises(Unprocessable, match="custom_image.name"):
        twin.images.check(uri, "custom_image.name")


@pytest.mark.parametrize("uri", ["quay.io/team/xgb:1", "999999999999.dkr.ecr.us-east-1.amazonaws.com/x:1",
                                 "not a reference", ""])
def test_a_registry_the_stack_may_not_pull_from_or_no_reference_is_refused(twin: Any, uri: str) -> None:
    with pytest.raises(Unprocessable, match="docker_image"):
        twin.images.check(uri, "docker_image")


def test_ecr_takes_an_allowed_registrys_image_as_given() -> None:
    twin = EcrTwin()
    try:
        for uri in ("python:3.11-slim", "library/python:3.11", "public.ecr.aws/docker/library/python:3.11"):
            assert twin.images.check(uri, "docker_image") == uri
    finally:
        twin.close()


def test_references_are_read_as_docker_reads_them() -> None:
    assert parse_reference("python:3.11", "x") == ("docker.io", "python", "3.11", None)
    assert parse_reference("team/xgb", "x") == ("docker.io", "team/xgb", None, None)
    assert parse_reference(f"{REGISTRY}/a/b:2", "x") == (REGISTRY, "a/b", "2", None)
    assert parse_reference("localhost:5000/a@sha256:" + "a" * 64, "x")[::3] == ("localhost:5000", "sha256:" + "a" * 64)
