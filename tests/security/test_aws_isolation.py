"""What isolates model code on AWS, as far as it can be checked here: the SageMaker models the
platform creates have network isolation, and the inference images run as a non-root user.
(The IAM and instance-metadata side is in tests/infra/test_synth.py.)"""
from __future__ import annotations

import re
from typing import Any

from moto import mock_aws

from chalicelib.adapters.aws import AwsClients
from chalicelib.adapters.endpoints.sagemaker import SageMakerEndpointRunner
from settings_support import make_settings

from security_support import ROOT


class Recording:
    """A boto3 client that records every call (moto drops EnableNetworkIsolation on models)."""

    def __init__(self, client: Any):
        self.client, self.calls = client, []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.client, name)

        def call(**kwargs: Any) -> Any:
            self.calls.append((name, kwargs))
            return method(**kwargs)

        return call


def test_sagemaker_models_have_network_isolation():
    with mock_aws():
        settings = make_settings(sagemaker_image_uri="inference:cpu",
                                 sagemaker_gpu_image_uri="inference:gpu",
                                 sagemaker_role_arn="arn:aws:iam::123456789012:role/kilele-sagemaker")
        aws = AwsClients(settings.region)
        aws.client("s3").create_bucket(Bucket=settings.data_bucket)
        recording = Recording(aws.client("sagemaker"))
        runner = SageMakerEndpointRunner(settings.data_bucket, settings.sagemaker_image_uri,
                                         settings.sagemaker_gpu_image_uri, settings.sagemaker_role_arn,
                                         sagemaker=recording, autoscaling=aws.client("application-autoscaling"))
        runner.deploy("kilele-test-isolated", "bundles/x/bundle.tar.gz")
        runner.deploy("kilele-test-isolated-gpu", "bundles/x/bundle.tar.gz", gpu=True)
    models = [kwargs for name, kwargs in recording.calls if name == "create_model"]
    assert len(models) == 2 and all(m.get("EnableNetworkIsolation") is True for m in models), \
        "a SageMaker model without network isolation: its model code could reach the network and the role's S3"


def test_inference_images_run_as_a_non_root_user():
    for name in ("Dockerfile", "Dockerfile.gpu"):
        text = (ROOT / "containers" / "inference" / name).read_text()
        users = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
        assert users and users[-1] not in ("root", "0"), f"containers/inference/{name} runs as root"
