"""Every process the local stack starts dies with it, even when it is SIGKILLed (no cleanup code
runs then): moto, the trial runner's worker supervisors, their model processes, and what a
model started on its own (a double-forked daemon). Starts ``kilele local up`` for real."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

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


@needs_isolation
def test_a_sigkilled_stack_leaves_no_process_behind(tmp_path):
    port, moto_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KILELE_"))}
    log = tmp_path / "stack.log"
    stack = subprocess.Popen([str(KILELE), "local", "up", "--port", str(port), "--moto-port", str(moto_port),
                              "--data-dir", str(tmp_path / "data")],
                             stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    try:
        assert wait_until(lambda: answers(f"http://127.0.0.1:{port}/"), 120), log.read_text()
        mode = (tmp_path / "data").stat().st_mode & 0o777
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
    finally:
        if stack.poll() is None:
            stack.kill()
            stack.wait()


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:200]
    except OSError:
        return "?"
