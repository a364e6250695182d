"""Counters and a sliding window of request latencies for ``GET /metrics``."""
from __future__ import annotations

import time
from collections import deque
from typing import Any, Optional

import numpy as np

PERCENTILES = (("p50", 50.0), ("p95", 95.0), ("p99", 99.0), ("p99.9", 99.9))


class Metrics:
    def __init__(self, window: int = 10000):
        self.window = window
        self.started_at = time.time()
        self.requests = 0  # POST /invocations answered
        self.queries = 0  # queries answered
        self.errors = 0  # POST /invocations answered with an error
        self.errors_by_code: dict[str, int] = {}
        self.in_flight = 0
        self._latencies: deque[float] = deque(maxlen=window)

    def observe(self, seconds: float, queries: int = 0, error_code: Optional[str] = None) -> None:
        """One /invocations request answered: its latency (kept for successes only) and outcome."""
        self.requests += 1
        if error_code is None:
            self.queries += queries
            self._latencies.append(seconds)
        else:
            self.errors += 1
            self.errors_by_code[error_code] = self.errors_by_code.get(error_code, 0) + 1

    def latency_ms(self) -> dict[str, Any]:
        summary: dict[str, Any] = {"window": len(self._latencies), "window_size": self.window}
        if not self._latencies:
            summary.update({name: None for name, _ in PERCENTILES})
            return summary
        values = np.fromiter(self._latencies, dtype=np.float64, count=len(self._latencies)) * 1000.0
        for (name, _), value in zip(PERCENTILES, np.percentile(values, [q for _, q in PERCENTILES])):
            summary[name] = round(float(value), 3)
        summary["mean"] = round(float(values.mean()), 3)
        return summary
