"""The local gateway's SigV4 check against the SDK's signer: what one signs the other accepts,
and any change to the request, the key, the clock or the service breaks it."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import boto3
import pytest
import requests

from chalicelib.local.sigv4 import Credentials, SignatureRejected, verify
from kilele._aws import SigV4

KEY, SECRET, ARN = "AKIAEXAMPLEEXAMPLE12", "s" * 40, "arn:aws:iam::123456789012:user/alice"
URL = "http://127.0.0.1:8123/datasets?task=TABULAR_CLASSIFICATION"


def signed(method: str = "POST", url: str = URL, body: bytes = b'{"name": "iris"}', secret: str = SECRET,
           token=None) -> requests.PreparedRequest:
    session = boto3.Session(aws_access_key_id=KEY, aws_secret_access_key=secret, aws_session_token=token,
                            region_name="eu-west-1")
    request = requests.Request(method, url, data=body, headers={"Content-Type": "application/json"})
    return SigV4(session, "eu-west-1")(request.prepare())


def check(prepared: requests.PreparedRequest, url: str = URL, body=None, now=None, token=None) -> str:
    headers = {k.lower(): v for k, v in prepared.headers.items()}
    headers["host"] = "127.0.0.1:8123"
    return verify(prepared.method, url, headers, prepared.body if body is None else body,
                  lambda akid: Credentials(SECRET, ARN, token) if akid == KEY else None, now=now)


def test_what_the_sdk_signs_the_gateway_accepts():
    assert check(signed()) == ARN
    assert check(signed("GET", body=b"")) == ARN


@pytest.mark.parametrize("change", ["body", "path", "query", "method", "secret", "clock", "token"])
def test_any_change_is_refused(change):
    prepared = signed()
    with pytest.raises(SignatureRejected):
        if change == "body":
            check(prepared, body=b'{"name": "iris2"}')
        elif change == "path":
            check(prepared, url=URL.replace("/datasets", "/models"))
        elif change == "query":
            check(prepared, url=URL.replace("TABULAR", "IMAGE"))
        elif change == "method":
            prepared.method = "DELETE"
            check(prepared)
        elif change == "secret":
            check(signed(secret="t" * 40))
        elif change == "clock":
            check(prepared, now=datetime.now(timezone.utc) + timedelta(minutes=6))
        else:  # a session's key without its session token
            check(prepared, token="the-session-token")


def test_unknown_keys_and_malformed_headers_are_refused():
    prepared = signed()
    prepared.headers["Authorization"] = prepared.headers["Authorization"].replace(KEY, "AKIAUNKNOWNUNKNOWN12")
    with pytest.raises(SignatureRejected, match="unknown access key"):
        check(prepared)
    prepared = signed()
    prepared.headers["Authorization"] = prepared.headers["Authorization"].replace("execute-api", "s3")
    with pytest.raises(SignatureRejected, match="service"):
        check(prepared)
    prepared.headers["Authorization"] = "AWS4-HMAC-SHA256 garbage"
    with pytest.raises(SignatureRejected, match="well-formed"):
        check(prepared)
