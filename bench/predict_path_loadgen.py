"""Closed-loop HTTP load for bench/predict_path.py, in its own process (never the server's).

N clients, each on one keep-alive HTTP/1.1 connection, each sending one request at a time (the
next as soon as the answer arrives), with the given headers (the API's ``x-api-key``). Runs
``--warmup`` seconds unmeasured, then measures for ``--duration`` seconds or ``--max-requests``
answers, whichever ends first (every loop is bounded in time and count). Answers are read by
their Content-Length; only the status is checked. Reports its own CPU time and that of the
``--pids`` processes over the measured window (in cores), and the whole machine's, from /proc.

    python bench/predict_path_loadgen.py --port P --path /apps/iris/predict --bodies FILE \
        --header 'x-api-key: K' -c 16 --warmup 2 --duration 8 --pids 1,2,3

Prints one JSON object.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

import numpy as np

# One keep-alive HTTP/1.1 client and the /proc readings, shared with the serving bench's load generator.
from serving_loadgen import Connection, machine_busy, self_cpu  # bench/ is the script's folder
from serving_loadgen import cpu_seconds_by_pid as cpu_seconds


async def run(args) -> dict:
    loop = asyncio.get_running_loop()
    extra = "".join(f"{h.strip()}\r\n" for h in args.header)
    bodies = [line.encode() for line in open(args.bodies).read().splitlines() if line.strip()]
    requests = [
        (f"POST {args.path} HTTP/1.1\r\nHost: {args.host}:{args.port}\r\nContent-Type: application/json\r\n"
         f"{extra}Content-Length: {len(body)}\r\n\r\n").encode() + body
        for body in bodies
    ]
    pids = [int(p) for p in args.pids.split(",") if p]
    connections = []
    for _ in range(args.concurrency):
        _, protocol = await loop.create_connection(Connection, args.host, args.port)
        connections.append(protocol)

    window_start = time.perf_counter() + args.warmup
    window_end = window_start + args.duration
    latencies: list[float] = []
    state = {"measured": 0, "errors": 0, "statuses": {}, "stop": False, "ended_at": None, "error": None,
             "answered": 0}
    marks: dict[str, object] = {}

    async def client(index: int, connection: Connection) -> None:
        i, n = index, len(requests)
        while not state["stop"]:
            data = requests[i % n]
            i += 1
            t0 = time.perf_counter()
            try:
                status, _ = await connection.request(data)
            except Exception as e:  # noqa: BLE001 - a lost connection ends the run, reported
                state["error"] = f"{type(e).__name__}: {e}"
                state["stop"] = True
                return
            t1 = time.perf_counter()
            if status == 200:
                state["answered"] += 1  # warm-up and all: what the server's own counters should see
            if t1 >= window_end:
                state["stop"] = True
                state["ended_at"] = state["ended_at"] or window_end
                return
            if t1 >= window_start:
                if status == 200:
                    if t0 >= window_start:
                        latencies.append(t1 - t0)
                    state["measured"] += 1
                else:
                    state["errors"] += 1
                    state["statuses"][status] = state["statuses"].get(status, 0) + 1
                if state["measured"] + state["errors"] >= args.max_requests:
                    state["stop"] = True
                    state["ended_at"] = t1
                    return

    def mark(name: str) -> None:
        marks[name] = (time.perf_counter(), self_cpu(), cpu_seconds(pids), machine_busy())

    async def start_mark() -> None:
        await asyncio.sleep(max(0.0, window_start - time.perf_counter()))
        mark("start")

    starter = asyncio.ensure_future(start_mark())
    tasks = [asyncio.ensure_future(client(i, c)) for i, c in enumerate(connections)]
    while not state["stop"] and time.perf_counter() < window_end:
        await asyncio.sleep(min(0.05, max(0.0, window_end - time.perf_counter())))
    await starter
    mark("end")
    await asyncio.wait(tasks, timeout=30)
    for connection in connections:
        if connection.transport is not None:
            connection.transport.close()

    (t_start, c_start, p_start, m_start), (t_end, c_end, p_end, m_end) = marks["start"], marks["end"]
    window = max(1e-9, t_end - t_start)
    seconds = max(1e-9, (state["ended_at"] or t_end) - window_start)
    values = np.array(latencies) * 1000.0
    return {
        "concurrency": args.concurrency,
        "requests": state["measured"],
        "answered": state["answered"],
        "errors": state["errors"],
        "statuses": state["statuses"],
        "error": state["error"],
        "seconds": seconds,
        "rps": state["measured"] / seconds,
        "p50_ms": float(np.percentile(values, 50)) if len(values) else None,
        "p99_ms": float(np.percentile(values, 99)) if len(values) else None,
        "mean_ms": float(values.mean()) if len(values) else None,
        "client_cpu": (c_end - c_start) / window,
        "process_cpu": {str(pid): (p_end[pid] - p_start[pid]) / window for pid in pids},
        "machine_cpu": (m_end - m_start) / window,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--bodies", required=True, help="a file with one JSON request body per line (cycled)")
    parser.add_argument("--header", action="append", default=[], help="an extra header line, e.g. 'x-api-key: K'")
    parser.add_argument("-c", "--concurrency", type=int, default=1)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--max-requests", type=int, default=200_000)
    parser.add_argument("--pids", default="")
    args = parser.parse_args(argv)
    if args.host != "127.0.0.1":
        parser.error("loopback only: --host 127.0.0.1")
    if args.warmup < 0 or not 0 < args.duration <= 120 or not 0 < args.max_requests <= 10_000_000 \
            or not 0 < args.concurrency <= 512:
        parser.error("bounds: 0 <= warmup, 0 < duration <= 120 s, 0 < max-requests <= 1e7, 0 < c <= 512")
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(asyncio.wait_for(run(args), timeout=args.warmup + args.duration + 60))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
