"""moto in server mode, as a child process on loopback: the local stack's AWS.

The child is this module run as ``python -m chalicelib.local.moto_server``: moto's own WSGI app
behind a gate, restored from the data directory's snapshot before it serves, with a thread that
writes a snapshot every few seconds when something changed, and a last one when it is asked to
stop (SIGTERM). The gate lets many requests in at once, or holds them for the moment a snapshot
is taken, so a snapshot never catches a write half done. SQS long polls pass the gate (they
would otherwise hold every snapshot for their whole wait).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import requests

from chalicelib.local.ports import LOOPBACK, free_port
from chalicelib.local.stopping import exit_now
from chalicelib.settings import process_environment
from kilele.sandbox import die_with_parent_preexec

# Turn on what moto only does when asked: run state machines, and Batch/Lambda without Docker.
MOTO_CONFIG = {
    "stepfunctions": {"execute_state_machine": True},
    "batch": {"use_docker": False},
    "lambda": {"use_docker": False},
}
#: The child's own path: liveness and the last snapshot, as JSON.
STATUS_PATH = "/kilele-moto-status"
#: The secret and owner of an access key moto issued, for the local gateway's SigV4 check
#: (chalicelib/local/sigv4.py). Loopback only, like the rest of moto, which has no auth at all.
IAM_CREDENTIALS_PATH = "/kilele-iam-credentials"
#: The child's exit code when the snapshot cannot be read (its reason is on stderr).
EXIT_REFUSED = 3
#: The child's exit code when its shutdown outlasted :data:`STOP_GRACE_SECONDS` (a request or a
#: last snapshot stuck): it exits anyway, with the snapshot before that one on disk.
EXIT_STUCK = 4
#: How long the child's shutdown may take; the stack's :meth:`MotoServer.stop` waits longer.
STOP_GRACE_SECONDS = 20.0
_READ_PREFIXES = ("Get", "Describe", "List", "Scan", "Query", "BatchGet", "ReceiveMessage")
_LONG_POLL = "AmazonSQS.ReceiveMessage"


_SPAWNER: list = []


def _spawner():
    from kilele.sandbox import LastingThread

    if not _SPAWNER:
        _SPAWNER.append(LastingThread("kilele-moto-spawner"))
    return _SPAWNER[0]


class MotoServer:
    """Starts the moto child on 127.0.0.1 and configures it for the stack. With ``state_dir``
    the child restores that directory's snapshot and keeps it current every ``snapshot_seconds``."""

    def __init__(self, port: int = 0, log_path: Optional[str] = None, state_dir: Optional[Path] = None,
                 snapshot_seconds: float = 2.0):
        self.port = port or free_port()
        self.state_dir = Path(state_dir) if state_dir else None
        self.log_path = log_path or (str(self.state_dir / "moto.log") if self.state_dir else None)
        self.snapshot_seconds = snapshot_seconds
        self._process: Optional[subprocess.Popen] = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> Optional[int]:
        return self._process.pid if self._process else None

    def start(self, timeout_seconds: float = 60.0) -> None:
        """Start (or, after it died, restart) the child; raises
        :class:`~chalicelib.local.moto_snapshot.SnapshotRefused` if the saved state cannot be read."""
        command = [sys.executable, "-m", "chalicelib.local.moto_server", "--port", str(self.port)]
        if self.state_dir:
            from chalicelib.local.moto_snapshot import read_header

            self.state_dir.mkdir(parents=True, exist_ok=True)
            read_header(self.state_dir)  # a foreign or damaged snapshot: refused before anything starts
            command += ["--state-dir", str(self.state_dir), "--snapshot-seconds", str(self.snapshot_seconds)]
        command += ["--parent-pid", str(os.getpid())]
        # The Step Functions interpreter calls other services at localhost:$MOTO_PORT.
        env = process_environment(extra={"MOTO_PORT": str(self.port)})
        env.pop("AWS_ENDPOINT_URL", None)
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        # Forked from one lasting thread: PDEATHSIG follows the thread that forked, and a restart
        # comes from the watcher's thread, which ends before moto does when the stack stops.
        self._process = _spawner().call(lambda: subprocess.Popen(
            command,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            # If the stack is killed outright (SIGKILL), the kernel still ends moto: no orphan server.
            preexec_fn=die_with_parent_preexec(signal.SIGTERM) if sys.platform.startswith("linux") else None,
        ))
        if log is not subprocess.DEVNULL:
            log.close()
        self._wait_ready(timeout_seconds)
        requests.post(f"{self.url}/moto-api/config", json=MOTO_CONFIG, timeout=10).raise_for_status()

    def _wait_ready(self, timeout_seconds: float) -> None:
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            if self._process and self._process.poll() is not None:
                code = self._process.returncode
                if code == EXIT_REFUSED:
                    from chalicelib.local.moto_snapshot import SnapshotRefused

                    raise SnapshotRefused(self._refusal())
                raise RuntimeError(f"moto server exited with code {code}")
            try:
                if requests.get(f"{self.url}/moto-api/", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"moto server did not answer on {self.url} within {timeout_seconds} s")

    def _refusal(self) -> str:
        lines = Path(self.log_path).read_text(errors="replace").splitlines() if self.log_path else []
        refused = [line for line in lines if line.startswith("refused: ")]
        return refused[-1][len("refused: "):] if refused else "the saved state could not be read"

    def health(self) -> dict[str, Any]:
        """``{"ok": bool, "detail": str, ...}``: the child runs and answers, and its last snapshot."""
        process = self._process
        if process is None or process.poll() is not None:
            code = process.returncode if process else None
            return {"ok": False, "detail": f"moto is not running (exit code {code})"}
        try:
            status = requests.get(self.url + STATUS_PATH, timeout=2).json()
        except (requests.RequestException, ValueError) as e:
            return {"ok": False, "detail": f"moto does not answer: {type(e).__name__}"}
        error = status.get("snapshot_error")
        return {"ok": not error, "detail": f"snapshots fail: {error}" if error else "ok", **status}

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def iam_credentials(self, access_key_id: str) -> Any:
        """The :class:`~chalicelib.local.sigv4.Credentials` of an access key this moto issued
        (an IAM user's or an assumed role's), or None: the local gateway's SigV4 check."""
        from chalicelib.local.sigv4 import Credentials

        try:
            response = requests.get(self.url + IAM_CREDENTIALS_PATH, params={"access_key_id": access_key_id}, timeout=5)
        except requests.RequestException:
            return None
        if response.status_code != 200:
            return None
        found = response.json()
        return Credentials(found["secret_access_key"], found["arn"], found.get("session_token"))

    def stop(self, timeout_seconds: float = 30.0) -> None:
        """SIGTERM: the child takes a last snapshot and exits (killed after ``timeout_seconds``)."""
        process, self._process = self._process, None
        if not process or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=timeout_seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- the child -------------------------------------------------------------------------------


class Gate:
    """Many requests at once, or one snapshot: :meth:`still` waits for the requests inside to
    finish and holds new ones until it is done."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._inside = 0
        self._holding = False
        self.dirty = False  # a request that may have changed something passed since the last snapshot

    @contextmanager
    def request(self, changes: bool) -> Iterator[None]:
        with self._condition:
            while self._holding:
                self._condition.wait()
            self._inside += 1
        try:
            yield
        finally:
            with self._condition:
                self._inside -= 1
                if changes:
                    self.dirty = True
                self._condition.notify_all()

    @contextmanager
    def still(self) -> Iterator[None]:
        with self._condition:
            while self._holding:
                self._condition.wait()
            self._holding = True
            while self._inside:
                self._condition.wait()
        try:
            yield
        finally:
            with self._condition:
                self._holding = False
                self._condition.notify_all()


def _changes(environ: dict[str, Any]) -> bool:
    if environ.get("REQUEST_METHOD") in ("GET", "HEAD", "OPTIONS") or environ.get("PATH_INFO", "").startswith("/moto-api"):
        return False
    action = environ.get("HTTP_X_AMZ_TARGET", "").rpartition(".")[2]
    return not action.startswith(_READ_PREFIXES)


class Snapshots:
    """The child's snapshot loop: every ``interval`` seconds, if a request may have changed
    something, pickle moto under the gate and write it (files outside the gate)."""

    def __init__(self, state_dir: Path, gate: Gate, interval: float):
        from chalicelib.local.moto_snapshot import SnapshotWriter

        self._writer = SnapshotWriter(state_dir)
        self._gate = gate
        self._interval = interval
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.status: dict[str, Any] = {"snapshot_written_at": None, "snapshot_error": None, "snapshot_seconds": interval}
        self._thread = threading.Thread(target=self._loop, name="moto-snapshots", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self.take()

    def take(self, force: bool = False) -> None:
        from chalicelib.local.moto_snapshot import collect

        with self._lock:
            if not (force or self._gate.dirty):
                return
            self._gate.dirty = False
            started = time.monotonic()
            try:
                for attempt in range(3):
                    try:
                        with self._gate.still():
                            data = self._writer.pickle(collect())
                        break
                    except RuntimeError:  # a long poll changed a queue while it was pickled: again
                        if attempt == 2:
                            raise
                self._writer.write(data)
            except Exception as e:  # noqa: BLE001 - reported by the status path and the log, retried
                self._gate.dirty = True
                self.status["snapshot_error"] = f"{type(e).__name__}: {e}"
                print(f"snapshot failed: {self.status['snapshot_error']}", file=sys.stderr, flush=True)
                return
            self.status.update(snapshot_error=None, snapshot_written_at=time.time(),
                               snapshot_took_seconds=round(time.monotonic() - started, 4))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self._interval + 30)
        self.take(force=True)


def iam_credentials(access_key_id: str) -> Optional[dict[str, Any]]:
    """``{"secret_access_key", "arn", "session_token"}`` of an active access key moto issued to
    an IAM user, or of an assumed-role session (its ARN is the session's, as AWS reports it)."""
    from moto.iam.models import iam_backends
    from moto.sts.models import sts_backends

    if not access_key_id:
        return None
    for account_id in list(sts_backends.keys()):
        for backend in sts_backends[account_id].values():
            role = backend.get_assumed_role_from_access_key(access_key_id)
            if role is not None:
                return {"secret_access_key": role.secret_access_key, "arn": role.arn, "session_token": role.session_token}
    for account_id in list(iam_backends.keys()):
        for backend in iam_backends[account_id].values():
            for user in list(backend.users.values()):
                for key in user.access_keys:
                    if key.access_key_id == access_key_id and key.status == "Active":
                        return {"secret_access_key": key.secret_access_key, "arn": user.arn, "session_token": None}
    return None


def gated_app(app: Callable[..., Any], gate: Gate, status: Callable[[], dict[str, Any]]) -> Callable[..., Any]:
    """moto's WSGI app behind ``gate``, plus :data:`STATUS_PATH`."""

    def serve(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO") == STATUS_PATH:
            body = json.dumps({"ok": True, **status()}).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        if environ.get("PATH_INFO") == IAM_CREDENTIALS_PATH:
            from urllib.parse import parse_qs

            found = iam_credentials(parse_qs(environ.get("QUERY_STRING", "")).get("access_key_id", [""])[0])
            body = json.dumps(found or {}).encode()
            start_response("200 OK" if found else "404 Not Found",
                           [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        if environ.get("HTTP_X_AMZ_TARGET") == _LONG_POLL:
            return app(environ, start_response)
        with gate.request(_changes(environ)):
            return list(app(environ, start_response))  # the body is built inside the gate

    return serve


def watch_parent(parent_pid: int, stop: threading.Event, interval: float = 1.0) -> None:
    """Sets ``stop`` once this process is no longer ``parent_pid``'s child. PR_SET_PDEATHSIG is
    the first defence against outliving a SIGKILLed stack; this one holds where that signal is
    lost (the parent died before the child set it, or a stuck handler), so no moto is orphaned."""
    while not stop.wait(interval):
        if os.getppid() != parent_pid:
            print(f"the stack ({parent_pid}) is gone: stopping", file=sys.stderr, flush=True)
            stop.set()


def _exit_stuck() -> None:  # pragma: no cover - ends the process
    print(f"shutdown took over {STOP_GRACE_SECONDS:.0f} s (a request or the last snapshot is stuck): exiting",
          file=sys.stderr, flush=True)
    os._exit(EXIT_STUCK)


def main(argv: Optional[list[str]] = None) -> int:
    """The child: restore, serve on 127.0.0.1 until SIGTERM, snapshot, exit."""
    parser = argparse.ArgumentParser(prog="python -m chalicelib.local.moto_server")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state-dir", type=Path)
    parser.add_argument("--snapshot-seconds", type=float, default=2.0)
    parser.add_argument("--parent-pid", type=int, help="the stack's pid: moto stops when it is gone")
    args = parser.parse_args(argv)
    from werkzeug.serving import make_server

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app

    # One log line per request (three consumers long-poll every second) would fill the data dir.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    from chalicelib.local import moto_fixes

    if not moto_fixes.install():  # tasks' heartbeats and answers as AWS takes them
        print("moto_fixes: this moto has no CallbackEndpoint; heartbeats before a task's set-up "
              "are refused", file=sys.stderr, flush=True)
    # Ctrl-C reaches the whole terminal group; the stack stops moto last, with SIGTERM.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    gate, snapshots = Gate(), None
    if args.state_dir:
        from chalicelib.local.moto_snapshot import SnapshotRefused, install, load

        try:
            payload = load(args.state_dir)
            restored = install(payload) if payload else 0
        except SnapshotRefused as e:
            print(f"refused: {e}", file=sys.stderr, flush=True)
            return EXIT_REFUSED
        print(f"restored {restored} backends from {args.state_dir}", file=sys.stderr, flush=True)
        snapshots = Snapshots(args.state_dir, gate, args.snapshot_seconds)
    status = (lambda: dict(snapshots.status)) if snapshots else dict
    app = gated_app(DomainDispatcherApplication(create_backend_app), gate, status)
    server = make_server(LOOPBACK, args.port, app, threaded=True, request_handler=MotoRequestHandler)
    threading.Thread(target=server.serve_forever, name="moto-http", daemon=True).start()
    if snapshots:
        snapshots.start()
    if args.parent_pid:
        threading.Thread(target=watch_parent, args=(args.parent_pid, stop), name="moto-parent", daemon=True).start()
    stop.wait()
    exit_anyway = threading.Timer(STOP_GRACE_SECONDS, _exit_stuck)
    exit_anyway.daemon = True
    exit_anyway.start()
    server.shutdown()
    if snapshots:
        snapshots.stop()
    # The last snapshot is written: the interpreter's teardown of moto's modules only frees
    # memory, and took 5 s of a loaded machine's time (chalicelib/local/stopping.py).
    exit_now(0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
