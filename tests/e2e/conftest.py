"""End-to-end: the local stack started for real (``kilele local up`` as a child process),
driven through the SDK, plain HTTP and curl. Every stack is stopped by the test that started
it, and the teardown checks that it left no process behind.

With ``AWS_ENDPOINT_URL`` set (tests/emulator_support.py) the stacks use that emulator instead of
a moto child of their own (scripts/test-localstack: LocalStack, DynamoDB on
``AWS_ENDPOINT_URL_DYNAMODB``); tests that need the moto child are skipped then (:data:`MOTO_ONLY`)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, Optional

import pytest
import requests

from kilele import Client

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
KILELE = Path(sys.executable).parent / "kilele"
SUPERADMIN = ("superadmin@kilele", "kilele")  # seeded by the platform, not through the API's password policy
# What the tests' users get: strong enough for the password policy (zxcvbn score >= 3, >= 8 characters).
PASSWORD = "Tr4in-the-Model!"

pytestmark = pytest.mark.slow


from emulator_support import DYNAMODB_ENDPOINT_URL as EXTERNAL_DYNAMODB  # noqa: E402
from emulator_support import ENDPOINT_URL as EXTERNAL_AWS  # noqa: E402

#: For tests that need what only the stack's own moto child has (its snapshots, the IAM keys it
#: issued for SigV4 checks, /moto-api): docs/localstack.md lists them.
MOTO_ONLY = pytest.mark.skipif(bool(EXTERNAL_AWS), reason="needs the stack's own moto child (docs/localstack.md)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class StackProcess:
    """``kilele local up`` on free loopback ports."""

    def __init__(self, env: Optional[dict[str, str]] = None, tmp: Optional[Path] = None):
        self.port, self.moto_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (tmp or Path("/tmp")) / f"kilele-stack-{self.port}.log"
        # Each stack its own state: never the user's ~/.kilele/local, never another test's.
        self.data_dir = (tmp or Path("/tmp")) / f"kilele-data-{self.port}"
        child_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KILELE_"))}
        if EXTERNAL_AWS:
            # Stacks share the one external emulator: a stage of its own keeps each stack's tables,
            # bucket and queues apart (with their own moto, each stack starts empty).
            child_env["KILELE_STAGE"] = f"e2e{self.port}"
        child_env.update(env or {})
        external = ["--aws-endpoint-url", EXTERNAL_AWS] if EXTERNAL_AWS else []
        if EXTERNAL_DYNAMODB:
            external += ["--dynamodb-endpoint-url", EXTERNAL_DYNAMODB]
        self.process = subprocess.Popen(
            [str(KILELE), "local", "up", "--port", str(self.port), "--moto-port", str(self.moto_port),
             "--data-dir", str(self.data_dir), *external],
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            env=child_env,
            cwd=REPO,
        )

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the stack exited early:\n{self.log.read_text()}")
            try:
                if requests.get(self.url + "/", timeout=1).status_code == 200:
                    return
            except requests.RequestException:  # not listening yet, or bound but not serving yet
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the stack did not answer in {timeout} s:\n{self.log.read_text()}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise AssertionError("the stack did not stop within 30 s of SIGTERM")
        return self.process.returncode

    def client(self) -> Client:
        return Client(admin_host="127.0.0.1", admin_port=self.port)


@pytest.fixture(scope="session")
def stack_factory(tmp_path_factory) -> Iterator:
    started: list[StackProcess] = []

    def start(**env: str) -> StackProcess:
        stack = StackProcess(env, tmp_path_factory.mktemp("stack"))
        started.append(stack)
        stack.wait_ready()
        return stack

    yield start
    for stack in started:
        code = stack.stop()
        assert code == 0, f"the stack exited with {code}:\n{stack.log.read_text()}"
        assert not port_open(stack.port), "the API still listens after the stack stopped"
        assert not port_open(stack.moto_port), "moto still listens after the stack stopped"


@pytest.fixture(scope="session")
def stack(stack_factory) -> StackProcess:
    return stack_factory()


@pytest.fixture
def admin(stack) -> Client:
    client = stack.client()
    client.login(*SUPERADMIN)
    return client


_counter = iter(range(10**6))


def unique_email(role: str) -> str:
    return f"{role.lower()}-{os.getpid()}-{next(_counter)}@e2e"


@pytest.fixture
def make_user(stack, admin):
    """Create a user of a type and return a logged-in client for it."""

    def make(user_type: str, password: str = PASSWORD) -> Client:
        email = unique_email(user_type)
        admin.create_user(email=email, password=password, user_type=user_type)
        client = stack.client()
        client.login(email=email, password=password)
        client.email = email  # type: ignore[attr-defined]
        return client

    return make


def developers(stack: StackProcess) -> dict[str, Client]:
    """A fresh model developer and app developer on ``stack``, logged in, by user type."""
    admin = stack.client()
    admin.login(*SUPERADMIN)
    clients = {}
    for role in ("MODEL_DEVELOPER", "APP_DEVELOPER"):
        email = unique_email(role)
        admin.create_user(email=email, password=PASSWORD, user_type=role)
        clients[role] = stack.client()
        clients[role].login(email=email, password=PASSWORD)
    return clients
