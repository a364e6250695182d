"""The AWS endpoint runner against moto's SageMaker and Application Auto Scaling, and the
CloudWatch metrics sink (the local runner is covered end to end in tests/e2e/test_serving.py)."""
from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from chalicelib.adapters.cloudwatch_metrics import CloudWatchMetricsSink
from chalicelib.adapters.endpoints.sagemaker import SageMakerEndpointRunner
from chalicelib.ports import EndpointRejected, EndpointUnavailable

ROLE = "arn:aws:iam::123456789012:role/sagemaker"


@pytest.fixture
def sagemaker():
    with mock_aws():
        yield boto3.client("sagemaker"), boto3.client("application-autoscaling")


def runner(sagemaker, **kwargs) -> SageMakerEndpointRunner:
    sm, autoscaling = sagemaker
    return SageMakerEndpointRunner("bucket", "repo:latest", "repo:latest-gpu", ROLE, sagemaker=sm,
                                   autoscaling=autoscaling, **kwargs)


def test_deploy_creates_model_config_endpoint_and_autoscaling(sagemaker):
    sm, autoscaling = sagemaker
    runner(sagemaker).deploy("kilele-dev-abc", "bundles/abc/bundle.tar.gz", gpu=True)
    container = sm.describe_model(ModelName="kilele-dev-abc")["PrimaryContainer"]
    assert container == {"Image": "repo:latest-gpu", "ModelDataUrl": "s3://bucket/bundles/abc/bundle.tar.gz",
                         **{k: v for k, v in container.items() if k not in ("Image", "ModelDataUrl")}}
    variant = sm.describe_endpoint_config(EndpointConfigName="kilele-dev-abc")["ProductionVariants"][0]
    assert variant["InstanceType"] == "ml.g4dn.xlarge"
    targets = autoscaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    assert [t["ResourceId"] for t in targets] == ["endpoint/kilele-dev-abc/variant/AllTraffic"]
    policies = autoscaling.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"]
    assert policies[0]["PolicyType"] == "TargetTrackingScaling"
    assert runner(sagemaker).state("kilele-dev-abc").status in ("Creating", "InService")


def test_serverless_option_and_delete(sagemaker):
    sm, autoscaling = sagemaker
    serverless = runner(sagemaker, serverless=True)
    serverless.deploy("kilele-dev-srv", "bundles/srv/bundle.tar.gz")
    variant = sm.describe_endpoint_config(EndpointConfigName="kilele-dev-srv")["ProductionVariants"][0]
    assert variant["ServerlessConfig"]["MaxConcurrency"] == 20
    assert autoscaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"] == []
    serverless.delete("kilele-dev-srv")
    serverless.delete("kilele-dev-srv")  # deleting twice is harmless
    assert serverless.state("kilele-dev-srv").status == "Deleted"


def test_invoke_maps_model_errors():
    from botocore.exceptions import ClientError

    class Runtime:
        def __init__(self, status):
            self.status = status

        def invoke_endpoint(self, **kwargs):
            raise ClientError({"Error": {"Code": "ModelError", "Message": "bad"}, "OriginalStatusCode": self.status,
                               "OriginalMessage": json.dumps({"error": {"message": "query 0 is wrong"}})},
                              "InvokeEndpoint")

    rejected = SageMakerEndpointRunner("b", "i", "g", ROLE, sagemaker=object(), runtime=lambda timeout: Runtime(400))
    with pytest.raises(EndpointRejected):
        rejected.invoke("e", b"{}", 1.0)
    broken = SageMakerEndpointRunner("b", "i", "g", ROLE, sagemaker=object(), runtime=lambda timeout: Runtime(500))
    with pytest.raises(EndpointUnavailable):
        broken.invoke("e", b"{}", 1.0)


def test_cloudwatch_sink_writes_one_emf_record(capsys):
    CloudWatchMetricsSink(namespace="KileleTest", stage="dev").emit("iris", 12.5, 3, error=False, default=True)
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    directive = record["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "KileleTest" and ["stage", "app"] in directive["Dimensions"]
    assert record["app"] == "iris" and record["Latency"] == [12.5] and record["Defaults"] == [1.0]
