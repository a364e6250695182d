"""An external AWS emulator (LocalStack) in place of the local stack's moto child, and DynamoDB on
an endpoint of its own: what the stack and the clients get from the settings."""
from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from chalicelib.adapters.aws import AwsClients
from chalicelib.local.external_aws import ExternalAws
from settings_support import make_settings


@pytest.fixture
def health_server():
    class Handler(BaseHTTPRequestHandler):
        status = 200

        def do_GET(self):  # noqa: N802 - http.server's name
            self.send_response(Handler.status if self.path == "/_localstack/health" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", Handler
    server.shutdown()
    server.server_close()


def test_an_answering_emulator_starts_and_is_alive_but_is_never_the_stacks_to_stop(health_server):
    url, _ = health_server
    aws = ExternalAws(url + "/")
    aws.start()
    assert aws.url == url and aws.alive() and aws.pid is None
    aws.stop()
    assert aws.alive(), "stop leaves the emulator running: it is not the stack's"
    assert aws.iam_credentials("AKIAANYTHING") is None


def test_an_emulator_that_does_not_answer_fails_the_start_saying_where(health_server):
    url, handler = health_server
    handler.status = 503
    with pytest.raises(RuntimeError, match="does not answer.*answered 503"):
        ExternalAws(url).start()
    assert not ExternalAws("http://127.0.0.1:9").alive()


def test_dynamodb_can_have_its_own_endpoint_and_the_rest_keep_the_common_one():
    settings = make_settings(aws_endpoint_url="http://127.0.0.1:4566", aws_endpoint_url_dynamodb="http://127.0.0.1:5000")
    assert settings.dynamodb_endpoint_url == "http://127.0.0.1:5000"
    aws = AwsClients("us-east-1", settings.aws_endpoint_url, "k", "s", settings.aws_service_endpoints)
    assert aws.client("dynamodb").meta.endpoint_url == "http://127.0.0.1:5000"
    assert aws.client("sqs").meta.endpoint_url == "http://127.0.0.1:4566"


def test_without_its_own_endpoint_dynamodb_goes_where_every_service_goes():
    settings = make_settings(aws_endpoint_url="http://127.0.0.1:4566", aws_endpoint_url_dynamodb="")
    assert settings.aws_service_endpoints == {} and settings.dynamodb_endpoint_url == "http://127.0.0.1:4566"
    aws = AwsClients("us-east-1", settings.aws_endpoint_url, "k", "s", settings.aws_service_endpoints)
    assert aws.client("dynamodb").meta.endpoint_url == "http://127.0.0.1:4566"


def test_a_check_left_unanswered_is_tolerated_for_the_grace_period_then_the_emulator_is_gone(health_server):
    url, handler = health_server
    aws = ExternalAws(url, grace_seconds=0.3)
    assert aws.alive()
    handler.status = 503  # or a check slower than its timeout on a loaded machine
    assert aws.alive(), "one unanswered check is not a lost emulator"
    time.sleep(0.35)
    assert not aws.alive()
    handler.status = 200
    assert aws.alive()


def test_the_watcher_stops_the_stack_rather_than_restart_an_emulator_it_does_not_own():
    from chalicelib.local.watch import Watcher

    class Stack:
        moto, components, failures = ExternalAws("http://127.0.0.1:9", grace_seconds=0), [], []

        def restart_moto(self):
            raise AssertionError("an external emulator is never restarted")

        def fail(self, reason):
            self.failures.append(reason)

    stack = Stack()
    Watcher(stack).check()
    assert len(stack.failures) == 1 and "not the stack's to restart" in stack.failures[0]
