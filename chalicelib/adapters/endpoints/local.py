"""Local endpoints, the twin of ``sagemaker.py`` beside this file: each inference job's bundle is
served by the inference server (``kilele-serve``) in its own process.

The server runs model code, so it runs confined (:mod:`kilele.sandbox`): a user of its own, no
network (it listens on a Unix socket in its directory, through which this runner talks to it),
its own PID and mount namespaces, a memory limit, a cap on its processes, an environment with no
AWS, Kilele or secret-looking variables, its own directory (cwd, HOME, TMPDIR; removed when the
endpoint is deleted) and death with the stack (PDEATHSIG; started from one lasting thread, as the
signal follows the thread that forked). What the kernel cannot give is in the server's log."""
from __future__ import annotations

import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

import urllib3

from kilele import sandbox  # the local stack always has the SDK
from kilele.archive import safe_extract

from chalicelib.adapters.endpoints.invocations import invocation_error, invocation_headers
from chalicelib.ports import (
    BlobStore,
    EndpointState,
    EndpointTimeout,
    EndpointUnavailable,
)


# Predict's calls: urllib3's pool straight (requests costs ~3x the CPU per call: environment
# proxies, netrc and hooks, on the API's hot path). No retry, as requests' default: a call that
# fails is reported, not repeated.
_NO_RETRY = urllib3.Retry(0, read=False)
# Not given to a server even when they survive the composition root's scrub.
_SECRET = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|API_KEY|PRIVATE_KEY", re.IGNORECASE)
_DROP_PREFIXES = ("AWS_", "AMAZON_", "BOTO_", "MOTO_", "KILELE_")
SOCKET_NAME = "server.sock"


class _UnixConnection(urllib3.connection.HTTPConnection):
    """HTTP over the server's Unix socket."""

    def __init__(self, *args: Any, socket_path: str, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._socket_path = socket_path

    def _new_conn(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout if isinstance(self.timeout, (int, float)) else None)
        try:
            sock.connect(self._socket_path)
        except OSError as e:
            sock.close()
            raise urllib3.exceptions.NewConnectionError(self, f"cannot connect to {self._socket_path}: {e}") from e
        return sock


class _UnixPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _UnixConnection


@dataclass
class _Endpoint:
    name: str
    process: subprocess.Popen
    directory: Path
    log_path: Path
    pool: urllib3.HTTPConnectionPool
    uid: Optional[int]


class LocalEndpointRunner:
    """Starts, watches, invokes and stops local inference-server processes."""

    def __init__(self, blobs: BlobStore, work_dir: Path, ready_timeout_seconds: float = 120.0,
                 python: str = sys.executable, environment: Optional[Mapping[str, str]] = None,
                 memory_limit_mb: Optional[int] = 4096, max_processes: Optional[int] = 256):
        """``environment`` is the base of the servers' environment (None: this process's), from
        which AWS, Kilele and secret-looking variables are dropped all the same;
        ``memory_limit_mb`` is each server's address-space limit."""
        self._blobs = blobs
        base = dict(os.environ if environment is None else environment)
        self._environment = {k: v for k, v in base.items()
                             if not k.upper().startswith(_DROP_PREFIXES) and not _SECRET.search(k)}
        self._work_dir = work_dir
        self._ready_timeout = ready_timeout_seconds
        self._python = python
        self._memory_limit_mb = memory_limit_mb
        self._max_processes = max_processes
        self._lock = threading.Lock()
        self._endpoints: dict[str, _Endpoint] = {}
        self._spawner: Optional[sandbox.LastingThread] = None

    def deploy(self, name: str, bundle_key: str, gpu: bool = False) -> None:
        directory = self._work_dir / "endpoints" / name
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True, mode=0o700)
        with tarfile.open(fileobj=io.BytesIO(self._blobs.get_bytes(bundle_key)), mode="r:gz") as archive:
            safe_extract(archive, directory / "bundle")
        run = directory / "run"  # the server's own: its socket, cwd, HOME and TMPDIR
        run.mkdir(mode=0o700)
        socket_path = run / SOCKET_NAME
        confined = sandbox.Confinement(
            cwd=str(run), own=[str(run)], shared=[str(directory)],
            memory_bytes=self._memory_limit_mb * 1024 * 1024 if self._memory_limit_mb and not gpu else None,
            max_processes=self._max_processes,
        )
        env = {**self._environment, "HOME": str(run), "TMPDIR": str(run), "USER": "kilele-model",
               "LOGNAME": "kilele-model", "PYTHONUNBUFFERED": "1"}
        argv = [self._python, "-m", "kilele_inference", "--bundle", str(directory / "bundle"),
                "--uds", str(socket_path)]
        log_path = directory.parent / f"{name}.log"  # outside the server's reach
        with open(log_path, "wb") as log:
            process = self._spawn(lambda: sandbox.spawn(confined, argv, env=env, python=self._python,
                                                        stdout=log, stderr=subprocess.STDOUT))
        pool = _UnixPool("localhost", maxsize=64, block=False, retries=_NO_RETRY, socket_path=str(socket_path))
        with self._lock:
            self._endpoints[name] = _Endpoint(name, process, directory, log_path, pool,
                                              sandbox.run_uid(process.pid, confined))
        self._wait_ready(name)

    def _spawn(self, start: Any) -> subprocess.Popen:
        with self._lock:
            if self._spawner is None:
                self._spawner = sandbox.LastingThread("kilele-endpoint-spawner")
            spawner = self._spawner
        return spawner.call(start)

    def _wait_ready(self, name: str) -> None:
        deadline = time.monotonic() + self._ready_timeout
        while time.monotonic() < deadline:
            state = self.state(name)
            if state.status != "Creating":
                return
            time.sleep(0.1)

    def state(self, name: str) -> EndpointState:
        with self._lock:
            endpoint = self._endpoints.get(name)
        if endpoint is None:
            return EndpointState("Deleted")
        code = endpoint.process.poll()
        if code is not None:
            return EndpointState("Failed", f"the inference server exited with code {code}: {self._log_tail(endpoint)}")
        try:
            ping = endpoint.pool.urlopen("GET", "/ping", timeout=urllib3.Timeout(connect=1, read=1))
        except urllib3.exceptions.HTTPError:
            return EndpointState("Creating")
        return EndpointState("InService" if ping.status == 200 else "Creating")

    def invoke(self, name: str, body: bytes, timeout_seconds: float) -> bytes:
        with self._lock:
            endpoint = self._endpoints.get(name)
        if endpoint is None or endpoint.process.poll() is not None:
            raise EndpointUnavailable(self.state(name).reason or f"endpoint {name} is not running")
        try:
            response = endpoint.pool.urlopen(
                "POST", "/invocations", body=body, headers=invocation_headers(timeout_seconds),
                timeout=urllib3.Timeout(connect=timeout_seconds, read=timeout_seconds),
            )
        except urllib3.exceptions.HTTPError as e:
            reason = e.reason if isinstance(e, urllib3.exceptions.MaxRetryError) else e
            if isinstance(reason, urllib3.exceptions.TimeoutError) and \
                    not isinstance(reason, urllib3.exceptions.NewConnectionError):  # (a subclass of it)
                raise EndpointTimeout(f"the endpoint did not answer within {timeout_seconds:g} s") from e
            raise EndpointUnavailable(f"the endpoint is unreachable: {reason}") from e
        if response.status != 200:
            raise invocation_error(response.status, response.data.decode(errors="replace"))
        return response.data

    def delete(self, name: str) -> None:
        with self._lock:
            endpoint = self._endpoints.pop(name, None)
        if endpoint is None:
            return
        endpoint.pool.close()
        _stop(endpoint.process)
        sandbox.kill_user(endpoint.uid)  # what it started outside its PID namespace (when it had none)
        shutil.rmtree(endpoint.directory, ignore_errors=True)
        endpoint.log_path.unlink(missing_ok=True)

    def stop_all(self) -> None:
        with self._lock:
            names = list(self._endpoints)
        for name in names:
            self.delete(name)

    @staticmethod
    def _log_tail(endpoint: _Endpoint, lines: int = 5) -> str:
        try:
            return " | ".join(endpoint.log_path.read_text(errors="replace").strip().splitlines()[-lines:])
        except OSError:
            return ""

    # The local stack starts and stops the runner like its other components.
    name = "endpoint-runner"

    def start(self, context: object = None) -> None:
        pass

    def stop(self) -> None:
        self.stop_all()


def _stop(process: subprocess.Popen, grace_seconds: float = 10.0) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass


__all__ = ["LocalEndpointRunner"]
