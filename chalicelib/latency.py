"""The per-app latency histogram's buckets (shared by the metrics store and the predict service)."""
from __future__ import annotations

import math

# Latency histogram: bucket i holds latencies in [FIRST * RATIO**(i-1), FIRST * RATIO**i) ms.
LATENCY_FIRST_MS = 0.5
LATENCY_RATIO = 1.2
LATENCY_BUCKETS = 64  # up to ~60 s


def latency_bucket(ms: float) -> int:
    if ms <= LATENCY_FIRST_MS:
        return 0
    return min(LATENCY_BUCKETS - 1, 1 + int(math.log(ms / LATENCY_FIRST_MS, LATENCY_RATIO)))


def bucket_upper_ms(index: int) -> float:
    return LATENCY_FIRST_MS * LATENCY_RATIO**index
