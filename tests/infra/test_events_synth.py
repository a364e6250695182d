"""Synthesis of issue 12's events and schedules (infra/kilele_infra/events.py): the bus and the
rule that logs its Kilele events (what GET /events reads), the example alert rule to an SNS
topic, the schedule group, the schedule Lambda and the role EventBridge Scheduler invokes it as;
and that the names infra deploys are those the platform's settings default to."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
from stack_template import whole_stack

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "infra")]

from aws_cdk.assertions import Match, Template  # noqa: E402

from chalicelib import resources  # noqa: E402
from chalicelib.settings import Settings  # noqa: E402
from chalicelib.wiring_events import events_log_group  # noqa: E402
from kilele_infra.events import ALERT_STATUSES, RUN_SCHEDULE_HANDLER  # noqa: E402

STAGE = "test"


@pytest.fixture(scope="module")
def template() -> Template:
    return whole_stack(STAGE)  # one synthesis per test process (stack_template.py)


def _one(template: Template, kind: str, props: dict) -> tuple[str, dict]:
    found = template.find_resources(kind, {"Properties": props})
    assert len(found) == 1, (kind, props, list(found))
    return next(iter(found.items()))


def _functions(template: Template) -> dict[str, dict]:
    return {i: r for i, r in template.find_resources("AWS::Lambda::Function").items()
            if str(r["Properties"].get("Handler", "")).startswith(("app.", "chalicelib."))}


def _statements(template: Template, function: dict) -> list[dict]:
    role = function["Properties"]["Role"]["Fn::GetAtt"][0]
    out: list[dict] = []
    # CDK moves what does not fit a role's inline policy to an overflow managed policy.
    for kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        for policy in template.find_resources(kind, {"Properties": {"Roles": Match.array_with([{"Ref": role}])}}).values():
            out += policy["Properties"]["PolicyDocument"]["Statement"]
    return out


def _actions(statements: list[dict]) -> set[str]:
    return {a for s in statements for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])}


def test_the_names_infra_deploys_are_the_settings_defaults(template: Template) -> None:
    settings = Settings(stage=STAGE)
    bus_id, _ = _one(template, "AWS::Events::EventBus", {"Name": settings.resource_name(resources.EVENT_BUS)})
    _one(template, "AWS::Logs::LogGroup", {"LogGroupName": events_log_group(settings)})
    _one(template, "AWS::Scheduler::ScheduleGroup", {"Name": settings.resource_name(resources.SCHEDULE_GROUP)})


def test_every_kilele_event_on_the_bus_is_logged_where_the_listing_reads(template: Template) -> None:
    log_id, _ = _one(template, "AWS::Logs::LogGroup", {"LogGroupName": "/aws/events/kilele-test-events"})
    _, rule = _one(template, "AWS::Events::Rule", {"EventPattern": Match.exact({"source": ["kilele"]})})
    assert rule["Properties"]["Targets"] == [{"Id": "EventsLog", "Arn": {"Fn::GetAtt": [log_id, "Arn"]}}]
    _, policy = _one(template, "AWS::Logs::ResourcePolicy", {})
    document = policy["Properties"]["PolicyDocument"]
    assert "events.amazonaws.com" in str(document) and "logs:PutLogEvents" in str(document)


def test_the_example_rule_sends_failures_and_breaches_to_the_alerts_topic(template: Template) -> None:
    topic_id, _ = _one(template, "AWS::SNS::Topic", {"TopicName": "kilele-test-alerts"})
    _, rule = _one(template, "AWS::Events::Rule", {
        "EventPattern": {"source": ["kilele"], "detail": {"status": ALERT_STATUSES}}})
    assert rule["Properties"]["Targets"][0]["Arn"] == {"Ref": topic_id}
    template.has_resource_properties("AWS::SNS::TopicPolicy", {"PolicyDocument": {"Statement": Match.array_with([
        Match.object_like({"Action": "sns:Publish", "Principal": {"Service": "events.amazonaws.com"}})])}})


def test_every_kilele_function_knows_the_bus_and_the_schedules_and_may_publish(template: Template) -> None:
    functions = _functions(template)
    assert len(functions) > 5
    for logical_id, function in functions.items():
        variables = function["Properties"]["Environment"]["Variables"]
        assert variables["KILELE_EVENTS_URI"] == "eventbridge://kilele-test-events", logical_id
        assert variables["KILELE_SCHEDULER_URI"] == "eventbridge://kilele-test-schedules", logical_id
        assert {"KILELE_EVENTS_LOG_GROUP", "KILELE_SCHEDULE_TARGET_ARN", "KILELE_SCHEDULER_ROLE_ARN"} <= set(variables)
        assert "events:PutEvents" in _actions(_statements(template, function)), logical_id


def test_the_schedule_lambda_and_the_role_scheduler_invokes_it_as(template: Template) -> None:
    _, function = _one(template, "AWS::Lambda::Function", {"Handler": RUN_SCHEDULE_HANDLER})
    assert function["Properties"]["FunctionName"] == "kilele-test-run-schedule"
    roles = template.find_resources("AWS::IAM::Role", {"Properties": {"AssumeRolePolicyDocument": {
        "Statement": Match.array_with([Match.object_like({"Principal": {"Service": "scheduler.amazonaws.com"}})])}}})
    [(role_id, role)] = roles.items()
    [trust] = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert set(trust["Condition"]) == {"StringEquals", "ArnLike"}  # this account's schedules of this group only
    assert "kilele-test-schedules/*" in str(trust["Condition"]["ArnLike"])
    statements = [s for p in template.find_resources("AWS::IAM::Policy", {"Properties": {"Roles": [{"Ref": role_id}]}})
                  .values() for s in p["Properties"]["PolicyDocument"]["Statement"]]
    assert _actions(statements) == {"lambda:InvokeFunction"}
    assert "function:kilele-test-run-schedule" in str(statements)
    # The schedule Lambda does what a firing needs: the records, the data, the workflows.
    actions = _actions(_statements(template, function))
    assert {"dynamodb:PutItem", "s3:GetObject*", "s3:PutObject", "states:StartExecution"} <= actions


def test_the_api_reads_the_events_log_and_manages_the_groups_schedules(template: Template) -> None:
    _, api = _one(template, "AWS::Lambda::Function", {"Handler": "app.app"})
    statements = _statements(template, api)
    assert {"logs:FilterLogEvents", "scheduler:CreateSchedule", "scheduler:UpdateSchedule", "scheduler:DeleteSchedule",
            "scheduler:GetSchedule", "scheduler:ListSchedules", "iam:PassRole"} <= _actions(statements)
    roles = template.find_resources("AWS::IAM::Role", {"Properties": {"AssumeRolePolicyDocument": {
        "Statement": Match.array_with([Match.object_like({"Principal": {"Service": "scheduler.amazonaws.com"}})])}}})
    [scheduler_role] = roles
    [pass_role] = [s for s in statements if s["Action"] == "iam:PassRole" and scheduler_role in str(s["Resource"])]
    # Handed to EventBridge Scheduler only (the API cannot give the role to anything else).
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}}
