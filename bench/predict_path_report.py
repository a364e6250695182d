"""The README section of bench/predict_path.py: its table, the computed summary, and what the
profiles showed (kept apart so that each module stays small)."""
from __future__ import annotations

import sys
from typing import Any, Optional

from readme_section import machine

HEADING = "## Predict path: API vs endpoint (local stack)"
TARGET_RATIO, TARGET_ADDED_P50_MS = 0.5, 2.0

# What profiling showed (py-spy on the stack's process under this bench's load, cProfile and thread
# CPU time of the WSGI app called in-process, a client micro-benchmark; 2026-12-01, on this shared
# machine while other sessions ran): written by hand, printed under each run's numbers.
PROFILE_NOTES: list[str] = [
    "Where the API's time went, and what was changed (profiles taken while developing this; the table "
    "above is this run's):",
    "",
    "- Before: per request 4 DynamoDB reads (session or key, user, app, the app's jobs) and 1 write "
    "(metrics); against moto each read costs the caller ~1.5–2 ms and moto ~2.5–3.5 ms of CPU (the line "
    "above measures one), so moto and botocore were most of the path (the *before* rows' µs/req). Now the caller is cached (`auth_cache_seconds`), metrics are "
    "counted in memory and written per app-minute, and the only read left is the app's row (its version, "
    "settings and live job ids); the local stack, whose one API process makes every write to that row, "
    "caches it and drops it on those writes. With `KILELE_SERVING_STATE_CACHE=false` the row is read per "
    "request, as every Lambda instance must on AWS: that read alone is most of those rows' cost here.",
    "- The call to the endpoint went through `requests` (~750 µs of CPU per call in a client "
    "micro-benchmark: environment proxies, netrc lookups, hooks); the local endpoint runner now uses a "
    "urllib3 pool (~220 µs; plain `http.client` ~100 µs).",
    "- What is left is the web stack: the WSGI app called in-process with the endpoint in memory (Chalice's "
    "LocalGateway building the Lambda event and context, Chalice's routing, content-type checks and response "
    "serialization, our handler, the services) costs ~195 µs of CPU per request, of which the services "
    "(auth cache, the one-parse body, predict, metrics) under 100 µs; waitress itself costs the *floor* rows' "
    "µs/req; add the urllib3 call to the endpoint and 8 waitress threads taking turns on one GIL. The "
    "endpoint (uvicorn + httptools + uvloop, adaptive batching) spends several times less per request from "
    "c=16 on (its rows' µs/req), so one API process serving through Chalice and waitress cannot reach half "
    "its rate: the bound in the summary above (one core at the API's measured CPU per request) is below "
    "50%, and waitress answering a constant with no Chalice and no service is only about as fast as the "
    "endpoint (the floor line). So one API process cannot meet the throughput target; the c=1 latency "
    "target is judged in the summary. More API processes (locally) or Lambda instances (on AWS) are what "
    "raise the API's throughput; nothing was tuned on these numbers "
    "(8 waitress threads, as `kilele local up` starts).",
    "",
]


def fmt(value: Optional[float], digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def render(phases: list[Any], measured: dict[str, dict[str, Any]],
           floor: dict[tuple[str, int], dict[str, Any]], levels: list[int], args, elapsed: float) -> str:
    def row(stack_label: str, target: str, concurrency: int, r: dict[str, Any], floor_row: bool = False) -> str:
        cpu = list(r["process_cpu"].values())
        other = max(0.0, r["machine_cpu"] - sum(cpu) - r["client_cpu"])
        server = cpu[2] if "endpoint" in target else cpu[0]  # the process that answered the client
        per_request = server / r["rps"] * 1e6 if r["rps"] else None
        moto, endpoint = ("-", "-") if floor_row else (f"{cpu[1]:.2f}", f"{cpu[2]:.2f}")
        return (f"| {stack_label} | {target} | {concurrency} | {r['rps']:,.0f} | {fmt(r['p50_ms'])} | "
                f"{fmt(r['p99_ms'])} | {cpu[0]:.2f} | {fmt(per_request, 0)} | {moto} | {endpoint} | "
                f"{r['client_cpu']:.2f} | {other:.2f} |")

    rows, summary = [], []
    for phase in phases:
        results = measured[phase.key]["results"]
        for concurrency in levels:
            rows.append(row(phase.label, "`POST /apps/iris/predict`", concurrency, results[("api", concurrency)]))
            rows.append(row(phase.label, "endpoint `/invocations`", concurrency, results[("endpoint", concurrency)]))
        parts = []
        if 16 in levels:
            api, endpoint = results[("api", 16)], results[("endpoint", 16)]
            ratio = api["rps"] / endpoint["rps"]
            parts.append(f"API / endpoint throughput at c=16 **{ratio:.1%}** (target ≥ {TARGET_RATIO:.0%})")
            api_us = list(api["process_cpu"].values())[0] / api["rps"] * 1e6
            parts.append(f"at {api_us:,.0f} µs of CPU per request, one core (one process, one GIL) would give at "
                         f"most {1e6 / api_us:,.0f} req/s, {1e6 / api_us / endpoint['rps']:.0%} of the endpoint's rate")
        if 1 in levels:
            added = results[("api", 1)]["p50_ms"] - results[("endpoint", 1)]["p50_ms"]
            parts.append(f"added p50 at c=1 **{added:.2f} ms** (target ≤ {TARGET_ADDED_P50_MS:g} ms)")
        m = measured[phase.key]
        parts.append(f"the app's metrics counted {m['counted']:,} predict requests, the load generator got "
                     f"{m['answered']:,} answers")
        summary.append(f"- {phase.label}: " + "; ".join(parts) + ".")
    for concurrency in levels:
        rows.append(row("floor: waitress (8 threads) answering a constant, no Chalice, no services",
                        "the API's requests", concurrency, floor[("floor", concurrency)], floor_row=True))
    if 16 in levels:
        endpoint = measured[phases[0].key]["results"][("endpoint", 16)]["rps"]
        summary.append(f"- floor: waitress alone answers {floor[('floor', 16)]['rps']:,.0f} req/s at c=16, "
                       f"{floor[('floor', 16)]['rps'] / endpoint:.0%} of the endpoint's rate in the first stack.")
    row_read = measured["default"].get("row_read")
    if row_read:
        summary.append(
            f"- One read of the app's row (`ApplicationRepository.serving_state`, a consistent GetItem through "
            f"pynamodb) against this moto, measured from the bench process after the load: "
            f"{row_read['client_ms']:.2f} ms of the caller's CPU, {row_read['moto_ms']:.2f} ms of moto's, "
            f"{row_read['wall_ms']:.2f} ms wall.")
    return "\n".join([
        HEADING,
        "",
        "The same model (the quickstart's decision tree on iris, one trial, served by `kilele-serve` as the "
        "local endpoint runner starts it) asked through the platform's predict route with an API key and "
        "straight at its endpoint, on a `kilele local up` started by the bench. Closed-loop clients "
        "(bench/predict_path_loadgen.py, its own process), each on its own keep-alive HTTP/1.1 connection, "
        "for both targets alike, one query per request (Rafiki's `{\"query\": [...]}` to the API, "
        "`{\"queries\": [[...]]}` to the endpoint), "
        f"{args.warmup:g} s warm-up then {args.duration:g} s measured per row, each stack measured in one go. "
        "CPU columns are cores over the measured window (the machine has 2): *API* is the stack's process "
        "(waitress, Chalice, the services; the API's calls to the endpoint leave from it), *server µs/req* the "
        "CPU per answered request of the process the client talked to (the API's, the endpoint's, or the "
        "floor server's), *moto* the emulated AWS (DynamoDB), *endpoint* the inference server, "
        "*load gen* the load generator, *other* everything else on this shared machine (other sessions' tests "
        "and benchmarks ran during this run: rows with high *other CPU* understate what they measure).",
        "",
        "| stack | target | concurrency | req/s | p50 ms | p99 ms | API CPU | server µs/req | moto CPU | endpoint CPU | "
        "load gen CPU | other CPU |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        *summary,
        "",
        *PROFILE_NOTES,
        f"Reproduce: `.venv/bin/python bench/predict_path.py{' --before ' + args.before if args.before else ''}` "
        f"(this run: {elapsed / 60:.1f} min, with starting the stacks and training).  ",
        f"Machine: {machine()}; Python {sys.version.split()[0]}.",
        "",
    ])
