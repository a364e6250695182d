"""Test harness for the inference server: bundles built from sample models trained in the test,
and the real server (uvicorn) on 127.0.0.1 in a thread or a subprocess."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parents[3]
INFERENCE_SRC = ROOT / "containers" / "inference"
if str(INFERENCE_SRC) not in sys.path:  # the server works from the source tree, installed or not
    sys.path.insert(0, str(INFERENCE_SRC))

import httpx  # noqa: E402

from chalicelib import bundle_format  # noqa: E402
from chalicelib.bundle_format import BundleMember  # noqa: E402
from kilele.model import load_model_class, serialize_params  # noqa: E402

EXAMPLES = ROOT / "examples"
MODELS = EXAMPLES / "models"
DATASETS = EXAMPLES / "datasets"
LOOPBACK = "127.0.0.1"

TREE = ("sk_decision_tree.py", "SkDecisionTree", {"max_depth": 3, "min_samples_leaf": 5, "criterion": "gini",
                                                  "ccp_alpha": 0.0001})
LOGREG = ("sk_logistic_regression.py", "SkLogisticRegression", {"C": 1.0, "max_iter": 200,
                                                                 "penalty_solver": "l2-lbfgs"})
RIDGE = ("sk_ridge_regression.py", "SkRidgeRegression", {"alpha": 1.0, "fit_intercept": True})

# A classifier that loads slowly (to see /ping 503) and predicts slowly (to see a drain on SIGTERM).
SLOW_MODEL = '''
import os
import time

from kilele.model import BaseModel, FloatKnob


class SlowModel(BaseModel):
    @staticmethod
    def get_knob_config():
        return {"load_seconds": FloatKnob(0.0, 5.0), "predict_seconds": FloatKnob(0.0, 5.0)}

    def train(self, dataset_path, **train_args):
        pass

    def evaluate(self, dataset_path):
        return 1.0

    def predict(self, queries):
        time.sleep(self.knobs.get("predict_seconds", 0.0))
        return [{"yes": 0.25, "no": 0.75} for _ in queries]

    def dump_parameters(self):
        return {"ok": True}

    def load_parameters(self, params):
        time.sleep(self.knobs.get("load_seconds", 0.0))
'''


@dataclass
class Trained:
    """A sample model trained in the test, with what a bundle holds for it."""

    model_file: Path
    model_class: str
    knobs: dict
    model: Any
    params: bytes
    onnx: Optional[bytes]
    score: float = 0.0
    name: str = ""


def train(model: tuple[str, str, dict], dataset: str, with_onnx: bool = True) -> Trained:
    file_name, class_name, knobs = model
    path = MODELS / file_name
    cls = load_model_class(str(path), class_name)
    instance = cls(**knobs)
    instance.train(str(DATASETS / f"{dataset}_train.csv"))
    score = instance.evaluate(str(DATASETS / f"{dataset}_val.csv"))
    onnx = instance.export_onnx() if with_onnx else None
    return Trained(path, class_name, knobs, instance, serialize_params(instance.dump_parameters()), onnx, score,
                   name=file_name.removesuffix(".py"))


def custom_member(directory: Path, source: str, class_name: str, knobs: dict, params: Optional[bytes] = None,
                  onnx: Optional[bytes] = None) -> Trained:
    """A member from model source written in the test (params from its dump_parameters() unless given)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{class_name.lower()}.py"
    path.write_text(source)
    instance = None
    if params is None:
        instance = load_model_class(str(path), class_name)(**knobs)
        params = serialize_params(instance.dump_parameters())
    return Trained(path, class_name, knobs, instance, params, onnx, name=class_name.lower())


def write_bundle(directory: Path, task: str, members: list[Trained], app: str = "test_app",
                 onnx: Optional[list[bool]] = None) -> Path:
    """Writes a bundle directory with the platform's one bundle writer (``onnx[i]`` False leaves
    member i's graph out)."""
    bundle_members = [
        BundleMember(trial_id=f"trial-{i}-{member.name}", model_class=member.model_class,
                     model_source=member.model_file.read_bytes(), params=member.params,
                     onnx=member.onnx if onnx is None or onnx[i] else None, model_name=member.name,
                     knobs=member.knobs, score=member.score, dependencies={"scikit-learn": "1.9.1"})
        for i, member in enumerate(members)
    ]
    bundle_format.write_bundle(directory, app, 1, task, bundle_members)
    return directory


def read_csv_features(dataset: str, split: str = "val") -> list[list[float]]:
    lines = (DATASETS / f"{dataset}_{split}.csv").read_text().strip().splitlines()
    header = lines[0].split(",")
    target = header.index("target") if "target" in header else len(header) - 1
    return [[float(v) for i, v in enumerate(line.split(",")) if i != target] for line in lines[1:]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


class ServerThread:
    """The real server (InferenceApp + uvicorn, as ``kilele-serve`` configures it) on a free
    loopback port, in a thread of the test process."""

    def __init__(self, config):
        import uvicorn

        from kilele_inference.server import uvicorn_config
        from kilele_inference.app import InferenceApp

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((LOOPBACK, 0))
        self.port = self.sock.getsockname()[1]
        config.host, config.port = LOOPBACK, self.port
        self.app = InferenceApp(config)
        self.server = uvicorn.Server(uvicorn_config(self.app, config, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.url = f"http://{LOOPBACK}:{self.port}"

    def __enter__(self) -> "ServerThread":
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                self.stop()
                raise RuntimeError("the server did not start")
            time.sleep(0.01)
        return self

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if httpx.get(self.url + "/ping").status_code == 200:
                return
            time.sleep(0.02)
        raise RuntimeError("the server did not become ready")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()

    def __exit__(self, *exc) -> None:
        self.stop()


@dataclass
class ServerProcess:
    """``python -m kilele_inference ARGS`` as a subprocess (its own session), stopped with SIGTERM."""

    args: list[str]
    env: dict = field(default_factory=dict)
    port: int = 0
    port_flag: bool = True  # False: the port goes in $SAGEMAKER_BIND_TO_PORT instead of --port
    process: Optional[subprocess.Popen] = None
    log: Optional[Any] = None

    def __post_init__(self) -> None:
        if not self.port:
            self.port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"

    def start(self) -> "ServerProcess":
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(INFERENCE_SRC), env.get("PYTHONPATH", "")) if p)
        env.update(self.env)
        args = list(self.args)
        if self.port_flag:
            args += ["--port", str(self.port)]
        else:
            env["SAGEMAKER_BIND_TO_PORT"] = str(self.port)
        self.log = tempfile.TemporaryFile(mode="w+b")
        self.process = subprocess.Popen([sys.executable, "-m", "kilele_inference", *args], env=env,
                                        stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}: {self.communicate()}")
            try:
                if httpx.get(self.url + "/ping", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError("the server did not become ready")

    def terminate(self, timeout: float = 20.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        return self.process.returncode

    def communicate(self) -> str:
        """What the server has logged so far."""
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        if self.process is not None:
            self.terminate()
            self.log.close()
