"""The servers bench/serving.py measures besides kilele-serve, and the peers' pinned venvs.

Each peer runs in its own venv made from a pinned requirements file committed under bench/envs/
(``NAME.txt``: every package at an exact version, as ``pip freeze`` printed it), never in the
project's venv. The venvs live in bench/.venvs/NAME (git-ignored; ``KILELE_BENCH_VENVS`` moves them)
and are made again when their requirements file changes.

- ``mlserver``: MLServer 1.7.1 (+ mlserver-sklearn), from the interpreter running the bench.
- ``bentoml``: BentoML 1.4, from the interpreter running the bench.
- ``pytriton``: nvidia-pytriton 0.7 (it bundles Triton server 2.51 with its Python backend), from
  Debian's /usr/bin/python3.11: the backend's stub process links the shared libpython3.11.so, which a
  Python built without ``--enable-shared`` (as pyenv's is) does not have. When the interpreter, its
  venv module or the shared library is missing, ``apt-get install python3.11 python3.11-venv
  libpython3.11`` runs first (as root).

    .venv/bin/python bench/serving_peers.py setup [mlserver bentoml pytriton]   # make/reuse the venvs
    .venv/bin/python bench/serving_peers.py lock bentoml   # re-resolve NAME.txt from its "# Chosen:" line

Every server here binds 127.0.0.1 on free ports, runs in its own process group and is stopped
(SIGTERM, then SIGKILL) by the bench.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional

import numpy as np

BENCH = Path(__file__).resolve().parent
ENVS_DIR = BENCH / "envs"
VENVS = Path(os.environ.get("KILELE_BENCH_VENVS", BENCH / ".venvs"))

# The peers' batching settings, the same for each: Kilele's default --max-wait-ms is 2.
MAX_BATCH_SIZE = 128
MAX_BATCH_WAIT_S = 0.002


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- the peers' venvs -------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class PeerEnv:
    name: str
    python: str  # the interpreter the venv is made from
    apt: tuple[str, ...] = ()  # Debian packages it needs, installed when something is missing
    shared_lib: Optional[str] = None  # a shared library that must be in the linker cache
    versions: tuple[str, ...] = ()  # packages whose versions the README reports

    @property
    def requirements(self) -> Path:
        return ENVS_DIR / f"{self.name}.txt"

    @property
    def venv(self) -> Path:
        return VENVS / self.name

    @property
    def bin(self) -> Path:
        return self.venv / "bin"


PEER_ENVS = {
    "mlserver": PeerEnv("mlserver", sys.executable, versions=(
        "mlserver", "mlserver-sklearn", "scikit-learn", "onnxruntime", "numpy", "uvicorn", "uvloop", "httptools",
        "fastapi")),
    "bentoml": PeerEnv("bentoml", sys.executable, versions=(
        "bentoml", "scikit-learn", "onnxruntime", "numpy", "uvicorn", "uvloop", "httptools", "starlette")),
    "pytriton": PeerEnv("pytriton", "/usr/bin/python3.11", apt=("python3.11", "python3.11-venv", "libpython3.11"),
                        shared_lib="libpython3.11.so.1.0", versions=(
                            "nvidia-pytriton", "tritonclient", "scikit-learn", "onnxruntime", "numpy", "pyzmq")),
}


def _run(argv: list[str], timeout: float = 900) -> tuple[bool, str]:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, f"`{' '.join(argv[:4])} …`: {e}"
    if result.returncode != 0:
        tail = " ".join((result.stderr or result.stdout).strip().splitlines()[-3:])
        return False, f"`{' '.join(argv[:4])} …` failed ({result.returncode}): {tail}"
    return True, result.stdout


def _system_missing(env: PeerEnv) -> list[str]:
    """What the system lacks for this venv: the interpreter, its venv module, the shared library."""
    missing = []
    if not Path(env.python).exists():
        missing.append(env.python)
    elif not _run([env.python, "-c", "import venv, ensurepip"], timeout=60)[0]:
        missing.append(f"{env.python} -m venv (ensurepip)")
    if env.shared_lib:
        ok, out = _run(["ldconfig", "-p"], timeout=60)
        if not ok or env.shared_lib not in out:
            missing.append(env.shared_lib)
    return missing


def _install_system(env: PeerEnv) -> tuple[bool, str]:
    missing = _system_missing(env)
    if not missing:
        return True, ""
    if not env.apt:
        return False, f"missing {', '.join(missing)}"
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return False, f"missing {', '.join(missing)}; run as root: apt-get install -y {' '.join(env.apt)}"
    log(f"{env.name}: missing {', '.join(missing)}: apt-get install -y {' '.join(env.apt)}")
    for step in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", *env.apt]):
        ok, out = _run(step, timeout=900)
        if not ok:
            return False, out
    missing = _system_missing(env)
    return (not missing), (f"still missing after apt-get: {', '.join(missing)}" if missing else "apt-get install")


def _fingerprint(env: PeerEnv) -> str:
    return hashlib.sha256(env.requirements.read_bytes() + env.python.encode()).hexdigest()


def ensure_env(name: str) -> tuple[bool, str]:
    """Makes (or reuses) the peer's venv from its pinned requirements file; (ok, what happened or why not)."""
    env = PEER_ENVS[name]
    marker = env.venv / "kilele-bench-env.sha256"
    if not env.requirements.exists():
        return False, f"no pinned requirements file {env.requirements.relative_to(BENCH.parent)}"
    if (env.bin / "python").exists() and marker.exists() and marker.read_text() == _fingerprint(env):
        return True, "reused"
    ok, why = _install_system(env)
    if not ok:
        return False, why
    log(f"{name}: creating {env.venv} from {env.requirements.relative_to(BENCH.parent)} ({env.python})")
    shutil.rmtree(env.venv, ignore_errors=True)
    env.venv.parent.mkdir(parents=True, exist_ok=True)
    for step in ([env.python, "-m", "venv", str(env.venv)],
                 [str(env.bin / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                  "-r", str(env.requirements)]):
        ok, out = _run(step)
        if not ok:
            return False, out
    marker.write_text(_fingerprint(env))
    return True, "created" + (f" (after {why})" if why else "")


def env_versions(name: str) -> dict[str, str]:
    env = PEER_ENVS[name]
    code = ("import importlib.metadata as m, json, platform, sys\n"
            "out = {'python': platform.python_version()}\n"
            "for n in sys.argv[1:]:\n"
            "    try: out[n] = m.version(n)\n"
            "    except m.PackageNotFoundError: out[n] = 'not installed'\n"
            "print(json.dumps(out))")
    ok, out = _run([str(env.bin / "python"), "-c", code, *env.versions], timeout=120)
    return json.loads(out) if ok else {}


def lock(name: str) -> None:
    """Re-resolves bench/envs/NAME.txt: a scratch venv from the file's ``# Chosen:`` pins, then pip freeze."""
    env = PEER_ENVS[name]
    text = env.requirements.read_text()
    header = [line for line in text.splitlines() if line.startswith("#")]
    chosen = next(line.split(":", 1)[1].split() for line in header if line.startswith("# Chosen:"))
    scratch = VENVS / f"{name}-lock"
    shutil.rmtree(scratch, ignore_errors=True)
    for step in ([env.python, "-m", "venv", str(scratch)],
                 [str(scratch / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                  *chosen]):
        ok, out = _run(step)
        if not ok:
            raise SystemExit(out)
    ok, frozen = _run([str(scratch / "bin" / "python"), "-m", "pip", "freeze", "--all", "--exclude", "pip",
                       "--exclude", "setuptools", "--exclude", "wheel"])
    if not ok:
        raise SystemExit(frozen)
    env.requirements.write_text("\n".join(header) + "\n" + frozen)
    shutil.rmtree(scratch, ignore_errors=True)
    log(f"wrote {env.requirements}")


# -- servers ---------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http(method: str, url: str, body: Optional[bytes] = None, timeout: float = 5.0) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        stack.extend(children.get(current, []))
    return found


def clean_env(*prefixes: str) -> dict[str, str]:
    """This process's environment without the variables that would steer a server."""
    drop = ("KILELE_", "PYTHONPATH", "VIRTUAL_ENV", *prefixes)
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


class Server:
    """A server process in its own process group, stopped with SIGTERM (then SIGKILL)."""

    label = ""
    invoke_path = ""
    env_name: Optional[str] = None  # the peer venv it runs in (None: the project's)
    levels: Optional[str] = None  # "ends": measured at the lowest and highest concurrency only

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.process: Optional[subprocess.Popen] = None
        self.port = free_port()
        self.log_path: Optional[Path] = None
        self.addresses: Optional[list[str]] = None  # where its processes listen, once started (from `ss`)

    def command(self) -> tuple[list[str], dict[str, str], Path]:
        raise NotImplementedError

    def ready_url(self) -> str:
        raise NotImplementedError

    def metrics_url(self) -> Optional[str]:
        return None

    def body(self, row: list[float]) -> bytes:
        raise NotImplementedError

    def probabilities(self, answer: bytes) -> np.ndarray:
        raise NotImplementedError

    def check(self, row: list[float], expected: np.ndarray, answer: bytes) -> Optional[str]:
        """None when the answer is right, else what is wrong (the model's probabilities by default)."""
        got = self.probabilities(answer)
        return None if np.allclose(got, expected, atol=1e-5) else f"answered {got}, the model says {expected}"

    def mean_batch(self, start: Optional[str], end: Optional[str]) -> Optional[float]:
        return None

    def started(self) -> None:
        """Called once the server is ready (e.g. to read its version)."""

    def start(self, timeout: float = 120.0) -> None:
        argv, env, cwd = self.command()
        self.log_path = self.workdir / f"{re.sub(r'[^A-Za-z0-9.+-]+', '_', self.label)}-{self.port}.log"
        log_file = open(self.log_path, "wb")
        self.process = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                        start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.label} exited with {self.process.returncode}: {self.log_tail()}")
            try:
                status, _ = http("GET", self.ready_url(), timeout=1)
                if status == 200:
                    self.started()
                    return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.label} was not ready after {timeout:.0f} s: {self.log_tail()}")

    def pids(self) -> list[int]:
        return descendants(self.process.pid) if self.process else []

    def listening(self) -> Optional[list[str]]:
        """The TCP addresses its processes listen on (from ``ss``), to check that all are loopback; None
        when ``ss`` could not tell."""
        pids = set(self.pids())
        try:
            result = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        if result.returncode != 0:
            return None
        out = result.stdout
        found = []
        for line in out.splitlines():
            if {int(p) for p in re.findall(r"pid=(\d+)", line)} & pids:
                found.append(line.split()[3])
        return sorted(set(found))

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def _histogram_mean(metric: str, start: Optional[str], end: Optional[str]) -> Optional[float]:
    """Mean of a Prometheus histogram over a window: Δsum / Δcount, summed over its label sets."""
    def totals(text: Optional[str]) -> Optional[tuple[float, float]]:
        if not text:
            return None
        total = count = 0.0
        for line in text.splitlines():
            match = re.match(rf"{metric}_(sum|count)(\{{[^}}]*\}})?\s+([0-9.eE+-]+)", line)
            if match:
                if match.group(1) == "sum":
                    total += float(match.group(3))
                else:
                    count += float(match.group(3))
        return total, count

    a, b = totals(start), totals(end)
    if a is None or b is None or b[1] - a[1] <= 0:
        return None
    return (b[0] - a[0]) / (b[1] - a[1])


class MLServer(Server):
    env_name = "mlserver"
    LABELS = ("MLServer (adaptive batching)", "MLServer (no batching)")

    def __init__(self, workdir: Path, name: str, model_file: Path, onnx: bool, batching: bool = True):
        super().__init__(workdir)
        self.name = name
        self.model_file = model_file
        self.onnx = onnx
        self.batching = batching
        self.grpc_port = free_port()
        self.metrics_port = free_port()
        self.label = self.LABELS[0] if batching else self.LABELS[1]
        self.levels = None if batching else "ends"
        self.invoke_path = f"/v2/models/{name}/infer"
        self.repo = workdir / f"mlserver-{name}-{'batching' if batching else 'nobatch'}"

    def command(self):
        shutil.rmtree(self.repo, ignore_errors=True)
        model_dir = self.repo / self.name
        model_dir.mkdir(parents=True)
        shutil.copy(self.model_file, model_dir / self.model_file.name)
        shutil.copy(BENCH / "serving_mlserver_runtime.py", model_dir / "kilele_bench_mlserver.py")
        implementation = ("kilele_bench_mlserver.OnnxProbabilities" if self.onnx
                          else "kilele_bench_mlserver.CountingSKLearn")
        (self.repo / "settings.json").write_text(json.dumps({
            "host": "127.0.0.1", "http_port": self.port, "grpc_port": self.grpc_port,
            "metrics_port": self.metrics_port, "debug": False, "parallel_workers": 1,
        }))
        model_settings = {"name": self.name, "implementation": implementation,
                          "parameters": {"uri": f"./{self.model_file.name}"}}
        if self.batching:
            model_settings.update(max_batch_size=MAX_BATCH_SIZE, max_batch_time=MAX_BATCH_WAIT_S)
        (model_dir / "model-settings.json").write_text(json.dumps(model_settings))
        bin_dir = PEER_ENVS[self.env_name].bin
        return [str(bin_dir / "mlserver"), "start", str(self.repo)], clean_env("MLSERVER_"), self.repo

    def ready_url(self):
        return f"http://127.0.0.1:{self.port}/v2/models/{self.name}/ready"

    def metrics_url(self):
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def body(self, row):
        payload = {"inputs": [{"name": "input-0", "shape": [1, len(row)], "datatype": "FP64", "data": row}]}
        if not self.onnx:
            payload["outputs"] = [{"name": "predict_proba"}]
        return json.dumps(payload, separators=(",", ":")).encode()

    def probabilities(self, answer):
        (output,) = json.loads(answer)["outputs"]
        return np.asarray(output["data"], dtype=np.float64).reshape(-1)

    def mean_batch(self, start, end):
        return _histogram_mean("kilele_bench_batch_size", start, end)


class BentoMLServer(Server):
    """``bentoml serve`` of bench/serving_bentoml_service.py: its arbiter process holds the socket, one
    worker process runs the HTTP app (uvicorn) and the model."""

    env_name = "bentoml"
    invoke_path = "/predict"
    LABELS = ("BentoML (adaptive batching)", "BentoML (no batching)")

    def __init__(self, workdir: Path, name: str, model_file: Path, onnx: bool, batching: bool = True):
        super().__init__(workdir)
        self.name = name
        self.model_file = model_file
        self.onnx = onnx
        self.batching = batching
        self.label = self.LABELS[0] if batching else self.LABELS[1]
        self.levels = None if batching else "ends"
        self.dir = workdir / f"bentoml-{name}-{'batching' if batching else 'nobatch'}"

    def command(self):
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        shutil.copy(BENCH / "serving_bentoml_service.py", self.dir / "kilele_bench_bentoml.py")
        env = clean_env("BENTOML_")
        env.update(
            BENTOML_HOME=str(self.dir / "home"), BENTOML_DO_NOT_TRACK="True",
            KILELE_BENCH_MODEL_KIND="onnx" if self.onnx else "sklearn", KILELE_BENCH_MODEL_FILE=str(self.model_file),
            KILELE_BENCH_BATCHABLE="1" if self.batching else "0", KILELE_BENCH_MAX_BATCH_SIZE=str(MAX_BATCH_SIZE),
        )
        argv = [str(PEER_ENVS[self.env_name].bin / "bentoml"), "serve", "kilele_bench_bentoml:Classifier",
                "--host", "127.0.0.1", "--port", str(self.port), "--working-dir", str(self.dir)]
        return argv, env, self.dir

    def ready_url(self):
        return f"http://127.0.0.1:{self.port}/readyz"

    def metrics_url(self):
        return f"http://127.0.0.1:{self.port}/metrics"

    def body(self, row):
        return json.dumps({"input": [row]}, separators=(",", ":")).encode()

    def probabilities(self, answer):
        (probabilities,) = json.loads(answer)
        return np.asarray(probabilities, dtype=np.float64)

    def mean_batch(self, start, end):
        if not self.batching:
            return 1.0  # predict() is called once per request
        return _histogram_mean("bentoml_service_adaptive_batch_size", start, end)


class TritonServer(Server):
    """Triton server 2.51 through PyTriton 0.7 (bench/serving_pytriton_server.py): the PyTriton process
    (the model), ``tritonserver`` (HTTP, gRPC, metrics, dynamic batcher) and its Python backend stub."""

    env_name = "pytriton"
    label = "Triton via PyTriton (dynamic batching)"

    def __init__(self, workdir: Path, name: str, model_file: Path, onnx: bool):
        super().__init__(workdir)
        self.name = name
        self.model_file = model_file
        self.onnx = onnx
        self.grpc_port = free_port()
        self.metrics_port = free_port()
        self.invoke_path = f"/v2/models/{name}/infer"
        self.dir = workdir / f"pytriton-{name}"
        self.version: Optional[str] = None

    def command(self):
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        argv = [str(PEER_ENVS[self.env_name].bin / "python"), str(BENCH / "serving_pytriton_server.py"),
                "--model-file", str(self.model_file), "--kind", "onnx" if self.onnx else "sklearn",
                "--name", self.name, "--http-port", str(self.port), "--grpc-port", str(self.grpc_port),
                "--metrics-port", str(self.metrics_port), "--max-batch-size", str(MAX_BATCH_SIZE),
                "--max-queue-delay-us", str(int(MAX_BATCH_WAIT_S * 1e6)), "--workspace", str(self.dir / "workspace")]
        return argv, clean_env("PYTRITON_", "TRITON_"), self.dir

    def ready_url(self):
        return f"http://127.0.0.1:{self.port}/v2/models/{self.name}/ready"

    def started(self):
        status, answer = http("GET", f"http://127.0.0.1:{self.port}/v2")
        if status == 200:
            self.version = json.loads(answer).get("version")

    def metrics_url(self):
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def body(self, row):
        payload = {"inputs": [{"name": "input", "shape": [1, len(row)], "datatype": "FP64", "data": row}]}
        return json.dumps(payload, separators=(",", ":")).encode()

    def probabilities(self, answer):
        (output,) = json.loads(answer)["outputs"]
        return np.asarray(output["data"], dtype=np.float64).reshape(-1)

    def _counts(self, text: Optional[str]) -> Optional[tuple[float, float]]:
        if not text:
            return None
        values = {}
        for metric in ("nv_inference_count", "nv_inference_exec_count"):
            match = re.search(rf'^{metric}\{{[^}}]*model="{re.escape(self.name)}"[^}}]*\}}\s+([0-9.eE+-]+)', text, re.M)
            if not match:
                return None
            values[metric] = float(match.group(1))
        return values["nv_inference_count"], values["nv_inference_exec_count"]

    def mean_batch(self, start, end):
        a, b = self._counts(start), self._counts(end)
        if a is None or b is None or b[1] - a[1] <= 0:
            return None
        return (b[0] - a[0]) / (b[1] - a[1])


class EchoServer(Server):
    """The HTTP floor: bench/serving_echo.py, a JSON echo on kilele-serve's uvicorn settings, in the
    project's venv (the stack under test)."""

    label = "HTTP floor: JSON echo, uvicorn + httptools + uvloop"
    invoke_path = "/invocations"

    def command(self):
        return [sys.executable, str(BENCH / "serving_echo.py"), "--port", str(self.port)], clean_env(), self.workdir

    def ready_url(self):
        return f"http://127.0.0.1:{self.port}/ping"

    def body(self, row):
        return json.dumps({"queries": [row]}, separators=(",", ":")).encode()  # kilele-serve's body

    def check(self, row, expected, answer):
        return None if json.loads(answer) == {"queries": [row]} else f"echoed {answer[:200]!r}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="The serving bench's peer venvs.")
    sub = parser.add_subparsers(dest="command", required=True)
    setup = sub.add_parser("setup", help="make (or reuse) the peers' venvs from bench/envs/NAME.txt")
    setup.add_argument("names", nargs="*", help=f"some of {', '.join(PEER_ENVS)} (default: all)")
    relock = sub.add_parser("lock", help="re-resolve bench/envs/NAME.txt from its '# Chosen:' pins")
    relock.add_argument("name", choices=list(PEER_ENVS))
    args = parser.parse_args(argv)
    if args.command == "lock":
        lock(args.name)
        return
    unknown = set(args.names) - set(PEER_ENVS)
    if unknown:
        parser.error(f"unknown peer venvs: {sorted(unknown)}")
    failed = False
    for name in args.names or list(PEER_ENVS):
        ok, status = ensure_env(name)
        failed |= not ok
        log(f"{name}: {status}" + (f"; {env_versions(name)}" if ok else ""))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
