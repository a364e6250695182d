"""On AWS a run's S3 rights are its own (issue 9): the worker assumes the trial role with a
session policy naming this run's keys only (kilele_worker.aws). The policy is checked here
key by key; the STS round trip under moto.

moto does not enforce session policies (nor IAM at all by default): the moto tests show that
the worker's S3 client uses credentials STS issued for this run, with this run's policy
attached, not that AWS would refuse another trial's key. That refusal is AWS's evaluation of
the policy checked in the first tests."""
from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws
from worker_harness import BUCKET, DECISION_TREE, TREE_KNOBS

from kilele_worker.aws import AwsClients, assume_role_arguments, run_keys, session_policy
from kilele_worker.message import StressTestSpec, TrialSpec, parse_message
from kilele_worker.settings import WorkerSettings

ROLE_ARN = "arn:aws:iam::123456789012:role/kilele-test-trial"
TRIAL = "3f0c2b9e-5a51-4c1e-9d8e-0a7c1b2d3e4f"
TRIAL_FIELDS = {
    "id": TRIAL, "train_job_id": "job-1", "model_class": "M", "bucket": BUCKET,
    "model_key": "models/m-1/model.py",
    "train_dataset_key": "datasets/d-train/data.csv", "val_dataset_key": "datasets/d-val/data.csv",
    "params_key": f"trials/{TRIAL}/params.npz", "logs_key": f"trials/{TRIAL}/logs.txt",
    "onnx_key": f"trials/{TRIAL}/model.onnx",
    "error_key": f"trials/{TRIAL}/error.json", "claim_key": f"trials/{TRIAL}/claim.json",
}


def statements(policy: dict) -> dict[str, tuple[set, set]]:
    return {s["Sid"]: (set([s["Action"]] if isinstance(s["Action"], str) else s["Action"]), set(s["Resource"]))
            for s in policy["Statement"]}


def arn(key: str) -> str:
    return f"arn:aws:s3:::{BUCKET}/{key}"


def test_a_trials_session_policy_names_exactly_its_keys():
    policy = session_policy(TrialSpec.from_dict(TRIAL_FIELDS))
    assert all(s["Effect"] == "Allow" for s in policy["Statement"])
    found = statements(policy)
    assert found["ReadItsInputs"] == ({"s3:GetObject"}, {
        arn("models/m-1/model.py"), arn("datasets/d-train/data.csv"), arn("datasets/d-val/data.csv")})
    assert found["WriteItsOutputs"] == ({"s3:PutObject", "s3:AbortMultipartUpload"}, {
        arn(f"trials/{TRIAL}/{name}") for name in ("params.npz", "model.onnx", "logs.txt", "error.json", "claim.json")})
    assert "*" not in json.dumps(policy), "a trial's keys are exact: no wildcard"


def test_a_description_reads_only_the_model_file():
    logs = "describe/m-1/d-1/logs.txt"
    spec = TrialSpec.from_dict({**TRIAL_FIELDS, "kind": "describe", "params_key": None, "onnx_key": None,
                                "logs_key": logs, "error_key": "describe/m-1/d-1/error.json",
                                "claim_key": "describe/m-1/d-1/claim.json"})
    found = statements(session_policy(spec))
    assert found["ReadItsInputs"][1] == {arn("models/m-1/model.py")}
    assert found["WriteItsOutputs"][1] == {arn(f"describe/m-1/d-1/{n}") for n in ("logs.txt", "error.json", "claim.json")}


def test_a_stress_test_of_a_trial_reads_its_data_and_the_trials_model_and_writes_its_folder():
    data = {"label_col": "y", "ref_path": "ref.parquet", "eval_path": "eval.parquet"}
    spec = StressTestSpec.from_dict({
        "id": "st-1", "bucket": BUCKET, "ref_key": "stress-inputs/u-1/a/ref.parquet", "eval_key": "datasets/d-1/data.csv",
        "results_prefix": "stress/st-1/", "logs_key": "stress/st-1/logs.txt", "error_key": "stress/st-1/error.json",
        "claim_key": "stress/st-1/claim.json", "config": {"data_info": data, "model_info": {"trial_id": TRIAL}},
        "model_key": "models/m-1/model.py", "model_class": "M", "params_key": f"trials/{TRIAL}/params.npz",
    })
    reads, writes, prefixes = run_keys(spec)
    assert reads == sorted(["stress-inputs/u-1/a/ref.parquet", "datasets/d-1/data.csv", "models/m-1/model.py",
                            f"trials/{TRIAL}/params.npz"])
    assert prefixes == ["stress/st-1/"]
    found = statements(session_policy(spec))
    assert arn("stress/st-1/*") in found["WriteItsOutputs"][1]
    assert found["ReadItsInputs"][1] == {arn(k) for k in reads}


def test_the_assume_role_call_fits_sts_limits():
    """A packed session policy may have 2,048 characters; a session name 64 of [\\w+=,.@-]."""
    long_keys = {k: v.replace("m-1", "m-" + "x" * 36) for k, v in TRIAL_FIELDS.items()}
    arguments = assume_role_arguments(TrialSpec.from_dict(long_keys), ROLE_ARN)
    assert len(arguments["Policy"]) < 2048, len(arguments["Policy"])
    assert arguments["RoleSessionName"] == f"kilele-trial-{TRIAL}" and len(arguments["RoleSessionName"]) <= 64
    assert arguments["DurationSeconds"] <= 3600  # role chaining: at most an hour, fetched again after
    assert {"Key": "kilele:run", "Value": TRIAL} in arguments["Tags"]
    gov = assume_role_arguments(TrialSpec.from_dict(TRIAL_FIELDS), "arn:aws-us-gov:iam::123456789012:role/r")
    assert "arn:aws-us-gov:s3:::" in gov["Policy"]


def test_without_a_trial_role_the_worker_keeps_its_own_credentials():
    aws = AwsClients()
    assert aws.for_run(TrialSpec.from_dict(TRIAL_FIELDS), None) is aws
    assert WorkerSettings.from_environ({}).trial_role_arn is None
    assert WorkerSettings.from_environ({"KILELE_TRIAL_ROLE_ARN": ROLE_ARN}).trial_role_arn == ROLE_ARN


@pytest.fixture
def moto_sts():
    with mock_aws():
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.sts.models import sts_backends

        boto3.client("s3").create_bucket(Bucket=BUCKET)
        yield sts_backends[DEFAULT_ACCOUNT_ID]["aws"]


def test_the_workers_s3_client_uses_sts_credentials_issued_for_this_run(moto_sts):
    spec = TrialSpec.from_dict(TRIAL_FIELDS)
    aws = AwsClients().for_run(spec, ROLE_ARN)
    assert moto_sts.assumed_roles == [], "credentials are fetched on first use, where failures are reported"
    aws.s3.put_object(Bucket=BUCKET, Key=spec.claim_key, Body=b"{}")

    [assumed] = moto_sts.assumed_roles
    assert (assumed.role_arn, assumed.session_name) == (ROLE_ARN, f"kilele-trial-{TRIAL}")
    assert json.loads(assumed.policy) == session_policy(spec)
    identity = aws.s3_session.client("sts").get_caller_identity()
    assert identity["Arn"].endswith(f":assumed-role/kilele-test-trial/kilele-trial-{TRIAL}")
    assert aws.s3_session.get_credentials().get_frozen_credentials().access_key == assumed.access_key_id
    # Task-token answers keep the job's own credentials (a run that cannot assume the role still reports).
    assert aws.session.get_credentials().access_key != assumed.access_key_id


def test_a_whole_trial_runs_on_the_scoped_credentials(platform):
    from kilele_worker.supervisor import run_trial
    from kilele_worker.trial_log import TrialLog
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sts.models import sts_backends

    trial = platform.start_trial(DECISION_TREE, "SkDecisionTree", knobs=TREE_KNOBS)
    message = parse_message(trial.message)
    settings = WorkerSettings.from_environ({"PATH": "/usr/bin:/bin", "KILELE_TRIAL_ROLE_ARN": ROLE_ARN})
    aws = AwsClients().for_run(message.trial, settings.trial_role_arn)
    assert run_trial(message, aws, TrialLog(), settings=settings) == 0
    assert platform.wait_execution(trial.execution_arn)["status"] == "SUCCEEDED"
    assert platform.object_exists(trial.fields["params_key"])
    sessions = {r.session_name: r for r in sts_backends[DEFAULT_ACCOUNT_ID]["aws"].assumed_roles}
    assert json.loads(sessions[f"kilele-trial-{trial.id}"].policy) == session_policy(message.trial)
