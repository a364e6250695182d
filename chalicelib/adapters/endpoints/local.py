"""Local endpoints, the twin of ``sagemaker.py`` beside this file: each inference job's bundle is
served by the inference server (``kilele-serve``) in its own process.

The server runs model code, so it runs confined (:mod:`kilele.sandbox`): a user of its own, no
network (it listens on a Unix socket in its directory, through which this runner talks to it),
its own PID and mount namespaces, a memory limit, a cap on its processes, an environment with no
AWS, Kilele or secret-looking variables, its own directory (cwd, HOME, TMPDIR; removed when the
endpoint is deleted) and death with the stack (PDEATHSIG; started from one lasting thread, as the
signal follows the thread that forked). What the kernel cannot give is in the server's log.

A server that dies once it has served is started again, as SageMaker replaces a failed instance
(restarts.py: exponential backoff, at most so many restarts in a window, then the endpoint is
Failed with the reason). Meanwhile the endpoint is Restarting and invoke raises
EndpointUnavailable, so predict answers the app's marked default output (or 503 without one).
A server that dies before it ever answered /ping is a failed creation: Failed at once, as
SageMaker fails an endpoint whose container never becomes healthy. A monitor thread looks at the
servers every ``monitor_seconds``; state() and invoke() notice a death as soon as they look."""
from __future__ import annotations

import io
import logging
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import urllib3

from kilele import sandbox  # the local stack always has the SDK
from kilele.archive import safe_extract

from chalicelib.adapters.endpoints.invocations import invocation_error, invocation_headers
from chalicelib.adapters.endpoints.restarts import RestartLog, RestartPolicy
from chalicelib.errors import Unprocessable
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
# The runner's own lines in a server's log (left out of the log tail a failure quotes).
RUNNER_LINE = "kilele-endpoint-runner: "
log = logging.getLogger("kilele.local")


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
    socket_path: Path
    start: Callable[[], subprocess.Popen]  # a new server process for this endpoint (same bundle and socket)
    uid_of: Callable[[subprocess.Popen], Optional[int]]
    restarts: RestartLog
    lock: threading.Lock = field(default_factory=threading.Lock)
    served: bool = False  # a server answered /ping once: a death from then on is restarted
    ready: bool = False  # the current process answered /ping
    restart_at: Optional[float] = None  # a restart is due then (monotonic), after ``death``
    death: Optional[str] = None
    failure: Optional[str] = None  # the runner gave up: Failed, for this reason
    deleted: bool = False
    socket_address: str = ""  # what connect() is given (see _socket_address)
    socket_fd: Optional[int] = None  # the run directory, held open when the address goes through it


def _venv_of(image: str) -> Path:
    """The environment a local managed image's reference names; :class:`Unprocessable` for one
    this runner cannot run (an ECR image URI) or whose environment is gone."""
    if not image.startswith(VENV_SCHEME):
        raise Unprocessable(f"image {image!r} is not a local managed image: the local stack serves only "
                            "images its own builder made")
    environment = Path(image[len(VENV_SCHEME):])
    if not (environment / "bin" / "python").exists():
        raise Unprocessable(f"the managed image's environment {environment} is gone")
    return environment


#: How the local image builder refers to an image (chalicelib.adapters.images.local.IMAGE_REF_SCHEME).
VENV_SCHEME = "venv://"
#: What a Unix socket address holds (sun_path: 108 bytes with its terminating NUL).
MAX_SOCKET_PATH = 107


def _socket_address(socket_path: Path) -> tuple[str, Optional[int]]:
    """Where this process connects to the server's socket: its path, or, when the path is longer
    than a socket address holds (a deep work directory), the same file through a descriptor of
    its directory that this process keeps open (``/proc/self/fd/N/NAME``, short whatever the
    depth). The descriptor is returned to be closed with the endpoint."""
    if len(os.fsencode(str(socket_path))) <= MAX_SOCKET_PATH:
        return str(socket_path), None
    fd = os.open(socket_path.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    return f"/proc/self/fd/{fd}/{socket_path.name}", fd


class LocalEndpointRunner:
    """Starts, watches, invokes and stops local inference-server processes."""

    def __init__(self, blobs: BlobStore, work_dir: Path, ready_timeout_seconds: float = 120.0,
                 python: str = sys.executable, environment: Optional[Mapping[str, str]] = None,
                 memory_limit_mb: Optional[int] = 4096, max_processes: Optional[int] = 256,
                 restart_policy: RestartPolicy = RestartPolicy(), monitor_seconds: float = 0.5,
                 clock: Callable[[], float] = time.monotonic):
        """``environment`` is the base of the servers' environment (None: this process's), from
        which AWS, Kilele and secret-looking variables are dropped all the same;
        ``memory_limit_mb`` is each server's address-space limit; ``restart_policy`` says when
        a dead server is started again (see the module doc)."""
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
        self._restart_policy = restart_policy
        self._monitor_seconds = monitor_seconds
        self._clock = clock
        self._monitor: Optional[threading.Thread] = None
        self._monitor_stop = threading.Event()

    def deploy(self, name: str, bundle_key: str, gpu: bool = False, image: Optional[str] = None) -> None:
        """``image``: a managed image's ``venv://DIR`` (the local image builder's): the server
        runs with that environment's interpreter, still confined (its directory reachable,
        nothing of it writable)."""
        python, readable = self._python, []
        if image:
            environment = _venv_of(image)
            python, readable = str(environment / "bin" / "python"), [str(environment)]
        self.delete(name)  # deployed again (a resumed job): the old server goes first
        directory = self._work_dir / "endpoints" / name
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True, mode=0o700)
        with tarfile.open(fileobj=io.BytesIO(self._blobs.get_bytes(bundle_key)), mode="r:gz") as archive:
            safe_extract(archive, directory / "bundle")
        run = directory / "run"  # the server's own: its socket, cwd, HOME and TMPDIR
        run.mkdir(mode=0o700)
        socket_path = run / SOCKET_NAME
        address, socket_fd = _socket_address(socket_path)
        confined = sandbox.Confinement(
            cwd=str(run), own=[str(run)], shared=[str(directory)], readable=readable,
            memory_bytes=self._memory_limit_mb * 1024 * 1024 if self._memory_limit_mb and not gpu else None,
            max_processes=self._max_processes,
        )
        env = {**self._environment, "HOME": str(run), "TMPDIR": str(run), "USER": "kilele-model",
               "LOGNAME": "kilele-model", "PYTHONUNBUFFERED": "1"}
        argv = [python, "-m", "kilele_inference", "--bundle", str(directory / "bundle"),
                # relative to its working directory (run) when the full path is too long to bind
                "--uds", SOCKET_NAME if socket_fd is not None else str(socket_path)]
        log_path = directory.parent / f"{name}.log"  # outside the server's reach
        log_path.write_bytes(b"")

        def start() -> subprocess.Popen:
            with open(log_path, "ab") as server_log:  # a restarted server's lines follow the last one's
                return sandbox.spawn(confined, argv, env=env, python=python,
                                     stdout=server_log, stderr=subprocess.STDOUT)

        process = self._spawn(start)
        endpoint = _Endpoint(name, process, directory, log_path, _pool(address), None, socket_path, start,
                             lambda started: sandbox.run_uid(started.pid, confined),
                             RestartLog(self._restart_policy, clock=self._clock),
                             socket_address=address, socket_fd=socket_fd)
        endpoint.uid = endpoint.uid_of(process)
        with self._lock:
            self._endpoints[name] = endpoint
        self._start_monitor()
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
        self._notice(endpoint)
        restarts = endpoint.restarts
        known = {"restarts": restarts.count, "last_restart_reason": restarts.last_reason,
                 "last_restart_at": restarts.last_at}
        if endpoint.failure is not None:
            return EndpointState("Failed", endpoint.failure, **known)
        if endpoint.restart_at is not None:
            return EndpointState("Restarting", f"{endpoint.death}; it is started again", **known)
        try:
            ping = endpoint.pool.urlopen("GET", "/ping", timeout=urllib3.Timeout(connect=1, read=1))
            ok = ping.status == 200
        except urllib3.exceptions.HTTPError:
            ok = False
        if ok:
            endpoint.served = endpoint.ready = True
            return EndpointState("InService", **known)
        # A restarted server that does not answer yet is still coming back.
        return EndpointState("Restarting" if restarts.count and not endpoint.ready else "Creating", **known)

    def invoke(self, name: str, body: bytes, timeout_seconds: float) -> bytes:
        with self._lock:
            endpoint = self._endpoints.get(name)
        if endpoint is None:
            raise EndpointUnavailable(f"endpoint {name} is not running")
        if endpoint.process.poll() is not None or endpoint.restart_at is not None or endpoint.failure is not None:
            self._notice(endpoint)
            why = endpoint.failure or (endpoint.death and f"{endpoint.death}; it is being started again")
            raise EndpointUnavailable(why or f"endpoint {name} is not running")
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
        endpoint.served = endpoint.ready = True  # (also when no state() call saw it answer /ping)
        return response.data

    def names(self, prefix: str) -> list[str]:
        """The endpoints this runner serves (its processes) whose name starts with ``prefix``."""
        with self._lock:
            return sorted(n for n in self._endpoints if n.startswith(prefix))

    def delete(self, name: str) -> None:
        with self._lock:
            endpoint = self._endpoints.pop(name, None)
        if endpoint is None:
            return
        with endpoint.lock:  # after a restart under way: its new process is the one stopped
            endpoint.deleted = True
        endpoint.pool.close()
        if endpoint.socket_fd is not None:
            os.close(endpoint.socket_fd)
        _stop(endpoint.process)
        sandbox.kill_user(endpoint.uid)  # what it started outside its PID namespace (when it had none)
        shutil.rmtree(endpoint.directory, ignore_errors=True)
        endpoint.log_path.unlink(missing_ok=True)

    def stop_all(self) -> None:
        self._monitor_stop.set()
        monitor, self._monitor = self._monitor, None
        if monitor is not None and monitor is not threading.current_thread():
            monitor.join(timeout=30)
        with self._lock:
            names = list(self._endpoints)
            processes = [endpoint.process for endpoint in self._endpoints.values()]
        # All asked at once: each delete then waits out what is left of one grace, not a grace each.
        for process in processes:
            _signal_group(process, signal.SIGTERM)
        for name in names:
            self.delete(name)

    # -- restarts ---------------------------------------------------------------------------------

    def _start_monitor(self) -> None:
        with self._lock:
            if self._monitor is not None:
                return
            self._monitor_stop = threading.Event()
            self._monitor = threading.Thread(target=self._watch, args=(self._monitor_stop,),
                                             name="kilele-endpoint-monitor", daemon=True)
            self._monitor.start()

    def _watch(self, stop: threading.Event) -> None:
        while not stop.wait(self._monitor_seconds):
            with self._lock:
                endpoints = list(self._endpoints.values())
            for endpoint in endpoints:
                try:
                    self._notice(endpoint)
                    self._restart_if_due(endpoint)
                except Exception as e:  # noqa: BLE001 - this endpoint fails with why; the others are watched on
                    log.exception("endpoint %s could not be restarted", endpoint.name)
                    with endpoint.lock:
                        why = endpoint.death or "the inference server died"
                        endpoint.failure = f"{why}; starting it again failed: {type(e).__name__}: {e}"
                        endpoint.restart_at = None

    def _notice(self, endpoint: _Endpoint) -> None:
        """If the endpoint's server died: decide (once per death) to restart it after a backoff,
        or that the endpoint failed (never served, or too many restarts)."""
        with endpoint.lock:
            if endpoint.deleted or endpoint.failure is not None or endpoint.restart_at is not None:
                return
            code = endpoint.process.poll()
            if code is None:
                return
            death = f"the inference server exited with code {code}: {self._log_tail(endpoint)}"
            if not endpoint.served:  # it never answered /ping: the creation failed
                endpoint.failure = death
                return
            due = endpoint.restarts.due()
            if due is None:
                endpoint.failure = endpoint.restarts.given_up(death)
                _note(endpoint, f"gave up: {endpoint.failure}")
                log.error("endpoint %s: %s", endpoint.name, endpoint.failure)
                return
            endpoint.restart_at, endpoint.death = due, death
            wait = max(0.0, due - self._clock())
            _note(endpoint, f"{death}; starting it again in {wait:g} s")
            log.warning("endpoint %s: %s; starting it again in %g s", endpoint.name, death, wait)

    def _restart_if_due(self, endpoint: _Endpoint) -> None:
        with endpoint.lock:
            if endpoint.deleted or endpoint.restart_at is None or self._clock() < endpoint.restart_at:
                return
            # What the dead server left outside its PID namespace (when it had none): its user's
            # processes. Not its process group: reaped, its id may be another process's by now.
            sandbox.kill_user(endpoint.uid)
            endpoint.socket_path.unlink(missing_ok=True)
            process = self._spawn(endpoint.start)
            old_pool, endpoint.pool = endpoint.pool, _pool(endpoint.socket_address)
            old_pool.close()
            endpoint.process, endpoint.uid, endpoint.ready = process, endpoint.uid_of(process), False
            endpoint.restarts.restarted(endpoint.death or "the inference server died")
            endpoint.restart_at = endpoint.death = None
            _note(endpoint, f"restart {endpoint.restarts.count}: started again")

    @staticmethod
    def _log_tail(endpoint: _Endpoint, lines: int = 5) -> str:
        try:
            text = endpoint.log_path.read_text(errors="replace")
        except OSError:
            return ""
        server_lines = [line for line in text.strip().splitlines() if not line.startswith(RUNNER_LINE)]
        return " | ".join(server_lines[-lines:])

    # The local stack starts and stops the runner like its other components.
    name = "endpoint-runner"

    def start(self, context: object = None) -> None:
        pass

    def stop(self) -> None:
        self.stop_all()


def _pool(socket_address: str) -> urllib3.HTTPConnectionPool:
    return _UnixPool("localhost", maxsize=64, block=False, retries=_NO_RETRY, socket_path=socket_address)


def _note(endpoint: _Endpoint, line: str) -> None:
    """A line of the runner's in the endpoint's log, beside the server's own."""
    try:
        with open(endpoint.log_path, "a") as server_log:
            server_log.write(f"{RUNNER_LINE}{time.strftime('%Y-%m-%dT%H:%M:%S')} {line}\n")
    except OSError:
        pass


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass


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
