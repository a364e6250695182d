"""The SDK's AWS side: SigV4-signed API calls with the caller's own credentials, and finding a
deployed stack's API from its CloudFormation outputs.

A stack serves its routes twice (infra/kilele_infra/api.py): under ``ApiUrl`` with Kilele's
session tokens and API keys, and under ``IamApiUrl`` with API Gateway's IAM authorization,
where every request must be signed with SigV4 for the ``execute-api`` service. An admin links
the IAM user or role to a Kilele user (``kilele users link-iam-principal``); its signed
requests then act as that user. The credentials come from a boto3 ``Session``: by default the
caller's usual chain (environment, ``~/.aws``, SSO, instance or container role).
"""
from __future__ import annotations

import re
from typing import Any, Optional
from urllib.parse import urlsplit

import requests

from kilele.errors import KileleError

#: The stack outputs holding the two API roots (infra/kilele_infra/stack.py).
API_URL_OUTPUT, IAM_API_URL_OUTPUT = "ApiUrl", "IamApiUrl"
_EXECUTE_API_HOST = re.compile(r"^[a-z0-9]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$")


def default_session(region: Optional[str] = None) -> Any:
    """A boto3 session on the caller's usual credential chain."""
    import boto3

    return boto3.Session(region_name=region) if region else boto3.Session()


def region_of(url: str, session: Any) -> str:
    """The region to sign for: the one in an ``execute-api`` host, else the session's."""
    match = _EXECUTE_API_HOST.match(urlsplit(url).hostname or "")
    region = match.group(1) if match else session.region_name
    if not region:
        raise KileleError("no AWS region to sign requests for: give Client(region=...), set AWS_REGION, "
                          "or a region in ~/.aws/config", code="no_region")
    return region


class SigV4(requests.auth.AuthBase):
    """``requests`` auth that signs each request with SigV4 for ``execute-api``, with the
    session's current credentials (refreshed by botocore when they are temporary)."""

    service = "execute-api"

    def __init__(self, session: Any, region: str):
        self._session = session
        self.region = region

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        credentials = self._session.get_credentials()
        if credentials is None:
            raise KileleError("no AWS credentials found to sign the request (boto3's credential chain is empty); "
                              "configure credentials or use an API key", code="no_credentials")
        body = request.body
        if body is not None and not isinstance(body, (bytes, str)):
            raise KileleError("a streamed request body cannot be signed; this call needs an API key or token",
                              code="unsignable_body")
        # Sign only what we send and nothing a proxy may change on the way: the host, the
        # content type and the body (its SHA-256 is part of the signature).
        signed = {k: v for k, v in request.headers.items() if k.lower() in ("content-type", "accept")}
        aws_request = AWSRequest(method=request.method, url=request.url, data=body or b"", headers=signed)
        SigV4Auth(credentials.get_frozen_credentials(), self.service, self.region).add_auth(aws_request)
        for name in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token"):
            if name in aws_request.headers:
                request.headers[name] = aws_request.headers[name]
        return request


def stack_api_url(stack_name: str, session: Any, iam: bool) -> str:
    """The API root a deployed stack publishes in its CloudFormation outputs."""
    from botocore.exceptions import BotoCoreError, ClientError

    wanted = IAM_API_URL_OUTPUT if iam else API_URL_OUTPUT
    try:
        stacks = session.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as e:
        raise KileleError(f"cannot read stack {stack_name!r}: {e.response['Error'].get('Message', e)}",
                          code="stack_not_found") from e
    except BotoCoreError as e:
        raise KileleError(f"cannot read stack {stack_name!r}: {e}", code="stack_not_found") from e
    outputs = {o["OutputKey"]: o["OutputValue"] for o in (stacks[0].get("Outputs") or [])} if stacks else {}
    if wanted not in outputs:
        raise KileleError(f"stack {stack_name!r} has no output {wanted!r} (is it a Kilele stack, fully deployed?); "
                          f"its outputs: {sorted(outputs)}", code="stack_not_found")
    return outputs[wanted].rstrip("/")
