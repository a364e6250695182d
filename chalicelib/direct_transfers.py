"""Direct S3 transfers of IAM users: which keys a signed caller may move itself, and what it may do there.

IAM's ``${aws:username}`` policy variable is the caller's own IAM user name, so a grant on
``direct/${aws:username}/*`` of the data bucket lets each IAM user read and write one prefix and
no other's. The API therefore puts what an IAM-signed request uploads or exports under
``direct/<that user's name>/`` and answers the bucket and key beside the presigned URL; the SDK
then moves the file with boto3's managed transfers (multipart, ranged, parallel).

This module is the one statement of that grant: infra's managed policy
(``infra/kilele_infra/direct_transfers.py``) and the local stack's S3 gate
(``chalicelib/local/s3_gate.py``, the local twin of IAM's check) are both built from
:data:`ALLOWED_ACTIONS` and :data:`PREFIX`.

Roles get nothing here: a role has no ``aws:username``, and the session name its ``aws:userid``
ends with is chosen by whoever assumes it, so it cannot keep two people of one role apart.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from chalicelib.errors import NotFound
from chalicelib.iam_principals import iam_user_name
from chalicelib.ports import BlobStore

#: The first segment of every key handed to an IAM user.
PREFIX = "direct"
#: IAM's resource pattern for the caller's own prefix (the bucket ARN goes before it).
POLICY_PREFIX = f"{PREFIX}/${{aws:username}}/*"

#: What an IAM user may do under its own prefix: write (S3's multipart API is covered by
#: PutObject), abort and list its multipart uploads, and read (GetObject also covers HEAD and
#: ranged GETs, which boto3's managed download uses). Nothing on the bucket itself (no listing).
WRITE_ACTIONS = ("s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts")
READ_ACTIONS = ("s3:GetObject",)
ALLOWED_ACTIONS = WRITE_ACTIONS + READ_ACTIONS


def user_prefix(user_name: str) -> str:
    """The key prefix of one IAM user (what :data:`POLICY_PREFIX` resolves to for it)."""
    return f"{PREFIX}/{user_name}/"


def may(user_name: Optional[str], action: str, key: str) -> bool:
    """Whether the grant lets the IAM user ``user_name`` do ``action`` on ``key`` of the data
    bucket (None: not an IAM user, never)."""
    return bool(user_name) and action in ALLOWED_ACTIONS and key.startswith(user_prefix(user_name or ""))


@dataclass(frozen=True)
class DirectTransfers:
    """Where IAM-signed callers move files themselves: the data bucket, and the S3 endpoint to
    reach it at (None on AWS; the local stack's S3 gate locally)."""

    bucket: str
    endpoint_url: Optional[str] = None

    def key_for(self, iam_principal: Optional[str], key: str) -> Optional[str]:
        """``key`` under the caller's own prefix when ``iam_principal`` is an IAM user, else None."""
        name = iam_user_name(iam_principal) if self.bucket else None
        return f"{user_prefix(name)}{key}" if name else None

    def target(self, key: str) -> dict[str, Any]:
        """The ``direct`` answer for ``key``: ``{bucket, key, endpoint_url}``."""
        return {"bucket": self.bucket, "key": key, "endpoint_url": self.endpoint_url}

    def copy_for(self, blobs: BlobStore, iam_principal: Optional[str], source_key: str, key: str) -> Optional[dict[str, Any]]:
        """For an IAM user, the ``direct`` answer of ``source_key`` copied to ``key`` under its own
        prefix (a server-side copy, made once: the files handed out this way, trial parameters and
        reports, do not change once written); None for anyone else."""
        direct_key = self.key_for(iam_principal, key)
        if not direct_key:
            return None
        try:
            blobs.size(direct_key)
        except NotFound:
            blobs.copy(source_key, direct_key)
        return self.target(direct_key)
