"""``kilele-serve``: arguments (``serve`` for SageMaker), environment, and the real process
(start, SIGTERM with a request in flight, a bundle that fails to load)."""
from __future__ import annotations

import json
import shutil
import threading
import time

import httpx
import pytest

from inference_harness import SLOW_MODEL, ServerProcess, custom_member, write_bundle
from kilele_inference.cli import resolve_config


def test_serve_serves_opt_ml_model_on_8080_on_all_interfaces():
    config = resolve_config(["serve"], environ={})
    assert (config.bundle, config.host, config.port, config.workers) == ("/opt/ml/model", "0.0.0.0", 8080, 1)
    assert config.batching and config.use_onnx and config.max_wait_ms == 2.0 and config.target_latency_ms == 20.0
    assert config.max_body_bytes == 5 * 1024 * 1024 and config.onnx_threads == 1 and config.max_batch_size == 256


def test_sagemaker_environment_is_respected_and_flags_win():
    environ = {"SAGEMAKER_BIND_TO_PORT": "9090", "SAGEMAKER_MODEL_SERVER_WORKERS": "2",
               "KILELE_TARGET_LATENCY_MS": "50", "KILELE_BATCHING": "false"}
    config = resolve_config(["serve"], environ=environ)
    assert (config.port, config.workers, config.target_latency_ms, config.batching) == (9090, 2, 50.0, False)
    config = resolve_config(["serve", "--port", "7000", "--workers", "1", "--bundle", "/b"], environ=environ)
    assert (config.port, config.workers, config.bundle) == (7000, 1, "/b")


def test_local_use_with_bundle_and_flags():
    config = resolve_config(["--bundle", "/tmp/b", "--host", "127.0.0.1", "--port", "8123", "--no-batching",
                             "--no-onnx", "--onnx-threads", "2", "--max-wait-ms", "0", "--max-body-bytes", "1000",
                             "--target-latency-ms", "5", "--max-batch-size", "64"], environ={})
    assert (config.bundle, config.host, config.port) == ("/tmp/b", "127.0.0.1", 8123)
    assert not config.batching and not config.use_onnx and config.onnx_threads == 2
    assert (config.max_wait_ms, config.max_body_bytes, config.target_latency_ms, config.max_batch_size) == (
        0.0, 1000, 5.0, 64)
    assert resolve_config([], environ={"KILELE_BUNDLE": "/from/env"}).bundle == "/from/env"


@pytest.mark.parametrize("argv, environ, message", [
    ([], {}, "give --bundle DIR, or `serve`"),
    (["train"], {}, "invalid choice: 'train'"),
    (["serve", "--workers", "0"], {}, "workers must be at least 1"),
    (["serve"], {"SAGEMAKER_BIND_TO_PORT": "http"}, "$SAGEMAKER_BIND_TO_PORT='http' is not a valid int"),
    (["serve"], {"KILELE_BATCHING": "maybe"}, "is not a boolean"),
])
def test_bad_arguments_are_explained(capsys, argv, environ, message):
    with pytest.raises(SystemExit) as exit_info:
        resolve_config(argv, environ=environ)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.fixture(scope="module")
def slow_bundle(tmp_path_factory):
    directory = tmp_path_factory.mktemp("slow")
    member = custom_member(directory / "src", SLOW_MODEL, "SlowModel", {"load_seconds": 0.0, "predict_seconds": 1.0})
    return write_bundle(directory / "bundle", "TABULAR_CLASSIFICATION", [member])


def test_serve_process_drains_in_flight_requests_on_sigterm(slow_bundle):
    # As SageMaker runs it: `serve`, the bundle where the model is, the port from the environment.
    server = ServerProcess(["serve", "--host", "127.0.0.1"], env={"KILELE_BUNDLE": str(slow_bundle)}, port_flag=False)
    with server:
        server.wait_ready()
        results = {}

        def invoke():
            response = httpx.post(server.url + "/invocations", json={"queries": [[1], [2]]}, timeout=30)
            results["status"], results["body"] = response.status_code, response.json()

        client = threading.Thread(target=invoke)
        client.start()
        deadline = time.monotonic() + 10
        while httpx.get(server.url + "/metrics").json()["in_flight"] == 0:  # the request is being computed
            assert time.monotonic() < deadline
            time.sleep(0.02)
        started = time.monotonic()
        code = server.terminate()
        client.join(timeout=30)
        assert results == {"status": 200, "body": {"predictions": [{"yes": 0.25, "no": 0.75}] * 2, "batch_size": 2}}
        assert code == 0 and time.monotonic() - started < 10
        log = server.communicate()
    assert "served by its own predict()" in log and "ready in" in log and "stopped" in log
    assert "Traceback" not in log


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_bundle_that_does_not_load_stops_the_server_with_exit_code_1(tmp_path, slow_bundle, workers):
    broken = shutil.copytree(slow_bundle, tmp_path / "broken")
    manifest = json.loads((broken / "kilele-bundle.json").read_text())
    (broken / manifest["members"][0]["model_file"]).write_text("raise RuntimeError('no luck')\n")
    with ServerProcess(["--bundle", str(broken), "--host", "127.0.0.1", "--workers", workers]) as server:
        assert server.process.wait(timeout=30) == 1
        log = server.communicate()
    assert "the bundle could not be loaded" in log and "RuntimeError: no luck" in log


def test_two_workers_serve_the_bundle(iris_bundle):
    with ServerProcess(["--bundle", str(iris_bundle), "--host", "127.0.0.1", "--workers", "2"]) as server:
        server.wait_ready(timeout=60)
        response = httpx.post(server.url + "/invocations", json={"query": [5.1, 3.5, 1.4, 0.2]}, timeout=10)
        assert response.status_code == 200 and set(response.json()["prediction"]) == {"0", "1", "2"}
        assert server.terminate() == 0
