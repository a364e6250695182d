"""``kilele-worker run``: run one trial from a message and report it with the task token.

The message comes from ``--message-file PATH``, ``--message-json JSON``, ``--message-s3 s3://b/k``,
or the environment: ``KILELE_TRIAL_MESSAGE`` (JSON) or ``KILELE_TRIAL_MESSAGE_S3`` (an S3 URI).
With ``KILELE_DATASET_CHECK`` set instead, it checks a dataset (:mod:`kilele_worker.dataset_check`).
Exit codes: 0 reported (success or failure), 2 unusable message or arguments, 3 could not report,
4 the execution no longer waits for the task token.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from typing import Any, Optional

from kilele_worker import errors
from kilele_worker.errors import TrialFailure
from kilele_worker.message import MessageError, parse_message, task_token_of
from kilele_worker.settings import MESSAGE_ENV, MESSAGE_S3_ENV, WorkerSettings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kilele-worker", description="Kilele's trial worker.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run one trial and report it to Step Functions")
    source = run.add_mutually_exclusive_group()
    source.add_argument("--message-file", metavar="PATH", help="the trial message as a JSON file")
    source.add_argument("--message-json", metavar="JSON", help="the trial message as a JSON string")
    source.add_argument("--message-s3", metavar="URI", help="the trial message as a JSON object in S3")
    # SageMaker training jobs start the image as `<entrypoint> train`: accepted and ignored.
    run.add_argument("sagemaker_mode", nargs="?", choices=["train"], help=argparse.SUPPRESS)
    zygote = commands.add_parser("zygote", help="(local stack) fork pre-imported workers on request "
                                 "(kilele_worker.zygote)")
    zygote.add_argument("--fd", type=int, required=True, help="the dispatcher's socket")
    return parser


def _read_s3(uri: str, aws: Any) -> str:
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise MessageError(f"{uri!r} is not an s3://bucket/key URI")
    bucket, key = uri[5:].split("/", 1)
    return aws.s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")


def _load_raw(args: argparse.Namespace, settings: WorkerSettings, aws_factory) -> str:
    if args.message_file:
        with open(args.message_file, encoding="utf-8") as f:
            return f.read()
    if args.message_json:
        return args.message_json
    if args.message_s3:
        return _read_s3(args.message_s3, aws_factory())
    if settings.message_json:
        return settings.message_json
    if settings.message_s3:
        return _read_s3(settings.message_s3, aws_factory())
    raise MessageError(f"no message: give --message-file, --message-json, --message-s3, "
                       f"or set {MESSAGE_ENV} or {MESSAGE_S3_ENV}")


def _say(text: str) -> None:
    print(f"kilele-worker: {text}", file=sys.stderr, flush=True)


def main(argv: Optional[list[str]] = None, settings: Optional[WorkerSettings] = None, spare: Any = None,
         aws_session: Any = None) -> int:
    """The entrypoint; ``settings`` default to :meth:`WorkerSettings.from_environ` (the environment).
    A warm worker (:mod:`kilele_worker.zygote`) passes its pre-started model process (``spare``)
    and a boto3 session whose service models the zygote loaded (``aws_session``)."""
    args = _parser().parse_args(argv)
    if args.command == "zygote":
        from kilele_worker.zygote import bootstrap

        bootstrap(args.fd)  # execs the zygote
    from kilele_worker.aws import AwsClients
    from kilele_worker.supervisor import run_trial

    from kilele.sandbox import protect_self

    settings = settings or WorkerSettings.from_environ()
    # Non-dumpable: a model process that had to keep this user cannot read our memory or environment.
    protect_self()
    clients: dict[str, AwsClients] = {}

    def aws() -> AwsClients:
        if "aws" not in clients:
            clients["aws"] = AwsClients(aws_session)
        return clients["aws"]

    if settings.dataset_check_json and not (args.message_file or args.message_json or args.message_s3):
        # A dataset check's job (issue 13, finding 3), not a trial: no task token, a verdict in S3.
        from kilele_worker.dataset_check import run as check_dataset

        return check_dataset(settings.dataset_check_json, aws(), settings.trial_role_arn)
    try:
        raw = _load_raw(args, settings, aws)
    except (OSError, MessageError) as e:
        _say(f"cannot read the trial message: {e}")
        return errors.EXIT_USAGE
    except Exception as e:  # noqa: BLE001 - S3 errors
        _say(f"cannot read the trial message: {type(e).__name__}: {e}")
        return errors.EXIT_USAGE
    try:
        message = parse_message(raw)
    except MessageError as e:
        try:
            token = task_token_of(json.loads(raw))
        except ValueError:
            token = None
        _say(f"invalid trial message: {e}")
        if token is None:
            return errors.EXIT_USAGE
        return _fail_bad_message(aws(), token, f"invalid trial message: {e}")

    stop_requested = threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop_requested.set())
    try:
        # On AWS, S3 through the trial role narrowed to this run's keys (kilele_worker.aws).
        return run_trial(message, aws().for_run(message.trial, settings.trial_role_arn),
                         stop_requested=stop_requested, settings=settings, spare=spare)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _fail_bad_message(aws: Any, token: str, cause: str) -> int:
    """No usable keys in the message, so no log or error report: only the answer."""
    from kilele_worker.reporting import send_failure

    return send_failure(aws, token, TrialFailure(errors.TRIAL_ERROR, cause))


if __name__ == "__main__":
    sys.exit(main())
