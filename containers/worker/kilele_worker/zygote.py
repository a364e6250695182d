"""The local stack's zygote: one process that has imported the worker and the usual model
libraries once, and forks a *warm worker* for each trial, so a trial pays neither an interpreter
start nor the imports (``python -m kilele_worker zygote --fd N``; the local trial dispatcher
starts it and asks it for workers; on AWS each trial is a container of its own and none of this
runs).

Two stages. The first has the worker's environment (AWS credentials included): it reads the
settings and execs the second with the *model's* scrubbed environment
(:func:`kilele_worker.sandbox.child_environment`), so the zygote's memory (which every fork
copies) holds no secret. The second imports :data:`PRELOAD`, then serves requests on the
``AF_UNIX`` ``SOCK_SEQPACKET`` socket ``N``: each is one JSON object ``{"job_dir"}`` with three
descriptors attached (SCM_RIGHTS): the worker's control pipe (read end), its status pipe (write
end) and its log file.

A warm worker (:func:`warm_worker`, the fork) dies with the zygote (``PR_SET_PDEATHSIG``), leads
a session of its own, starts its pre-started model process (:mod:`kilele_worker.spare`) before
it holds anything secret, writes ``ready <pid>`` on its status pipe and waits. The dispatcher
then writes ``{"message_file", "environment"}`` on the control pipe and closes it; the worker
takes that environment (what exec would have given a new worker process: boto3 reads the AWS
settings from it), runs the trial as ``kilele-worker run --message-file`` does, writes
``exit <code>`` and exits. A control pipe closed with nothing on it means "not needed": the
worker discards its spare and exits. Each worker runs one trial.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import select
import signal
import socket
import sys
from dataclasses import replace
from typing import Optional

#: What the zygote imports once. Modules that are not installed are skipped. The model's own
#: file and whatever it imports beyond these are imported in its sandboxed process, per trial.
PRELOAD = (
    "kilele_worker.supervisor", "kilele_worker.child", "kilele.model", "boto3", "s3transfer.manager",
    "numpy", "pandas", "sklearn", "sklearn.base", "sklearn.tree", "sklearn.linear_model", "sklearn.ensemble",
    "sklearn.svm", "sklearn.neighbors", "sklearn.neural_network", "sklearn.preprocessing", "sklearn.metrics",
    "sklearn.model_selection", "sklearn.pipeline",
)
#: The settings a spare needs before its worker has its environment (none of them secret).
SPARE_SETTINGS = ("sandbox_user", "sandbox_isolate", "sandbox_max_processes")
MAX_REQUEST_BYTES = 64 * 1024


def bootstrap(fd: int) -> None:
    """Stage one: exec stage two with the model's environment and the spare's settings."""
    from kilele_worker import sandbox
    from kilele_worker.settings import WorkerSettings

    settings = WorkerSettings.from_environ()
    public = {name: getattr(settings, name) for name in SPARE_SETTINGS}
    os.set_inheritable(fd, True)
    os.chdir("/")  # nothing of the dispatcher's working directory on the import path
    os.execve(sys.executable, [sys.executable, "-m", "kilele_worker.zygote", "--fd", str(fd),
                               "--settings", json.dumps(public)],
              sandbox.child_environment(settings.environ))


def preload(names=PRELOAD) -> list[str]:
    """Imports ``names``; returns what could not be imported (``name: reason``)."""
    failed = []
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as e:  # noqa: BLE001 - a library that is missing or broken is imported per trial instead
            failed.append(f"{name}: {type(e).__name__}: {e}")
    global _botocore_session
    try:
        import botocore.session

        # Loads the service models and endpoint rules into the session (its loader caches them),
        # which every warm worker then uses: a new session would parse them again (~0.1 s of CPU).
        # Credentials and region go to these clients only, never to the session, which reads the
        # worker's own from its environment when the worker makes its clients.
        session = botocore.session.get_session()
        for service in ("s3", "stepfunctions"):
            session.create_client(service, region_name="us-east-1", aws_access_key_id="warm-up",
                                  aws_secret_access_key="warm-up")
        _botocore_session = session
    except Exception as e:  # noqa: BLE001
        failed.append(f"boto3 clients: {type(e).__name__}: {e}")
    return failed


_botocore_session = None  # the session preload() warmed, if it could


def serve(fd: int, settings) -> None:
    """Stage two's loop: one fork per request, zombies reaped; ends when the dispatcher closes
    its end of the socket."""
    requests = socket.socket(fileno=fd)
    while True:
        ready, _, _ = select.select([requests], [], [], 1.0)
        _reap()
        if not ready:
            continue
        try:
            data, fds, _, _ = socket.recv_fds(requests, MAX_REQUEST_BYTES, 3)
        except OSError as e:
            print(f"kilele-zygote: cannot read a request: {e}", file=sys.stderr, flush=True)
            return
        if not data:
            return  # the dispatcher is gone
        try:
            request = json.loads(data)
            if len(fds) != 3 or not isinstance(request.get("job_dir"), str):
                raise ValueError(f"a request needs a job_dir and 3 descriptors, got {len(fds)}")
        except ValueError as e:
            print(f"kilele-zygote: unusable request: {e}", file=sys.stderr, flush=True)
            for each in fds:
                os.close(each)
            continue
        zygote = os.getpid()
        if os.fork() == 0:
            warm_worker(request["job_dir"], *fds, settings=settings, zygote=zygote)  # never returns
        for each in fds:
            os.close(each)


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if not pid:
            return


def warm_worker(job_dir: str, control_fd: int, status_fd: int, log_fd: int, *, settings, zygote: int) -> None:
    """The forked worker (see the module's docstring). Never returns."""
    from kilele import sandbox as kilele_sandbox
    from kilele import sandbox_entry

    code = 1
    spare = None
    try:
        sandbox_entry.prctl(sandbox_entry.PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != zygote:
            os._exit(sandbox_entry.EXIT_PARENT_GONE)
        os.setsid()  # its own process group: the dispatcher stops it (and only it) with killpg
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        kilele_sandbox.close_fds_except({0, 1, 2, control_fd, status_fd})
        sys.stdout = sys.__stdout__ = kilele_sandbox.text_stream(1)
        sys.stderr = sys.__stderr__ = kilele_sandbox.text_stream(2)
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        spare = _start_spare(settings, job_dir)
        _write(status_fd, f"ready {os.getpid()}\n")
        control = _read_all(control_fd)
        if not control:
            code = 0  # not needed (the stack stops)
            return
        handed = json.loads(control)
        from kilele_worker.__main__ import main
        from kilele_worker.settings import take_environment

        take_environment(handed["environment"])
        code = main(["run", "--message-file", handed["message_file"]], spare=spare, aws_session=_aws_session())
    except BaseException:  # noqa: BLE001 - a fork must never return into the zygote's loop
        import traceback

        traceback.print_exc()
    finally:
        if spare is not None and not spare.handed:
            spare.discard()
        try:
            _write(status_fd, f"exit {code}\n")
        except OSError:
            pass
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code if isinstance(code, int) else 1)


def _aws_session():
    """A boto3 session on the warmed botocore session (None: the worker makes its own)."""
    if _botocore_session is None:
        return None
    import boto3

    return boto3.session.Session(botocore_session=_botocore_session)


def _start_spare(settings, job_dir: str):
    """The worker's pre-started model process, or None (then it starts one when the trial comes)."""
    from kilele_worker.spare import ModelSpare

    try:
        return ModelSpare.start(settings, job_dir)
    except OSError as e:
        print(f"kilele-worker: no pre-started model process: {e}", file=sys.stderr, flush=True)
        return None


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            os.close(fd)
            return b"".join(chunks)
        chunks.append(chunk)


def _write(fd: int, text: str) -> None:
    os.write(fd, text.encode())


def main(argv: Optional[list[str]] = None) -> None:
    """Stage two's entry (``python -m kilele_worker.zygote --fd N --settings JSON``)."""
    from kilele_worker.settings import WorkerSettings

    parser = argparse.ArgumentParser(prog="kilele-worker-zygote")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--settings", required=True)
    args = parser.parse_args(argv)
    values = {k: v for k, v in json.loads(args.settings).items() if k in SPARE_SETTINGS}
    # Its environment is the model's (no KILELE_ settings left): the spare's settings come in argv.
    settings = replace(WorkerSettings.from_environ(), **values)
    failed = preload()
    for line in failed:
        print(f"kilele-zygote: not preloaded: {line}", file=sys.stderr, flush=True)
    print(f"kilele-zygote: ready ({len(PRELOAD) - len(failed)} of {len(PRELOAD)} modules preloaded; "
          f"settings {values})", file=sys.stderr, flush=True)
    serve(args.fd, settings)


if __name__ == "__main__":
    main()
