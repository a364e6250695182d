"""The endpoint-runner contract: one suite run against every :class:`chalicelib.ports.EndpointRunner`.

- **sagemaker**: :class:`SageMakerEndpointRunner` as the composition root builds it
  (``sagemaker://``), against moto's SageMaker and Application Auto Scaling.
- **local**: :class:`LocalEndpointRunner` as the composition root builds it (``local://<dir>``):
  real inference-server processes (``python -m kilele_inference``) on 127.0.0.1, serving a real
  bundle (a logistic regression on iris with its ONNX graph, written by the one bundle writer,
  chalicelib.bundle_format) that it reads from a moto S3 bucket through the BlobStore adapter.
- **fake**: tests/fake_endpoints.py's ``FakeEndpoints``, which the API and serving-queue tests
  stand in for the real runners: it must keep the same contract to be a fair stand-in.

The contract: deploy brings the endpoint InService (polled with a bounded wait) with no restart
(or None: a runner that cannot count them says so); an unknown endpoint is Deleted; deleting twice
is harmless and leaves it Deleted. For the runners that serve
here (local, fake): invoke answers ``{"predictions": [...]}`` with one prediction per query, a body
the server refuses is EndpointRejected (4xx), and invoking an unknown or deleted endpoint is
EndpointUnavailable.

SageMaker's invoke cannot be run for real: moto's ``sagemaker-runtime`` answers canned bytes for
any endpoint name, deployed or not. Its side of the invoke contract is covered in the AWS-only
section by mapping tests: the runner's real botocore client talks to a small HTTP server on
127.0.0.1 that answers as SageMaker's runtime does (ModelError with the container's 4xx ->
EndpointRejected, with its 5xx -> EndpointUnavailable, an unknown endpoint -> EndpointUnavailable,
no answer in time -> EndpointTimeout, no connection -> EndpointUnavailable), and moto checks that
the endpoint's answer comes back unchanged.

Restarts (local only; SageMaker replaces failed instances itself and reports its status, never a
restart count): a server killed after it served is Restarting, its invoke EndpointUnavailable,
then after the backoff it is InService again with ``restarts == 1`` and the reason; one that keeps
dying makes the endpoint Failed with the reason; one that never served fails at once.
"""
from __future__ import annotations

import io
import json
import os
import signal
import socket
import tarfile
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
from moto import mock_aws

from chalicelib import bundle_format, wiring
from chalicelib.adapters.aws import AwsClients
from chalicelib.adapters.blobs import BlobStore
from chalicelib.adapters.endpoints.local import LocalEndpointRunner
from chalicelib.adapters.endpoints.sagemaker import SageMakerEndpointRunner, runtime_clients
from chalicelib.bundle_format import BundleMember
from chalicelib.ports import EndpointModelError, EndpointRejected, EndpointTimeout, EndpointUnavailable
from kilele.model import load_model_class, serialize_params

from fake_endpoints import FakeEndpoints
from settings_support import make_settings

ROOT = Path(__file__).resolve().parents[2]
MODELS, DATASETS = ROOT / "examples" / "models", ROOT / "examples" / "datasets"
LOGREG = ("sk_logistic_regression.py", "SkLogisticRegression", {"C": 1.0, "max_iter": 200,
                                                                 "penalty_solver": "l2-lbfgs"})
BUNDLE_KEY = "bundles/contract/bundle.tar.gz"
ROLE = "arn:aws:iam::123456789012:role/kilele-sagemaker"
READY_SECONDS = 60.0
# Three iris rows (4 features each).
QUERIES = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]


def sagemaker_settings(settings: Any) -> Any:
    return settings.with_values(endpoints_uri="sagemaker://", sagemaker_image_uri="inference:cpu",
                                sagemaker_gpu_image_uri="inference:gpu", sagemaker_role_arn=ROLE)


@pytest.fixture(scope="module")
def bundle() -> bytes:
    """A one-member bundle (.tar.gz, as the platform stores it): logistic regression on iris, with ONNX."""
    file_name, class_name, knobs = LOGREG
    model = load_model_class(str(MODELS / file_name), class_name)(**knobs)
    model.train(str(DATASETS / "iris_train.csv"))
    member = BundleMember(trial_id="contract-logreg", model_class=class_name, model_name="logreg",
                          model_source=(MODELS / file_name).read_bytes(),
                          params=serialize_params(model.dump_parameters()), onnx=model.export_onnx(),
                          knobs=knobs, dependencies={"scikit-learn": ""})
    data, _ = bundle_format.bundle_bytes("contract_app", 1, "TABULAR_CLASSIFICATION", [member])
    return data


@contextmanager
def aws_with_bundle(bundle: bytes) -> Iterator[tuple[Any, AwsClients, BlobStore]]:
    """moto, with the data bucket holding the bundle at BUNDLE_KEY."""
    with mock_aws():
        settings = make_settings()
        aws = AwsClients(settings.region)
        aws.client("s3").create_bucket(Bucket=settings.data_bucket)
        blobs = BlobStore(settings.data_bucket, aws.client("s3"))
        blobs.put_bytes(BUNDLE_KEY, bundle)
        yield settings, aws, blobs


@contextmanager
def runner_of(kind: str, bundle: bytes, directory: Path) -> Iterator[Any]:
    with aws_with_bundle(bundle) as (settings, aws, blobs):
        if kind == "fake":
            yield FakeEndpoints()
        elif kind == "sagemaker":
            runner = wiring.endpoint_runner(sagemaker_settings(settings), blobs, aws)
            assert isinstance(runner, SageMakerEndpointRunner)
            yield runner
        else:
            runner = wiring.endpoint_runner(settings.with_values(endpoints_uri=f"local://{directory}"), blobs, aws)
            assert isinstance(runner, LocalEndpointRunner)
            try:
                yield runner
            finally:
                runner.stop_all()  # every server process ends with the test


ALL = ["sagemaker", pytest.param("local", marks=pytest.mark.slow), "fake"]
SERVING = [pytest.param("local", marks=pytest.mark.slow), "fake"]


@pytest.fixture(params=ALL)
def runner(request, bundle, tmp_path):
    with runner_of(request.param, bundle, tmp_path) as made:
        yield made


@pytest.fixture(params=SERVING)
def serving_runner(request, bundle, tmp_path):
    with runner_of(request.param, bundle, tmp_path) as made:
        yield made


def wait_in_service(runner: Any, name: str, timeout: float = READY_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while (state := runner.state(name)).status != "InService":
        assert state.status == "Creating", f"{name} became {state.status}: {state.reason}"
        assert time.monotonic() < deadline, f"{name} is not InService after {timeout:g} s"
        time.sleep(0.1)


def invoke(runner: Any, name: str, body: Any, timeout: float = 10.0) -> Any:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return json.loads(runner.invoke(name, data, timeout))


# ---------------------------------------------------------------------------- the contract


def test_deploy_brings_the_endpoint_in_service_with_no_restart(runner):
    runner.deploy("kilele-test-iris", BUNDLE_KEY)
    wait_in_service(runner, "kilele-test-iris")
    state = runner.state("kilele-test-iris")
    assert state.restarts in (None, 0)  # None: the runner cannot count them (it never invents a number)
    assert (state.last_restart_reason, state.last_restart_at) == (None, None)


def test_an_unknown_endpoint_is_deleted(runner):
    assert runner.state("kilele-test-never").status == "Deleted"


def test_delete_twice_is_harmless(runner):
    runner.deploy("kilele-test-iris", BUNDLE_KEY)
    wait_in_service(runner, "kilele-test-iris")
    runner.delete("kilele-test-iris")
    runner.delete("kilele-test-iris")
    runner.delete("kilele-test-never")
    assert runner.state("kilele-test-iris").status == "Deleted"


def test_invoke_answers_a_prediction_per_query(serving_runner):
    serving_runner.deploy("kilele-test-iris", BUNDLE_KEY)
    wait_in_service(serving_runner, "kilele-test-iris")

    answer = invoke(serving_runner, "kilele-test-iris", {"queries": QUERIES})

    predictions = answer["predictions"]
    assert len(predictions) == len(QUERIES)
    for prediction in predictions:  # class probabilities, labels as JSON keys
        assert set(prediction) <= {"0", "1", "2"} and sum(prediction.values()) == pytest.approx(1.0, abs=1e-5)


def test_a_body_the_server_refuses_is_rejected(serving_runner):
    serving_runner.deploy("kilele-test-iris", BUNDLE_KEY)
    wait_in_service(serving_runner, "kilele-test-iris")
    for body in (b"not json", {"queries": "not a list"}):
        with pytest.raises(EndpointRejected) as rejected:
            invoke(serving_runner, "kilele-test-iris", body)
        assert 400 <= rejected.value.status < 500, body
    assert "'queries' must be a list" in str(rejected.value)  # the server's message, not its JSON envelope
    assert len(invoke(serving_runner, "kilele-test-iris", {"queries": QUERIES[:1]})["predictions"]) == 1  # still serves


def test_invoking_an_unknown_or_deleted_endpoint_is_unavailable(serving_runner):
    with pytest.raises(EndpointUnavailable):
        invoke(serving_runner, "kilele-test-never", {"queries": QUERIES})
    serving_runner.deploy("kilele-test-iris", BUNDLE_KEY)
    wait_in_service(serving_runner, "kilele-test-iris")
    serving_runner.delete("kilele-test-iris")
    with pytest.raises(EndpointUnavailable):
        invoke(serving_runner, "kilele-test-iris", {"queries": QUERIES})


# ---------------------------------------------------------------------------- local only


@contextmanager
def local_runner(bundle: bytes, directory: Path, **restarts: Any) -> Iterator[LocalEndpointRunner]:
    """The local runner as the composition root builds it, with the restart settings ``restarts``."""
    with aws_with_bundle(bundle) as (settings, aws, blobs):
        values = {"endpoints_uri": f"local://{directory}", **restarts}
        runner = wiring.endpoint_runner(settings.with_values(**values), blobs, aws)
        try:
            yield runner
        finally:
            runner.stop_all()


def kill_server(runner: LocalEndpointRunner, name: str) -> int:
    """SIGKILL the endpoint's server process, as a crash would end it; its pid."""
    pid = runner._endpoints[name].process.pid
    os.kill(pid, signal.SIGKILL)
    return pid


def wait_for(runner: Any, name: str, status: str, timeout: float = READY_SECONDS) -> Any:
    deadline = time.monotonic() + timeout
    while (state := runner.state(name)).status != status:
        assert time.monotonic() < deadline, f"{name} is {state.status} ({state.reason}), not {status}"
        time.sleep(0.05)
    return state


@pytest.mark.slow
def test_local_a_work_directory_deeper_than_a_socket_address_holds_still_serves(bundle, tmp_path):
    """A socket path over 107 bytes cannot be bound or connected to by name (AF_UNIX path too
    long): the server binds it relative to its directory, the runner reaches it through a
    descriptor of that directory; both the first server and a restarted one serve."""
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    with local_runner(bundle, deep, local_endpoint_restart_backoff_seconds=0.2) as runner:
        runner.deploy("kilele-test-iris", BUNDLE_KEY)
        endpoint = runner._endpoints["kilele-test-iris"]
        assert len(str(endpoint.socket_path)) > 107 and endpoint.socket_address.startswith("/proc/self/fd/")
        wait_in_service(runner, "kilele-test-iris")
        assert len(invoke(runner, "kilele-test-iris", {"queries": QUERIES})["predictions"]) == len(QUERIES)
        kill_server(runner, "kilele-test-iris")
        wait_for(runner, "kilele-test-iris", "Restarting", timeout=5)
        wait_for(runner, "kilele-test-iris", "InService")
        assert len(invoke(runner, "kilele-test-iris", {"queries": QUERIES})["predictions"]) == len(QUERIES)
        fd, run_dir = endpoint.socket_fd, str(endpoint.socket_path.parent)
        assert os.readlink(f"/proc/self/fd/{fd}") == run_dir
        runner.delete("kilele-test-iris")
    try:  # the directory's descriptor was closed with the endpoint (its number may be reused)
        still = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        still = None
    assert still != run_dir


@pytest.mark.slow
def test_local_a_server_that_died_is_started_again_with_backoff_and_serves(bundle, tmp_path):
    with local_runner(bundle, tmp_path, local_endpoint_restart_backoff_seconds=0.5) as runner:
        runner.deploy("kilele-test-iris", BUNDLE_KEY)
        wait_in_service(runner, "kilele-test-iris")
        old = kill_server(runner, "kilele-test-iris")
        killed = time.monotonic()
        restarting = wait_for(runner, "kilele-test-iris", "Restarting", timeout=5)
        assert "exited with code -9" in restarting.reason
        with pytest.raises(EndpointUnavailable, match="started again"):  # predict answers the default meanwhile
            invoke(runner, "kilele-test-iris", {"queries": QUERIES[:1]})
        back = wait_for(runner, "kilele-test-iris", "InService")
        assert time.monotonic() - killed >= 0.5  # not before the backoff
        assert back.restarts == 1 and "exited with code -9" in back.last_restart_reason
        assert back.last_restart_at is not None and runner._endpoints["kilele-test-iris"].process.pid != old
        assert len(invoke(runner, "kilele-test-iris", {"queries": QUERIES})["predictions"]) == len(QUERIES)


@pytest.mark.slow
def test_local_a_server_that_keeps_dying_fails_the_endpoint_with_the_reason(bundle, tmp_path):
    with local_runner(bundle, tmp_path, local_endpoint_restart_backoff_seconds=0.2,
                      local_endpoint_max_restarts=1) as runner:
        runner.deploy("kilele-test-iris", BUNDLE_KEY)
        wait_in_service(runner, "kilele-test-iris")
        first = kill_server(runner, "kilele-test-iris")
        deadline = time.monotonic() + 10
        while runner._endpoints["kilele-test-iris"].process.pid == first:  # the restart, not yet serving
            assert time.monotonic() < deadline, "the server was not started again"
            time.sleep(0.05)
        kill_server(runner, "kilele-test-iris")
        failed = wait_for(runner, "kilele-test-iris", "Failed", timeout=5)
        assert failed.reason.startswith("the inference server died again after 1 restart(s) within 300 s")
        assert "exited with code -9" in failed.reason and failed.restarts == 1
        with pytest.raises(EndpointUnavailable, match="died again"):
            invoke(runner, "kilele-test-iris", {"queries": QUERIES[:1]})
        time.sleep(0.5)  # given up: nothing is started again
        assert runner.state("kilele-test-iris").status == "Failed"


@pytest.mark.slow
def test_local_a_server_that_never_served_fails_at_once_without_restarts(tmp_path):
    broken = io.BytesIO()
    with tarfile.open(fileobj=broken, mode="w:gz") as archive:  # no manifest: the server exits at load
        data = b"not a bundle"
        info = tarfile.TarInfo("README")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    with local_runner(broken.getvalue(), tmp_path) as runner:
        runner.deploy("kilele-test-broken", BUNDLE_KEY)
        state = runner.state("kilele-test-broken")
        assert state.status == "Failed" and "exited with code" in state.reason and state.restarts == 0


# ---------------------------------------------------------------------------- SageMaker only


def test_sagemaker_reports_its_status_and_no_restart_count(sagemaker):
    """SageMaker replaces a failed instance itself and does not say how often: the twin reports
    the endpoint's status (and FailureReason), never a made-up restart count."""
    settings, aws, blobs = sagemaker
    runner = wiring.endpoint_runner(sagemaker_settings(settings), blobs, aws)
    runner.deploy("kilele-test-iris", BUNDLE_KEY)
    state = runner.state("kilele-test-iris")
    assert state.status in ("Creating", "InService") and state.restarts is None


@pytest.fixture
def sagemaker(bundle):
    with aws_with_bundle(bundle) as (settings, aws, blobs):
        yield settings, aws, blobs


def test_sagemaker_deploy_creates_model_config_endpoint_and_autoscaling(sagemaker):
    settings, aws, blobs = sagemaker
    sm, autoscaling = aws.client("sagemaker"), aws.client("application-autoscaling")
    runner = wiring.endpoint_runner(sagemaker_settings(settings), blobs, aws)
    runner.deploy("kilele-test-gpu", BUNDLE_KEY, gpu=True)
    runner.deploy("kilele-test-cpu", BUNDLE_KEY)

    container = sm.describe_model(ModelName="kilele-test-gpu")["PrimaryContainer"]
    assert (container["Image"], container["ModelDataUrl"]) == ("inference:gpu",
                                                               f"s3://{settings.data_bucket}/{BUNDLE_KEY}")
    assert sm.describe_model(ModelName="kilele-test-cpu")["PrimaryContainer"]["Image"] == "inference:cpu"
    gpu = sm.describe_endpoint_config(EndpointConfigName="kilele-test-gpu")["ProductionVariants"][0]
    cpu = sm.describe_endpoint_config(EndpointConfigName="kilele-test-cpu")["ProductionVariants"][0]
    assert (gpu["InstanceType"], cpu["InstanceType"]) == ("ml.g4dn.xlarge", settings.sagemaker_instance_type)
    for name in ("kilele-test-gpu", "kilele-test-cpu"):  # autoscaling is registered once InService
        assert runner.state(name).status == "InService"
    targets = autoscaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    assert sorted(t["ResourceId"] for t in targets) == ["endpoint/kilele-test-cpu/variant/AllTraffic",
                                                        "endpoint/kilele-test-gpu/variant/AllTraffic"]
    assert all((t["MinCapacity"], t["MaxCapacity"]) == (1, 4) for t in targets)
    policies = autoscaling.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"]
    assert {p["PolicyType"] for p in policies} == {"TargetTrackingScaling"} and len(policies) == 2
    metric = policies[0]["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"]
    assert metric["PredefinedMetricType"] == "SageMakerVariantInvocationsPerInstance"


def test_sagemaker_serverless_endpoints_are_not_autoscaled(sagemaker):
    settings, aws, blobs = sagemaker
    runner = wiring.endpoint_runner(sagemaker_settings(settings).with_values(sagemaker_serverless=True), blobs, aws)
    runner.deploy("kilele-test-srv", BUNDLE_KEY)
    variant = aws.client("sagemaker").describe_endpoint_config(
        EndpointConfigName="kilele-test-srv")["ProductionVariants"][0]
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": 2048, "MaxConcurrency": 20}
    assert "InstanceType" not in variant
    runner.state("kilele-test-srv")
    assert aws.client("application-autoscaling").describe_scalable_targets(
        ServiceNamespace="sagemaker")["ScalableTargets"] == []
    runner.deploy("kilele-test-gpu", BUNDLE_KEY, gpu=True)  # GPU endpoints are never serverless
    gpu = aws.client("sagemaker").describe_endpoint_config(
        EndpointConfigName="kilele-test-gpu")["ProductionVariants"][0]
    assert gpu["InstanceType"] == "ml.g4dn.xlarge" and "ServerlessConfig" not in gpu


def test_sagemaker_invoke_returns_the_endpoints_answer_unchanged(sagemaker):
    settings, aws, blobs = sagemaker
    runner = wiring.endpoint_runner(sagemaker_settings(settings), blobs, aws)
    runner.deploy("kilele-test-iris", BUNDLE_KEY)
    answer = {"predictions": [{"0": 0.9, "1": 0.05, "2": 0.05}], "batch_size": 1}
    # moto's runtime answers what its results queue holds (else canned bytes): queue the answer.
    queued = requests.post("http://motoapi.amazonaws.com/moto-api/static/sagemaker/endpoint-results",
                           json={"region": settings.region, "results": [
                               {"Body": json.dumps(answer), "ContentType": "application/json"}]})
    assert queued.status_code == 201
    assert invoke(runner, "kilele-test-iris", {"queries": QUERIES[:1]}) == answer


class _RuntimeHandler(BaseHTTPRequestHandler):
    """Answers ``POST /endpoints/<name>/invocations`` as SageMaker's runtime does for ``name``."""

    # what our inference server answers a bad body with, as SageMaker passes it on
    REJECTION = {"error": {"code": "invalid_input", "message": "'queries' must be a list of queries"}}
    MODEL_ERROR = {"error": {"code": "model_error", "message": "query 0: tree (…) failed on it: ValueError: boom"}}
    ABANDONED = {"error": {"code": "model_timeout", "message": "the model did not answer within the deadline"}}
    custom_attributes: list[Any] = []  # what each request carried

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.custom_attributes.append(self.headers.get("X-Amzn-SageMaker-Custom-Attributes"))
        name = self.path.split("/")[2]
        if name == "model-fails":  # the model raised: the server's 500 model_error
            self._error(424, "ModelError", OriginalStatusCode=500, OriginalMessage=json.dumps(self.MODEL_ERROR),
                        Message="Received server error (500) from primary with message ...")
        elif name == "abandons":  # past the deadline: the server's 504 model_timeout
            self._error(424, "ModelError", OriginalStatusCode=504, OriginalMessage=json.dumps(self.ABANDONED),
                        Message="Received server error (504) from primary with message ...")
        elif name == "rejects":  # the container answered 400
            self._error(424, "ModelError", OriginalStatusCode=400, OriginalMessage=json.dumps(self.REJECTION),
                        Message="Received client error (400) from primary with message ...")
        elif name == "crashes":  # the container answered 500
            self._error(424, "ModelError", OriginalStatusCode=500, OriginalMessage="internal error",
                        Message="Received server error (500) from primary with message ...")
        elif name == "slow":
            time.sleep(3)
            self._answer(200, {"predictions": []})
        elif name == "busy":
            self._error(503, "ServiceUnavailable", Message="the service is unavailable")
        else:
            self._error(400, "ValidationError", Message=f"Endpoint {name} of account 123456789012 not found.")

    def _error(self, status: int, code: str, **fields: Any) -> None:
        self._answer(status, fields, {"x-amzn-ErrorType": f"{code}:http://internal.amazon.com/coral/com.amazon.sagemaker/"})

    def _answer(self, status: int, body: Any, headers: Any = None) -> None:
        data = json.dumps(body).encode()
        try:
            self.send_response(status)
            for key, value in {"Content-Type": "application/json", "Content-Length": str(len(data)),
                               **(headers or {})}.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client gave up (the read-timeout case)
            pass

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def runtime_stub() -> Iterator[str]:
    """An HTTP server on 127.0.0.1 in SageMaker runtime's place; its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RuntimeHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def runner_at(url: str) -> SageMakerEndpointRunner:
    """A SageMaker runner whose runtime clients (built as the composition root builds them) call ``url``."""
    settings = make_settings()
    return SageMakerEndpointRunner(settings.data_bucket, "inference:cpu", "inference:gpu", ROLE, sagemaker=None,
                                   runtime=runtime_clients(AwsClients(settings.region, endpoint_url=url,
                                                                      access_key_id="testing",
                                                                      secret_access_key="testing")))


def test_sagemaker_a_model_error_with_a_4xx_is_rejected_with_the_servers_message(runtime_stub):
    with pytest.raises(EndpointRejected) as rejected:
        runner_at(runtime_stub).invoke("rejects", b'{"queries": "x"}', 5.0)
    assert rejected.value.status == 400
    assert str(rejected.value) == "'queries' must be a list of queries"  # as the local runner says it


def test_sagemaker_a_model_that_raised_is_a_model_error_and_the_deadline_is_sent(runtime_stub):
    _RuntimeHandler.custom_attributes.clear()
    with pytest.raises(EndpointModelError) as failed:
        runner_at(runtime_stub).invoke("model-fails", b'{"queries": [[1]]}', 5.0)
    assert str(failed.value) == "query 0: tree (…) failed on it: ValueError: boom"
    assert _RuntimeHandler.custom_attributes == ["deadline_ms=5000"]  # the server abandons the call after it
    with pytest.raises(EndpointTimeout):
        runner_at(runtime_stub).invoke("abandons", b'{"queries": [[1]]}', 5.0)


@pytest.mark.parametrize("name", ["crashes", "busy", "unknown-endpoint"])
def test_sagemaker_a_5xx_model_error_or_an_unknown_endpoint_is_unavailable(runtime_stub, name):
    with pytest.raises(EndpointUnavailable):
        runner_at(runtime_stub).invoke(name, b'{"queries": [[1]]}', 5.0)


def test_sagemaker_no_answer_in_time_is_a_timeout(runtime_stub):
    started = time.monotonic()
    with pytest.raises(EndpointTimeout):
        runner_at(runtime_stub).invoke("slow", b'{"queries": [[1]]}', 0.5)  # read timeout 0.5 s
    assert time.monotonic() - started < 2.5


def test_sagemaker_no_connection_is_unavailable():
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(EndpointUnavailable):
        runner_at(f"http://127.0.0.1:{port}").invoke("kilele-test-iris", b'{"queries": [[1]]}', 2.0)
