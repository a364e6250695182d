"""The local stack keeps its state and watches itself (issue 9, findings 5 and 6), for real:
``kilele local up --data-dir`` as a child process in its own process group (so a test can
SIGKILL the whole stack), stopped cleanly, killed, started again on the same directory."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Optional

import pytest
import requests

from kilele import Client
from kilele.errors import KileleError

from .conftest import EXAMPLES, KILELE, MOTO_ONLY, REPO, SUPERADMIN, free_port, port_open, unique_email

# The stack's AWS state is the moto child's snapshots: against an external emulator there are none.
pytestmark = [pytest.mark.slow, MOTO_ONLY]

PASSWORD = "Keep-the-State-2026!"
SNAPSHOT_SECONDS = 1.0
DATA = EXAMPLES / "datasets"
MODELS = EXAMPLES / "models"
SLOW_MODEL = '''
from kilele.model import BaseModel, IntegerKnob


class Slow(BaseModel):
    @staticmethod
    def get_knob_config():
        return {"k": IntegerKnob(1, 5)}

    def train(self, dataset_path, **train_args):
        import time
        time.sleep(3600)

    def evaluate(self, dataset_path):
        return 0.0

    def predict(self, queries):
        return []

    def dump_parameters(self):
        return {}

    def load_parameters(self, params):
        pass
'''


class DataStack:
    """``kilele local up`` on free ports with a data directory, in its own process group."""

    def __init__(self, data_dir: Path, log_dir: Path, *extra: str):
        self.data_dir = data_dir
        self.port, self.moto_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log_dir / f"stack-{self.port}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KILELE_"))}
        self.process = subprocess.Popen(
            [str(KILELE), "local", "up", "--port", str(self.port), "--moto-port", str(self.moto_port),
             "--data-dir", str(data_dir), "--snapshot-seconds", str(SNAPSHOT_SECONDS), *extra],
            stdout=self.log.open("wb"), stderr=subprocess.STDOUT, env=env, cwd=REPO, start_new_session=True,
        )

    def wait_ready(self, timeout: float = 120) -> "DataStack":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the stack exited early:\n{self.log.read_text()}")
            try:
                # The API answers while start() finishes; the banner (what tests read) comes after it.
                if requests.get(self.url + "/", timeout=2).status_code == 200 and \
                        "local stack is up" in self.log.read_text():
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the stack did not answer in {timeout} s:\n{self.log.read_text()}")

    def wait_exit(self, timeout: float = 60) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"the stack did not exit within {timeout} s:\n{self.log.read_text()}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.wait_exit()
        assert not port_open(self.port) and not port_open(self.moto_port), "a port still listens after the stop"
        return code

    def kill(self) -> None:
        """SIGKILL every process of the stack's group at once (the stack and moto)."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=30)

    def client(self, email: Optional[str] = None, password: str = PASSWORD) -> Client:
        client = Client(admin_host="127.0.0.1", admin_port=self.port)
        if email:
            client.login(email=email, password=password)
        return client

    def admin(self) -> Client:
        return self.client(*SUPERADMIN)

    def moto_pid(self) -> int:
        return json.loads((self.data_dir / "stack.json").read_text())["moto_pid"]


@pytest.fixture
def stacks(tmp_path):
    """Start :class:`DataStack` s; each one still running at the end is stopped (SIGKILL if need be)."""
    started: list[DataStack] = []

    def start(data_dir: Path, *extra: str, ready: bool = True) -> DataStack:
        stack = DataStack(data_dir, tmp_path, *extra)
        started.append(stack)
        return stack.wait_ready() if ready else stack

    yield start
    for stack in started:
        if stack.process.poll() is None:
            code = stack.stop()
            assert code == 0, stack.log.read_text()


def _user(admin: Client, role: str) -> str:
    email = unique_email(role)
    admin.create_user(email=email, password=PASSWORD, user_type=role)
    return email


def _serving_app(stack: DataStack, tmp_path: Path) -> dict:
    """Users, datasets, a model, a one-trial train job and its inference job; what was made."""
    admin = stack.admin()
    model_dev_email, app_dev_email = _user(admin, "MODEL_DEVELOPER"), _user(admin, "APP_DEVELOPER")
    model_dev, app_dev = stack.client(model_dev_email), stack.client(app_dev_email)
    key = app_dev.create_api_key("kept")["key"]
    train = app_dev.create_dataset(name="iris_train", task="TABULAR_CLASSIFICATION",
                                   dataset_path=str(DATA / "iris_train.csv"))
    val = app_dev.create_dataset(name="iris_val", task="TABULAR_CLASSIFICATION", dataset_path=str(DATA / "iris_val.csv"))
    tree = model_dev.create_model(name=unique_email("tree"), task="TABULAR_CLASSIFICATION",
                                  model_file_path=str(MODELS / "sk_decision_tree.py"), model_class="SkDecisionTree",
                                  dependencies={"scikit-learn": "1.9.1"}, access_right="PUBLIC")
    app_dev.create_train_job(app="kept", task="TABULAR_CLASSIFICATION", train_dataset_id=train["id"],
                             val_dataset_id=val["id"], budget={"MODEL_TRIAL_COUNT": 1}, models=[tree["id"]])
    assert app_dev.wait_for_train_job("kept", timeout=240)["status"] == "STOPPED"
    app_dev.create_inference_job("kept")
    prediction = app_dev.predict("kept", query=[5.1, 3.5, 1.4, 0.2])
    slow_path = tmp_path / "slow.py"
    slow_path.write_text(SLOW_MODEL)
    slow = model_dev.create_model(name=unique_email("slow"), task="TABULAR_CLASSIFICATION",
                                  model_file_path=str(slow_path), model_class="Slow", access_right="PUBLIC")
    app_dev.create_train_job(app="busy", task="TABULAR_CLASSIFICATION", train_dataset_id=train["id"],
                             val_dataset_id=val["id"], budget={"MODEL_TRIAL_COUNT": -1}, models=[slow["id"]])
    _wait(lambda: any(t["status"] == "RUNNING" for t in app_dev.get_trials_of_train_job("busy")), 120)
    return {"model_dev": model_dev_email, "app_dev": app_dev_email, "key": key, "datasets": {train["id"], val["id"]},
            "tree": tree["id"], "prediction": prediction,
            "trials": {t["id"]: t["status"] for t in app_dev.get_trials_of_train_job("kept")},
            "busy_trials": {t["id"] for t in app_dev.get_trials_of_train_job("busy")}}


def _wait(condition, timeout: float, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"not within {timeout} s")


def test_a_clean_stop_keeps_everything_and_running_jobs_go_on(stacks, tmp_path):
    data_dir = tmp_path / "data"
    first = stacks(data_dir)
    made = _serving_app(first, tmp_path)
    assert first.stop() == 0

    second = stacks(data_dir)
    assert "restored" in second.log.read_text()
    app_dev = second.client(made["app_dev"])  # the login works: the user and the password hash are back
    assert app_dev.get_current_user()["email"] == made["app_dev"]
    assert {d["id"] for d in app_dev.get_datasets()} == made["datasets"]
    assert made["tree"] in {m["id"] for m in app_dev.get_available_models(task="TABULAR_CLASSIFICATION")}
    assert {t["id"]: t["status"] for t in app_dev.get_trials_of_train_job("kept")} == made["trials"]
    by_key = Client(admin_host="127.0.0.1", admin_port=second.port, api_key=made["key"])
    assert by_key.get_current_user()["email"] == made["app_dev"]
    # The endpoint of the running inference job came back from its bundle.
    assert app_dev.get_running_inference_job("kept")["status"] == "RUNNING"
    assert app_dev.predict("kept", query=[5.1, 3.5, 1.4, 0.2]) == made["prediction"]
    # The trial that was running ended with the reason; its worker went on with a new trial.
    busy = {t["id"]: t for t in app_dev.get_trials_of_train_job("busy")}
    for trial_id in made["busy_trials"]:
        assert busy[trial_id]["status"] == "ERRORED"
        assert "the local stack stopped" in busy[trial_id]["error"]
    _wait(lambda: any(t["status"] == "RUNNING" for t in app_dev.get_trials_of_train_job("busy")), 120)
    assert app_dev.get_train_job("busy")["status"] in ("STARTED", "RUNNING")
    assert app_dev.stop_train_job("busy")["status"] == "STOPPED"
    assert app_dev.stop_inference_job("kept")["status"] == "STOPPED"


def test_a_sigkill_loses_at_most_the_last_snapshot_interval(stacks, tmp_path):
    data_dir = tmp_path / "data"
    first = stacks(data_dir)
    admin = first.admin()
    kept = _user(admin, "APP_DEVELOPER")
    dataset = first.client(kept).create_dataset(name="iris", task="TABULAR_CLASSIFICATION",
                                                dataset_path=str(DATA / "iris_train.csv"))
    time.sleep(SNAPSHOT_SECONDS * 2 + 1)  # past the snapshot interval
    acknowledged: list[tuple[float, str]] = []  # users created while the kill comes
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        acknowledged.append((time.monotonic(), _user(admin, "APP_DEVELOPER")))
    killed_at = time.monotonic()
    first.kill()
    _wait(lambda: not port_open(first.port) and not port_open(first.moto_port), 10, every=0.1)

    second = stacks(data_dir)
    client = second.client(kept)
    assert [d["id"] for d in client.get_datasets()] == [dataset["id"]]
    emails = {u["email"] for u in second.admin().get_users()}
    lost = [at for at, email in acknowledged if email not in emails]
    kept_ones = [at for at, email in acknowledged if email in emails]
    assert kept_ones, "nothing written in the last 3 s before the kill survived"
    window = killed_at - min(lost) if lost else 0.0
    print(f"SIGKILL lost the writes of the last {window:.2f} s ({len(lost)} of {len(acknowledged)} users)")
    # One interval, plus the time a snapshot takes (pickle, fsync) on a machine that may be busy.
    assert window <= SNAPSHOT_SECONDS * 2 + 1.0
    assert all(at > max(kept_ones) for at in lost), "a write was lost while a later one was kept"


def _break(data_dir: Path, how: str) -> None:
    path = data_dir / "moto" / "state.snapshot"
    data = path.read_bytes()
    magic, header, payload = data.split(b"\n", 2)
    if how == "foreign":
        fields = json.loads(header)
        fields["format"] = 999
        path.write_bytes(magic + b"\n" + json.dumps(fields).encode() + b"\n" + payload)
    else:
        middle = len(payload) // 2
        path.write_bytes(magic + b"\n" + header + b"\n" + payload[:middle] + bytes([payload[middle] ^ 0xFF])
                         + payload[middle + 1:])


@pytest.mark.parametrize("how,message", [("foreign", "another version: format 999"), ("damaged", "damaged")])
def test_a_snapshot_this_code_cannot_read_is_refused_whole(stacks, tmp_path, how, message):
    data_dir = tmp_path / "data"
    first = stacks(data_dir)
    email = _user(first.admin(), "APP_DEVELOPER")
    assert first.stop() == 0
    _break(data_dir, how)

    refused = stacks(data_dir, ready=False)
    assert refused.wait_exit() == 2
    log = refused.log.read_text()
    assert message in log and "--reset" in log, log
    assert not port_open(refused.port)

    fresh = stacks(data_dir, "--reset")
    with pytest.raises(KileleError):  # started empty: the user is gone, the superadmin is seeded again
        fresh.client(email)
    assert fresh.admin().get_current_user()["email"] == SUPERADMIN[0]


def test_moto_killed_is_reported_then_restarted_from_its_state(stacks, tmp_path):
    stack = stacks(tmp_path / "data")
    email = _user(stack.admin(), "APP_DEVELOPER")
    time.sleep(SNAPSHOT_SECONDS * 2 + 1)
    os.kill(stack.moto_pid(), signal.SIGKILL)
    answer = requests.get(stack.url + "/", timeout=10)
    assert answer.status_code == 503, answer.text
    body = answer.json()
    assert body["components"]["moto"]["ok"] is False and "moto" in body["error"]["message"]

    _wait(lambda: requests.get(stack.url + "/", timeout=10).status_code == 200, 60)
    health = requests.get(stack.url + "/", timeout=10).json()["components"]
    assert "moto stopped" in health["watcher"]["detail"]
    assert stack.client(email).get_current_user()["email"] == email
    # The restarted moto serves until the stack has stopped everything that still writes to it.
    assert stack.stop() == 0
    assert "kilele: could not" not in stack.log.read_text()


def test_status_and_down_talk_to_the_running_stack(stacks, tmp_path):
    data_dir = tmp_path / "data"
    stack = stacks(data_dir)
    status = subprocess.run([str(KILELE), "local", "status", "--data-dir", str(data_dir)], capture_output=True,
                            text=True, timeout=60)
    assert status.returncode == 0, status.stderr
    for component in ("moto", "api", "trial-runner", "lambda-shim", "serving-consumer", "watcher"):
        assert component in status.stdout
    assert stack.url in status.stdout

    down = subprocess.run([str(KILELE), "local", "down", "--data-dir", str(data_dir)], capture_output=True,
                          text=True, timeout=120)
    assert down.returncode == 0, down.stderr
    assert stack.wait_exit() == 0
    assert not port_open(stack.port) and not port_open(stack.moto_port)
    after = subprocess.run([str(KILELE), "local", "status", "--data-dir", str(data_dir)], capture_output=True,
                           text=True, timeout=60)
    assert after.returncode == 3 and "no local stack runs" in after.stderr


def test_a_second_stack_on_the_same_data_dir_is_refused(stacks, tmp_path):
    data_dir = tmp_path / "data"
    stacks(data_dir)
    second = stacks(data_dir, ready=False)
    assert second.wait_exit() == 2
    assert "another local stack" in second.log.read_text()
