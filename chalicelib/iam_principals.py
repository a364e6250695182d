"""IAM principals as Kilele identities: which ARN a signed request is linked to a user by.

API Gateway's IAM authorization verifies the request's SigV4 signature and hands the Lambda
``requestContext.identity.userArn``: the IAM user (``arn:aws:iam::123456789012:user/alice``)
or, for a role, the assumed-role session
(``arn:aws:sts::123456789012:assumed-role/ml-engineers/alice-laptop``). A session name is
chosen by whoever assumes the role, so a role is linked as the role itself
(``arn:aws:iam::123456789012:role/ml-engineers``): every session of it is the same Kilele user.
"""
from __future__ import annotations

import re
from typing import Optional

from chalicelib.errors import InvalidInput

_PARTITION = r"aws(?:-cn|-us-gov|-iso|-iso-b)?"
_ACCOUNT = r"\d{12}"
# IAM names: letters, digits and +=,.@_- ; user and role paths: /seg/seg/ of the same characters.
_NAME = r"[\w+=,.@-]{1,128}"
_PATH = r"(?:/[\w+=,.@-]+)*/"
_IAM = re.compile(rf"^arn:({_PARTITION}):iam::({_ACCOUNT}):(user|role)({_PATH})?({_NAME})$")
_ASSUMED = re.compile(rf"^arn:({_PARTITION}):sts::({_ACCOUNT}):assumed-role/({_NAME})/([\w+=,.@-]{{2,64}})$")

#: The ARNs :func:`principal_of` takes, as one JSON Schema pattern (the request schema's): its
#: parts are this module's, so the two cannot drift.
PATTERN = (rf"^(?:arn:{_PARTITION}:iam::{_ACCOUNT}:(?:user|role)(?:{_PATH})?{_NAME}"
           rf"|arn:{_PARTITION}:sts::{_ACCOUNT}:assumed-role/{_NAME}/[\w+=,.@-]{{2,64}})$")

#: What a principal ARN must look like, for error messages.
EXPECTED = ("an IAM user or role ARN (arn:aws:iam::<account>:user/<name> or :role/<name>) "
            "or an assumed-role ARN (arn:aws:sts::<account>:assumed-role/<role>/<session>)")


def principal_of(arn: str) -> str:
    """The linkable principal behind ``arn``: IAM users and roles as given (path dropped for
    roles, which API Gateway's assumed-role ARNs do not carry), assumed-role sessions as their
    role. ``InvalidInput`` for anything else (root, federated users, malformed text)."""
    text = (arn or "").strip()
    assumed = _ASSUMED.match(text)
    if assumed:
        partition, account, role, _session = assumed.groups()
        return f"arn:{partition}:iam::{account}:role/{role}"
    iam = _IAM.match(text)
    if iam:
        partition, account, kind, path, name = iam.groups()
        if kind == "role":
            return f"arn:{partition}:iam::{account}:role/{name}"
        return f"arn:{partition}:iam::{account}:user{path or '/'}{name}"
    raise InvalidInput(f"principal_arn must be {EXPECTED}; got {text[:200]!r}")


def iam_user_name(arn: Optional[str]) -> Optional[str]:
    """The user name of an IAM user ARN (what IAM's ``${aws:username}`` policy variable is for
    that user's requests); None for roles, assumed roles, anything else or None."""
    iam = _IAM.match((arn or "").strip())
    if iam and iam.group(3) == "user":
        return iam.group(5)
    return None
