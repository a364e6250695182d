"""The sandbox's own guarantees (kilele.sandbox), one defence at a time, on small processes."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

from kilele import sandbox, sandbox_entry

from security_support import alive, wait_until


def confined(tmp_path, **changes) -> sandbox.Confinement:
    own = tmp_path / "own"
    own.mkdir(exist_ok=True)
    values = dict(cwd=str(own), own=[str(own)], shared=[str(tmp_path)])
    values.update(changes)
    return sandbox.Confinement(**values)


def run(confinement: sandbox.Confinement, code: str, timeout: float = 60) -> subprocess.CompletedProcess:
    process = sandbox.spawn(confinement, [sys.executable, "-c", code], env={"PATH": "/usr/bin:/bin"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = process.communicate(timeout=timeout)
    return subprocess.CompletedProcess(process.args, process.returncode, out.decode(), err.decode())


def test_cpu_time_is_limited(tmp_path):
    started = time.monotonic()
    result = run(confined(tmp_path, cpu_seconds=1), "while True: pass")
    assert result.returncode in (-signal.SIGXCPU, -signal.SIGKILL), \
        f"a CPU spin ended with {result.returncode} (defence: RLIMIT_CPU)"
    assert time.monotonic() - started < 20, "the spin outlived its CPU limit (defence: RLIMIT_CPU)"


def test_the_model_keeps_the_status_it_died_with(tmp_path):
    """Through the reaper and the namespace's init, a death by signal stays one (the supervisor
    tells an out-of-memory kill from a crash by it)."""
    result = run(confined(tmp_path), "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)")
    assert result.returncode == -signal.SIGSEGV, result
    assert run(confined(tmp_path), "raise SystemExit(7)").returncode == 7


def test_no_new_privileges(tmp_path):
    result = run(confined(tmp_path), "print(open('/proc/self/status').read())")
    status = dict(line.split(":\t", 1) for line in result.stdout.splitlines() if ":\t" in line)
    assert status["NoNewPrivs"].strip() == "1", "set-user-ID programs could raise the model's privileges"
    assert status["Seccomp"].strip() in ("0", "1", "2")  # the line exists: the status was read


def test_a_process_started_from_a_short_thread_lives_through_a_lasting_one(tmp_path):
    """PR_SET_PDEATHSIG follows the thread that forked: a request thread that ends must not take
    the endpoint it started with it, so the runners fork from a LastingThread."""
    spawner = sandbox.LastingThread("test-spawner")
    started: dict = {}

    def request() -> None:
        started["p"] = spawner.call(lambda: sandbox.spawn(confined(tmp_path), [sys.executable, "-c",
                                                          "import time; time.sleep(30)"], env={}))

    thread = threading.Thread(target=request)
    thread.start()
    thread.join()
    process = started["p"]
    try:
        time.sleep(1.0)
        assert process.poll() is None, "the process died with the short-lived thread that asked for it"
    finally:
        process.kill()
        process.wait()


def test_the_sandboxed_process_dies_with_its_parent(tmp_path):
    """PR_SET_PDEATHSIG is set last, after setuid (a change of credentials clears it)."""
    parent_code = (
        "import sys, time; from kilele import sandbox\n"
        f"c = sandbox.Confinement(cwd={str(tmp_path)!r}, own=[{str(tmp_path)!r}])\n"
        "p = sandbox.spawn(c, [sys.executable, '-c', 'import time; time.sleep(60)'], env={})\n"
        "print(p.pid, flush=True); time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE)
    try:
        reaper = int(parent.stdout.readline())
        model = wait_until(lambda: sandbox.model_pid(reaper), 10) or reaper
        assert alive(model)
        parent.kill()
        parent.wait()
        assert wait_until(lambda: not alive(model) and not alive(reaper), 10), \
            "the sandboxed process outlived its parent (defence: PR_SET_PDEATHSIG, set after setuid)"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_without_namespaces_the_gaps_are_reported(tmp_path):
    """No namespaces asked for (as where the kernel refuses them): the user switch needs an
    interpreter other users can reach; what is missing is said on stderr, in one line."""
    result = run(confined(tmp_path, isolate=False, network_access=True), "import os; print(os.getuid())")
    paths = sandbox.interpreter_paths()
    if os.geteuid() == 0 and all(sandbox_entry.reachable(p) for p in paths):
        assert int(result.stdout) != 0, "the model kept root although its interpreter is reachable"
    else:
        assert "kilele-sandbox: missing: a user of its own" in result.stderr, result.stderr
