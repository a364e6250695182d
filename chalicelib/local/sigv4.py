"""The local twin of API Gateway's IAM authorization: verify a request's SigV4 signature.

On AWS, a method with IAM authorization checks the ``Authorization: AWS4-HMAC-SHA256 ...``
header against the caller's secret key and hands the Lambda the caller's ARN
(``requestContext.identity.userArn``). The local gateway does the same with the access keys
moto issued (``iam.create_access_key``, ``sts.assume_role``), which the moto child hands out
on loopback (:data:`chalicelib.local.moto_server.IAM_CREDENTIALS_PATH`): a signed request
from the SDK acts as the Kilele user its IAM user or role is linked to, exactly as it would
against a deployed stack. The signature is recomputed with botocore's own SigV4 code over the
headers the client says it signed, so nothing here re-implements the algorithm.
"""
from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable, Mapping, Optional

SCHEME = "AWS4-HMAC-SHA256"
SERVICE = "execute-api"
#: API Gateway refuses a signature more than 5 minutes off its clock ("Signature expired").
MAX_SKEW = timedelta(minutes=5)
_AUTHORIZATION = re.compile(
    rf"^{SCHEME} Credential=(?P<akid>[A-Z0-9]{{16,128}})/(?P<date>\d{{8}})/(?P<region>[a-z0-9-]+)/(?P<service>[a-z0-9-]+)"
    r"/aws4_request, ?SignedHeaders=(?P<signed>[a-z0-9;-]+), ?Signature=(?P<signature>[0-9a-f]{64})$")


class SignatureRejected(Exception):
    """The request carries a SigV4 signature that does not hold (API Gateway answers 403)."""


@dataclass(frozen=True)
class Credentials:
    secret_access_key: str
    arn: str  # the IAM user's ARN, or the assumed-role session's
    session_token: Optional[str] = None


def is_signed(headers: Mapping[str, str]) -> bool:
    return (headers.get("authorization") or "").startswith(f"{SCHEME} ")


def verify(method: str, url: str, headers: Mapping[str, str], body: bytes,
           credentials_of: Callable[[str], Optional[Credentials]], now: Optional[datetime] = None,
           service: str = SERVICE) -> str:
    """The caller's ARN if the request's SigV4 signature holds, else :class:`SignatureRejected`.

    ``headers``: lower-cased names; ``url``: as the client addressed it (scheme, Host header,
    path and query string); ``credentials_of(access_key_id)``: the key's secret and owner;
    ``service``: ``execute-api``, or ``s3`` (whose canonical request keeps the path as sent and
    takes the payload hash from ``x-amz-content-sha256``: the local S3 gate's)."""
    from botocore.auth import S3SigV4Auth, SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials as BotocoreCredentials

    match = _AUTHORIZATION.match(headers.get("authorization") or "")
    if not match:
        raise SignatureRejected("the Authorization header is not a well-formed AWS4-HMAC-SHA256 signature")
    if match["service"] != service:
        raise SignatureRejected(f"the signature is for service {match['service']!r}, not {service!r}")
    amz_date = headers.get("x-amz-date") or ""
    try:
        signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        raise SignatureRejected("X-Amz-Date is missing or not yyyymmddThhmmssZ") from None
    now = now or datetime.now(timezone.utc)
    if abs(now - signed_at) > MAX_SKEW or amz_date[:8] != match["date"]:
        raise SignatureRejected("Signature expired: the request was signed more than 5 minutes from now")
    signed_names = match["signed"].split(";")
    if "host" not in signed_names or any(name not in headers for name in signed_names if name != "host"):
        raise SignatureRejected("SignedHeaders must include host and name only headers the request carries")
    credentials = credentials_of(match["akid"])
    if credentials is None:
        raise SignatureRejected("The security token included in the request is invalid (unknown access key)")
    if credentials.session_token and headers.get("x-amz-security-token") != credentials.session_token:
        raise SignatureRejected("The security token included in the request is invalid")
    request = AWSRequest(method=method, url=url, data=body,
                         headers={name: headers[name] for name in signed_names if name != "host"})
    request.context["timestamp"] = amz_date
    signer = (S3SigV4Auth if service == "s3" else SigV4Auth)(
        BotocoreCredentials(match["akid"], credentials.secret_access_key, credentials.session_token),
        service, match["region"])
    # Only the signed headers take part, as the client computed them; the host comes from the URL.
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(expected, match["signature"]):
        raise SignatureRejected("The request signature we calculated does not match the signature you provided")
    return credentials.arn
