"""Synthesis check of the direct-transfer policy (issue 13 item 11): IAM users may write only
under their own ``direct/${aws:username}/`` prefix of the data bucket, and nothing else."""
from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "infra")]

from aws_cdk import App, Stack  # noqa: E402
from aws_cdk import aws_s3 as s3  # noqa: E402
from aws_cdk.assertions import Template  # noqa: E402

from kilele_infra.direct_transfers import direct_transfer_policy  # noqa: E402


def test_the_policy_writes_only_under_the_callers_own_prefix() -> None:
    stack = Stack(App(), "direct-test")
    bucket = s3.Bucket(stack, "Data")
    direct_transfer_policy(stack, "test", bucket)
    [policy] = Template.from_stack(stack).find_resources("AWS::IAM::ManagedPolicy").values()
    assert policy["Properties"]["ManagedPolicyName"] == "kilele-test-direct-transfers"
    [statement] = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Allow"
    assert set(statement["Action"]) == {"s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"}
    # {"Fn::Join": ["", [<bucket arn>, "/direct/${aws:username}/*"]]}: no wildcard user, no read
    parts = statement["Resource"]["Fn::Join"][1]
    assert parts[-1] == "/direct/${aws:username}/*"
