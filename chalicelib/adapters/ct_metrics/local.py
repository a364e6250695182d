"""The local twin of the continuous-test metrics sink: the EMF documents the AWS twin would log,
appended to ``ct-metrics.jsonl`` in the local stack's data directory.

The local stack has no CloudWatch; this file is what CloudWatch would have been given, one
document per line, so an operator can read (``jq``) the very metrics the dashboard would graph
on AWS, and tests can check them. The AWS twin is ``emf.py`` beside this file; both are under
``tests/contract/test_ct_metrics_sinks.py``.
"""
from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from chalicelib.ct_metrics_format import CTMetricsRecord, emf_documents
from chalicelib.errors import Unavailable

LOG_FILE = "ct-metrics.jsonl"


class LocalCTMetricsLog:
    """The metrics log in ``directory`` (made on the first write)."""

    def __init__(self, directory: Path, stage: str):
        self.path = Path(directory) / LOG_FILE
        self._stage = stage
        self._lock = threading.Lock()

    def emit(self, record: CTMetricsRecord) -> None:
        documents = emf_documents(record, self._stage)
        lines = "".join(json.dumps(d, separators=(",", ":")) + "\n" for d in documents)
        try:
            with self._lock:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a+b") as f:
                    # After a line a crash cut short, start a new one: the next record stays readable.
                    size = f.seek(0, 2)
                    if size:
                        f.seek(size - 1)
                        if f.read(1) != b"\n":
                            lines = "\n" + lines
                    f.write(lines.encode("utf-8"))
        except OSError as e:
            raise Unavailable(f"could not write the continuous-test metrics to {self.path}: {e}") from e

    def read(self) -> list[dict[str, Any]]:
        """Every document written so far, oldest first (a line cut short by a crash is skipped)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except OSError as e:
            raise Unavailable(f"could not read {self.path}: {e}") from e
        out = []
        for line in text.splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out


__all__ = ["LOG_FILE", "LocalCTMetricsLog"]
