"""The managed policy that lets IAM users move large files straight to and from the data bucket
with S3's multipart and ranged APIs (issue 13 item 11; the SDK's ``kilele._s3_direct``).

The API's upload handshake hands a request signed by an IAM user a key under
``direct/<IAM user name>/`` (chalicelib.services.datasets). This policy grants ``s3:PutObject``
(which covers CreateMultipartUpload, UploadPart and CompleteMultipartUpload) and the abort of
one's own multipart uploads on ``direct/${aws:username}/*`` only: IAM fills the variable with the
caller's own user name, so one user cannot write another's keys. It also grants ``s3:GetObject``
there: what the API exports for an IAM user (an app version's bundle) is written under the same
prefix, so only that user's credentials read it. The actions and the prefix are
:mod:`chalicelib.direct_transfers`'s, which the local stack's S3 gate checks too.

Limits, by design:

- IAM users only. A role has no ``aws:username``; its ``aws:userid`` ends with a session name
  that whoever assumes the role chooses, so it cannot keep two people of one role apart. Roles
  get no direct target from the API and keep the presigned POST.
- Users are told apart by name within the stack's account; principals of other accounts are not
  granted anything here (a policy is attached in its own account).
- A user may overwrite or replace its own staged file until the API completes the upload; the
  API checks the file (size, format) on completion, as it does for presigned uploads.
- Reads only of what the API put there for the user: its bundle exports, and its copies of
  trial parameters and stress-test reports (made on its request); everything else keeps its
  shared key and presigned GET URLs.
"""
from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from chalicelib.direct_transfers import ALLOWED_ACTIONS, POLICY_PREFIX

#: The key prefix the API hands to IAM users (chalicelib.direct_transfers.DirectTransfers).
DIRECT_PREFIX = POLICY_PREFIX


def direct_transfer_policy(scope: Construct, stage: str, bucket: s3.IBucket) -> iam.ManagedPolicy:
    """``kilele-{stage}-direct-transfers``: attach it beside ``kilele-{stage}-api-invoke`` to
    IAM users who upload large datasets and download bundles with the SDK signed
    (``Client(aws_session=...)``)."""
    return iam.ManagedPolicy(
        scope, "DirectTransferPolicy", managed_policy_name=f"kilele-{stage}-direct-transfers",
        description="Put and get large files under direct/<your IAM user name>/ in the Kilele data bucket",
        statements=[iam.PolicyStatement(
            actions=list(ALLOWED_ACTIONS),
            resources=[bucket.arn_for_objects(DIRECT_PREFIX)],
        )],
    )
