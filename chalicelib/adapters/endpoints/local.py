"""Local endpoints, the twin of ``sagemaker.py`` beside this file: each inference job's bundle is
served by the inference server (``kilele-serve``) in its own process on 127.0.0.1."""
from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

import requests
import urllib3

from kilele.archive import safe_extract  # the local stack always has the SDK

from chalicelib.local.ports import LOOPBACK, free_port
from chalicelib.ports import (
    BlobStore,
    EndpointRejected,
    EndpointState,
    EndpointTimeout,
    EndpointUnavailable,
)


# Predict's calls: urllib3's pool straight (requests costs ~3x the CPU per call: environment
# proxies, netrc and hooks, on the API's hot path). No retry, as requests' default: a call that
# fails is reported, not repeated.
_NO_RETRY = urllib3.Retry(0, read=False)


@dataclass
class _Endpoint:
    name: str
    port: int
    process: subprocess.Popen
    directory: Path
    log_path: Path
    pool: urllib3.HTTPConnectionPool


class LocalEndpointRunner:
    """Starts, watches, invokes and stops local inference-server processes."""

    def __init__(self, blobs: BlobStore, work_dir: Path, ready_timeout_seconds: float = 120.0,
                 python: str = sys.executable, environment: Optional[Mapping[str, str]] = None):
        """``environment`` is the servers' whole environment (None: inherit this process's);
        the composition root passes one without the platform's credentials."""
        self._blobs = blobs
        self._environment = dict(environment) if environment is not None else None
        self._work_dir = work_dir
        self._ready_timeout = ready_timeout_seconds
        self._python = python
        self._lock = threading.Lock()
        self._endpoints: dict[str, _Endpoint] = {}
        self._session = requests.Session()

    def deploy(self, name: str, bundle_key: str, gpu: bool = False) -> None:
        directory = self._work_dir / "endpoints" / name
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        with tarfile.open(fileobj=io.BytesIO(self._blobs.get_bytes(bundle_key)), mode="r:gz") as archive:
            safe_extract(archive, directory / "bundle")
        port = free_port()
        log_path = directory / "server.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [self._python, "-m", "kilele_inference", "--bundle", str(directory / "bundle"),
                 "--host", LOOPBACK, "--port", str(port)],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=self._environment,
            )
        pool = urllib3.HTTPConnectionPool(LOOPBACK, port, maxsize=64, block=False, retries=_NO_RETRY)
        with self._lock:
            self._endpoints[name] = _Endpoint(name, port, process, directory, log_path, pool)
        self._wait_ready(name)

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
            ping = self._session.get(f"http://{LOOPBACK}:{endpoint.port}/ping", timeout=1)
        except requests.RequestException:
            return EndpointState("Creating")
        return EndpointState("InService" if ping.status_code == 200 else "Creating")

    def invoke(self, name: str, body: bytes, timeout_seconds: float) -> bytes:
        with self._lock:
            endpoint = self._endpoints.get(name)
        if endpoint is None or endpoint.process.poll() is not None:
            raise EndpointUnavailable(self.state(name).reason or f"endpoint {name} is not running")
        try:
            response = endpoint.pool.urlopen(
                "POST", "/invocations", body=body, headers={"Content-Type": "application/json"},
                timeout=urllib3.Timeout(connect=timeout_seconds, read=timeout_seconds),
            )
        except urllib3.exceptions.HTTPError as e:
            reason = e.reason if isinstance(e, urllib3.exceptions.MaxRetryError) else e
            if isinstance(reason, urllib3.exceptions.TimeoutError) and \
                    not isinstance(reason, urllib3.exceptions.NewConnectionError):  # (a subclass of it)
                raise EndpointTimeout(f"the endpoint did not answer within {timeout_seconds:g} s") from e
            raise EndpointUnavailable(f"the endpoint is unreachable: {reason}") from e
        if 400 <= response.status < 500:
            message = response.data.decode(errors="replace")
            try:
                message = json.loads(message)["error"]["message"]
            except (ValueError, KeyError, TypeError):
                pass
            raise EndpointRejected(response.status, message)
        if response.status != 200:
            raise EndpointUnavailable(f"the endpoint answered HTTP {response.status}")
        return response.data

    def delete(self, name: str) -> None:
        with self._lock:
            endpoint = self._endpoints.pop(name, None)
        if endpoint is None:
            return
        endpoint.pool.close()
        _stop(endpoint.process)
        shutil.rmtree(endpoint.directory, ignore_errors=True)

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
