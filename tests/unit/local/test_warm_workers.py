"""The local trial dispatcher's warm workers (chalicelib/adapters/trial_dispatch/warm.py) with fake
spares: each is handed out once, the dead are replaced, a stop kills the rest; and the status
protocol a real warm worker speaks (kilele_worker/zygote.py), on real pipes."""
from __future__ import annotations

import os
import threading
import time
from typing import Optional

from chalicelib.adapters.trial_dispatch.warm import WarmPool, WarmWorker


class FakeSpare:
    made = 0

    def __init__(self, ready: bool = True):
        FakeSpare.made += 1
        self.number = FakeSpare.made
        self.is_alive = True
        self.ready = ready
        self.discarded = False

    def alive(self) -> bool:
        return self.is_alive

    def wait_ready(self, timeout: float) -> bool:
        return self.ready and self.is_alive

    def discard(self) -> None:
        self.discarded = True
        self.is_alive = False


class Starter:
    """Makes FakeSpares (each one as ``ready`` says), or raises when ``failing``."""

    def __init__(self, ready: bool = True):
        self.started: list[FakeSpare] = []
        self.ready = ready
        self.failing = False

    def __call__(self) -> FakeSpare:
        if self.failing:
            raise OSError("no zygote")
        spare = FakeSpare(self.ready)
        self.started.append(spare)
        return spare


def test_a_spare_is_handed_out_once_and_replaced_at_once():
    starter = Starter()
    pool = WarmPool(starter, size=2)
    pool.fill()
    assert len(starter.started) == 2 and pool.waiting == 2

    taken = [pool.take() for _ in range(5)]

    assert len({id(spare) for spare in taken}) == 5, "a spare was handed out twice"
    assert all(spare not in taken[:i] for i, spare in enumerate(taken))
    assert pool.waiting == 2, "the pool was not filled up again after a take"
    assert not any(spare.discarded for spare in taken)


def test_a_dead_spare_is_discarded_and_replaced():
    starter = Starter()
    pool = WarmPool(starter, size=1)
    pool.fill()
    dead = starter.started[0]
    dead.is_alive = False

    taken = pool.take()

    assert taken is not dead and taken is not None and taken.alive()
    assert dead.discarded, "the dead spare's files were not removed"
    assert pool.waiting == 1


def test_a_spare_that_never_gets_ready_is_discarded_and_the_next_one_is_tried():
    starter = Starter(ready=False)
    pool = WarmPool(starter, size=1, ready_timeout=0.01)
    pool.fill()
    late = starter.started[0]

    assert pool.take() is None  # no other spare waits: the dispatcher starts a worker itself
    assert late.discarded

    starter.ready = True
    pool.fill()
    assert pool.take() is not None


def test_stop_kills_every_spare_and_starts_no_more():
    starter = Starter()
    pool = WarmPool(starter, size=3)
    pool.fill()

    pool.stop()

    assert all(spare.discarded for spare in starter.started)
    assert pool.take() is None and pool.waiting == 0
    count = len(starter.started)
    pool.fill()
    assert len(starter.started) == count, "a stopped pool started a spare"


def test_when_no_spare_can_be_started_take_says_so():
    starter = Starter()
    starter.failing = True
    pool = WarmPool(starter, size=2)
    assert pool.take() is None  # the dispatcher then starts a worker process itself


# --- the status protocol of a real warm worker, on pipes ---------------------------------------

def worker_with_pipes() -> tuple[WarmWorker, int, int]:
    """A WarmWorker on real pipes; returns it, the status pipe's write end (the worker's side)
    and the control pipe's read end."""
    control_read, control_write = os.pipe()
    status_read, status_write = os.pipe()
    return WarmWorker("/nonexistent-job-dir", control_write, status_read), status_write, control_read


def wait_for(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


def test_a_worker_is_ready_once_it_says_so_and_ends_with_its_exit_code():
    worker, status, control = worker_with_pipes()
    assert not worker.wait_ready(0.05)
    os.write(status, b"ready 4242\n")
    assert worker.wait_ready(5) and worker.pid == 4242 and worker.alive()

    worker.hand("/job/message.json", {"A": "1"})
    handed = b""
    while chunk := os.read(control, 4096):
        handed += chunk
    assert b'"message_file": "/job/message.json"' in handed and b'"A": "1"' in handed

    os.write(status, b"exit 3\n")
    os.close(status)
    assert worker.wait(5) and worker.exit_code == 3 and not worker.alive()
    os.close(control)


def test_a_worker_is_handed_one_trial_only():
    worker, status, control = worker_with_pipes()
    os.write(status, b"ready 1\n")
    worker.hand("/a", {})
    try:
        worker.hand("/b", {})
    except OSError:
        pass
    else:
        raise AssertionError("a worker took a second trial")
    os.close(status)
    os.close(control)


def test_a_worker_that_dies_without_an_exit_code_has_none():
    worker, status, control = worker_with_pipes()
    os.write(status, b"ready 1\n")
    os.close(status)  # killed: its end of the pipe closed, nothing said
    assert worker.wait(5)
    assert worker.exit_code is None and not worker.alive()
    assert not worker.wait_ready(0), "a dead worker counted as ready"
    os.close(control)


def test_a_worker_that_dies_before_it_is_ready_is_not_ready():
    worker, status, control = worker_with_pipes()
    waiting: dict[str, Optional[bool]] = {"ready": None}
    thread = threading.Thread(target=lambda: waiting.update(ready=worker.wait_ready(10)))
    thread.start()
    os.close(status)
    thread.join(5)
    assert waiting["ready"] is False
    os.close(control)


# --- the dispatcher with warm workers ------------------------------------------------------------

class FakeWarmWorker(FakeSpare):
    """A warm worker as the dispatcher sees it: it records the trial and exits as told."""

    def __init__(self, job_dir: str, pid: int):
        super().__init__()
        self.job_dir, self.pid = job_dir, pid
        self.exit_code: Optional[int] = None
        self.handed: list[tuple[str, dict]] = []
        self.gone_at_hand = False
        self._exited = threading.Event()

    def hand(self, message_file: str, environment) -> None:
        if self.gone_at_hand:
            raise OSError("Broken pipe")
        self.handed.append((message_file, dict(environment)))

    def exit(self, code: Optional[int]) -> None:
        self.exit_code = code
        self.is_alive = False
        self._exited.set()

    def wait(self, timeout: Optional[float] = None) -> bool:
        return self._exited.wait(timeout)

    def signal(self, sig: int) -> None:
        self.exit(None)


class RecordingTokens:
    def __init__(self):
        self.failed: list[tuple[str, str]] = []

    def fail(self, token: str, error: str, cause: str) -> None:
        self.failed.append((token, error))

    def fail_run(self, message: dict, error: str, cause: str) -> None:
        self.failed.append((message["task_token"], error))

    def succeed(self, token: str, output) -> None:
        raise AssertionError("the dispatcher answers no success")


def warm_dispatcher(tmp_path):
    from chalicelib.adapters.trial_dispatch.local import LocalTrialDispatcher

    workers: list[FakeWarmWorker] = []

    def start() -> FakeWarmWorker:
        job_dir = tmp_path / f"trial-{len(workers)}"
        job_dir.mkdir()
        workers.append(FakeWarmWorker(str(job_dir), 1000 + len(workers)))
        return workers[-1]

    tokens = RecordingTokens()
    dispatcher = LocalTrialDispatcher(tmp_path, tokens, environment={"PATH": "/bin", "KEEP": "1"},
                                      pool=WarmPool(start, size=1))
    return dispatcher, workers, tokens


def message(name: str) -> dict:
    return {"task_token": f"token-{name}", "trial": {"id": name}}


def test_each_trial_goes_to_its_own_warm_worker_with_the_worker_environment(tmp_path):
    dispatcher, workers, tokens = warm_dispatcher(tmp_path)
    first = dispatcher.dispatch(message("a"))
    second = dispatcher.dispatch(message("b"))

    assert (first, second) == ("1000", "1001") and dispatcher.running == 2
    for worker, name in zip(workers, "ab"):
        (path, environment), = worker.handed
        assert path == os.path.join(worker.job_dir, "message.json")
        assert f'"token-{name}"' in open(path).read()
        assert environment["KEEP"] == "1" and environment["KILELE_WORKER_WORKDIR_ROOT"] == worker.job_dir
    workers[0].exit(0)
    workers[1].exit(0)
    assert wait_for(lambda: dispatcher.running == 0)
    assert wait_for(lambda: not any(os.path.exists(w.job_dir) for w in workers[:2])), "job directories left"
    assert tokens.failed == []


def test_a_warm_worker_that_dies_or_fails_has_its_token_failed(tmp_path):
    dispatcher, workers, tokens = warm_dispatcher(tmp_path)
    dispatcher.dispatch(message("a"))
    dispatcher.dispatch(message("b"))
    workers[0].exit(None)  # killed: no exit code
    workers[1].exit(3)     # could not report
    assert wait_for(lambda: len(tokens.failed) == 2)
    assert sorted(tokens.failed) == [("token-a", "WorkerLost"), ("token-b", "WorkerLost")]


def test_a_warm_worker_gone_at_hand_over_is_discarded_and_the_trial_still_runs(tmp_path):
    dispatcher, workers, tokens = warm_dispatcher(tmp_path)
    dispatcher.python = str(tmp_path / "no-such-python")  # the fallback: a worker process of its own
    dispatcher.start()
    workers[0].gone_at_hand = True
    try:
        dispatcher.dispatch(message("a"))
    except OSError:  # the fake interpreter does not exist: the dispatcher did try to start it
        pass
    else:
        raise AssertionError("the trial was not given to a worker process of its own")
    assert workers[0].discarded


def test_stop_kills_the_unused_warm_workers(tmp_path):
    dispatcher, workers, tokens = warm_dispatcher(tmp_path)
    dispatcher.start()
    dispatcher.dispatch(message("a"))
    dispatcher.terminate_all(grace_seconds=0.1)
    unused = [worker for worker in workers if not worker.handed]
    assert unused and all(worker.discarded for worker in unused), "an unused worker was left"
    assert workers[0].exit_code is None and not workers[0].alive()  # the running one was signalled
    dispatcher.python = str(tmp_path / "no-such-python")
    try:
        dispatcher.dispatch(message("b"))
    except OSError:  # it tried to start a worker process: no warm worker after a stop
        pass
    assert len(workers) == 2 and not workers[1].handed, "a stopped dispatcher used a warm worker"


def test_discarding_a_warm_worker_removes_its_job_directory_and_log(tmp_path):
    job_dir = tmp_path / "trial-x"
    job_dir.mkdir()
    (job_dir / "kilele-trial-abc").mkdir()
    (tmp_path / "trial-x.log").write_text("zygote forked it")
    control_read, control_write = os.pipe()
    status_read, status_write = os.pipe()
    worker = WarmWorker(str(job_dir), control_write, status_read)
    os.close(status_write)  # it is gone already (a kill would find no process)
    worker.discard()
    assert not job_dir.exists() and not (tmp_path / "trial-x.log").exists()
    assert os.read(control_read, 10) == b"", "its control pipe was left open"
    os.close(control_read)


def test_a_spare_that_gets_ready_after_the_stop_is_not_handed_out():
    stopping = {}

    class StoppedWhileWaiting(FakeSpare):
        def wait_ready(self, timeout: float) -> bool:
            stopping["pool"].stop()  # the stack stops while a trial waits for this spare
            return True

    made: list[FakeSpare] = []
    pool = WarmPool(lambda: made.append(StoppedWhileWaiting()) or made[-1], size=1)
    stopping["pool"] = pool
    assert pool.take() is None
    assert len(made) == 1 and made[0].discarded
