"""Serving throughput and latency: kilele-serve (with and without adaptive batching) against the
compute floor and an established peer (MLServer with adaptive batching).

Models, trained here on examples/datasets/breast_cancer_{train,val}.csv (30 features, 2 classes):

- ``logreg``: the sample ``SkLogisticRegression`` (examples/models/sk_logistic_regression.py),
  exported to ONNX with skl2onnx; Kilele serves it with ONNX Runtime.
- ``tree``: the sample ``SkDecisionTree`` (examples/models/sk_decision_tree.py), which has no ONNX
  export; Kilele serves it through its own ``predict()`` (scikit-learn ``predict_proba``).

Each model is put in a bundle directory laid out as ``BundleBuilder`` lays it out
(kilele-bundle.json + members/<trial>/{model.py, params.npz[, model.onnx]}). Then, per model:

(a) the floor: ONNX Runtime ``session.run`` at batch 1 in a loop (logreg), scikit-learn
    ``predict_proba`` at batch 1 in a loop (tree), in this process, no HTTP;
(b) ``kilele-serve`` with its default settings (adaptive batching);
(c) ``kilele-serve --no-batching``;
(d) MLServer 1.7.1 with adaptive batching (``max_batch_size``/``max_batch_time``), installed by this
    script into its own venv (default /tmp/kilele-bench-peer-venv), never the project's: the tree
    through ``mlserver-sklearn`` (a joblib file, output ``predict_proba``), the logistic regression's
    ONNX graph through a custom MLServer runtime with ONNX Runtime (MLServer has no ONNX runtime).

Load: bench/serving_loadgen.py, a separate process: closed-loop clients on keep-alive
connections, one query per request, per concurrency level 2 s warm-up + 8 s measured (or a request
bound, whichever ends first). Servers bind 127.0.0.1 on free ports and are stopped here.

    .venv/bin/python bench/serving.py                 # about 8 minutes; writes bench/README.md
    .venv/bin/python bench/serving.py --quick --no-write   # a smoke run
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Optional

import numpy as np

from readme_section import machine, write_section

from chalicelib.bundle_format import BundleMember, write_bundle
from kilele.model import deserialize_params, load_model_class, load_tabular, serialize_params

REPO = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
HEADING = "## Serving: throughput and latency"
DATA = REPO / "examples" / "datasets"
VENV_BIN = Path(sys.executable).parent

PEER_VENV = Path(os.environ.get("KILELE_BENCH_PEER_VENV", "/tmp/kilele-bench-peer-venv"))
# What the peer venv gets (pip install of exactly these; their own dependencies resolve freely).
# scikit-learn / numpy / onnxruntime match the project venv so both sides load the same model.
# httptools: uvicorn (which MLServer runs) picks it when installed, as Kilele's image has it, so
# both servers parse HTTP with the same parser. uvloop 0.21.0, not the newest: with uvloop >= 0.22
# MLServer 1.7.1's inference worker dies at start (its `asyncio.get_event_loop()` raises "There is
# no current event loop in thread 'MainThread'"), so no model loads with parallel_workers >= 1.
PEER_PINS = [
    "mlserver==1.7.1", "mlserver-sklearn==1.7.1", "scikit-learn==1.9.1", "numpy==2.4.6",
    "onnxruntime==1.31.1", "httptools==0.9.0", "uvicorn==0.54.0", "uvloop==0.21.0",
    "fastapi==0.115.14", "starlette==0.46.2", "pydantic==2.14.3", "pandas==3.1.1", "joblib==1.6.0",
]
MLSERVER_MAX_BATCH_SIZE = 128
MLSERVER_MAX_BATCH_TIME = 0.002  # seconds: Kilele's default --max-wait-ms is 2

MODELS = {
    "logreg": {
        "file": "sk_logistic_regression.py", "class": "SkLogisticRegression",
        "knobs": {"C": 1.0, "max_iter": 500, "penalty_solver": "l2-lbfgs"},
        "label": "logistic regression (ONNX)",
    },
    "tree": {
        "file": "sk_decision_tree.py", "class": "SkDecisionTree",
        "knobs": {"max_depth": 8, "min_samples_leaf": 2, "criterion": "gini", "ccp_alpha": 1e-4},
        "label": "decision tree (sklearn predict)",
    },
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def version(name: str, python: Optional[Path] = None) -> str:
    if python is None:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"
    out = subprocess.run([str(python), "-c", f"import importlib.metadata as m; print(m.version({name!r}))"],
                         capture_output=True, text=True)
    return out.stdout.strip() or "not installed"


# -- models and bundles ---------------------------------------------------------------------------

def train(name: str) -> tuple[Any, float]:
    spec = MODELS[name]
    cls = load_model_class(str(REPO / "examples" / "models" / spec["file"]), spec["class"])
    model = cls(**spec["knobs"])
    model.train(str(DATA / "breast_cancer_train.csv"))
    return model, model.evaluate(str(DATA / "breast_cancer_val.csv"))


def build_bundle(root: Path, name: str, model: Any, score: float) -> tuple[Path, Optional[bytes]]:
    """A bundle directory written by the platform's one bundle writer (``chalicelib.bundle_format``,
    which ``BundleBuilder`` uses too)."""
    spec = MODELS[name]
    bundle = root / f"bundle-{name}"
    trial_id = hashlib.sha1(f"bench-serving-{name}".encode()).hexdigest()[:16]
    onnx = (model.export_onnx() if hasattr(model, "export_onnx") else None) or None
    member = BundleMember(
        trial_id=trial_id, model_class=spec["class"], model_name=name,
        model_source=(REPO / "examples" / "models" / spec["file"]).read_bytes(),
        params=serialize_params(model.dump_parameters()), onnx=onnx, knobs=spec["knobs"], score=score,
        dependencies={"scikit-learn": version("scikit-learn")},
    )
    write_bundle(bundle, f"bench_{name}", 1, "TABULAR_CLASSIFICATION", [member])
    member_dir = bundle / member.folder
    # The member loads back from the bundle as the server will load it.
    reloaded = load_model_class(str(member_dir / "model.py"), spec["class"])(**spec["knobs"])
    reloaded.load_parameters(deserialize_params((member_dir / "params.npz").read_bytes()))
    return bundle, onnx


def queries() -> list[list[float]]:
    return load_tabular(str(DATA / "breast_cancer_val.csv")).features.tolist()


# -- (a) the floor --------------------------------------------------------------------------------

def ort_session(onnx: bytes):
    """An InferenceSession configured as kilele-serve configures it (1 intra-op thread)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(onnx, sess_options=options, providers=["CPUExecutionProvider"])


def time_calls(call, rows: list[np.ndarray], seconds: float, max_calls: int = 2_000_000) -> dict[str, float]:
    for i in range(200):  # warm-up
        call(rows[i % len(rows)])
    samples = []
    clock = time.perf_counter_ns
    deadline = time.perf_counter() + seconds
    i = 0
    while i < max_calls and (i % 256 or time.perf_counter() < deadline):
        x = rows[i % len(rows)]
        t0 = clock()
        call(x)
        samples.append(clock() - t0)
        i += 1
    us = np.array(samples) / 1000.0
    p50 = float(np.percentile(us, 50))
    # The implied rate from the median: the mean carries preemptions by other processes on this shared machine.
    return {"calls": len(us), "p50_us": p50, "p99_us": float(np.percentile(us, 99)), "mean_us": float(us.mean()),
            "rps": 1e6 / p50}


def floor(name: str, model: Any, onnx: Optional[bytes], data: list[list[float]], seconds: float) -> dict:
    if onnx:
        session = ort_session(onnx)
        input_name = session.get_inputs()[0].name
        rows = [np.asarray([q], dtype=np.float32) for q in data]
        result = time_calls(lambda x: session.run(["probabilities"], {input_name: x}), rows, seconds)
        result["what"] = "ONNX Runtime `session.run`, batch 1"
    else:
        classifier = model._clf
        rows = [np.asarray([q], dtype=np.float64) for q in data]
        result = time_calls(classifier.predict_proba, rows, seconds)
        result["what"] = "scikit-learn `predict_proba`, batch 1"
    return result


def reference_probabilities(name: str, model: Any, onnx: Optional[bytes], rows: list[list[float]]) -> np.ndarray:
    if onnx:
        session = ort_session(onnx)
        return session.run(["probabilities"], {session.get_inputs()[0].name: np.asarray(rows, dtype=np.float32)})[0]
    return model._clf.predict_proba(np.asarray(rows, dtype=np.float64))


# -- servers ---------------------------------------------------------------------------------------

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


class Server:
    """A server process in its own process group, stopped with SIGTERM (then SIGKILL)."""

    label = ""
    invoke_path = ""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.process: Optional[subprocess.Popen] = None
        self.port = free_port()
        self.log_path: Optional[Path] = None

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

    def mean_batch(self, start: Optional[str], end: Optional[str]) -> Optional[float]:
        return None

    def start(self, timeout: float = 120.0) -> None:
        argv, env, cwd = self.command()
        self.log_path = self.workdir / f"{self.label.replace(' ', '_').replace('/', '_')}-{self.port}.log"
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
                    return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.label} was not ready after {timeout:.0f} s: {self.log_tail()}")

    def pids(self) -> list[int]:
        return descendants(self.process.pid) if self.process else []

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
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


class KileleServer(Server):
    invoke_path = "/invocations"

    def __init__(self, workdir: Path, bundle: Path, batching: bool):
        super().__init__(workdir)
        self.bundle = bundle
        self.batching = batching
        self.label = "kilele-serve" if batching else "kilele-serve --no-batching"

    def command(self):
        argv = [str(VENV_BIN / "kilele-serve"), "--bundle", str(self.bundle), "--host", "127.0.0.1",
                "--port", str(self.port)]
        if not self.batching:
            argv.append("--no-batching")
        env = {k: v for k, v in os.environ.items() if not k.startswith("KILELE_")}
        return argv, env, self.workdir

    def ready_url(self):
        return f"http://127.0.0.1:{self.port}/ping"

    def metrics_url(self):
        return f"http://127.0.0.1:{self.port}/metrics"

    def body(self, row):
        return json.dumps({"queries": [row]}, separators=(",", ":")).encode()

    def probabilities(self, answer):
        (prediction,) = json.loads(answer)["predictions"]
        return np.array([prediction[k] for k in sorted(prediction)])

    def mean_batch(self, start, end):
        if not start or not end:
            return None
        a, b = json.loads(start), json.loads(end)
        batches = b["batches"] - a["batches"]
        return (b["batched_queries"] - a["batched_queries"]) / batches if batches else None


class MLServer(Server):
    def __init__(self, workdir: Path, name: str, model_file: Path, onnx: bool, batching: bool = True):
        super().__init__(workdir)
        self.name = name
        self.model_file = model_file
        self.onnx = onnx
        self.batching = batching
        self.grpc_port = free_port()
        self.metrics_port = free_port()
        self.label = "MLServer (adaptive batching)" if batching else "MLServer (no batching)"
        self.invoke_path = f"/v2/models/{name}/infer"
        self.repo = workdir / f"mlserver-{name}"

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
            model_settings.update(max_batch_size=MLSERVER_MAX_BATCH_SIZE, max_batch_time=MLSERVER_MAX_BATCH_TIME)
        (model_dir / "model-settings.json").write_text(json.dumps(model_settings))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLSERVER_", "KILELE_", "PYTHONPATH"))}
        return [str(PEER_VENV / "bin" / "mlserver"), "start", str(self.repo)], env, self.repo

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

    @staticmethod
    def _histogram(text: Optional[str]) -> Optional[tuple[float, float]]:
        if not text:
            return None
        total = count = 0.0
        for line in text.splitlines():
            match = re.match(r"kilele_bench_batch_size_(sum|count)(\{[^}]*\})?\s+([0-9.eE+-]+)", line)
            if match:
                if match.group(1) == "sum":
                    total += float(match.group(3))
                else:
                    count += float(match.group(3))
        return total, count

    def mean_batch(self, start, end):
        a, b = self._histogram(start), self._histogram(end)
        if a is None or b is None or b[1] - a[1] <= 0:
            return None
        return (b[0] - a[0]) / (b[1] - a[1])


def ensure_peer_venv() -> tuple[bool, str]:
    """Creates the peer venv if missing; (ok, what happened)."""
    python = PEER_VENV / "bin" / "python"
    marker = PEER_VENV / "kilele-bench-pins.txt"
    wanted = "\n".join(PEER_PINS) + "\n"
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return True, "reused"
    log(f"creating the peer venv {PEER_VENV} (pip install {' '.join(PEER_PINS)})")
    shutil.rmtree(PEER_VENV, ignore_errors=True)
    steps = [[sys.executable, "-m", "venv", str(PEER_VENV)],
             [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *PEER_PINS]]
    for step in steps:
        result = subprocess.run(step, capture_output=True, text=True, timeout=900)
        if result.returncode != 0:
            tail = " ".join((result.stderr or result.stdout).strip().splitlines()[-3:])
            return False, f"`{' '.join(step[:4])} …` failed ({result.returncode}): {tail}"
    marker.write_text(wanted)
    return True, "created"


# -- one measurement -------------------------------------------------------------------------------

def machine_busy() -> float:
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def wait_for_quiet(max_wait: float, threshold: float = 0.25) -> float:
    """Waits (at most ``max_wait`` s) until the machine was under ``threshold`` busy cores for 0.5 s:
    other processes on this shared machine take CPU from the server and the load generator.
    Returns the busy cores of the last sample."""
    deadline = time.monotonic() + max_wait
    while True:
        before = machine_busy()
        time.sleep(0.5)
        busy = (machine_busy() - before) / 0.5
        if busy < threshold or time.monotonic() >= deadline:
            return busy


def run_load(server: Server, bodies_file: Path, concurrency: int, args) -> dict:
    idle_before = wait_for_quiet(args.quiet_wait)
    argv = [sys.executable, str(BENCH / "serving_loadgen.py"), "--port", str(server.port),
            "--path", server.invoke_path, "--bodies", str(bodies_file), "-c", str(concurrency),
            "--warmup", str(args.warmup), "--duration", str(args.duration),
            "--max-requests", str(args.max_requests), "--pids", ",".join(map(str, server.pids()))]
    if server.metrics_url():
        argv += ["--metrics-url", server.metrics_url()]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=args.warmup + args.duration + 120)
    if result.returncode != 0:
        raise RuntimeError(f"the load generator failed: {result.stderr[-2000:]}")
    out = json.loads(result.stdout)
    out["mean_batch"] = server.mean_batch(out.pop("metrics_start"), out.pop("metrics_end"))
    out["other_cpu"] = max(0.0, out["machine_cpu"] - (out["server_cpu"] or 0.0) - out["client_cpu"])
    out["busy_before"] = idle_before
    return out


def measure_server(server: Server, name: str, data: list[list[float]], expected: np.ndarray, args) -> list[dict]:
    log(f"{name}: starting {server.label} on 127.0.0.1:{server.port}")
    server.start()
    rows = []
    try:
        # Same model: the server's answers match the in-process model's probabilities.
        for i in (0, 1, len(data) - 1):
            status, answer = http("POST", f"http://127.0.0.1:{server.port}{server.invoke_path}", server.body(data[i]))
            if status != 200:
                raise RuntimeError(f"{server.label} answered {status}: {answer[:300]!r}")
            got = server.probabilities(answer)
            if not np.allclose(got, expected[i], atol=1e-5):
                raise RuntimeError(f"{server.label} answered {got} for row {i}, the model says {expected[i]}")
        bodies = server.workdir / f"bodies-{name}-{server.port}.jsonl"
        bodies.write_bytes(b"\n".join(server.body(row) for row in data) + b"\n")
        levels = args.concurrency
        if isinstance(server, MLServer) and not server.batching:
            levels = sorted({min(levels), max(levels)})  # a baseline at the ends only: keeps the run short
        for concurrency in levels:
            result = run_load(server, bodies, concurrency, args)
            if result["other_cpu"] > args.retry_other_cpu and time.monotonic() - args.started < args.budget:
                log(f"  c={concurrency}: other processes used {result['other_cpu']:.2f} cores; measuring again")
                again = run_load(server, bodies, concurrency, args)
                again["retried"] = True
                result = min(result, again, key=lambda r: r["other_cpu"])
            result.update(model=name, server=server.label)
            rows.append(result)
            batch = f"{result['mean_batch']:.1f}" if result["mean_batch"] else "-"
            log(f"  c={concurrency:<4} {result['rps']:8.0f} req/s  p50 {result['p50_ms']:.2f} ms  "
                f"p99 {result['p99_ms']:.2f} ms  batch {batch}  server CPU {result['server_cpu'] or 0:.2f}  "
                f"client CPU {result['client_cpu']:.2f}  other CPU {result['other_cpu']:.2f}  errors {result['errors']}"
                + (f"  ({result['error']})" if result["error"] else ""))
    finally:
        server.stop()
    return rows


# -- the README section ----------------------------------------------------------------------------

def fmt(value: Optional[float], digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def render(results: dict, args, elapsed: float) -> str:
    lines = [
        HEADING, "",
        "Closed-loop clients, each on its own keep-alive HTTP/1.1 connection, each sending one query per request "
        "(the next as soon as the answer arrives), against one server on 127.0.0.1. Per concurrency level "
        f"{args.warmup:g} s warm-up, then {args.duration:g} s measured (or {args.max_requests:,} requests, whichever ends "
        "first). Models trained in the bench on `breast_cancer_train.csv` (30 features, 2 classes): the sample "
        "logistic regression exported to ONNX (Kilele serves it with ONNX Runtime) and the sample decision tree "
        "(`sk_decision_tree.py`, no ONNX: served through its own `predict()`, i.e. scikit-learn `predict_proba`). "
        "Before the load, each server's answers are checked against the in-process model's probabilities. "
        "*floor*: the model call alone in a loop in one process at batch 1, no HTTP (req/s = 1 / median time per call). "
        "*mean batch*: queries per model call over the measured window, from the server's /metrics "
        "(Kilele's `batches`/`batched_queries`; for MLServer a histogram its runtime logs, see below). "
        "*server CPU* / *load-gen CPU* / *other CPU*: CPU time over the measured window, in cores (the machine has 2): "
        "the server's processes, the load generator, and everything else on this shared machine (from /proc/stat; "
        "other sessions' tests ran on it during this run, which is noise the numbers carry).",
        "",
        "| model | server | concurrency | req/s | p50 ms | p99 ms | mean batch | server CPU | load-gen CPU | other CPU |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in args.models:
        block = results["models"][name]
        f = block["floor"]
        f["rps"] = 1e6 / f["p50_us"]
        lines.append(f"| {MODELS[name]['label']} | floor: {f['what']} ({f['p50_us']:.1f} µs/call) | - | "
                     f"{f['rps']:,.0f} | {f['p50_us'] / 1000:.4f} | {f['p99_us'] / 1000:.4f} | 1 | - | - | - |")
        for row in block["rows"]:
            errors = f" ({row['errors']} errors)" if row["errors"] else ""
            lines.append(
                f"| {MODELS[name]['label']} | {row['server']}{errors} | {row['concurrency']} | {row['rps']:,.0f} | "
                f"{fmt(row['p50_ms'])} | {fmt(row['p99_ms'])} | {fmt(row['mean_batch'], 1)} | "
                f"{fmt(row['server_cpu'])} | {fmt(row['client_cpu'])} | {fmt(row['other_cpu'])} |")
        for peer, why in block.get("peer_failures", {}).items():
            lines.append(f"| {MODELS[name]['label']} | {peer}: not run ({why}) | - | - | - | - | - | - | - | - |")
    lines.append("")
    floors = "; ".join(
        f"{MODELS[n]['label']}: {results['models'][n]['floor']['what']} median {results['models'][n]['floor']['p50_us']:.1f} µs, "
        f"p99 {results['models'][n]['floor']['p99_us']:.1f} µs, mean {results['models'][n]['floor']['mean_us']:.1f} µs "
        f"→ at most {1e6 / results['models'][n]['floor']['p50_us']:,.0f} req/s on one core"
        for n in args.models)
    lines += [f"Floor per call: {floors}.", ""]
    lines += ["Notes:", ""] + [f"- {note}" for note in results["notes"]] + [""]
    v = results["versions"]
    lines += [
        "Setups: *kilele-serve*: `kilele-serve --bundle DIR --host 127.0.0.1 --port P` with default settings "
        "(1 process; adaptive batching: AIMD target 20 ms, initial batch 8, max 256, max wait 2 ms; ONNX Runtime 1 "
        "intra-op thread; the loaded models are frozen out of the garbage collector (`gc.freeze()`), which removed "
        "40–60 ms full-collection pauses an earlier run showed: p99 at c=128 65 -> 10–15 ms); *--no-batching*: the "
        "same with `--no-batching`. *MLServer*: "
        f"`mlserver start REPO`, settings `host` 127.0.0.1, `debug` false (no access log), `parallel_workers` 1 (its "
        f"default: the model runs in one worker process behind the HTTP process), model settings `max_batch_size` "
        f"{MLSERVER_MAX_BATCH_SIZE}, `max_batch_time` {MLSERVER_MAX_BATCH_TIME} s; requests in the V2 inference "
        "protocol (`/v2/models/NAME/infer`, one `[1, 30]` FP64 tensor). The tree is served by `mlserver-sklearn`'s "
        "`SKLearnModel` from a joblib file of the fitted `DecisionTreeClassifier`, output `predict_proba`; the "
        "logistic regression by a custom runtime (`bench/serving_mlserver_runtime.py`) that runs the same ONNX bytes "
        "with ONNX Runtime, 1 intra-op thread, as Kilele does. Both runtimes add one `mlserver.log()` of the batch "
        "size per call (MLServer has no batch-size metric); the mean batch comes from that histogram. The peer venv "
        f"(`{PEER_VENV}`, created by the bench when missing) gets `pip install {' '.join(PEER_PINS)}`; httptools "
        "is added so MLServer's uvicorn parses HTTP with the same parser as Kilele's; uvloop is held at 0.21.0 because "
        "with uvloop ≥ 0.22 MLServer 1.7.1's inference worker dies at start (`asyncio.get_event_loop()` raises "
        "\"There is no current event loop in thread 'MainThread'\"), so no model loads. BentoML was not tried: "
        "MLServer installed and ran.",
        "",
        "Load generator: `bench/serving_loadgen.py`, one separate process: asyncio on uvloop with a minimal HTTP/1.1 "
        "client (pre-encoded requests, answers read by Content-Length; no HTTP library, so nothing to install), "
        "which reads its own CPU time (`getrusage`) and the server's processes' (`/proc/PID/stat`) over the "
        "measured window. It shares the 2 cores with the server: every core-second it uses is one the server "
        "does not get.",
        "",
        f"Reproduce: `.venv/bin/python bench/serving.py` (this run: {elapsed / 60:.1f} min, including "
        f"{'creating' if results.get('peer_venv') == 'created' else 'reusing'} the peer venv; creating it takes about "
        "1 more minute).  ",
        f"Machine: {machine()}; Python {platform.python_version()}; Kilele side: onnxruntime {v['onnxruntime']}, "
        f"scikit-learn {v['scikit-learn']}, numpy {v['numpy']}, uvicorn {v['uvicorn']}, uvloop {v['uvloop']}, "
        f"httptools {v['httptools']}, orjson {v['orjson']}, skl2onnx {v['skl2onnx']}; peer venv: "
        + ", ".join(f"{k} {val}" for k, val in v.get("peer", {}).items()) + ".",
    ]
    return "\n".join(lines) + "\n"


KB, KN = "kilele-serve", "kilele-serve --no-batching"
MB, MN = "MLServer (adaptive batching)", "MLServer (no batching)"


def by(rows: list[dict], server: str, concurrency: int) -> Optional[dict]:
    return next((r for r in rows if r["server"] == server and r["concurrency"] == concurrency), None)


def _span(values: list[float], digits: int = 0, unit: str = "") -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    lo, hi = min(values), max(values)
    return f"{lo:,.{digits}f}{unit}" if f"{lo:,.{digits}f}" == f"{hi:,.{digits}f}" else f"{lo:,.{digits}f}–{hi:,.{digits}f}{unit}"


def notes(results: dict, args) -> list[str]:
    """3–6 lines read off this run's numbers (so a rerun rewrites them from its own numbers)."""
    models = [n for n in args.models if n in results["models"]]
    rows = {n: results["models"][n]["rows"] for n in models}
    floors = {n: results["models"][n]["floor"] for n in models}
    for f in floors.values():
        f["rps"] = 1e6 / f["p50_us"]
    levels = sorted(args.concurrency)
    top, low = levels[-1], levels[0]
    label = {n: MODELS[n]["label"].split(" (")[0] for n in models}
    out = []

    def ratio(n, a, b, c):
        x, y = by(rows[n], a, c), by(rows[n], b, c)
        return x["rps"] / y["rps"] if x and y else None

    # 1. What adaptive batching buys, per concurrency.
    parts = []
    for n in models:
        ratios = [ratio(n, KB, KN, c) for c in levels]
        if all(r is not None for r in ratios):
            kb = by(rows[n], KB, top)
            parts.append(f"{label[n]} {'/'.join(f'{r:.1f}' for r in ratios)} (mean batch {fmt(kb['mean_batch'], 0)} "
                         f"at c={top})")
    if parts:
        text = (f"Batching: kilele-serve's req/s with ÷ without batching at c={'/'.join(map(str, levels))}: "
                + "; ".join(parts) + ".")
        tree = next((n for n in models if floors[n]["what"].startswith("scikit")), None)
        kb = by(rows[tree], KB, top) if tree else None
        if kb and kb["rps"] > floors[tree]["rps"]:
            text += (f" The tree at c={top} passes its batch-1 floor ({kb['rps'] / floors[tree]['rps']:.0%}): "
                     f"`predict_proba` on ~{fmt(kb['mean_batch'], 0)} rows costs little more than on one.")
        c1 = [ratio(n, KB, KN, low) for n in models if ratio(n, KB, KN, low)]
        if c1:
            text += (f" At c={low} both modes run batches of 1 through the same path, so their gap "
                     f"({_span([abs(r - 1) * 100 for r in c1], 0)}%) is run-to-run noise: c={low} is latency-bound "
                     "(client, event loop and model thread hand each request on); a separate repeat on 2026-11-23 gave "
                     "2.9k–5.9k req/s for one configuration on this shared VM.")
        out.append(text)

    # 2. The server, not the model, is the cost; one process, one core.
    n = models[0]
    kb, kn = by(rows[n], KB, top), by(rows[n], KN, top)
    if kb and kn and kn["server_cpu"] and kb["server_cpu"]:
        top_cpu = [by(rows[m], KB, top)["server_cpu"] for m in models if by(rows[m], KB, top)]
        out.append(
            f"The server, not the model, is the cost: `session.run` takes {floors[n]['p50_us']:.1f} µs, kilele-serve "
            f"about {kn['server_cpu'] / kn['rps'] * 1e6:.0f} µs of CPU per request without batching (HTTP, JSON, "
            f"event loop, hop to the model thread) and {kb['server_cpu'] / kb['rps'] * 1e6:.0f} µs with it at c={top}: "
            f"{kb['rps'] / floors[n]['rps']:.0%} of the floor's rate. One process with one GIL uses at most about one "
            f"core of the 2 ({_span(top_cpu, 2)} at c={top} here); "
            "`--workers 2` was not measured.")

    # 3. Against the peer.
    parts, c1 = [], []
    for n in models:
        ratios = [ratio(n, KB, MB, c) for c in levels if ratio(n, KB, MB, c)]
        if ratios:
            parts.append(f"×{min(ratios):.1f}–{max(ratios):.1f} ({label[n]})")
        kb1, mb1, mn1 = by(rows[n], KB, low), by(rows[n], MB, low), by(rows[n], MN, low)
        if kb1 and mb1:
            c1.append(f"{kb1['p50_ms']:.2f} vs {mb1['p50_ms']:.2f} ms"
                      + (f" ({mn1['p50_ms']:.2f} without its batching)" if mn1 else ""))
    if parts:
        mb_top = [by(rows[n], MB, top) for n in models if by(rows[n], MB, top)]
        mn_top = [by(rows[n], MN, top) for n in models if by(rows[n], MN, top)]
        text = (f"Against MLServer 1.7.1 with adaptive batching, Kilele's req/s is {', '.join(parts)} MLServer's over "
                f"c={low}–{top}; p50 at c={low} {'; '.join(c1)}: MLServer's batcher waits `max_batch_time` for a "
                f"second request even for a lone client (Kilele's does not), and each batch (each request, without "
                f"batching) crosses to its worker process")
        if mb_top:
            text += (f". At c={top} MLServer spends {_span([r['server_cpu'] / r['rps'] * 1e6 for r in mb_top])} µs of "
                     f"server CPU per request (2 processes, {_span([r['server_cpu'] for r in mb_top], 2)} cores), "
                     f"p99 {_span([r['p99_ms'] for r in mb_top])} ms")
        if mn_top:
            text += f"; without its batching {_span([r['rps'] for r in mn_top])} req/s"
        out.append(text + ".")

    # 4. Where Kilele loses.
    bits = []
    tops = [(n, by(rows[n], KB, top), by(rows[n], KN, top)) for n in models if by(rows[n], KB, top)]
    tops = [t for t in tops if top >= 64 and t[1]["p99_ms"] > 4 * t[1]["p50_ms"]]
    if tops:
        p99s = ", ".join(f"{label[n]} {kb['p99_ms']:.0f} ms" for n, kb, _ in tops)
        worse = [f"{label[n]} {kn['p99_ms']:.0f} ms" for n, kb, kn in tops if kn and kb["p99_ms"] > 1.1 * kn["p99_ms"]]
        bits.append(f"the p99 at c={top} ({p99s}) is {_span([kb['p99_ms'] / kb['p50_ms'] for _, kb, _ in tops], 0)}× "
                    "the p50" + (f" and above --no-batching's ({', '.join(worse)})" if worse else "")
                    + ": CPython's full (gen2) garbage collections stall the process (a separate probe on 2026-11-23, "
                    "logistic regression at c=128 with gc callbacks in the server: 40–60 ms pauses every ~0.5 s "
                    "collecting nothing; `gc.freeze()` after the bundle loads cut them to 0.4 ms and p99 from 65 to "
                    "15 ms)")
    mid = [(n, c, by(rows[n], KB, c), by(rows[n], KN, c)) for n in models for c in levels if 1 < c < 32]
    mid = [(n, c, kb, kn) for n, c, kb, kn in mid if kb and kn]
    if mid:
        gains = ", ".join(f"{label[n]} ×{kb['rps'] / kn['rps']:.1f}" for n, c, kb, kn in mid)
        slower = [f"{label[n]} {kb['p99_ms']:.1f} vs {kn['p99_ms']:.1f} ms" for n, c, kb, kn in mid
                  if kb["p99_ms"] > kn["p99_ms"]]
        c = mid[0][1]
        bits.append(f"at c={c} batching buys little ({gains}"
                    + (f"; p99 {', '.join(slower)}" if slower else "")
                    + f"): the batcher waits up to `--max-wait-ms` for batches that {c} clients seldom fill (server "
                    f"CPU {_span([kb['server_cpu'] for *_, kb, _ in mid], 2)} cores)")
    if bits:
        out.append("Where Kilele loses: " + "; ".join(bits) + ".")

    # 5. The load generator and the shared machine.
    all_rows = [r for n in models for r in rows[n]]
    loaded = [r for r in all_rows if r["server"] == KB and r["concurrency"] == top]
    if all_rows and loaded:
        gen = max(all_rows, key=lambda r: r["client_cpu"])
        per_request = [r["client_cpu"] / r["rps"] * 1e6 for r in loaded]
        server_per_request = [r["server_cpu"] / r["rps"] * 1e6 for r in loaded if r["server_cpu"]]
        other = max(all_rows, key=lambda r: r["other_cpu"])
        noisy = [r for r in all_rows if r["other_cpu"] > args_retry(args)]
        out.append(
            f"The load generator used at most {gen['client_cpu']:.2f} cores; at c={top} against kilele-serve it spent "
            f"{_span(per_request)} µs of CPU per request against the server's {_span(server_per_request)} µs, so it "
            f"does not limit the rate, but on 2 shared cores every core-second it uses is taken from the server. So "
            f"is the other sessions' load (CI, test suites): up to {other['other_cpu']:.2f} cores in a window, more "
            f"than {args_retry(args):.1f} in {len(noisy)} of {len(all_rows)} windows (each re-measured once while the "
            "time budget allowed; the column shows the kept one). Rows with high *other CPU* understate the server "
            "they measure; differences under ~30% between rows are within this run's noise.")
    return out


def args_retry(args) -> float:
    return getattr(args, "retry_other_cpu", 0.5)


def finish(results: dict, args, elapsed: float) -> None:
    section = render(results, args, elapsed)
    if args.no_write:
        print(section)
    else:
        write_section(HEADING, section)
        log(f"wrote {HEADING!r} into bench/README.md")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Serving throughput/latency: kilele-serve vs floor vs MLServer.")
    parser.add_argument("--models", default="logreg,tree", help="comma-separated: logreg, tree")
    parser.add_argument("--concurrency", default="1,8,32,128")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--max-requests", type=int, default=200_000)
    parser.add_argument("--floor-seconds", type=float, default=2.0)
    parser.add_argument("--quiet-wait", type=float, default=3.0,
                        help="before each load run, wait at most this long for other processes to go quiet")
    parser.add_argument("--servers", default="batching,no-batching,mlserver,mlserver-nobatch",
                        help="comma-separated: batching, no-batching, mlserver, mlserver-nobatch (MLServer without "
                             "adaptive batching, measured at the lowest and highest concurrency only)")
    parser.add_argument("--retry-other-cpu", type=float, default=0.5,
                        help="measure a level again when other processes used more cores than this in its window")
    parser.add_argument("--budget", type=float, default=480.0,
                        help="no more re-measurements once the run is this many seconds old")
    parser.add_argument("--quick", action="store_true", help="1 s warm-up, 3 s measured")
    parser.add_argument("--no-write", action="store_true", help="print the section instead of writing bench/README.md")
    parser.add_argument("--json", help="also write the raw results here")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (bundles, server logs)")
    parser.add_argument("--render", metavar="JSON",
                        help="no run: render the section from the raw results a previous run wrote with --json")
    args = parser.parse_args(argv)
    args.models = [m for m in args.models.split(",") if m]
    args.concurrency = [int(c) for c in args.concurrency.split(",") if c]
    args.servers = [s for s in args.servers.split(",") if s]
    if args.quick:
        args.warmup, args.duration, args.floor_seconds = 1.0, 3.0, 1.0
    unknown = set(args.models) - set(MODELS)
    if unknown:
        parser.error(f"unknown models: {sorted(unknown)}")
    if args.render:
        results = json.loads(Path(args.render).read_text())
        for key in ("models", "concurrency", "warmup", "duration", "max_requests"):
            setattr(args, key, results["args"][key])
        results["notes"] = notes(results, args)
        finish(results, args, results["elapsed"])
        return

    started = args.started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="kilele-bench-serving-"))
    results: dict[str, Any] = {"models": {}, "args": {
        "models": args.models, "concurrency": args.concurrency, "warmup": args.warmup, "duration": args.duration,
        "max_requests": args.max_requests, "servers": args.servers}, "versions": {
        name: version(name) for name in ("onnxruntime", "scikit-learn", "numpy", "uvicorn", "uvloop", "httptools",
                                         "orjson", "skl2onnx")}}
    peer_ok, peer_status = (False, "not requested")
    if {"mlserver", "mlserver-nobatch"} & set(args.servers):
        peer_ok, peer_status = ensure_peer_venv()
        results["peer_venv"] = peer_status
        if peer_ok:
            python = PEER_VENV / "bin" / "python"
            results["versions"]["peer"] = {n: version(n, python) for n in (
                "mlserver", "mlserver-sklearn", "scikit-learn", "onnxruntime", "uvicorn", "httptools", "fastapi")}
        else:
            log(f"peer venv: {peer_status}")
    data = queries()
    try:
        for name in args.models:
            model, score = train(name)
            bundle, onnx = build_bundle(workdir, name, model, score)
            log(f"{name}: trained (validation accuracy {score:.4f}), bundle {bundle}")
            block: dict[str, Any] = {"score": score, "rows": [], "peer_failures": {}}
            block["floor"] = floor(name, model, onnx, data, args.floor_seconds)
            f = block["floor"]
            log(f"{name}: floor {f['what']}: p50 {f['p50_us']:.1f} µs, mean {f['mean_us']:.1f} µs -> {f['rps']:,.0f} req/s")
            expected = reference_probabilities(name, model, onnx, data)
            servers: list[Server] = []
            if "batching" in args.servers:
                servers.append(KileleServer(workdir, bundle, batching=True))
            if "no-batching" in args.servers:
                servers.append(KileleServer(workdir, bundle, batching=False))
            peers = [s for s in ("mlserver", "mlserver-nobatch") if s in args.servers]
            if peers:
                if peer_ok:
                    if onnx:
                        model_file = workdir / f"{name}-model.onnx"
                        model_file.write_bytes(onnx)
                    else:
                        import joblib

                        model_file = workdir / f"{name}-model.joblib"
                        joblib.dump(model._clf, model_file)
                    for peer in peers:
                        servers.append(MLServer(workdir, name, model_file, onnx=bool(onnx),
                                                batching=peer == "mlserver"))
                else:
                    block["peer_failures"]["MLServer"] = peer_status
            for server in servers:
                try:
                    block["rows"] += measure_server(server, name, data, expected, args)
                except RuntimeError as e:
                    log(f"{name}: {server.label} failed: {e}")
                    block["peer_failures"][server.label] = str(e).splitlines()[0][:300]
            results["models"][name] = block
    finally:
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    elapsed = time.monotonic() - started
    results["elapsed"] = elapsed
    results["notes"] = notes(results, args)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    finish(results, args, elapsed)
    if args.keep:
        log(f"kept {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    log(f"done in {elapsed:.0f} s")


if __name__ == "__main__":
    main()
