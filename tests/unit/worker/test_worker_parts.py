"""The worker's parts on their own: message, environment, dependencies, log, child outputs."""
from __future__ import annotations

import os

import pytest

from kilele_worker import sandbox
from kilele_worker.message import MessageError, parse_message
from kilele_worker.trial_log import TrialLog

TRIAL = {
    "id": "t1", "train_job_id": "j1", "model_class": "M", "bucket": "b", "model_key": "m.py",
    "train_dataset_key": "train.csv", "val_dataset_key": "val.csv", "params_key": "p", "logs_key": "t1/logs.txt",
    "error_key": "t1/error.json", "claim_key": "t1/claim.json",
}


def test_message_defaults_and_validation():
    message = parse_message({"task_token": "tok", "trial": TRIAL})
    assert message.task_token == "tok"
    trial = message.trial
    assert (trial.knobs, trial.dependencies, trial.gpu_count, trial.onnx_key) == ({}, {}, 0, None)
    assert trial.timeout_seconds == 3600 and trial.heartbeat_seconds == 10 and trial.memory_limit_mb is None

    with pytest.raises(MessageError, match="task_token"):
        parse_message({"trial": TRIAL})
    with pytest.raises(MessageError, match="trial.bucket"):
        parse_message({"task_token": "tok", "trial": dict(TRIAL, bucket="")})
    with pytest.raises(MessageError, match="trial.memory_limit_mb must be an integer"):
        parse_message({"task_token": "tok", "trial": dict(TRIAL, memory_limit_mb=1.5)})
    with pytest.raises(MessageError, match="trial.knobs"):
        parse_message({"task_token": "tok", "trial": dict(TRIAL, knobs=[1])})
    with pytest.raises(MessageError, match="not JSON"):
        parse_message("{nope")
    with pytest.raises(MessageError, match="trial.error_key"):
        parse_message({"task_token": "tok", "trial": {k: v for k, v in TRIAL.items() if k != "error_key"}})
    # The old DynamoDB table names are not part of the message any more (and are ignored).
    assert not hasattr(parse_message({"task_token": "tok", "trial": dict(TRIAL, trials_table="x")}).trial,
                       "trials_table")


def test_child_environment_drops_aws_and_secrets():
    env = sandbox.child_environment({
        "PATH": "/usr/bin", "HOME": "/home/u", "LANG": "C.UTF-8", "CUDA_VISIBLE_DEVICES": "0",
        "AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b", "AWS_SESSION_TOKEN": "c",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:5000", "AWS_ENDPOINT_URL_S3": "x", "aws_profile": "p",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://169.254.170.2/x",
        "ECS_CONTAINER_METADATA_URI_V4": "http://169.254.170.2/v4", "MOTO_PORT": "5000",
        "KILELE_TRIAL_MESSAGE": '{"task_token": "t"}', "KILELE_TRIAL_MESSAGE_S3": "s3://b/k",
        "GITHUB_TOKEN": "g", "DB_PASSWORD": "p", "SM_HPS": "{}", "PYTHONPATH": "/extra",
    }, extra={"TMPDIR": "/w/scratch"})
    assert {"PATH", "HOME", "LANG", "CUDA_VISIBLE_DEVICES", "TMPDIR", "PYTHONPATH", "PYTHONUNBUFFERED"} == set(env)
    assert env["PYTHONPATH"].split(os.pathsep)[-1] == "/extra"


def test_dependency_check():
    missing, warnings = sandbox.check_dependencies(
        {"numpy": None, "scikit-learn": "1.9.1", "boto3": "0.0.1", "kilele-nope": "2.0", "kilele-nope-2": None,
         "sklearn": None})
    assert missing == ["kilele-nope==2.0", "kilele-nope-2"]
    assert [w.split(":")[0] for w in warnings] == ["boto3", "sklearn"]


def test_log_keeps_head_and_tail_within_its_cap(capsys):
    import sys

    cap = 64 * 1024
    log = TrialLog(cap_bytes=cap, echo=sys.stdout)
    for i in range(3000):
        log.model(f"line {i:04d}")
    log.worker("x" * 100_000)  # one huge line is cut
    text = log.text()
    assert len(text.encode()) <= cap + 200
    head, tail = text.split("omitted")
    assert "line 0000" in head and "line 2999" in tail and "line 1500" not in text
    assert text.rstrip().endswith("characters]")
    echoed = capsys.readouterr().out
    assert "line 0000" in echoed and "further lines are not echoed" in echoed and "line 2999" not in echoed


def test_child_outputs_refuse_symlinks_and_hard_links(tmp_path):
    secret = tmp_path / "secret"
    secret.write_bytes(b"supervisor secret")
    out = tmp_path / "output"
    out.mkdir()
    (out / "result.json").write_bytes(b"{}")
    (out / "params.npz").symlink_to(secret)
    os.link(secret, out / "model.onnx")
    assert sandbox.read_child_file(str(out), "result.json", 100) == b"{}"
    assert sandbox.read_child_file(str(out), "absent.json", 100) is None
    for name in ("params.npz", "model.onnx"):
        with pytest.raises(sandbox.UnsafeOutput):
            sandbox.read_child_file(str(out), name, 100)
    with pytest.raises(sandbox.UnsafeOutput):
        sandbox.read_child_file(str(out), "result.json", 1)
