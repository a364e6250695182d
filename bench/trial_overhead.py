"""The platform's own overhead per trial on the local stack.

Starts `kilele local up` (moto + API + Lambda shim + trial runner), runs a train job of the
sample decision tree on iris with N trials, and splits each trial's wall time (created by the
propose step -> recorded) into
  - model time: the model's own train() + evaluate(), measured in the worker's child process,
  - worker overhead: the worker's clock (from its message parsed and its AWS clients made to its
    answer) minus the model time: claim, downloads, model-process start (or hand-over to the
    pre-started one), parameter/log uploads,
  - orchestration: the rest: Step Functions states, the Lambda shim, SQS hops, DynamoDB writes,
    queueing, and starting the worker up to its clock (process start, imports, AWS clients).
Runs with 1 trial at a time and with 2 in parallel (slots = local runner parallelism), each with
the stack's warm workers (its default) and without (KILELE_LOCAL_WARM_TRIAL_WORKERS=false: a
worker process and a model process started per trial, as before them). Also the CPU time of all
the stack's processes per trial, and the CPU the rest of the (shared) machine used meanwhile.

    .venv/bin/python bench/trial_overhead.py [--trials 20] [--modes warm,cold]
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import requests

from readme_section import machine, write_section

from kilele import Client

REPO = Path(__file__).resolve().parents[1]
HEADING = "## Platform overhead per trial (local stack)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_stack(parallel: int, data_dir: str, warm: bool = True) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KILELE_"))}
    env.update(KILELE_LOCAL_MAX_PARALLEL_TRIALS=str(parallel), KILELE_WORKER_SLOTS_PER_MODEL=str(parallel),
               KILELE_LOCAL_WARM_TRIAL_WORKERS=str(warm).lower())
    log = open(Path(tempfile.gettempdir()) / f"kilele-bench-{port}.log", "wb")
    process = subprocess.Popen([str(Path(sys.executable).parent / "kilele"), "local", "up", "--port", str(port),
                                "--data-dir", data_dir, "--reset"],
                               stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/", timeout=1).ok:
                return process, port
        except requests.RequestException:  # not listening yet, or too busy starting to answer within 1 s
            time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    raise RuntimeError("the local stack did not start")


def prepare(port: int) -> tuple[Client, str, str, str]:
    """Logged-in client, the iris data sets and the model (before the measured job)."""
    client = Client(admin_host="127.0.0.1", admin_port=port)
    client.login("superadmin@kilele", "kilele")
    data = REPO / "examples" / "datasets"
    train = client.create_dataset("iris_train", "TABULAR_CLASSIFICATION", dataset_path=str(data / "iris_train.csv"))
    val = client.create_dataset("iris_val", "TABULAR_CLASSIFICATION", dataset_path=str(data / "iris_val.csv"))
    model = client.create_model("tree", "TABULAR_CLASSIFICATION", str(REPO / "examples/models/sk_decision_tree.py"),
                                "SkDecisionTree", dependencies={"scikit-learn": "1.9.1"})
    return client, train["id"], val["id"], model["id"]


def run_job(client: Client, train: str, val: str, model: str, trials: int) -> tuple[list[dict], float]:
    started = time.monotonic()
    client.create_train_job("bench", "TABULAR_CLASSIFICATION", train, val,
                            budget={"MODEL_TRIAL_COUNT": trials, "TIME_HOURS": 1}, models=[model])
    job = client.wait_for_train_job("bench", timeout=1800, poll_rate_sec=0.5)
    elapsed = time.monotonic() - started
    assert job["status"] == "STOPPED", job
    return client.get_trials_of_train_job("bench"), elapsed


def settle(pid: int, quiet_cpu: float = 0.1, timeout: float = 60) -> None:
    """Until the stack's processes used under ``quiet_cpu`` s of CPU in a second (the zygote's
    imports done): its start is not counted in the job's CPU."""
    deadline = time.monotonic() + timeout
    before = tree_cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(1)
        now = tree_cpu_seconds(pid)
        if now - before < quiet_cpu:
            return
        before = now


def seconds(a: str, b: str) -> float:
    return (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds()


def summarize(trials: list[dict]) -> dict[str, list[float]]:
    done = [t for t in trials if t["status"] == "COMPLETED"]
    wall = [seconds(t["datetime_created"], t["datetime_stopped"]) for t in done]
    model = [t["model_seconds"] for t in done]
    worker = [t["worker_seconds"] for t in done]
    return {
        "wall": wall,
        "model": model,
        "worker overhead": [w - m for w, m in zip(worker, model)],
        "orchestration": [a - w for a, w in zip(wall, worker)],
        "platform overhead": [a - m for a, m in zip(wall, model)],
    }


def fmt(values: list[float]) -> str:
    values = sorted(values)
    p90 = values[min(len(values) - 1, int(round(0.9 * (len(values) - 1))))]
    return f"{statistics.median(values):.2f} / {p90:.2f}"


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds of ``root`` and every process below it, those they reaped included (utime,
    stime, cutime, cstime of each live or zombie process under ``root``)."""
    ticks = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                raw = f.read()
        except OSError:
            continue
        fields = raw[raw.rfind(b")") + 2:].split()
        stats[int(name)] = (int(fields[1]), sum(int(x) for x in fields[11:15]) / ticks)
    total, frontier, seen = 0.0, {root}, set()
    while frontier:
        seen |= frontier
        total += sum(stats[pid][1] for pid in frontier if pid in stats)
        frontier = {pid for pid, (parent, _) in stats.items() if parent in frontier} - seen
    return total


def machine_busy_seconds() -> float:
    with open("/proc/stat") as f:
        values = [int(x) for x in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def measure(parallel: int, trials: int, warm: bool) -> dict:
    # A data directory of its own, started empty: not the user's ~/.kilele/local, nor another run's.
    with tempfile.TemporaryDirectory(prefix="kilele-bench-data-") as data_dir:
        process, port = start_stack(parallel, data_dir, warm)
        try:
            prepared = prepare(port)
            settle(process.pid)
            cpu, busy = tree_cpu_seconds(process.pid), machine_busy_seconds()
            records, elapsed = run_job(*prepared, trials)
            cpu, busy = tree_cpu_seconds(process.pid) - cpu, machine_busy_seconds() - busy
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
    stats = summarize(records)
    return {"parallel": parallel, "warm": warm, "stats": stats, "records": len(records), "elapsed": elapsed,
            "cpu_per_trial": cpu / max(1, len(stats["wall"])), "other_cores": max(0.0, busy - cpu) / elapsed}


def row(result: dict) -> str:
    stats = result["stats"]
    completed = len(stats["wall"])
    workers = "warm workers (default)" if result["warm"] else "a process per trial"
    return (f"| {workers} | {result['parallel']} | {completed}/{result['records']} | {fmt(stats['wall'])} | "
            f"{fmt(stats['model'])} | {fmt(stats['worker overhead'])} | {fmt(stats['orchestration'])} | "
            f"**{fmt(stats['platform overhead'])}** | {result['cpu_per_trial']:.2f} | {result['elapsed']:.1f} | "
            f"{completed / result['elapsed'] * 60:.1f} | {result['other_cores']:.2f} |")


#: This section's numbers before warm workers (commit 1eddfd0; its "orchestration" included the
#: worker's process start, as now). Kept to compare; it ran on a quieter machine than "a process
#: per trial" rows measured beside the warm ones.
PREVIOUS = [
    "| before warm workers (1eddfd0, previous run) | 1 | 20/20 | 1.55 / 1.98 | 0.01 / 0.01 | 1.26 / 1.49 | "
    "0.30 / 0.48 | **1.54 / 1.98** | - | 37.3 | 32.1 | - |",
    "| before warm workers (1eddfd0, previous run) | 2 | 20/20 | 1.68 / 1.83 | 0.01 / 0.01 | 1.31 / 1.45 | "
    "0.37 / 0.42 | **1.68 / 1.82** | - | 21.8 | 55.1 | - |",
]
TARGET_SECONDS = 0.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--modes", default="warm,cold", help="warm (the stack's warm workers), cold, or both")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    modes = [mode.strip() for mode in args.modes.split(",") if mode.strip()]
    results = []
    for mode in modes:
        for parallel in (1, 2):
            results.append(measure(parallel, args.trials, warm=mode == "warm"))
            print(row(results[-1]), flush=True)
    verdicts = []
    for result in results:
        if result["warm"] and result["parallel"] == 1:
            median = statistics.median(result["stats"]["platform overhead"])
            verdicts.append(f"- Target ≤ {TARGET_SECONDS} s of platform overhead per trial at 1 in parallel: "
                            f"median {median:.2f} s ({'met' if median <= TARGET_SECONDS else 'not met'}; p90 "
                            f"{fmt(result['stats']['platform overhead']).split(' / ')[1]} s).")
    section = "\n".join([
        HEADING,
        "",
        f"A train job of the sample decision tree on iris, {args.trials} trials, on the local stack "
        "(moto Step Functions, Lambda shim, local trial runner; one worker and one sandboxed model process per "
        "trial). Seconds per trial, median / p90. *Model* is the model's own train() + evaluate() as timed in "
        "the model process; *worker overhead* is the worker's clock (from its message parsed and its AWS "
        "clients made to its answer) minus that: claim, S3 downloads and uploads, starting the model process "
        "(Python, imports, the sandbox) or handing the trial to the pre-started one; *orchestration* is the "
        "trial's wall time (proposed -> recorded) minus the worker's clock: state transitions, shim and SQS "
        "hops, DynamoDB writes, waiting for a free runner slot, and starting the worker up to its clock; "
        "*platform overhead* = wall - model. *CPU s / trial*: CPU time of all the stack's processes (moto, "
        "API, shim, runner, zygote, workers, model processes) over the job (its model check included; the "
        "stack's start, the data sets and the model before it are not), per completed trial. *Other "
        "cores*: CPU the rest of this shared machine used meanwhile (other sessions' tests and benches), in "
        "cores of its 2.",
        "",
        "*Warm workers* (the local stack's default, `chalicelib/adapters/trial_dispatch/warm.py`): a zygote "
        "imports the worker, boto3's service models, numpy, pandas and scikit-learn once and forks one worker "
        "per trial, whose sandboxed model process is started (confined, waiting) before the trial comes. *A "
        "process per trial*: `KILELE_LOCAL_WARM_TRIAL_WORKERS=false`, a worker process and a model process "
        "started per trial as before (with this change's other savings: the model process ends with os._exit, "
        "the supervisor wakes on its exit).",
        "",
        "| workers | trials in parallel | completed | wall | model | worker overhead | orchestration | platform "
        "overhead | CPU s / trial | job wall (s) | trials/min | other cores |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *[row(result) for result in results],
        *PREVIOUS,
        "",
        *verdicts,
        "",
        f"Reproduce: `.venv/bin/python bench/trial_overhead.py --trials {args.trials} --modes {','.join(modes)}`.  ",
        f"Machine: {machine()}; Python {sys.version.split()[0]}; shared with other sessions' work while it ran "
        "(*other cores*).",
        "",
        "",  # a blank line before the next section
    ])
    if not args.no_write:
        write_section(HEADING, section)
        print(f"wrote {HEADING!r} in bench/README.md")
    else:
        print(section)


if __name__ == "__main__":
    main()
