"""Closed-loop HTTP load generator for bench/serving.py (its own process, never the server's).

N clients, each with one keep-alive HTTP/1.1 connection, each sending one request at a time (the
next as soon as the previous answer arrives). It runs for ``--warmup`` seconds unmeasured, then
measures for ``--duration`` seconds or ``--max-requests`` completed requests, whichever ends first,
then stops (every loop is bounded in time and count).

The client is a minimal asyncio Protocol on uvloop (no HTTP library): requests are pre-encoded
bytes, an answer is read by its Content-Length and only its status line is checked, so the
generator spends as little CPU as possible on a machine whose 2 cores it shares with the server.
Its own CPU time over the measured window is reported (``client_cpu``, in cores), as are the
server processes' (``server_cpu``, from /proc/<pid>/stat) and the whole machine's (``machine_cpu``,
from /proc/stat: what is left after server and client is other load on the shared machine).

At the start and end of the measured window it fetches ``--metrics-url`` (raw text, on a separate
connection) so the caller can compute the server's mean batch size over exactly that window.

    python bench/serving_loadgen.py --port P --path /invocations --bodies FILE -c 32 \
        --warmup 2 --duration 8 --max-requests 200000 [--metrics-url URL] [--pids 1,2]

Prints one JSON object.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time
from typing import Optional
from urllib.parse import urlsplit

import numpy as np

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class Connection(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time."""

    def __init__(self) -> None:
        self.transport: Optional[asyncio.Transport] = None
        self.buffer = bytearray()
        self.waiter: Optional[asyncio.Future] = None
        self.header_end = -1
        self.need = -1
        self.closed: Optional[BaseException] = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        self.closed = exc or ConnectionError("the server closed the connection")
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(self.closed)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.need < 0:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).lower()
            at = head.find(b"\r\ncontent-length:")
            if at < 0:
                self.waiter.set_exception(RuntimeError(f"an answer without Content-Length: {head[:200]!r}"))
                return
            line_end = head.find(b"\r\n", at + 2)
            length = int(head[at + 17:line_end if line_end > 0 else len(head)])
            self.header_end = end
            self.need = end + 4 + length
        if len(self.buffer) >= self.need:
            status = int(self.buffer[9:12])
            body = bytes(self.buffer[self.header_end + 4:self.need])
            del self.buffer[:self.need]
            self.need = -1
            waiter, self.waiter = self.waiter, None
            waiter.set_result((status, body))

    def request(self, data: bytes) -> asyncio.Future:
        if self.closed is not None:
            raise self.closed
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self.waiter


def cpu_seconds_by_pid(pids: list[int]) -> dict[int, float]:
    """CPU seconds (user + system) each process has used; 0 for one that is gone."""
    out = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out[pid] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime
        except (OSError, IndexError, ValueError):
            out[pid] = 0.0
    return out


def cpu_seconds(pids: list[int]) -> float:
    return sum(cpu_seconds_by_pid(pids).values())


def machine_busy() -> float:
    """Busy CPU seconds of the whole machine (all cores) since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / CLOCK_TICKS


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def fetch(url: str) -> str:
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n\r\n".encode())
    data = await reader.read()
    writer.close()
    return data.split(b"\r\n\r\n", 1)[-1].decode(errors="replace")


async def run(args) -> dict:
    loop = asyncio.get_running_loop()
    host = f"{args.host}:{args.port}"
    bodies = [line.encode() for line in open(args.bodies).read().splitlines() if line.strip()]
    requests = [
        (f"POST {args.path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
         f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        for body in bodies
    ]
    pids = [int(p) for p in args.pids.split(",") if p] if args.pids else []

    connections = []
    for _ in range(args.concurrency):
        _, protocol = await loop.create_connection(Connection, args.host, args.port)
        connections.append(protocol)

    started = time.perf_counter()
    window_start = started + args.warmup
    window_end = window_start + args.duration
    latencies: list[float] = []
    state = {"measured": 0, "errors": 0, "statuses": {}, "stop": False, "ended_at": None, "error": None}
    snapshots: dict[str, object] = {}

    async def client(index: int, connection: Connection) -> None:
        i = index
        n = len(requests)
        while not state["stop"]:
            data = requests[i % n]
            i += 1
            t0 = time.perf_counter()
            try:
                status, _ = await connection.request(data)
            except Exception as e:  # connection lost: stop the run and report it
                state["error"] = f"{type(e).__name__}: {e}"
                state["stop"] = True
                return
            t1 = time.perf_counter()
            if t1 >= window_end:
                state["stop"] = True
                if state["ended_at"] is None:
                    state["ended_at"] = window_end
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

    async def snapshot(name: str, at: float) -> None:
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        snapshots[name + "_time"] = time.perf_counter()
        snapshots[name + "_client_cpu"] = self_cpu()
        snapshots[name + "_server_cpu"] = cpu_seconds(pids)
        snapshots[name + "_machine_cpu"] = machine_busy()
        if args.metrics_url:
            try:
                snapshots[name + "_metrics"] = await fetch(args.metrics_url)
            except OSError as e:
                snapshots[name + "_metrics"] = None
                snapshots[name + "_metrics_error"] = str(e)

    start_snapshot = asyncio.ensure_future(snapshot("start", window_start))
    tasks = [asyncio.ensure_future(client(i, c)) for i, c in enumerate(connections)]
    # The end snapshot: at the window's end, or as soon as the request bound stops the run.
    while not state["stop"] and time.perf_counter() < window_end:
        await asyncio.sleep(min(0.05, max(0.0, window_end - time.perf_counter())))
    await start_snapshot
    await snapshot("end", 0)
    await asyncio.wait(tasks, timeout=30)
    for connection in connections:
        if connection.transport is not None:
            connection.transport.close()

    ended = state["ended_at"] or snapshots["end_time"]
    seconds = max(1e-9, ended - window_start)
    window = snapshots["end_time"] - snapshots["start_time"]
    values = np.array(latencies) * 1000.0
    result = {
        "concurrency": args.concurrency,
        "requests": state["measured"],
        "errors": state["errors"],
        "statuses": state["statuses"],
        "error": state["error"],
        "seconds": seconds,
        "rps": state["measured"] / seconds,
        "p50_ms": float(np.percentile(values, 50)) if len(values) else None,
        "p99_ms": float(np.percentile(values, 99)) if len(values) else None,
        "mean_ms": float(values.mean()) if len(values) else None,
        "latency_samples": int(len(values)),
        "client_cpu": (snapshots["end_client_cpu"] - snapshots["start_client_cpu"]) / window,
        "server_cpu": (snapshots["end_server_cpu"] - snapshots["start_server_cpu"]) / window if pids else None,
        "machine_cpu": (snapshots["end_machine_cpu"] - snapshots["start_machine_cpu"]) / window,
        "metrics_start": snapshots.get("start_metrics"),
        "metrics_end": snapshots.get("end_metrics"),
    }
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/invocations")
    parser.add_argument("--bodies", required=True, help="a file with one JSON request body per line (cycled)")
    parser.add_argument("-c", "--concurrency", type=int, default=1)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--max-requests", type=int, default=200_000)
    parser.add_argument("--metrics-url")
    parser.add_argument("--pids", default="")
    args = parser.parse_args(argv)
    if args.warmup < 0 or not 0 < args.duration <= 120 or not 0 < args.max_requests <= 10_000_000:
        parser.error("bounds: 0 <= warmup, 0 < duration <= 120 s, 0 < max-requests <= 1e7")
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
