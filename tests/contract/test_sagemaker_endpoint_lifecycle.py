"""Issue 13, finding 2 against moto's SageMaker and Application Auto Scaling: autoscaling is
registered once the endpoint is InService (never while it is Creating, which AWS refuses), a
deploy that fails deletes what it created, delete removes the scalable target too, and
``names`` finds what earlier failures left (for ``cleanup_endpoints``)."""
from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from chalicelib import wiring
from chalicelib.adapters.aws import AwsClients
from chalicelib.adapters.endpoints.sagemaker import SageMakerEndpointRunner
from settings_support import make_settings

ROLE = "arn:aws:iam::123456789012:role/kilele-sagemaker"
BUNDLE_KEY = "bundles/j/bundle.tar.gz"
RESOURCE = "endpoint/{}/variant/AllTraffic"


class _FailingCreateEndpoint:
    """moto's SageMaker client whose CreateEndpoint fails as an account at its limit does."""

    def __init__(self, client: Any):
        self._client = client

    def create_endpoint(self, **kwargs: Any) -> Any:
        raise ClientError({"Error": {"Code": "ResourceLimitExceeded", "Message": "ml.c5.large for endpoint usage"}},
                          "CreateEndpoint")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


@pytest.fixture
def aws():
    with mock_aws():
        settings = make_settings(endpoints_uri="sagemaker://", sagemaker_image_uri="inference:cpu",
                                 sagemaker_gpu_image_uri="inference:gpu", sagemaker_role_arn=ROLE)
        clients = AwsClients(settings.region)
        runner = wiring.endpoint_runner(settings, None, clients)
        assert isinstance(runner, SageMakerEndpointRunner)
        yield clients, runner


def _targets(aws: AwsClients) -> list[str]:
    found = aws.client("application-autoscaling").describe_scalable_targets(ServiceNamespace="sagemaker")
    return sorted(t["ResourceId"] for t in found["ScalableTargets"])


def test_autoscaling_is_registered_once_the_endpoint_is_in_service(aws):
    clients, runner = aws
    runner.deploy("kilele-test-a", BUNDLE_KEY)
    assert _targets(clients) == []  # the endpoint is Creating on AWS: no scalable target yet
    assert runner.state("kilele-test-a").status == "InService"  # moto's endpoints are InService at once
    assert _targets(clients) == [RESOURCE.format("kilele-test-a")]
    policies = clients.client("application-autoscaling").describe_scaling_policies(ServiceNamespace="sagemaker")
    assert len(policies["ScalingPolicies"]) == 1
    runner.state("kilele-test-a")  # registered once
    assert _targets(clients) == [RESOURCE.format("kilele-test-a")]


def test_a_failed_deploy_leaves_no_model_config_or_endpoint(aws):
    clients, runner = aws
    runner._sm = _FailingCreateEndpoint(clients.client("sagemaker"))
    with pytest.raises(ClientError, match="ResourceLimitExceeded"):
        runner.deploy("kilele-test-b", BUNDLE_KEY)
    assert runner.names("kilele-test-") == []


def test_delete_removes_the_endpoint_its_config_model_and_scalable_target(aws):
    clients, runner = aws
    runner.deploy("kilele-test-c", BUNDLE_KEY)
    runner.state("kilele-test-c")
    runner.delete("kilele-test-c")
    assert runner.names("kilele-test-") == [] and _targets(clients) == []
    runner.delete("kilele-test-c")  # twice is harmless


def test_names_finds_leftovers_of_this_prefix_only(aws):
    clients, runner = aws
    sm = clients.client("sagemaker")
    runner.deploy("kilele-test-d", BUNDLE_KEY)
    # A model left alone by an earlier failure (before deploys cleaned up), another stage's endpoint.
    sm.create_model(ModelName="kilele-test-orphan", ExecutionRoleArn=ROLE,
                    PrimaryContainer={"Image": "inference:cpu"})
    runner.deploy("kilele-prod-e", BUNDLE_KEY)
    assert runner.names("kilele-test-") == ["kilele-test-d", "kilele-test-orphan"]
    runner.delete("kilele-test-orphan")
    assert runner.names("kilele-test-") == ["kilele-test-d"]
