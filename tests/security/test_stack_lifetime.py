"""Every process the local stack starts dies with it, even when it is SIGKILLed (no cleanup code
runs then): moto, the trial runner's worker supervisors, their model processes, and what a
model started on its own (a double-forked daemon). The files they made (the stack's run-time
directory: job and trial directories, sockets, temp files) a SIGKILLed stack cannot remove: the
next stack to start does. Starts ``kilele local up`` for real."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import requests

from chalicelib.local.work_dir import LOCK_NAME, PREFIX
from kilele import Client

from security_support import needs_isolation, ROOT, alive, descendants, hostile_source, tagged, wait_until

pytestmark = pytest.mark.slow
KILELE = Path(sys.executable).parent / "kilele"
DATA = ROOT / "examples" / "datasets"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code in (200, 503)
    except requests.RequestException:
        return False


def start_stack(tmp_path: Path, name: str, env: dict[str, str]) -> tuple[subprocess.Popen, int, Path]:
    port, moto_port = free_port(), free_port()
    log = tmp_path / f"{name}.log"
    stack = subprocess.Popen([str(KILELE), "local", "up", "--port", str(port), "--moto-port", str(moto_port),
                              "--data-dir", str(tmp_path / f"{name}-data")],
                             stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    return stack, port, log


def owned_by(directory: Path) -> str:
    """The pid in a run-time directory's lock file (chalicelib.local.work_dir), or why not."""
    try:
        return (directory / LOCK_NAME).read_text().strip()
    except OSError as e:
        return f"no lock file ({e.strerror})"


@needs_isolation
def test_a_sigkilled_stack_leaves_no_process_behind_and_the_next_stack_removes_its_files(tmp_path):
    # The stacks' temp directory of their own, so that what they leave is all that is in it
    # (other tests and stacks use /tmp meanwhile); traversable, as /tmp is, by model users.
    temp = Path(tempfile.mkdtemp(prefix="kilele-lifetime-"))
    temp.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KILELE_"))}
    env["TMPDIR"] = str(temp)
    stack, port, log = start_stack(tmp_path, "first", env)
    following = None
    try:
        assert wait_until(lambda: answers(f"http://127.0.0.1:{port}/"), 120), log.read_text()
        mode = (tmp_path / "first-data").stat().st_mode & 0o777
        assert mode & 0o077 == 0, \
            f"the data directory is {oct(mode)}: other users (model code) could read every user's data"
        tag = "kilele-escape-" + os.urandom(6).hex()
        model_file = tmp_path / "hostile.py"
        model_file.write_text(hostile_source(tag=tag, linger=True))
        client = Client(admin_host="127.0.0.1", admin_port=port)
        client.login("superadmin@kilele", "kilele")
        train = client.create_dataset(name="iris_train", task="TABULAR_CLASSIFICATION",
                                      dataset_path=str(DATA / "iris_train.csv"))
        val = client.create_dataset(name="iris_val", task="TABULAR_CLASSIFICATION",
                                    dataset_path=str(DATA / "iris_val.csv"))
        model = client.create_model(name="hostile", task="TABULAR_CLASSIFICATION", model_file_path=str(model_file),
                                    model_class="HostileModel", dependencies={})
        client.create_train_job(app="hostile_app", task="TABULAR_CLASSIFICATION", train_dataset_id=train["id"],
                                val_dataset_id=val["id"], budget={"MODEL_TRIAL_COUNT": 1}, models=[model["id"]])
        assert wait_until(lambda: tagged(tag), 180, interval=0.5), f"no trial started its daemon:\n{log.read_text()}"

        started = descendants(stack.pid) | tagged(tag)
        assert len(started) >= 4, f"expected moto, a worker, its model and the daemon, found {started}"
        stack.send_signal(signal.SIGKILL)
        stack.wait()
        gone = wait_until(lambda: not any(alive(pid) for pid in started) and not tagged(tag), 30)
        survivors = {pid: _cmdline(pid) for pid in sorted(started) if alive(pid)}
        assert gone, (f"processes of the SIGKILLed stack survive: {survivors} (defences: PR_SET_PDEATHSIG on moto, "
                      "workers and endpoints, forked from lasting threads; the model's PID namespace)")

        # What the killed stack left: its run-time directory, with the running trial's files in
        # it, and nothing else (everything the stack's processes make goes there).
        left = sorted(temp.iterdir())
        assert [(p.name.startswith(PREFIX), owned_by(p)) for p in left] == [(True, str(stack.pid))], \
            f"the SIGKILLed stack left {[(p.name, owned_by(p)) for p in left]} in its temp directory"
        [killed] = left
        assert any((killed / "trials").iterdir()), "the running trial's directory should be in the left-over one"

        following, port, log = start_stack(tmp_path, "next", env)
        assert wait_until(lambda: answers(f"http://127.0.0.1:{port}/"), 120), log.read_text()
        remaining = sorted(temp.iterdir())
        assert [owned_by(p) for p in remaining] == [str(following.pid)], \
            (f"after the next stack started, {[(p.name, owned_by(p)) for p in remaining]} remain "
             f"(defence: chalicelib.local.work_dir.remove_stale at start):\n{log.read_text()}")
        assert f"removed what 1 stopped stack(s) left in {temp}: {killed.name}" in log.read_text()
        following.send_signal(signal.SIGTERM)
        assert following.wait(timeout=60) == 0, log.read_text()
        assert list(temp.iterdir()) == [], "a stack that stops removes its own run-time directory"
    finally:
        for process in (stack, following):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
        shutil.rmtree(temp, ignore_errors=True)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:200]
    except OSError:
        return "?"
