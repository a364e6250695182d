"""The server's settings (:class:`ServerConfig`): command-line flags, else environment variables,
else defaults.

This module is the only one in ``kilele_inference`` that reads the environment, and nothing in the
package writes it: the resolved :class:`ServerConfig` is handed to the app (and to uvicorn's worker
processes) as an object, so what a worker serves never depends on what the process inherited.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Optional

SAGEMAKER_MODEL_DIR = "/opt/ml/model"
DEFAULT_PORT = 8080
DEFAULT_MAX_BODY_BYTES = 5 * 1024 * 1024

# Environment variables (SageMaker passes a model's Environment to the container): name -> field.
ENVIRONMENT = {
    "KILELE_BUNDLE": "bundle",
    "SAGEMAKER_BIND_TO_PORT": "port",
    "SAGEMAKER_MODEL_SERVER_WORKERS": "workers",
    "KILELE_BATCHING": "batching",
    "KILELE_MAX_BATCH_SIZE": "max_batch_size",
    "KILELE_INITIAL_BATCH_SIZE": "initial_batch_size",
    "KILELE_BATCH_STEP": "batch_step",
    "KILELE_BATCH_BACKOFF": "batch_backoff",
    "KILELE_TARGET_LATENCY_MS": "target_latency_ms",
    "KILELE_MAX_WAIT_MS": "max_wait_ms",
    "KILELE_ONNX": "use_onnx",
    "KILELE_ONNX_THREADS": "onnx_threads",
    "KILELE_ONNX_PROVIDERS": "onnx_providers",
    "KILELE_MAX_BODY_BYTES": "max_body_bytes",
    "KILELE_LATENCY_WINDOW": "latency_window",
    "KILELE_GRACEFUL_TIMEOUT": "graceful_timeout",
    "KILELE_LOG_LEVEL": "log_level",
    "KILELE_CALL_TIMEOUT_MS": "call_timeout_ms",
    "KILELE_MAX_STUCK_CALLS": "max_stuck_calls",
    "KILELE_MIN_CALL_TIMEOUT_MS": "min_call_timeout_ms",
}


@dataclass
class ServerConfig:
    """Every setting of one server (all worker processes share it). Picklable: ``--workers N``
    hands it to each worker process with uvicorn's config."""

    bundle: str = ""
    host: str = "0.0.0.0"
    port: int = DEFAULT_PORT
    # A Unix socket to listen on instead of host:port (the local stack's endpoints: the server
    # runs with no network at all, the stack connects through the socket in its directory).
    uds: Optional[str] = None
    workers: int = 1
    batching: bool = True
    max_batch_size: int = 256
    initial_batch_size: int = 8
    batch_step: int = 4
    batch_backoff: float = 0.75
    target_latency_ms: float = 20.0
    max_wait_ms: float = 2.0
    use_onnx: bool = True
    onnx_threads: int = 1
    onnx_providers: Optional[str] = None  # comma-separated; None: CUDA when available, else CPU
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    latency_window: int = 10000
    graceful_timeout: float = 30.0
    log_level: str = "info"
    access_log: bool = False
    # A request's deadline: its X-Kilele-Deadline-Ms header (the platform sends what is left of
    # the app's latency budget), at most this. Past it the call is abandoned, the model replaced.
    call_timeout_ms: float = 30000.0
    # ... but never less than this: a batch that is only late (a tight SLO) is not worth a reload
    # of the models; the caller has had its default answer already.
    min_call_timeout_ms: float = 1000.0
    # Abandoned calls still running (threads that never returned) past which /ping fails, so
    # that the platform replaces the whole server (a stuck thread may keep burning a CPU).
    max_stuck_calls: int = 4

    def validate(self) -> "ServerConfig":
        """Returns ``self`` when every setting is usable, else raises ``ValueError`` naming each problem."""
        problems = []
        if not 0 <= self.port <= 65535:
            problems.append(f"port {self.port} is not a TCP port")
        if self.workers < 1:
            problems.append("workers must be at least 1")
        if not 1 <= self.max_batch_size:
            problems.append("max batch size must be at least 1")
        if self.initial_batch_size < 1:
            problems.append("initial batch size must be at least 1")
        if self.batch_step <= 0:
            problems.append("batch step must be positive")
        if not 0 < self.batch_backoff < 1:
            problems.append("batch backoff must be in (0, 1)")
        if self.target_latency_ms <= 0:
            problems.append("target latency must be positive")
        if self.max_wait_ms < 0:
            problems.append("max wait must not be negative")
        if self.onnx_threads < 0:
            problems.append("ONNX threads must not be negative (0: ONNX Runtime's default)")
        if self.max_body_bytes < 1:
            problems.append("max body bytes must be positive")
        if self.call_timeout_ms <= 0:
            problems.append("call timeout must be positive")
        if self.min_call_timeout_ms < 0:
            problems.append("min call timeout must not be negative")
        if self.max_stuck_calls < 1:
            problems.append("max stuck calls must be at least 1")
        if self.latency_window < 1:
            problems.append("latency window must be at least 1")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def providers(self) -> Optional[list[str]]:
        """The ONNX Runtime execution providers asked for, or None for the default choice."""
        if not self.onnx_providers:
            return None
        return [p.strip() for p in self.onnx_providers.split(",") if p.strip()]


def _parse(kind: type, name: str, raw: str):
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"${name}={raw!r} is not a boolean (use 1/0, true/false)")
    try:
        return kind(raw)
    except ValueError:
        raise ValueError(f"${name}={raw!r} is not a valid {kind.__name__}") from None


def environment_defaults(environ: Optional[dict[str, str]] = None) -> dict[str, object]:
    """Settings given by environment variables (see :data:`ENVIRONMENT`): ``environ``, else this
    process's environment (the package's only read of ``os.environ``). Raises ``ValueError`` for a
    value of the wrong type."""
    environ = os.environ if environ is None else environ
    types = {"bundle": str, "onnx_providers": str, "log_level": str}
    for f in fields(ServerConfig):
        types.setdefault(f.name, {"int": int, "float": float, "bool": bool}.get(str(f.type), str))
    values: dict[str, object] = {}
    for name, field_name in ENVIRONMENT.items():
        raw = environ.get(name)
        if raw is not None and raw.strip() != "":
            values[field_name] = _parse(types[field_name], name, raw)
    return values
