"""``kilele-serve``: serves one bundle over HTTP with uvicorn.

    kilele-serve serve                       # SageMaker: `docker run IMAGE serve`, bundle in /opt/ml/model
    kilele-serve --bundle DIR --host 127.0.0.1 --port 8080

Settings: flags, else environment variables (``kilele_inference.config.ENVIRONMENT``), else defaults.
"""
from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any, Optional, Sequence

from kilele_inference.config import SAGEMAKER_MODEL_DIR, ServerConfig, environment_defaults

logger = logging.getLogger("kilele_inference")

FAILURE_FILE_ENV = "KILELE_INFERENCE_FAILURE_FILE"
CONFIG_ENV = "KILELE_INFERENCE_CONFIG"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kilele-serve",
        description="Serve a Kilele bundle: GET /ping, POST /invocations, GET /metrics.",
        epilog="Every setting also has an environment variable (see the README); flags win.",
    )
    # SageMaker starts inference images as `<entrypoint> serve`.
    parser.add_argument("command", nargs="?", choices=["serve"],
                        help=f"serve the bundle in {SAGEMAKER_MODEL_DIR} (or --bundle / $KILELE_BUNDLE)")
    add = parser.add_argument
    add("--bundle", help="the bundle directory (holding kilele-bundle.json)")
    add("--host", help="address to bind (default 0.0.0.0; use 127.0.0.1 on a laptop)")
    add("--port", type=int, help="port (default $SAGEMAKER_BIND_TO_PORT, else 8080)")
    add("--workers", type=int, help="server processes, each with its own model copy and batcher (default 1)")
    add("--no-batching", dest="batching", action="store_const", const=False,
        help="serve each request alone (no adaptive batching)")
    add("--max-batch-size", type=int, help="upper bound of the batch size target (default 256)")
    add("--initial-batch-size", type=int, help="batch size target at start (default 8)")
    add("--batch-step", type=int, help="additive increase of the target after a fast full batch (default 4)")
    add("--batch-backoff", type=float, help="multiplicative decrease after a slow batch (default 0.75)")
    add("--target-latency-ms", type=float, help="a batch's compute latency objective (default 20)")
    add("--max-wait-ms", type=float, help="how long a batch waits for more queries (default 2; 0: never)")
    add("--no-onnx", dest="use_onnx", action="store_const", const=False,
        help="serve every member with its own predict(), even when it has an ONNX graph")
    add("--onnx-threads", type=int, help="ONNX Runtime intra-op threads per session (default 1; 0: ORT's default)")
    add("--onnx-providers", help="comma-separated ONNX Runtime execution providers (default: CUDA if present, CPU)")
    add("--max-body-bytes", type=int, help="largest request body (default 5 MB); larger ones get 413")
    add("--latency-window", type=int, help="requests in the /metrics latency window (default 10000)")
    add("--graceful-timeout", type=float, help="seconds to finish in-flight requests on SIGTERM (default 30)")
    add("--log-level", choices=["critical", "error", "warning", "info", "debug"], help="default info")
    add("--access-log", action="store_const", const=True, help="log every request (off by default)")
    return parser


def resolve_config(argv: Optional[Sequence[str]] = None, environ: Optional[dict[str, str]] = None) -> ServerConfig:
    """The settings from flags, then the environment, then defaults."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        values: dict[str, Any] = environment_defaults(environ)
    except ValueError as e:
        parser.error(str(e))
    values.update({key: value for key, value in vars(args).items() if value is not None and key != "command"})
    if not values.get("bundle"):
        if args.command != "serve":
            parser.error(f"give --bundle DIR, or `serve` to serve {SAGEMAKER_MODEL_DIR} as SageMaker does")
        values["bundle"] = SAGEMAKER_MODEL_DIR
    try:
        return ServerConfig(**values).validate()
    except ValueError as e:
        parser.error(str(e))
        raise  # unreachable


def configure_logging(level: str) -> None:
    if getattr(configure_logging, "_done", False):
        logger.setLevel(level.upper())
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s kilele-serve[%(process)d]: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
    logging.captureWarnings(True)
    warnings_logger = logging.getLogger("py.warnings")
    warnings_logger.addHandler(handler)
    warnings_logger.propagate = False
    configure_logging._done = True  # type: ignore[attr-defined]


def uvicorn_config(app: Any, config: ServerConfig, **overrides: Any):
    """The uvicorn settings the server runs with (also used by the tests)."""
    import uvicorn

    settings: dict[str, Any] = dict(
        host=config.host,
        port=config.port,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        http="httptools" if importlib.util.find_spec("httptools") else "h11",
        ws="none",
        lifespan="on",
        log_level=config.log_level,
        access_log=config.access_log,
        server_header=False,
        proxy_headers=False,
        timeout_keep_alive=75,  # longer than SageMaker's idle connections to the container
        timeout_graceful_shutdown=config.graceful_timeout,
        backlog=2048,
    )
    settings.update(overrides)
    return uvicorn.Config(app, **settings)


def record_failure(error: BaseException) -> None:
    """In a worker process (--workers N): tell the parent why the bundle did not load."""
    path = os.environ.get(FAILURE_FILE_ENV)
    if path:
        try:
            Path(path).write_text(str(error) or type(error).__name__)
        except OSError:
            pass


def _exit_cleanly(signum: int, frame: Any) -> None:
    raise SystemExit(0)


def serve(config: ServerConfig) -> int:
    """Runs the server until SIGTERM/SIGINT; returns the process exit code (1 when the bundle did
    not load)."""
    import uvicorn

    from kilele_inference.app import InferenceApp

    configure_logging(config.log_level)
    logger.info("serving %s on %s:%d (%d worker(s))", config.bundle, config.host, config.port, config.workers)
    if config.workers == 1:
        app = InferenceApp(config)
        server = uvicorn.Server(uvicorn_config(app, config))

        def stop_server(error: BaseException) -> None:
            server.should_exit = True

        app.on_fatal = stop_server
        # uvicorn drains on SIGTERM, then re-raises the signal with the handler it found: make
        # that a clean exit (status 0) instead of death by signal.
        signal.signal(signal.SIGTERM, _exit_cleanly)
        server.run()
        if app.load_error is not None:
            return 1
        return 0 if server.started else 1

    from uvicorn.supervisors import Multiprocess

    with tempfile.TemporaryDirectory(prefix="kilele-serve-") as scratch:
        failure_file = Path(scratch) / "failure"
        os.environ[CONFIG_ENV] = config.to_json()
        os.environ[FAILURE_FILE_ENV] = str(failure_file)
        uv_config = uvicorn_config("kilele_inference.app:app_from_environment", config, factory=True,
                                   workers=config.workers)
        sock = uv_config.bind_socket()
        try:
            Multiprocess(uv_config, sockets=[sock]).run()
        finally:
            sock.close()
        if failure_file.exists():
            logger.error("a worker could not load the bundle: %s", failure_file.read_text())
            return 1
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    config = resolve_config(argv)
    return serve(config)


if __name__ == "__main__":
    sys.exit(main())
