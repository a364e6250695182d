"""Runs the ASGI app (:class:`kilele_inference.app.InferenceApp`) under uvicorn, in one process or
in ``--workers N`` processes.

The app never looks up its settings: this module builds it from a :class:`ServerConfig` in the
process that serves it. With one worker that is this process (the app object goes to
``uvicorn.Server`` directly); with several, uvicorn's supervisor pickles its config, app factory
included, into each spawned worker, so the factory is a module-level function with the settings
bound by ``functools.partial`` (no environment variables, no import-string lookup).
"""
from __future__ import annotations

import functools
import importlib.util
import logging
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from kilele_inference.app import InferenceApp
from kilele_inference.settings import ServerConfig

logger = logging.getLogger("kilele_inference")


def configure_logging(level: str) -> None:
    """Logs the package (and Python warnings) to stderr at ``level``; later calls only change the level."""
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
    if config.uds:
        settings["uds"] = config.uds
    settings.update(overrides)
    return uvicorn.Config(app, **settings)


def record_failure(failure_file: str, error: BaseException) -> None:
    """In a worker process (``--workers N``): tells the parent why the bundle did not load (uvicorn's
    supervisor only sees that a worker stopped)."""
    try:
        Path(failure_file).write_text(str(error) or type(error).__name__)
    except OSError:
        pass


def worker_app(config: ServerConfig, failure_file: str) -> InferenceApp:
    """The app factory each ``--workers N`` process calls (bound to its settings with
    ``functools.partial``). A worker loads the bundle before it accepts connections; one that
    fails fails its startup and records why in ``failure_file``."""
    configure_logging(config.log_level)
    return InferenceApp(config, on_fatal=functools.partial(record_failure, failure_file), load_in_background=False)


def _exit_cleanly(signum: int, frame: Any) -> None:
    raise SystemExit(0)


def serve(config: ServerConfig) -> int:
    """Runs the server until SIGTERM/SIGINT; returns the process exit code (1 when the bundle did
    not load)."""
    configure_logging(config.log_level)
    where = f"unix:{config.uds}" if config.uds else f"{config.host}:{config.port}"
    logger.info("serving %s on %s (%d worker(s))", config.bundle, where, config.workers)
    if config.workers == 1:
        return _serve_in_process(config)
    return _serve_with_workers(config)


def _serve_in_process(config: ServerConfig) -> int:
    import uvicorn

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


def _serve_with_workers(config: ServerConfig) -> int:
    from uvicorn.supervisors import Multiprocess

    with tempfile.TemporaryDirectory(prefix="kilele-serve-") as scratch:
        failure_file = Path(scratch) / "failure"
        factory = functools.partial(worker_app, config, str(failure_file))
        uv_config = uvicorn_config(factory, config, factory=True, workers=config.workers)
        sock = uv_config.bind_socket()
        try:
            Multiprocess(uv_config, sockets=[sock]).run()
        finally:
            sock.close()
        if failure_file.exists():
            logger.error("a worker could not load the bundle: %s", failure_file.read_text())
            return 1
    return 0
