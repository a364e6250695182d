"""``bench/predict_path.py --capture``: what traffic capture costs the predict path. One local
stack, the quickstart's model served as ``predict_path.py`` serves it, the app registered, then
rounds of the same load with the app capturing 0 % and 100 % of its requests back to back
(the order alternating each round, so that drift of the shared machine's load falls on both),
``--repeats`` rounds per concurrency level. Reported per level: the median req/s of each setting
and their ratio (the target: capture at 100 % keeps >= 95 % of the throughput), the API
process's CPU time per request (the same target said in CPU: at most 1/0.95 of it; the
throughput of a shared machine moves with the other work on it, CPU time per request less), and every round's numbers; the capture files the stack wrote
during the run are counted from moto's S3 before it stops (the rest are written by the stop)."""
from __future__ import annotations

import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3

from readme_section import machine

HEADING = "## Predict path: traffic capture at 0 % vs 100 % (local stack)"
TARGET_RATIO = 0.95


class _Blobs:
    """An object store that keeps only sizes (the in-process measurement's S3)."""

    def __init__(self) -> None:
        self.bytes = 0
        self.files = 0

    def put_bytes(self, key: str, data: bytes, content_type: str = "") -> None:
        self.bytes += len(data)
        self.files += 1


def service_cost(queries: list, repeats: int, requests: int = 20_000) -> list[dict[str, Any]]:
    """CPU time per request of ``PredictService.predict_queries`` in this process, capture at 0 %
    and 100 % back to back (order alternating), on stand-ins that answer at once: an app row, an
    endpoint returning a fixed body, metrics and capture buffers as wired (the capture thread's
    writes, to an in-memory store, included: process CPU time counts every thread)."""
    from datetime import datetime, timezone
    from types import SimpleNamespace

    from chalicelib.entities import Application
    from chalicelib.ports import ServingState
    from chalicelib.services.capture import CaptureBuffer
    from chalicelib.services.predict import PredictService

    app = Application("u", "iris", datetime.now(timezone.utc), default_output="unknown", slo_micros=25_000_000)
    state = ServingState(app, frozenset({"job"}), True)
    job = SimpleNamespace(endpoint_name="ep-1")
    reply = json.dumps({"predictions": [{"0": 0.0, "1": 1.0, "2": 0.0}], "batch_size": 1}).encode()
    blobs = _Blobs()
    service = PredictService(
        inference=SimpleNamespace(serving_job=lambda user, name, st: job, report_endpoint_failure=lambda j: None,
                                  has_jobs=lambda user, name: True),
        apps=SimpleNamespace(serving_state=lambda user, name: state),
        endpoints=SimpleNamespace(invoke=lambda name, body, timeout: reply),
        metrics=SimpleNamespace(add_minute=lambda *a: None, window=lambda *a: {}),
        sink=SimpleNamespace(emit=lambda *a: None), timeout_seconds=25, max_queries=1000,
        capture=CaptureBuffer(blobs))
    rows = []
    for round_ in range(repeats):
        for percent in ((0, 100) if round_ % 2 == 0 else (100, 0)):
            app.capture_percent = percent
            started = time.process_time()
            for i in range(requests):
                service.predict_queries("u", "iris", [queries[i % len(queries)]])
            if percent:
                service.flush_capture()  # the writes this round's records cost, counted in it
            rows.append({"round": round_, "percent": percent,
                         "us_per_req": (time.process_time() - started) / requests * 1e6})
    service.close()
    rows.append({"files": blobs.files, "bytes": blobs.bytes, "records": requests * repeats, "requests": requests})
    return rows


def _endpoint_pid(endpoint_name: str) -> int:
    """The inference server's pid (0 if not found: its CPU is then not reported)."""
    out = subprocess.run(["pgrep", "-f", f"kilele_inference.*{endpoint_name}"], capture_output=True, text=True)
    pids = out.stdout.split()
    return int(pids[0]) if pids else 0


def measure_capture(stack: Any, serve_model: Any, load: Any, app: str, queries: list, levels: list[int],
                    args: Any, log: Any) -> dict[str, Any]:
    """Run the rounds on ``stack``; returns the raw results (rows per level and setting)."""
    client, job, key = serve_model(stack)
    endpoint_pid = _endpoint_pid(job["endpoint_name"])
    # A registered app (capture is an app setting) with the SLO of an unregistered one.
    client.register_application(app, "floats", "unknown", 25_000_000)
    work = Path(tempfile.mkdtemp(prefix="kilele-bench-capture-"))
    bodies = work / "api.jsonl"
    bodies.write_text("".join(json.dumps({"query": q}) + "\n" for q in queries))
    pids = [stack.process.pid, stack.moto_pid() or 0, endpoint_pid]
    rows: list[dict[str, Any]] = []
    for concurrency in levels:
        for round_ in range(args.repeats):
            for percent in ((0, 100) if round_ % 2 == 0 else (100, 0)):
                client.set_capture(app, percent)
                result = load(stack.port, f"/apps/{app}/predict", bodies, concurrency, pids, args,
                              headers=(f"x-api-key: {key}",))
                api_cpu = result["process_cpu"][str(stack.process.pid)]
                row = {"concurrency": concurrency, "round": round_, "percent": percent, "rps": result["rps"],
                       "p50_ms": result["p50_ms"], "p99_ms": result["p99_ms"], "api_cpu": api_cpu,
                       "api_us_per_req": api_cpu / result["rps"] * 1e6 if result["rps"] else None,
                       "moto_cpu": result["process_cpu"][str(pids[1])], "machine_cpu": result["machine_cpu"]}
                rows.append(row)
                log(f"[capture] c={concurrency:<3d} round {round_} capture {percent:3d} %  {row['rps']:7.0f} req/s  "
                    f"API {row['api_us_per_req']:6.0f} µs/req  machine {row['machine_cpu']:.2f}")
    s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{stack.moto_port}", region_name="us-east-1",
                      aws_access_key_id="kilele-local", aws_secret_access_key="kilele-local")
    bucket = client.get_capture(app)["capture_uri"].split("/")[2]
    files = sum(page.get("KeyCount", 0) for page in
                s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="capture/"))
    return {"rows": rows, "files_during_run": files, "levels": levels, "repeats": args.repeats,
            "warmup": args.warmup, "duration": args.duration}


def render_service_cost(rows: list[dict[str, Any]]) -> list[str]:
    """The in-process measurement's lines of the section."""
    *rounds, totals = rows
    off = [r["us_per_req"] for r in rounds if r["percent"] == 0]
    on = [r["us_per_req"] for r in rounds if r["percent"] == 100]
    lines = ["", "In process, without the web stack (`PredictService.predict_queries` on stand-ins that answer at once: "
             "what capture adds to the service's own work, the capture thread's encoding and writes to an in-memory "
             f"store included; {len(off)} rounds of {totals['requests']:,} requests per setting, order alternating). "
             "Process CPU µs per "
             "request, each round:", "",
             "| capture | rounds (µs/req) | median |", "|---:|---|---:|",
             f"| 0 % | {', '.join(f'{v:.1f}' for v in off)} | {statistics.median(off):.1f} |",
             f"| 100 % | {', '.join(f'{v:.1f}' for v in on)} | {statistics.median(on):.1f} |", "",
             f"Capture at 100 % adds {statistics.median(on) - statistics.median(off):.1f} µs of CPU per one-query request "
             f"here ({totals['files']} files, {totals['bytes'] / max(1, totals['records']):.0f} bytes per record)."]
    return lines


def _verdict(raw: dict[str, Any]) -> list[str]:
    """What the two measurements say together, computed from them."""
    *rounds, _ = raw["service"]
    added = (statistics.median(r["us_per_req"] for r in rounds if r["percent"] == 100)
             - statistics.median(r["us_per_req"] for r in rounds if r["percent"] == 0))
    off = [r["api_us_per_req"] for r in raw["rows"] if r["percent"] == 0]
    spread = (max(off) - min(off)) / statistics.median(off)
    share = added / statistics.median(off)
    resolves = spread <= 1 - TARGET_RATIO
    return ["", f"Together: on the stack, the API's CPU per request with capture off ranged {min(off):,.0f}–"
            f"{max(off):,.0f} µs over the rounds (a spread of {spread:.0%} of its median, from the other work on the "
            f"machine), {'within' if resolves else 'more than'} the 5 % the target allows, so the stack's rows "
            f"{'can' if resolves else 'cannot'} tell whether it is met. The "
            f"in-process measurement can: capture at 100 % adds {added:.1f} µs of CPU per request, "
            f"{share:.1%} of the API's median {statistics.median(off):,.0f} µs per request with capture off, so "
            f"at most that share of the throughput of a CPU-bound API process "
            f"({'within' if share <= 1 - TARGET_RATIO else 'beyond'} the 5 % target)."]


def _paired(raw: dict[str, Any]) -> list[str]:
    """Each round's own ratios (its two settings measured back to back, so the machine's drift
    between rounds cancels) and the API process's busy cores, per level."""
    lines = ["", "Per round (a round measures both settings back to back, so its own ratios are less moved by the "
             "machine's drift between rounds than the ratios of medians above; their spread at concurrency 1, "
             "where capture's cost per request is the same, shows the noise), and the API process's CPU in cores "
             "(median). The API's threads share one GIL: when the process runs near one core, its req/s is the "
             "inverse of its CPU per request, whatever raised that, capture or the other work on the machine:", "",
             "| concurrency | req/s ratio per round | median | CPU ratio per round | median | API cores 0 % | "
             "API cores 100 % |", "|---:|---|---:|---|---:|---:|---:|"]
    for level in raw["levels"]:
        rows = [r for r in raw["rows"] if r["concurrency"] == level]
        pairs = []
        for round_ in sorted({r["round"] for r in rows}):
            by = {r["percent"]: r for r in rows if r["round"] == round_}
            if 0 in by and 100 in by and by[0]["rps"] and by[0]["api_us_per_req"]:
                pairs.append((by[100]["rps"] / by[0]["rps"], by[100]["api_us_per_req"] / by[0]["api_us_per_req"]))
        if not pairs:
            continue
        rps_ratios, cpu_ratios = [p[0] for p in pairs], [p[1] for p in pairs]
        cores = {pct: statistics.median(r["api_cpu"] for r in rows if r["percent"] == pct) for pct in (0, 100)}
        lines.append(f"| {level} | {', '.join(f'{v:.3f}' for v in rps_ratios)} | {statistics.median(rps_ratios):.3f} | "
                     f"{', '.join(f'{v:.3f}' for v in cpu_ratios)} | {statistics.median(cpu_ratios):.3f} | "
                     f"{cores[0]:.2f} | {cores[100]:.2f} |")
    return lines


def render_capture(raw: dict[str, Any], elapsed: float) -> str:  # noqa: C901 - one table after another
    """The README section of a ``--capture`` run."""
    lines = [HEADING, "",
             "What capturing an app's traffic (issue 12 item 5: each answered query's input, output, time and "
             "query id buffered in memory and written to S3 in SageMaker Data Capture's layout by a background "
             "thread) costs `POST /apps/{app}/predict`. One `kilele local up` started by the bench, the quickstart's "
             "decision tree served as in the section above, the app registered; per concurrency level "
             f"{raw['repeats']} rounds, each measuring capture at 0 % and at 100 % back to back (order alternating "
             f"per round), {raw['warmup']:g} s warm-up then {raw['duration']:g} s measured each, one query per "
             "request, closed-loop keep-alive clients (bench/predict_path_loadgen.py). *API µs/req* is the stack "
             "process's CPU time per answered request (it runs the API and the capture thread; the writes go to "
             "moto, whose CPU is its own column). The machine is shared with other sessions' work: compare the "
             "medians, and the CPU time, which load elsewhere disturbs less than req/s.", "",
             "| concurrency | req/s, capture 0 % (median) | req/s, capture 100 % (median) | 100 % / 0 % | "
             "API µs/req 0 % | API µs/req 100 % | CPU ratio | target by req/s (>= 0.95) | "
             "target by CPU time (<= 1/0.95) |",
             "|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for level in raw["levels"]:
        rows = [r for r in raw["rows"] if r["concurrency"] == level]
        off = [r for r in rows if r["percent"] == 0]
        on = [r for r in rows if r["percent"] == 100]
        rps_off, rps_on = statistics.median(r["rps"] for r in off), statistics.median(r["rps"] for r in on)
        cpu_off = statistics.median(r["api_us_per_req"] for r in off)
        cpu_on = statistics.median(r["api_us_per_req"] for r in on)
        ratio = rps_on / rps_off if rps_off else float("nan")
        lines.append(f"| {level} | {rps_off:,.0f} | {rps_on:,.0f} | {ratio:.3f} | {cpu_off:,.0f} | {cpu_on:,.0f} | "
                     f"{cpu_on / cpu_off:.3f} | {'met' if ratio >= TARGET_RATIO else 'not met'} | "
                     f"{'met' if cpu_on / cpu_off <= 1 / TARGET_RATIO else 'not met'} |")
    lines += _paired(raw)
    lines += ["", "Every round (req/s; API µs/req; the machine's busy cores of its 2 during the round):", "",
              "| concurrency | round | capture | req/s | p50 ms | p99 ms | API µs/req | moto CPU | machine CPU |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in raw["rows"]:
        lines.append(f"| {r['concurrency']} | {r['round']} | {r['percent']} % | {r['rps']:,.0f} | {r['p50_ms']:.2f} | "
                     f"{r['p99_ms']:.2f} | {r['api_us_per_req']:,.0f} | {r['moto_cpu']:.2f} | {r['machine_cpu']:.2f} |")
    if raw.get("service"):
        lines += render_service_cost(raw["service"])
        lines += _verdict(raw)
    lines += ["", f"Capture files in S3 while the load ran: {raw['files_during_run']} (the buffer is written when it "
              "holds 5,000 records or 4 MiB, or every 60 s; the stop writes the rest).", "",
              f"Reproduce: `.venv/bin/python bench/predict_path.py --capture` (this run: {elapsed / 60:.1f} min, "
              f"{time.strftime('%Y-%m-%d')}).  ",
              f"Machine: {machine()}; shared with other sessions during the run."]
    return "\n".join(lines) + "\n"
