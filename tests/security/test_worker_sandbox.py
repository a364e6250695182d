"""Attacks from a trial's model code, run as the local stack runs trials: the trials-queue message
handed to :class:`LocalTrialDispatcher`, which starts the real worker supervisor
(``python -m kilele_worker run``) against the stack's moto server; the supervisor runs the model
in its sandbox. Each test asserts the harm failed and names the defence that stopped it.

Each test runs twice: with a worker process started for the trial ("cold"), and with a warm
worker (forked by the zygote, its model process pre-started and confined before the trial
existed: chalicelib/adapters/trial_dispatch/warm.py), the local stack's default."""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import boto3
import pytest

from chalicelib import wiring
from chalicelib.adapters.task_tokens import SfnTaskTokens
from chalicelib.adapters.trial_dispatch.local import LocalTrialDispatcher
from chalicelib.settings import process_environment
from settings_support import make_settings

from security_support import needs_isolation, ROOT, alive, descendants, hostile_source, tagged, wait_until

GiB = 1 << 30


@pytest.fixture(scope="module")
def platform(moto):
    from worker_harness import Platform

    return Platform(endpoint_url=moto.url)


#: The worker's AWS secret key in these tests (moto takes any): a model must never find it.
SECRET_HEAD, SECRET_TAIL = "kilele-secret-", os.urandom(8).hex()


@pytest.fixture(params=["cold", "warm"])
def dispatcher(request, moto, tmp_path):
    settings = make_settings(aws_endpoint_url=moto.url, aws_access_key_id="kilele-local",
                             aws_secret_access_key=SECRET_HEAD + SECRET_TAIL)
    environment = process_environment(drop_prefixes=("AWS_", "KILELE_"), extra=wiring.child_aws_environment(settings))
    tokens = SfnTaskTokens(boto3.client("stepfunctions", endpoint_url=moto.url))
    made = LocalTrialDispatcher(tmp_path / "work", tokens, environment=environment,
                                warm_workers=1 if request.param == "warm" else 0)
    made.start()
    yield made
    made.terminate_all(grace_seconds=2)


def dispatcher_is_warm(dispatcher: LocalTrialDispatcher) -> bool:
    return dispatcher.warm_workers > 0


def run_to_the_end(dispatcher, message: dict, timeout: float = 120) -> None:
    dispatcher.dispatch(message)
    assert wait_until(lambda: dispatcher.running == 0, timeout), "the worker did not finish"


def probe_report(log: str) -> dict:
    for line in log.splitlines():
        if "kilele-probe {" in line:
            return json.loads(line.split("kilele-probe ", 1)[1])
    raise AssertionError(f"the hostile model reported nothing:\n{log}")


@needs_isolation
def test_a_trial_cannot_escape_its_sandbox(platform, dispatcher, moto, listener, tmp_path):
    tag = "kilele-escape-" + os.urandom(6).hex()
    outside = [str(ROOT / f".{tag}"), f"/tmp/{tag}", f"/var/tmp/{tag}", str(tmp_path / tag),
               str(tmp_path / "work" / tag)]
    # The worker's AWS secret and its message (the task token's JSON) as the worker holds them,
    # each in two parts (the model must not hold a whole one itself while it searches).
    needles = [[part.encode().hex() for part in pair] for pair in ([SECRET_HEAD, SECRET_TAIL], ['{"task_token', '": "'])]
    source = hostile_source(tag=tag, outside=outside, forks=600, memory_bytes=3 * GiB, needles=needles,
                            addresses=[["127.0.0.1", listener.port], ["127.0.0.1", moto.port], ["1.1.1.1", 443]])
    trial = platform.start_trial(source, "HostileModel", memory_limit_mb=1024, timeout_seconds=120)
    run_to_the_end(dispatcher, trial.message)
    log = platform.log_text(trial)
    report = probe_report(log)

    assert report["uid"] != 0 and report["uid"] != os.getuid(), \
        f"the model ran as the platform's user {report['uid']} (defence: a user of its own)"
    assert report["env"] == [], f"the model saw {report['env']} (defence: the scrubbed environment)"
    assert report["environ_leaks"] == [], \
        ("the model read the platform's environment in /proc/<pid>/environ of "
         f"{report['environ_leaks']} (defences: its own user, its own PID namespace and /proc)")
    assert not report["shadow"], "the model read /etc/shadow (defence: its own user)"
    assert report["writes"] == [], \
        f"the model wrote {report['writes']} (defences: its own user; /tmp and /var/tmp read-only in its mount namespace)"
    left = [path for path in outside if Path(path).exists()]
    assert left == [], f"files outside the model's directory: {left} (defence: its own user, read-only /tmp)"
    reached = {address: result for address, result in report["connects"].items() if result == "connected"}
    assert reached == {} and listener.accepted == 0, \
        f"the model reached {reached or 'the host listener'} (defence: a network namespace of its own)"
    assert report["forks"] < 300, \
        f"a fork bomb got {report['forks']} processes (defence: RLIMIT_NPROC on the model's own user)"
    assert not report["memory"], "a 3 GiB memory bomb was granted under a 1 GiB limit (defence: RLIMIT_AS)"
    assert report["in_memory"] == [], \
        (f"the model found {report['in_memory']} in its own memory (defences: a model process is forked "
         "only from processes that never held the worker's credentials or message; exec otherwise)")
    assert "kilele-sandbox: missing" not in log, f"the sandbox was incomplete here:\n{log}"
    assert ("pre-started (imports done before the trial)" in log) == dispatcher_is_warm(dispatcher), \
        f"the model process was not started the way this test meant:\n{log}"


def test_a_spinning_model_is_stopped_by_the_wall_clock_limit(platform, dispatcher):
    trial = platform.start_trial(hostile_source(spin=True), "HostileModel", timeout_seconds=3)
    started = time.monotonic()
    run_to_the_end(dispatcher, trial.message, timeout=60)
    took = time.monotonic() - started
    report = platform.error_report(trial)
    assert "timeout_seconds=3" in report["message"], \
        f"a CPU spin was not stopped by the wall-clock limit: {report}"
    assert took < 30, f"the spin ran {took:.0f} s (defence: the supervisor's wall-clock limit, then RLIMIT_CPU)"


@needs_isolation
def test_nothing_of_the_model_outlives_a_killed_supervisor(platform, dispatcher, tmp_path):
    tag = "kilele-escape-" + os.urandom(6).hex()
    trial = platform.start_trial(hostile_source(tag=tag, linger=True), "HostileModel", timeout_seconds=300)
    supervisor = int(dispatcher.dispatch(trial.message))
    assert wait_until(lambda: tagged(tag), 60), "the model did not start its daemon"
    started = descendants(supervisor) | tagged(tag)
    assert len(started) >= 2, f"expected the model and its daemon below the supervisor, found {started}"

    # Its job directory: the one holding a message (a warm dispatcher's next worker has one too, empty).
    job_dirs = [path for path in (tmp_path / "work").glob("trial-*/") if (path / "message.json").exists()]
    assert len(job_dirs) == 1, job_dirs

    os.kill(supervisor, signal.SIGKILL)
    gone = wait_until(lambda: not any(alive(pid) for pid in started) and not tagged(tag), 15)
    survivors = sorted(pid for pid in started if alive(pid)) + sorted(tagged(tag))
    assert gone, (f"processes of the model outlived its supervisor: {survivors} (defences: PR_SET_PDEATHSIG "
                  "on the model process, its PID namespace: the kernel kills the namespace with its init)")
    assert wait_until(lambda: not job_dirs[0].exists(), 15), \
        "the killed supervisor's work directory is still there (defence: the dispatcher removes the job directory)"


@needs_isolation
def test_warm_workers_and_their_model_processes_are_fresh_per_trial_and_gone_at_stop(platform, moto, tmp_path):
    """A warm dispatcher: every trial gets a worker and a model process never used before (its own
    pid, so its own user), and a stop leaves no process and no file of the workers not used."""
    settings = make_settings(aws_endpoint_url=moto.url, aws_access_key_id="kilele-local",
                             aws_secret_access_key="kilele-local")
    environment = process_environment(drop_prefixes=("AWS_", "KILELE_"), extra=wiring.child_aws_environment(settings))
    tokens = SfnTaskTokens(boto3.client("stepfunctions", endpoint_url=moto.url))
    before = descendants(os.getpid())
    dispatcher = LocalTrialDispatcher(tmp_path / "work", tokens, environment=environment, warm_workers=1)
    dispatcher.start()
    supervisors, uids = [], []
    try:
        for _ in range(3):
            trial = platform.start_trial(hostile_source(), "HostileModel", timeout_seconds=60)
            supervisors.append(dispatcher.dispatch(trial.message))
            assert wait_until(lambda: dispatcher.running == 0, 120), "the worker did not finish"
            log = platform.log_text(trial)
            assert "pre-started (imports done before the trial)" in log, log
            uids.append(probe_report(log)["uid"])
    finally:
        dispatcher.terminate_all(grace_seconds=2)
    assert len(set(supervisors)) == 3, f"a warm worker ran two trials: {supervisors}"
    assert len(set(uids)) == 3 and 0 not in uids, f"a model process (its user) ran two trials: {uids}"
    left = descendants(os.getpid()) - before
    assert wait_until(lambda: not (descendants(os.getpid()) - before), 15), \
        f"processes of the warm dispatcher outlived its stop: {sorted(left)}"
    work = tmp_path / "work"
    assert not list(work.glob("trial-*/")), f"job directories left: {list(work.glob('trial-*/'))}"
    logs = sorted(path.name for path in work.glob("trial-*.log"))
    assert len(logs) == 3, f"expected the 3 trials' worker logs only (an unused worker's removed), found {logs}"


@needs_isolation
def test_a_warm_worker_whose_model_process_died_starts_one_for_its_trial(platform, moto, tmp_path):
    settings = make_settings(aws_endpoint_url=moto.url, aws_access_key_id="kilele-local",
                             aws_secret_access_key="kilele-local")
    environment = process_environment(drop_prefixes=("AWS_", "KILELE_"), extra=wiring.child_aws_environment(settings))
    tokens = SfnTaskTokens(boto3.client("stepfunctions", endpoint_url=moto.url))
    before = descendants(os.getpid())
    dispatcher = LocalTrialDispatcher(tmp_path / "work", tokens, environment=environment, warm_workers=1)
    dispatcher.start()
    try:
        # The warm worker and its pre-started model process (reaper, init, model) are up: kill the latter.
        assert wait_until(lambda: len(descendants(os.getpid()) - before) >= 5, 120), "no warm worker started"
        zygote, = [pid for pid in descendants(os.getpid()) - before if _parent(pid) == os.getpid()]
        assert wait_until(lambda: any(descendants(worker) for worker in _children(zygote)), 60)
        worker, = _children(zygote)
        spares = _children(worker)  # the sandbox's reaper: init and the model die with it
        for pid in spares:
            os.kill(pid, signal.SIGKILL)
        trial = platform.start_trial(hostile_source(), "HostileModel", timeout_seconds=60)
        dispatcher.dispatch(trial.message)
        assert wait_until(lambda: dispatcher.running == 0, 120), "the worker did not finish"
        log = platform.log_text(trial)
    finally:
        dispatcher.terminate_all(grace_seconds=2)
    assert spares, "found no pre-started model process to kill"
    assert "the pre-started model process is gone" in log, log
    assert probe_report(log)["uid"] not in (0, os.getuid()), "the model process started instead was not confined"
    assert platform.wait_execution(trial.execution_arn, 30)["status"] == "SUCCEEDED"


def _parent(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return 0
    return int(stat[stat.rfind(b")") + 2:].split()[1])


def _children(pid: int) -> list[int]:
    return [child for child in descendants(pid) if _parent(child) == pid]
