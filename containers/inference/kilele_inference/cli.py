"""``kilele-serve``: serves one bundle over HTTP with uvicorn.

    kilele-serve serve                       # SageMaker: `docker run IMAGE serve`, bundle in /opt/ml/model
    kilele-serve --bundle DIR --host 127.0.0.1 --port 8080

Settings: flags, else environment variables (``kilele_inference.settings.ENVIRONMENT``), else defaults.
"""
from __future__ import annotations

import argparse
from typing import Any, Optional, Sequence

from kilele_inference.server import serve
from kilele_inference.settings import SAGEMAKER_MODEL_DIR, ServerConfig, environment_defaults


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``kilele-serve`` (every flag defaults to None: unset flags do not
    override the environment)."""
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
    add("--uds", help="listen on this Unix socket instead of --host/--port")
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
    add("--call-timeout-ms", type=float,
        help="longest a call may take (default 30000; a request's X-Kilele-Deadline-Ms may lower it); "
             "past it the call is abandoned and the model reloaded in a new thread")
    add("--min-call-timeout-ms", type=float,
        help="no call is abandoned before this (default 1000): a late batch is cheaper than a reload")
    add("--max-stuck-calls", type=int,
        help="abandoned calls still running past which /ping answers 503 (default 4)")
    add("--log-level", choices=["critical", "error", "warning", "info", "debug"], help="default info")
    add("--access-log", action="store_const", const=True, help="log every request (off by default)")
    return parser


def resolve_config(argv: Optional[Sequence[str]] = None, environ: Optional[dict[str, str]] = None) -> ServerConfig:
    """The settings from flags, then the environment (``environ``, else this process's), then
    defaults; exits with status 2 and a usage message when they are not usable."""
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


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The ``kilele-serve`` console script and ``python -m kilele_inference``: returns the exit status."""
    return serve(resolve_config(argv))
