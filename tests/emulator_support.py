"""The AWS emulator the workflow and e2e suites run against, when one is given.

``AWS_ENDPOINT_URL`` (and ``AWS_ENDPOINT_URL_DYNAMODB``), read once through the settings when the
test session starts (tests/conftest.py imports this first); the session's environment then
drops them, so no other test reaches the emulator by accident. Empty: each suite starts its own
moto, as always. scripts/test-localstack sets them to LocalStack (and DynamoDB on a moto server).
"""
from __future__ import annotations

from chalicelib.settings import Settings

_settings = Settings()
#: Every AWS service's endpoint ("" for a moto of the suite's own).
ENDPOINT_URL: str = _settings.aws_endpoint_url
#: DynamoDB's, when it has its own ("" for ENDPOINT_URL's).
DYNAMODB_ENDPOINT_URL: str = _settings.aws_endpoint_url_dynamodb if ENDPOINT_URL else ""
del _settings
