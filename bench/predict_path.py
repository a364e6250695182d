"""The predict path's cost: ``POST /apps/{app}/predict`` on the local stack against the same
model's endpoint asked directly (``/invocations``), at concurrency 1, 16 and 64, in one run.

Starts ``kilele local up`` for real on free loopback ports (a child process, as the e2e tests
do), trains the README quickstart's decision tree on iris (one trial), creates an inference job
(the local endpoint runner starts ``kilele-serve`` for it) and an API key, then runs
bench/predict_path_loadgen.py (a separate process: closed-loop clients, each on its own keep-alive
connection, one query per request) against both targets, alternating, per concurrency level
``--warmup`` s unmeasured then ``--duration`` s measured. The endpoint's port is read from its
process's command line. Each stack is stopped when measured (SIGTERM, as Ctrl-C), and its own
metrics endpoint is checked against the answers the load generator got.

Stacks measured, one after the other: the local stack as it starts by default (the serving state
cached in its one API process), the same with ``KILELE_SERVING_STATE_CACHE=false`` (the app's row
read per request, as every Lambda instance does on AWS), and with ``--before REF`` the platform at
an older commit (``git archive`` into a temporary directory, run with this venv).

    .venv/bin/python bench/predict_path.py --before REF     # about 5 minutes; writes bench/README.md
    .venv/bin/python bench/predict_path.py --quick --no-write --skip-row-read
    .venv/bin/python bench/predict_path.py --capture    # capture at 0 % vs 100 % (predict_path_capture.py)
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import requests

from predict_path_report import HEADING, fmt, render
from readme_section import write_section

from kilele import Client

REPO = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
DATA = REPO / "examples" / "datasets"
APP = "iris"
QUERIES = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [6.0, 2.9, 4.5, 1.5], [4.9, 3.0, 1.4, 0.2]]
SUPERADMIN = ("superadmin@kilele", "kilele")

def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Stack:
    """``kilele local up`` on free loopback ports, as a child process."""

    def __init__(self, pythonpath: Optional[str] = None, env_extra: Optional[dict[str, str]] = None):
        self.port, self.moto_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(tempfile.gettempdir()) / f"kilele-bench-predict-{self.port}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KILELE_"))}
        env.update(env_extra or {})
        if pythonpath:  # measure another checkout's platform with this venv
            env["PYTHONPATH"] = pythonpath
        # A data directory of its own: the default (~/.kilele/local) keeps an earlier run's model and
        # app, and the next run's create_model is then a 409.
        self.data_dir = tempfile.mkdtemp(prefix="kilele-bench-predict-data-")
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "kilele"), "local", "up", "--port", str(self.port),
             "--moto-port", str(self.moto_port), "--data-dir", self.data_dir],
            stdout=self.log_path.open("wb"), stderr=subprocess.STDOUT, env=env, cwd=pythonpath or REPO,
        )

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the stack exited early:\n{self.log_path.read_text()}")
            try:
                if requests.get(self.url + "/", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the stack did not answer in {timeout} s")

    def moto_pid(self) -> Optional[int]:
        out = subprocess.run(["pgrep", "-P", str(self.process.pid), "-f", "moto.server"], capture_output=True,
                             text=True).stdout.split()
        return int(out[0]) if out else None

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def serve_model(stack: Stack) -> tuple[Client, dict[str, Any], str]:
    """Train the quickstart's decision tree on iris (1 trial) and serve it: (client, job, API key)."""
    client = Client(admin_host="127.0.0.1", admin_port=stack.port)
    client.login(*SUPERADMIN)
    train = client.create_dataset("iris_train", "TABULAR_CLASSIFICATION", dataset_path=str(DATA / "iris_train.csv"))
    val = client.create_dataset("iris_val", "TABULAR_CLASSIFICATION", dataset_path=str(DATA / "iris_val.csv"))
    model = client.create_model("decision_tree", "TABULAR_CLASSIFICATION",
                                str(REPO / "examples" / "models" / "sk_decision_tree.py"), "SkDecisionTree",
                                dependencies={"scikit-learn": "1.9.1"})
    client.create_train_job(APP, "TABULAR_CLASSIFICATION", train["id"], val["id"],
                            budget={"MODEL_TRIAL_COUNT": 1, "TIME_HOURS": 0.1}, models=[model["id"]])
    job = client.wait_for_train_job(APP, timeout=300, poll_rate_sec=0.5)
    if job["status"] != "STOPPED":
        raise RuntimeError(f"the train job ended {job['status']}")
    client.create_inference_job(APP)
    deadline = time.monotonic() + 120
    while (job := client.get_running_inference_job(APP))["status"] != "RUNNING":
        if time.monotonic() > deadline or job["status"] != "STARTED":
            raise RuntimeError(f"the inference job did not come up: {job}")
        time.sleep(0.5)
    key = client.create_api_key("bench")["key"]
    return client, job, key


def endpoint_process(endpoint_name: str) -> tuple[int, int]:
    """(pid, port) of the inference server serving ``endpoint_name``, from its command line."""
    pids = subprocess.run(["pgrep", "-f", f"kilele_inference --bundle .*{endpoint_name}"], capture_output=True,
                          text=True).stdout.split()
    if not pids:
        raise RuntimeError(f"no inference server process for {endpoint_name}")
    argv = Path(f"/proc/{pids[0]}/cmdline").read_bytes().split(b"\0")
    return int(pids[0]), int(argv[argv.index(b"--port") + 1])


def load(port: int, path: str, bodies: Path, concurrency: int, pids: list[int], args,
         headers: tuple[str, ...] = ()) -> dict[str, Any]:
    command = [sys.executable, str(BENCH / "predict_path_loadgen.py"), "--port", str(port), "--path", path,
               "--bodies", str(bodies), "-c", str(concurrency), "--warmup", str(args.warmup),
               "--duration", str(args.duration), "--pids", ",".join(map(str, pids))]
    for header in headers:
        command += ["--header", header]
    out = subprocess.run(command, capture_output=True, text=True, timeout=args.warmup + args.duration + 120)
    if out.returncode != 0:
        raise RuntimeError(f"the load generator failed:\n{out.stderr}")
    result = json.loads(out.stdout)
    if result["error"] or result["errors"]:
        raise RuntimeError(f"failed requests: {result}")
    return result


def counted_requests(client: Client) -> int:
    return next(m["count"] for m in client.get_app_metrics(APP) if m["name"] == "kilele.requests")


@dataclass
class Phase:
    """One stack to measure: this checkout with some settings, or another commit's platform."""

    key: str
    label: str
    env: dict[str, str]
    pythonpath: Optional[str] = None


def measure(phase: Phase, levels: list[int], args) -> dict[str, Any]:
    stack = Stack(phase.pythonpath, phase.env)
    results: dict[tuple[str, int], dict[str, Any]] = {}
    try:
        stack.wait_ready()
        log(f"[{phase.key}] stack up on {stack.url}; training and serving the model")
        client, job, key = serve_model(stack)
        endpoint_pid, endpoint_port = endpoint_process(job["endpoint_name"])
        moto_pid = stack.moto_pid()
        pids = [stack.process.pid, moto_pid or 0, endpoint_pid]
        log(f"[{phase.key}] endpoint {job['endpoint_name']} on port {endpoint_port}")
        work = Path(tempfile.mkdtemp(prefix="kilele-bench-predict-"))
        api_bodies, endpoint_bodies = work / "api.jsonl", work / "endpoint.jsonl"
        api_bodies.write_text("".join(json.dumps({"query": q}) + "\n" for q in QUERIES))
        endpoint_bodies.write_text("".join(json.dumps({"queries": [q]}) + "\n" for q in QUERIES))
        # The same model answers both ways.
        direct = requests.post(f"http://127.0.0.1:{endpoint_port}/invocations", json={"queries": QUERIES[:1]},
                               timeout=10).json()["predictions"][0]
        via_api = requests.post(f"{stack.url}/apps/{APP}/predict", json={"query": QUERIES[0]},
                                headers={"x-api-key": key}, timeout=10).json()["prediction"]
        assert direct == via_api, (direct, via_api)
        before = counted_requests(client)
        answered = 0
        for concurrency in levels:
            for target in ("api", "endpoint"):
                if target == "api":
                    result = load(stack.port, f"/apps/{APP}/predict", api_bodies, concurrency, pids, args,
                                  headers=(f"x-api-key: {key}",))
                    answered += result["answered"]
                else:
                    result = load(endpoint_port, "/invocations", endpoint_bodies, concurrency, pids, args)
                results[(target, concurrency)] = result
                log(f"[{phase.key}] {target:8s} c={concurrency:<3d} {result['rps']:8.0f} req/s  "
                    f"p50 {fmt(result['p50_ms'])} ms  p99 {fmt(result['p99_ms'])} ms  "
                    f"cpu {[round(v, 2) for v in result['process_cpu'].values()]}  machine {result['machine_cpu']:.2f}")
        counted = counted_requests(client) - before
        log(f"[{phase.key}] the app's metrics counted {counted} predict requests; the load generator got {answered}")
        row_read = app_row_read_cost(stack, moto_pid, job["user_id"]) if phase.key == "default" else None
    finally:
        code = stack.stop()
        log(f"[{phase.key}] stack stopped (exit code {code})")
    if code != 0:
        raise RuntimeError(f"the stack exited with {code}: see {stack.log_path}")
    return {"results": results, "counted": counted, "answered": answered, "row_read": row_read}


def app_row_read_cost(stack: Stack, moto_pid: Optional[int], user_id: str, reads: int = 300) -> dict[str, float]:
    """What one read of the app's row (``ApplicationRepository.serving_state``: a consistent
    GetItem through pynamodb) costs against the stack's moto: this thread's CPU, moto's CPU and
    the wall time, per read."""
    from chalicelib.settings import Settings
    from chalicelib.store import models
    from chalicelib.store.serving import ApplicationRepository

    settings = Settings(stage="local")
    models.bind(settings.resource_name, settings.region, f"http://127.0.0.1:{stack.moto_port}", "kilele-local",
                "kilele-local")
    repository = ApplicationRepository()
    for _ in range(20):
        repository.serving_state(user_id, APP)

    def thread_cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_THREAD)
        return usage.ru_utime + usage.ru_stime

    client0, moto0, wall0 = thread_cpu(), process_cpu(moto_pid), time.perf_counter()
    for _ in range(reads):
        repository.serving_state(user_id, APP)
    return {"client_ms": (thread_cpu() - client0) * 1000 / reads,
            "moto_ms": (process_cpu(moto_pid) - moto0) * 1000 / reads,
            "wall_ms": (time.perf_counter() - wall0) * 1000 / reads}


def process_cpu(pid: Optional[int]) -> float:
    if not pid:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def serve_constant(port: int) -> None:
    """The floor under any WSGI app here: waitress as the local stack runs it (8 threads) serving
    a constant predict answer, no Chalice, no services (run as ``--serve-constant PORT``)."""
    from waitress.server import create_server

    body = json.dumps({"prediction": {"0": 1.0, "1": 0.0, "2": 0.0}}).encode()

    def app(environ, start_response):
        environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    create_server(app, host="127.0.0.1", port=port, threads=8).run()


def measure_floor(levels: list[int], args) -> dict[tuple[str, int], dict[str, Any]]:
    port = free_port()
    server = subprocess.Popen([sys.executable, __file__, "--serve-constant", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = {}
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the constant WSGI server did not start")
                time.sleep(0.1)
        work = Path(tempfile.mkdtemp(prefix="kilele-bench-predict-"))
        bodies = work / "api.jsonl"
        bodies.write_text("".join(json.dumps({"query": q}) + "\n" for q in QUERIES))
        for concurrency in levels:
            result = load(port, f"/apps/{APP}/predict", bodies, concurrency, [server.pid, 0, 0], args)
            results[("floor", concurrency)] = result
            log(f"[floor] waitress constant c={concurrency:<3d} {result['rps']:8.0f} req/s  p50 {fmt(result['p50_ms'])} ms")
    finally:
        server.terminate()
        server.wait(timeout=30)
    return results


def _flat(results: dict[tuple[str, int], Any]) -> dict[str, Any]:
    return {f"{target}:{concurrency}": r for (target, concurrency), r in results.items()}


def _keyed(results: dict[str, Any]) -> dict[tuple[str, int], Any]:
    return {(key.rsplit(":", 1)[0], int(key.rsplit(":", 1)[1])): r for key, r in results.items()}


def checkout(ref: str) -> str:
    """``ref``'s tree in a temporary directory (git archive: the working tree is not touched)."""
    directory = tempfile.mkdtemp(prefix="kilele-bench-before-")
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", directory], input=archive, check=True)
    return directory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--quick", action="store_true", help="1 s warm-up, 3 s measured")
    parser.add_argument("--no-write", action="store_true", help="print the section instead of writing it")
    parser.add_argument("--before", metavar="REF", help="also measure the platform at this git commit")
    parser.add_argument("--skip-row-read", action="store_true", help="skip the stack that reads the app row per request")
    parser.add_argument("--render-from", metavar="JSON", help="render the raw results an earlier run saved")
    parser.add_argument("--serve-constant", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--capture", action="store_true", help="measure traffic capture at 0 %% vs 100 %% instead "
                        "(bench/predict_path_capture.py; its own README section)")
    parser.add_argument("--repeats", type=int, default=3, help="--capture: rounds per concurrency level")
    args = parser.parse_args()
    if args.serve_constant:
        serve_constant(args.serve_constant)
        return
    if args.quick:
        args.warmup, args.duration = 1.0, 3.0
    levels = [int(c) for c in args.concurrency.split(",")]
    started = time.monotonic()
    if args.capture:
        capture_main(levels, args, started)
        return
    if args.render_from:  # an earlier run's numbers, rendered again (when the README text changed)
        saved = json.loads(Path(args.render_from).read_text())
        phases = [Phase(**phase) for phase in saved["phases"]]
        measured = {key: {**m, "results": _keyed(m["results"])} for key, m in saved["measured"].items()}
        floor, elapsed, levels = _keyed(saved["floor"]), saved["elapsed"], saved["levels"]
        args.warmup, args.duration, args.before = saved["warmup"], saved["duration"], saved["before"]
    else:
        phases = [Phase("default", "local stack (default: serving state cached in its one process)", {})]
        if not args.skip_row_read:
            phases.append(Phase("row-read", "`KILELE_SERVING_STATE_CACHE=false`: the app row read per request, "
                                "as on AWS", {"KILELE_SERVING_STATE_CACHE": "false"}))
        if args.before:
            commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", args.before],
                                    capture_output=True, text=True, check=True).stdout.strip()
            phases.append(Phase("before", f"before this work (commit {commit})", {}, checkout(args.before)))
        measured = {phase.key: measure(phase, levels, args) for phase in phases}
        floor = measure_floor(levels, args)
        elapsed = time.monotonic() - started
        raw = Path(tempfile.gettempdir()) / f"kilele-bench-predict-path-{int(time.time())}.json"
        raw.write_text(json.dumps({
            "phases": [vars(phase) for phase in phases], "levels": levels, "elapsed": elapsed,
            "warmup": args.warmup, "duration": args.duration, "before": args.before,
            "measured": {key: {**m, "results": _flat(m["results"])} for key, m in measured.items()},
            "floor": _flat(floor),
        }))
        log(f"raw results in {raw} (--render-from renders them again)")
    section = render(phases, measured, floor, levels, args, elapsed=elapsed)
    if args.no_write:
        print(section)
    else:
        write_section(HEADING, section)
        log(f"wrote {HEADING!r} in bench/README.md")


def capture_main(levels: list[int], args, started: float) -> None:
    from predict_path_capture import HEADING as CAPTURE_HEADING, measure_capture, render_capture, service_cost

    if args.render_from:  # an earlier --capture run's numbers, rendered again
        raw = json.loads(Path(args.render_from).read_text())
    else:
        service = service_cost(QUERIES, args.repeats)
        log(f"[capture] in process: {service}")
        stack = Stack()
        try:
            stack.wait_ready()
            raw = measure_capture(stack, serve_model, load, APP, QUERIES, levels, args, log)
        finally:
            log(f"[capture] stack stopped (exit code {stack.stop()})")
        raw.update(service=service, elapsed=time.monotonic() - started)
        saved = Path(tempfile.gettempdir()) / f"kilele-bench-predict-capture-{int(time.time())}.json"
        saved.write_text(json.dumps(raw))
        log(f"raw results in {saved} (--capture --render-from renders them again)")
    section = render_capture(raw, raw["elapsed"])
    if args.no_write:
        print(section)
    else:
        write_section(CAPTURE_HEADING, section)
        log(f"wrote {CAPTURE_HEADING!r} in bench/README.md")


if __name__ == "__main__":
    main()
