"""moto in server mode, as a child process on loopback: the local stack's AWS."""
from __future__ import annotations

import ctypes
import signal
import subprocess
import sys
import time
from typing import Optional

import requests

from chalicelib.local.ports import LOOPBACK, free_port
from chalicelib.settings import process_environment

# Turn on what moto only does when asked: run state machines, and Batch/Lambda without Docker.
MOTO_CONFIG = {
    "stepfunctions": {"execute_state_machine": True},
    "batch": {"use_docker": False},
    "lambda": {"use_docker": False},
}
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    # If the stack is killed outright (SIGKILL), the kernel still ends moto: no orphan server.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


class MotoServer:
    """Starts ``python -m moto.server`` on 127.0.0.1 and configures it for the stack."""

    def __init__(self, port: int = 0, log_path: Optional[str] = None):
        self.port = port or free_port()
        self.log_path = log_path
        self._process: Optional[subprocess.Popen] = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self, timeout_seconds: float = 60.0) -> None:
        # The Step Functions interpreter calls other services at localhost:$MOTO_PORT.
        env = process_environment(extra={"MOTO_PORT": str(self.port)})
        env.pop("AWS_ENDPOINT_URL", None)
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self._process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(self.port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        if log is not subprocess.DEVNULL:
            log.close()
        self._wait_ready(timeout_seconds)
        requests.post(f"{self.url}/moto-api/config", json=MOTO_CONFIG, timeout=10).raise_for_status()

    def _wait_ready(self, timeout_seconds: float) -> None:
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            if self._process and self._process.poll() is not None:
                raise RuntimeError(f"moto server exited with code {self._process.returncode}")
            try:
                if requests.get(f"{self.url}/moto-api/", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"moto server did not answer on {self.url} within {timeout_seconds} s")

    def stop(self) -> None:
        process, self._process = self._process, None
        if not process or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
