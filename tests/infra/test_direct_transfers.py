"""Synthesis check of the direct-transfer policy (issue 13 item 11): IAM users may write and read
only under their own ``direct/${aws:username}/`` prefix of the data bucket (where the API puts
their uploads and their bundle exports), and nothing else: no listing, no deletion, no other key."""
from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "infra")]

from aws_cdk import App, Stack  # noqa: E402
from aws_cdk import aws_s3 as s3  # noqa: E402
from aws_cdk.assertions import Template  # noqa: E402

from kilele_infra.direct_transfers import direct_transfer_policy  # noqa: E402


def test_the_policy_reads_and_writes_only_under_the_callers_own_prefix() -> None:
    stack = Stack(App(), "direct-test")
    bucket = s3.Bucket(stack, "Data")
    direct_transfer_policy(stack, "test", bucket)
    [policy] = Template.from_stack(stack).find_resources("AWS::IAM::ManagedPolicy").values()
    assert policy["Properties"]["ManagedPolicyName"] == "kilele-test-direct-transfers"
    [statement] = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Allow"
    assert set(statement["Action"]) == {"s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts",
                                        "s3:GetObject"}
    assert "Condition" not in statement and "NotResource" not in statement
    # {"Fn::Join": ["", [<bucket arn>, "/direct/${aws:username}/*"]]}: no wildcard user, no other key
    parts = statement["Resource"]["Fn::Join"][1]
    assert parts[-1] == "/direct/${aws:username}/*"


def test_the_api_and_the_local_gate_use_the_prefix_the_policy_grants() -> None:
    """The key the API hands an IAM user is what ``${aws:username}`` resolves to for it, and the
    local S3 gate allows exactly the policy's actions there."""
    from chalicelib.direct_transfers import ALLOWED_ACTIONS, DirectTransfers, may
    from kilele_infra.direct_transfers import DIRECT_PREFIX

    key = DirectTransfers("bucket").key_for("arn:aws:iam::123456789012:user/team/alice", "exports/e/bundle.tar.gz")
    assert key == DIRECT_PREFIX.replace("${aws:username}", "alice").rstrip("*") + "exports/e/bundle.tar.gz"
    assert all(may("alice", action, key) for action in ALLOWED_ACTIONS)
    assert not may("bob", "s3:GetObject", key) and not may("alice", "s3:DeleteObject", key)
    assert not may(None, "s3:GetObject", key) and not may("alic", "s3:GetObject", key)
