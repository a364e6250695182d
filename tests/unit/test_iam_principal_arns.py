"""Which principal an ARN links: roles for their sessions, users as they are, nothing else."""
from __future__ import annotations

import pytest

from chalicelib.errors import InvalidInput
from chalicelib.iam_principals import principal_of


@pytest.mark.parametrize("arn, principal", [
    ("arn:aws:sts::123456789012:assumed-role/ml-engineers/alice@laptop", "arn:aws:iam::123456789012:role/ml-engineers"),
    ("arn:aws:iam::123456789012:role/teams/ml/ml-engineers", "arn:aws:iam::123456789012:role/ml-engineers"),
    ("arn:aws:iam::123456789012:role/ml-engineers", "arn:aws:iam::123456789012:role/ml-engineers"),
    ("arn:aws:iam::123456789012:user/alice", "arn:aws:iam::123456789012:user/alice"),
    ("arn:aws:iam::123456789012:user/division/alice", "arn:aws:iam::123456789012:user/division/alice"),
    ("  arn:aws-cn:iam::123456789012:user/a.b+c=d,e@f-g_h  ", "arn:aws-cn:iam::123456789012:user/a.b+c=d,e@f-g_h"),
    ("arn:aws-us-gov:sts::123456789012:assumed-role/r/s1", "arn:aws-us-gov:iam::123456789012:role/r"),
])
def test_the_linked_principal_of_an_arn(arn, principal):
    assert principal_of(arn) == principal


@pytest.mark.parametrize("arn", [
    "", "alice", "arn:aws:iam::123456789012:root", "arn:aws:iam::12345:user/short-account",
    "arn:aws:sts::123456789012:federated-user/bob", "arn:aws:iam::123456789012:group/admins",
    "arn:aws:iam::123456789012:user/ali\nce", "arn:aws:iam::123456789012:user/al ice",
    "arn:evil:iam::123456789012:user/alice", "arn:aws:sts::123456789012:assumed-role/r/",
])
def test_anything_else_is_refused_with_what_is_expected(arn):
    with pytest.raises(InvalidInput, match="principal_arn must be an IAM user or role ARN"):
        principal_of(arn)
