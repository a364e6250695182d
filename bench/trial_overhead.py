"""The platform's own overhead per trial on the local stack.

Starts `kilele local up` (moto + API + Lambda shim + trial runner), runs a train job of the
sample decision tree on iris with N trials, and splits each trial's wall time (created by the
propose step -> recorded) into
  - model time: the model's own train() + evaluate(), measured in the worker's child process,
  - worker overhead: worker process start, downloads, model-process start (Python + imports),
    parameter/log uploads,
  - orchestration: Step Functions states, the Lambda shim, SQS hops, DynamoDB writes, queueing.
Runs once with 1 trial at a time and once with 2 in parallel (slots = local runner parallelism).

    .venv/bin/python bench/trial_overhead.py [--trials 20]
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


def start_stack(parallel: int) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KILELE_"))}
    env.update(KILELE_LOCAL_MAX_PARALLEL_TRIALS=str(parallel), KILELE_WORKER_SLOTS_PER_MODEL=str(parallel))
    log = open(Path(tempfile.gettempdir()) / f"kilele-bench-{port}.log", "wb")
    process = subprocess.Popen([str(Path(sys.executable).parent / "kilele"), "local", "up", "--port", str(port)],
                               stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/", timeout=1).ok:
                return process, port
        except requests.ConnectionError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("the local stack did not start")


def run_job(port: int, trials: int) -> tuple[list[dict], float]:
    client = Client(admin_host="127.0.0.1", admin_port=port)
    client.login("superadmin@kilele", "kilele")
    data = REPO / "examples" / "datasets"
    train = client.create_dataset("iris_train", "TABULAR_CLASSIFICATION", dataset_path=str(data / "iris_train.csv"))
    val = client.create_dataset("iris_val", "TABULAR_CLASSIFICATION", dataset_path=str(data / "iris_val.csv"))
    model = client.create_model("tree", "TABULAR_CLASSIFICATION", str(REPO / "examples/models/sk_decision_tree.py"),
                                "SkDecisionTree", dependencies={"scikit-learn": "1.9.1"})
    started = time.monotonic()
    client.create_train_job("bench", "TABULAR_CLASSIFICATION", train["id"], val["id"],
                            budget={"MODEL_TRIAL_COUNT": trials, "TIME_HOURS": 1}, models=[model["id"]])
    job = client.wait_for_train_job("bench", timeout=1800, poll_rate_sec=0.5)
    elapsed = time.monotonic() - started
    assert job["status"] == "STOPPED", job
    return client.get_trials_of_train_job("bench"), elapsed


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    rows, notes = [], []
    for parallel in (1, 2):
        process, port = start_stack(parallel)
        try:
            trials, elapsed = run_job(port, args.trials)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
        stats = summarize(trials)
        completed = len(stats["wall"])
        rows.append(
            f"| {parallel} | {completed}/{len(trials)} | {fmt(stats['wall'])} | {fmt(stats['model'])} | "
            f"{fmt(stats['worker overhead'])} | {fmt(stats['orchestration'])} | {fmt(stats['platform overhead'])} | "
            f"{elapsed:.1f} | {completed / elapsed * 60:.1f} |"
        )
        print(rows[-1], flush=True)
    section = "\n".join([
        HEADING,
        "",
        f"A train job of the sample decision tree on iris, {args.trials} trials, on the local stack "
        "(moto Step Functions, Lambda shim, local trial runner, one worker process and one model process per "
        "trial). Seconds per trial, median / p90. *Model* is the model's own train() + evaluate() as timed in "
        "the model process; *worker overhead* is the worker's wall time minus that (process starts, Python and "
        "scikit-learn imports in the sandboxed model process, S3 downloads and uploads); *orchestration* is the "
        "trial's wall time (proposed -> recorded) minus the worker's (state transitions, shim and SQS hops, "
        "DynamoDB writes, waiting for a free runner slot); *platform overhead* = wall - model.",
        "",
        "| trials in parallel | completed | wall | model | worker overhead | orchestration | platform overhead "
        "| job wall (s) | trials/min |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"Reproduce: `.venv/bin/python bench/trial_overhead.py --trials {args.trials}`.  ",
        f"Machine: {machine()}; Python {sys.version.split()[0]}.",
        *notes,
        "",
    ])
    if not args.no_write:
        write_section(HEADING, section)
        print(f"wrote {HEADING!r} in bench/README.md")
    else:
        print(section)


if __name__ == "__main__":
    main()
