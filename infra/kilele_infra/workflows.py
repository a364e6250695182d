"""Train-job workflows: one Lambda per workflow handler and one Step Functions state machine per
``RESOURCES.state_machines`` spec, from ``chalicelib/workflows/<template>.asl.json`` as it is, with
CloudFormation filling every ``${...}`` placeholder (as render.render_aws does in Python)."""
from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from chalicelib import resources
from chalicelib.resources import RESOURCES, StateMachineSpec
from chalicelib.workflows.handlers import FUNCTION_PLACEHOLDERS, HANDLERS
from chalicelib.services.trial_messages import RUN_TOKEN_KEY_PATTERNS
from chalicelib.workflows.render import WORKFLOWS_DIR, load_template, placeholders

from .data import Data
from .naming import pascal, resource_name
from .bundling import RUNTIME
from .runtime import FunctionFactory, StateMachineArns

#: The workflow handlers that run the advisor (optuna, numpy): they get its layer.
ADVISOR_HANDLERS = frozenset({"propose_trial"})

# Chalice registers the workflow handlers as pure Lambda functions made from lambdas, so its own
# handler strings are `app.<lambda>`: each handler needs a module-level (event, context) entry
# point, `<WORKFLOW_ENTRY_MODULE>.<handler name>` (one per name in HANDLERS).
WORKFLOW_ENTRY_MODULE = "chalicelib.workflows.lambda_entry"

WORKFLOW_MEMORY_MB = 1024
WORKFLOW_TIMEOUT = Duration.seconds(60)

# ASL placeholders (besides the *FunctionArn ones of FUNCTION_PLACEHOLDERS) that name a queue.
QUEUE_PLACEHOLDERS = {"TrialsQueueUrl": resources.TRIALS_QUEUE.name}


class Workflows(Construct):
    """Owns the workflow Lambdas (``<WORKFLOW_ENTRY_MODULE>.<handler>``, 1024 MB, 60 s, service
    ``kilele-workflows``, with their log groups and roles) and the state machines
    ``kilele-{stage}-{name}`` with their log groups (``/aws/vendedlogs/states/...``) and roles.

    Takes the data resources (the Lambdas read and write every table and bucket; the machines
    send to the queues their template names), the state machine ARNs (the Lambdas start, stop
    and describe executions: continue-as-new) and the function factory.

    Exposes ``functions`` (handler name -> Lambda) and ``state_machines`` (spec name -> machine).
    Synth fails if a template has a placeholder this construct does not fill.
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, stage: str, data: Data,
        state_machine_arns: StateMachineArns, functions: FunctionFactory,
    ) -> None:
        super().__init__(scope, construct_id)
        self.stage = stage
        self.data = data
        self.max_trials_per_execution = functions.max_trials_per_execution
        self.advisor_layer = lambda_.LayerVersion(
            self, "AdvisorLayer", code=functions.advisor_code, compatible_runtimes=[RUNTIME],
            description="Kilele's advisor libraries (requirements-advisor.txt): the propose Lambda only")
        self.functions = {name: self._function(name, data, state_machine_arns, functions) for name in HANDLERS}
        self.state_machines = {spec.name: self._state_machine(spec) for spec in RESOURCES.state_machines}

    def _function(
        self, name: str, data: Data, state_machine_arns: StateMachineArns, functions: FunctionFactory,
    ) -> lambda_.Function:
        """The Lambda behind the task states that name handler ``name`` (e.g. propose_trial)."""
        function = functions.function(
            self, f"{pascal(name)}Function",
            handler=f"{WORKFLOW_ENTRY_MODULE}.{name}",
            environment=functions.environment("kilele-workflows"),
            memory_size=WORKFLOW_MEMORY_MB,
            timeout=WORKFLOW_TIMEOUT,
            # Only proposing trials needs the advisor's libraries (chalicelib.advisor imports them lazily).
            layers=(self.advisor_layer,) if name in ADVISOR_HANDLERS else (),
        )
        data.grant_table_data(function)
        for bucket in data.buckets.values():
            bucket.grant_read_write(function)
        state_machine_arns.grant_executions(function)
        return function

    def _state_machine(self, spec: StateMachineSpec) -> sfn.StateMachine:
        """``chalicelib/workflows/<template>.asl.json`` with every ``${...}`` placeholder filled in
        by CloudFormation (DefinitionSubstitutions), as render.render_aws does in Python."""
        name = resource_name(self.stage, spec.name)
        template = load_template(spec.template)
        needed = placeholders(template)
        values: dict[str, str] = {
            placeholder: self.functions[handler].function_arn
            for placeholder, handler in FUNCTION_PLACEHOLDERS.items()
        }
        values.update({p: self.data.queues[q].queue_url for p, q in QUEUE_PLACEHOLDERS.items()})
        values["MaxTrialsPerExecution"] = str(self.max_trials_per_execution)
        missing = needed - set(values)
        if missing:
            # CloudFormation would deploy the literal ${...} and the machine would fail at run time.
            raise ValueError(f"{spec.template}.asl.json: no value for placeholders {sorted(missing)}")
        construct_id = f"{pascal(spec.name)}StateMachine"
        log_group = logs.LogGroup(
            self, f"{construct_id}Logs",
            # The /aws/vendedlogs/ prefix keeps the account's CloudWatch Logs resource policy small.
            log_group_name=f"/aws/vendedlogs/states/{name}",
            retention=logs.RetentionDays.ONE_MONTH,
            removal_policy=RemovalPolicy.DESTROY,  # a fixed name: a retained group would block re-creation
        )
        state_machine = sfn.StateMachine(
            self, construct_id,
            state_machine_name=name,
            definition_body=sfn.DefinitionBody.from_file(str(WORKFLOWS_DIR / f"{spec.template}.asl.json")),
            definition_substitutions={p: values[p] for p in sorted(needed)},
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
            tracing_enabled=True,
        )
        for placeholder, handler in FUNCTION_PLACEHOLDERS.items():
            if placeholder in needed:
                self.functions[handler].grant_invoke(state_machine)
        for placeholder, queue in QUEUE_PLACEHOLDERS.items():
            if placeholder in needed:
                self.data.queues[queue].grant_send_messages(state_machine)
        if "run_token_key" in template:
            # A run's second task writes its token beside the run's log (issue 13: heartbeats
            # count from the job's start): aws-sdk:s3:putObject.waitForTaskToken.
            state_machine.add_to_role_policy(iam.PolicyStatement(
                actions=["s3:PutObject"],
                resources=[self.data.data_bucket.arn_for_objects(p) for p in RUN_TOKEN_KEY_PATTERNS]))
        return state_machine
