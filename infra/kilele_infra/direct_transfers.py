"""The managed policy that lets IAM users put large files straight into the data bucket with
S3's multipart API (issue 13 item 11; the SDK's ``kilele._s3_direct``).

The API's upload handshake hands a request signed by an IAM user a key under
``direct/<IAM user name>/`` (chalicelib.services.datasets). This policy grants ``s3:PutObject``
(which covers CreateMultipartUpload, UploadPart and CompleteMultipartUpload) and the abort of
one's own multipart uploads on ``direct/${aws:username}/*`` only: IAM fills the variable with the
caller's own user name, so one user cannot write another's keys.

Limits, by design:

- IAM users only. A role has no ``aws:username``; its ``aws:userid`` ends with a session name
  that whoever assumes the role chooses, so it cannot keep two people of one role apart. Roles
  get no direct target from the API and keep the presigned POST.
- Users are told apart by name within the stack's account; principals of other accounts are not
  granted anything here (a policy is attached in its own account).
- A user may overwrite or replace its own staged file until the API completes the upload; the
  API checks the file (size, format) on completion, as it does for presigned uploads.
- No read grant: downloads (bundles, reports) stay presigned GET URLs, since their keys are
  not per user.
"""
from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

#: The key prefix the API hands to IAM users (chalicelib.services.datasets.DatasetService).
DIRECT_PREFIX = "direct/${aws:username}/*"


def direct_transfer_policy(scope: Construct, stage: str, bucket: s3.IBucket) -> iam.ManagedPolicy:
    """``kilele-{stage}-direct-transfers``: attach it beside ``kilele-{stage}-api-invoke`` to
    IAM users who upload large datasets with the SDK signed (``Client(aws_session=...)``)."""
    return iam.ManagedPolicy(
        scope, "DirectTransferPolicy", managed_policy_name=f"kilele-{stage}-direct-transfers",
        description="Put large files under direct/<your IAM user name>/ in the Kilele data bucket (multipart)",
        statements=[iam.PolicyStatement(
            actions=["s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
            resources=[bucket.arn_for_objects(DIRECT_PREFIX)],
        )],
    )
