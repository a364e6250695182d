"""Shared test set-up: fake AWS credentials and a fast password hash, before any import of the app."""
import os

import emulator_support  # noqa: F401 - takes the emulator's endpoints (scripts/test-localstack) before they are dropped

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.pop("AWS_ENDPOINT_URL", None)
os.environ.pop("AWS_ENDPOINT_URL_DYNAMODB", None)
os.environ.pop("AWS_PROFILE", None)
# argon2 at its cheapest: the hash is still argon2id, the tests just do not wait on it.
os.environ.setdefault("KILELE_PASSWORD_HASH_TIME_COST", "1")
os.environ.setdefault("KILELE_PASSWORD_HASH_MEMORY_KIB", "256")
