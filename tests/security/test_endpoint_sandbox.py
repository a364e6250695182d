"""Attacks from an inference endpoint's model code: a bundle of the hostile model served by
:class:`LocalEndpointRunner` as the composition root builds it (``local://``), as the local stack
serves inference jobs. ``predict()`` answers what each attempt got; each test asserts the harm
failed and names the defence that stopped it."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from chalicelib import bundle_format, wiring
from chalicelib.bundle_format import BundleMember
from kilele.model import serialize_params
from settings_support import make_settings

from security_support import needs_isolation, ROOT, alive, descendants, hostile_source, tagged, wait_until

GiB = 1 << 30
READY_SECONDS = 90


class Blobs:
    """The BlobStore port, in memory: the runner reads the bundle through it."""

    def __init__(self, data: dict[str, bytes]):
        self.data = data

    def get_bytes(self, key: str) -> bytes:
        return self.data[key]


def hostile_bundle(**targets) -> bytes:
    member = BundleMember(trial_id="hostile", model_class="HostileModel", model_name="hostile",
                          model_source=hostile_source(**targets).encode(),
                          params=serialize_params({"w": 1.0}), knobs={"k": 1})
    data, _ = bundle_format.bundle_bytes("hostile_app", 1, "TABULAR_CLASSIFICATION", [member])
    return data


def wait_in_service(runner, name: str) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while (state := runner.state(name)).status != "InService":
        assert state.status == "Creating", f"{name} became {state.status}: {state.reason}"
        assert time.monotonic() < deadline, f"{name} is not InService after {READY_SECONDS} s"
        time.sleep(0.2)


@pytest.fixture
def runner(tmp_path):
    made = {}

    def build(bundle: bytes):
        settings = make_settings(endpoints_uri=f"local://{tmp_path / 'endpoints'}")
        made["runner"] = wiring.endpoint_runner(settings, Blobs({"bundle": bundle}), aws=None)
        return made["runner"]

    yield build
    if made:
        made["runner"].stop_all()


@needs_isolation
def test_an_endpoint_cannot_escape_its_sandbox(runner, listener, tmp_path):
    tag = "kilele-escape-" + os.urandom(6).hex()
    outside = [str(ROOT / f".{tag}"), f"/tmp/{tag}", f"/var/tmp/{tag}", str(tmp_path / tag),
               str(tmp_path / "endpoints" / tag)]
    endpoints = runner(hostile_bundle(tag=tag, outside=outside, forks=600, memory_bytes=8 * GiB,
                                      addresses=[["127.0.0.1", listener.port], ["1.1.1.1", 443]]))
    endpoints.deploy("hostile", "bundle")
    wait_in_service(endpoints, "hostile")
    answer = json.loads(endpoints.invoke("hostile", json.dumps({"queries": [[1, 2, 3, 4]]}).encode(), 120))
    report = json.loads(answer["predictions"][0])

    assert report["uid"] != 0 and report["uid"] != os.getuid(), \
        f"the endpoint's model ran as the platform's user {report['uid']} (defence: a user of its own)"
    assert report["env"] == [], f"the endpoint's model saw {report['env']} (defence: the scrubbed environment)"
    assert report["environ_leaks"] == [], \
        ("the endpoint's model read the platform's environment in /proc/<pid>/environ of "
         f"{report['environ_leaks']} (defences: its own user, its own PID namespace and /proc)")
    assert not report["shadow"], "the endpoint's model read /etc/shadow (defence: its own user)"
    assert report["writes"] == [], \
        f"the endpoint's model wrote {report['writes']} (defences: its own user; read-only /tmp in its mount namespace)"
    left = [path for path in outside if Path(path).exists()]
    assert left == [], f"files outside the endpoint's directory: {left} (defence: its own user, read-only /tmp)"
    reached = {address: result for address, result in report["connects"].items() if result == "connected"}
    assert reached == {} and listener.accepted == 0, \
        f"the endpoint's model reached {reached or 'the host listener'} (defence: a network namespace of its own)"
    assert report["forks"] < 300, \
        f"a fork bomb got {report['forks']} processes (defence: RLIMIT_NPROC on the endpoint's own user)"
    assert not report["memory"], \
        "an 8 GiB memory bomb was granted (defence: RLIMIT_AS, Settings.local_endpoint_memory_limit_mb)"
    log = next((tmp_path / "endpoints" / "endpoints").glob("hostile*.log")).read_text()
    assert "kilele-sandbox: missing" not in log, f"the sandbox was incomplete here:\n{log}"


OWNER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from chalicelib.adapters.endpoints.local import LocalEndpointRunner

    class Blobs:
        def get_bytes(self, key):
            return Path(sys.argv[1]).read_bytes()

    runner = LocalEndpointRunner(Blobs(), Path(sys.argv[2]), environment={"PATH": "/usr/bin:/bin"})
    runner.deploy("owned", "bundle")
    print(runner.state("owned").status, flush=True)
    time.sleep(600)
""")


@needs_isolation
def test_nothing_of_an_endpoint_outlives_the_killed_stack(tmp_path):
    """The process that owns the endpoint runner (the stack) is SIGKILLed: no cleanup code runs."""
    tag = "kilele-escape-" + os.urandom(6).hex()
    bundle = tmp_path / "bundle.tar.gz"
    bundle.write_bytes(hostile_bundle(tag=tag, daemon_on_import=True))
    owner = subprocess.Popen([sys.executable, "-c", OWNER, str(bundle), str(tmp_path / "work")],
                             stdout=subprocess.PIPE, cwd=ROOT)
    try:
        assert owner.stdout.readline().strip() == b"InService", "the endpoint did not come up"
        assert wait_until(lambda: tagged(tag), 30), "the model did not start its daemon"
        started = descendants(owner.pid) | tagged(tag)
        owner.send_signal(signal.SIGKILL)
        owner.wait()
        gone = wait_until(lambda: not any(alive(pid) for pid in started) and not tagged(tag), 20)
        survivors = sorted(pid for pid in started if alive(pid)) + sorted(tagged(tag))
        assert gone, (f"the endpoint's processes outlived the stack: {survivors} (defences: PR_SET_PDEATHSIG on "
                      "the server, forked from a lasting thread; its PID namespace ends with it)")
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()
