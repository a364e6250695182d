"""SageMaker real-time endpoints: the AWS twin of :class:`chalicelib.ports.EndpointRunner`
(the local twin, an inference-server process per endpoint, is ``local.py`` beside this file)."""
from __future__ import annotations

import logging
import math
import time
from typing import Any, Callable, Optional

from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError, ReadTimeoutError
from botocore.exceptions import ConnectionError as BotoConnectionError

from chalicelib.adapters.endpoints.invocations import deadline_ms, invocation_error
from chalicelib.ports import EndpointState, EndpointTimeout, EndpointUnavailable

RuntimeClients = Callable[[float], Any]
log = logging.getLogger(__name__)
_SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"


def _scalable_resource(name: str) -> str:
    return f"endpoint/{name}/variant/AllTraffic"


#: Read timeouts are rounded up to this step (seconds): botocore takes a float, fixed per client,
#: so a process holds one sagemaker-runtime client per step in use (apps' SLOs), each reused.
TIMEOUT_STEP_SECONDS = 0.1
#: More connections than botocore's 10: the queue consumer predicts from several threads.
MAX_POOL_CONNECTIONS = 50


def timeout_step(seconds: float) -> float:
    """``seconds`` rounded up to the next :data:`TIMEOUT_STEP_SECONDS` (at least one step)."""
    return max(1, math.ceil(round(seconds / TIMEOUT_STEP_SECONDS, 6))) * TIMEOUT_STEP_SECONDS


def runtime_clients(aws: Any) -> RuntimeClients:
    """sagemaker-runtime clients from :class:`~chalicelib.adapters.aws.AwsClients` by read
    timeout (:func:`timeout_step`): each is created once per process and reused with its
    connections, so a predict call costs no new client and no new TLS connection, and an SLO
    under a second is a read timeout under a second (it was rounded up to 1 s)."""
    def client(read_timeout_seconds: float) -> Any:
        step = timeout_step(read_timeout_seconds)
        config = Config(read_timeout=step, connect_timeout=min(step, 2.0), retries={"max_attempts": 0},
                        max_pool_connections=MAX_POOL_CONNECTIONS)
        return aws.client("sagemaker-runtime", config=config, variant=f"read-timeout-{step:.1f}")

    return client


_SAGEMAKER_STATES = {"Creating": "Creating", "Updating": "InService", "SystemUpdating": "InService",
                     "RollingBack": "InService", "InService": "InService", "Failed": "Failed",
                     "Deleting": "Deleted", "OutOfService": "Failed"}


class SageMakerEndpointRunner:
    """A SageMaker real-time endpoint per inference job (the inference image, the bundle as
    model data), with target-tracking autoscaling; serverless inference on request.

    Restarts: SageMaker polls the container's /ping and replaces an instance that fails it by
    itself; DescribeEndpoint says the endpoint's status and FailureReason, not how often an
    instance was replaced. So :meth:`state` reports the status and reason and leaves
    ``restarts`` None ("cannot say"): the local twin's count has no AWS counterpart to read, and
    none is made up (the container's CloudWatch logs show each start)."""

    def __init__(self, bucket: str, image_uri: str, gpu_image_uri: str, role_arn: str,
                 instance_type: str = "ml.c5.large", gpu_instance_type: str = "ml.g4dn.xlarge",
                 max_instances: int = 4, invocations_per_instance: int = 200, serverless: bool = False,
                 sagemaker: Any = None, runtime: Optional[RuntimeClients] = None, autoscaling: Any = None):
        self.bucket, self.image_uri, self.gpu_image_uri, self.role_arn = bucket, image_uri, gpu_image_uri, role_arn
        self.instance_type, self.gpu_instance_type = instance_type, gpu_instance_type
        self.max_instances, self.invocations_per_instance, self.serverless = max_instances, invocations_per_instance, serverless
        self._sm = sagemaker
        self._runtime = runtime
        self._autoscaling = autoscaling
        self._autoscaled: set[str] = set()  # endpoints seen InService with their scaling registered

    def deploy(self, name: str, bundle_key: str, gpu: bool = False, image: Optional[str] = None) -> None:
        # A managed image (an ECR URI: the inference image plus the models' dependencies) replaces
        # the inference image; it was built FROM it, so it serves the bundle the same way.
        self._sm.create_model(
            ModelName=name,
            ExecutionRoleArn=self.role_arn,
            PrimaryContainer={"Image": image or (self.gpu_image_uri if gpu else self.image_uri),
                              "ModelDataUrl": f"s3://{self.bucket}/{bundle_key}"},
            # The container (model code) gets no network at all: SageMaker itself delivers the
            # bundle from S3, and the role's credentials never reach the container.
            EnableNetworkIsolation=True,
        )
        variant: dict[str, Any] = {"VariantName": "AllTraffic", "ModelName": name}
        if self.serverless and not gpu:
            variant["ServerlessConfig"] = {"MemorySizeInMB": 2048, "MaxConcurrency": 20}
        else:
            variant.update(InitialInstanceCount=1,
                           InstanceType=self.gpu_instance_type if gpu else self.instance_type)
        try:
            self._sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant])
            self._sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
        except Exception:
            # Nothing half-made is left billing or blocking the name: delete what was created.
            self._delete_quietly(name)
            raise
        # Autoscaling is registered once the endpoint is InService (see state()): Application
        # Auto Scaling refuses a variant whose endpoint is still Creating (issue 13, finding 2).

    def _delete_quietly(self, name: str) -> None:
        try:
            self.delete(name)
        except Exception as e:  # noqa: BLE001 - the deploy's own error is the one to raise
            log.warning("endpoint %s: could not delete what a failed deploy created: %s", name, e)

    def _ensure_autoscaling(self, name: str, described: dict[str, Any]) -> None:
        """Register the variant's scaling once its endpoint is InService (serverless variants
        scale by themselves); a failure is logged and tried again at the next state()."""
        if name in self._autoscaled:
            return
        try:
            config = self._sm.describe_endpoint_config(EndpointConfigName=described["EndpointConfigName"])
            if any("ServerlessConfig" in v for v in config["ProductionVariants"]):
                self._autoscaled.add(name)
                return
            registered = self._autoscaling.describe_scalable_targets(
                ServiceNamespace="sagemaker", ResourceIds=[_scalable_resource(name)],
                ScalableDimension=_SCALABLE_DIMENSION)["ScalableTargets"]
            if not registered:
                self._autoscale(name)
        except ClientError as e:
            log.warning("endpoint %s: autoscaling not registered yet (%s); tried again at the next read",
                        name, e.response["Error"]["Code"])
            return
        self._autoscaled.add(name)

    def _autoscale(self, name: str) -> None:
        autoscaling = self._autoscaling
        resource = _scalable_resource(name)
        autoscaling.register_scalable_target(
            ServiceNamespace="sagemaker", ResourceId=resource,
            ScalableDimension="sagemaker:variant:DesiredInstanceCount",
            MinCapacity=1, MaxCapacity=self.max_instances,
        )
        autoscaling.put_scaling_policy(
            PolicyName=f"{name}-invocations", ServiceNamespace="sagemaker", ResourceId=resource,
            ScalableDimension="sagemaker:variant:DesiredInstanceCount", PolicyType="TargetTrackingScaling",
            TargetTrackingScalingPolicyConfiguration={
                "TargetValue": float(self.invocations_per_instance),
                "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
                "ScaleInCooldown": 300, "ScaleOutCooldown": 60,
            },
        )

    def state(self, name: str) -> EndpointState:
        try:
            described = self._sm.describe_endpoint(EndpointName=name)
        except ClientError as e:
            if e.response["Error"]["Code"] == "ValidationException":  # no such endpoint
                return EndpointState("Deleted")
            raise
        status = _SAGEMAKER_STATES.get(described["EndpointStatus"], "Creating")
        if status == "InService":
            self._ensure_autoscaling(name, described)
        return EndpointState(status, described.get("FailureReason"))

    def invoke(self, name: str, body: bytes, timeout_seconds: float) -> bytes:
        runtime = self._runtime(timeout_seconds)
        started = time.monotonic()
        try:
            # The deadline reaches the container as X-Amzn-SageMaker-Custom-Attributes.
            response = runtime.invoke_endpoint(EndpointName=name, Body=body, ContentType="application/json",
                                               CustomAttributes=f"deadline_ms={deadline_ms(timeout_seconds)}")
        except ReadTimeoutError as e:
            raise EndpointTimeout(f"the endpoint did not answer within {timeout_seconds:g} s") from e
        except (BotoConnectionError, HTTPClientError) as e:
            # No connection, or it broke mid-request (ReadTimeoutError, caught above, is an
            # HTTPClientError too): the endpoint cannot be reached, which is not the client's fault.
            raise EndpointUnavailable(f"the endpoint is unreachable: {e}") from e
        except ClientError as e:
            code = e.response["Error"]["Code"]
            if code == "ModelError":  # the container answered an error: the server's own body
                status = int(e.response.get("OriginalStatusCode", 500))
                message = e.response.get("OriginalMessage") or e.response["Error"].get("Message", "")
                failure = invocation_error(status, message)
                if not isinstance(failure, EndpointUnavailable):
                    raise failure from e
            raise EndpointUnavailable(f"the endpoint failed: {code}") from e
        try:
            body = response["Body"].read()
        except (BotoConnectionError, HTTPClientError) as e:  # the body's read timed out or broke
            raise EndpointTimeout(f"the endpoint's answer did not arrive within {timeout_seconds:g} s") from e
        # The read timeout bounds each socket read, not the call: the deadline is checked around it.
        if time.monotonic() - started > timeout_step(timeout_seconds):
            raise EndpointTimeout(f"the endpoint answered after the deadline of {timeout_seconds:g} s")
        return body

    def names(self, prefix: str) -> list[str]:
        """Every endpoint, endpoint config and model whose name starts with ``prefix``."""
        found: set[str] = set()
        for operation, items, key in (("list_endpoints", "Endpoints", "EndpointName"),
                                      ("list_endpoint_configs", "EndpointConfigs", "EndpointConfigName"),
                                      ("list_models", "Models", "ModelName")):
            for page in self._sm.get_paginator(operation).paginate(NameContains=prefix):
                found.update(item[key] for item in page[items] if item[key].startswith(prefix))
        return sorted(found)

    def delete(self, name: str) -> None:
        """Delete the endpoint, its config, its model and its scalable target (each if present)."""
        try:
            self._autoscaling.deregister_scalable_target(
                ServiceNamespace="sagemaker", ResourceId=_scalable_resource(name), ScalableDimension=_SCALABLE_DIMENSION)
        except ClientError as e:
            if e.response["Error"]["Code"] not in ("ObjectNotFoundException", "ValidationException"):
                raise
        self._autoscaled.discard(name)
        for call, key in ((self._sm.delete_endpoint, "EndpointName"),
                          (self._sm.delete_endpoint_config, "EndpointConfigName"),
                          (self._sm.delete_model, "ModelName")):
            try:
                call(**{key: name})
            except ClientError as e:
                if e.response["Error"]["Code"] != "ValidationException":
                    raise
