"""The AWS twin of the continuous-test metrics sink: EMF documents as log lines.

On Lambda a process's standard output is its log stream, and CloudWatch turns each log line
that is an Embedded Metric Format document into metrics: no API call, no IAM grant, nothing
lost to throttling (PutMetricData would be one more client and call per job). This is how the
serving metrics are written too (``chalicelib/adapters/cloudwatch_metrics.py``, Powertools'
flush prints the same way). The local twin is ``local.py`` beside this file; both are under
``tests/contract/test_ct_metrics_sinks.py``.
"""
from __future__ import annotations

import json
import sys
import threading
from typing import Optional, TextIO

from chalicelib.ct_metrics_format import CTMetricsRecord, emf_documents
from chalicelib.errors import Unavailable


class EmfCTMetrics:
    """Writes each record's documents to ``stream`` (standard output unless given), one JSON
    document per line."""

    def __init__(self, stage: str, stream: Optional[TextIO] = None):
        self._stage = stage
        self._stream = stream
        self._lock = threading.Lock()  # lines of two records never interleave

    def emit(self, record: CTMetricsRecord) -> None:
        documents = emf_documents(record, self._stage)
        lines = "".join(json.dumps(d, separators=(",", ":")) + "\n" for d in documents)
        stream = self._stream or sys.stdout  # read at each call: a test (or Lambda) may swap stdout
        try:
            with self._lock:
                stream.write(lines)
                stream.flush()
        except (OSError, ValueError) as e:  # ValueError: a closed stream
            raise Unavailable(f"could not write the continuous-test metrics: {e}") from e


__all__ = ["EmfCTMetrics"]
