"""What every Kilele Lambda shares, whichever construct creates it: the one code asset, the
environment chalicelib.settings.Settings reads, the function settings (runtime, tracing, a log
group), and the state machine ARNs with the grants on them.

Neither class here is a construct: they create nothing by themselves. The constructs that own
functions (Api, Workflows, Functions) call ``FunctionFactory.function`` with themselves as scope.
"""
from __future__ import annotations

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from chalicelib.resources import RESOURCES

from .bundling import RUNTIME, advisor_layer_code, api_code
from .chalice_app import REPO_ROOT
from .data import Data
from .naming import env_name, resource_name
from .serving import Serving


class StateMachineArns:
    """The ARNs of the stage's state machines, built from their fixed names
    (``kilele-{stage}-{name}``), not referred to: the workflow Lambdas (continue-as-new) and the
    API need them, and the machines refer to the workflow Lambdas, so a reference would be a cycle.
    """

    def __init__(self, stack: Stack, stage: str) -> None:
        self.stack = stack
        self.stage = stage
        self.arns = {spec.name: self._arn(spec.name) for spec in RESOURCES.state_machines}

    def _arn(self, name: str) -> str:
        return self.stack.format_arn(
            service="states", resource="stateMachine", resource_name=resource_name(self.stage, name),
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )

    def _execution_arns(self, name: str) -> str:
        return self.stack.format_arn(
            service="states", resource="execution", resource_name=f"{resource_name(self.stage, name)}:*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )

    def grant_executions(self, grantee: iam.IGrantable) -> None:
        """Start executions of Kilele's state machines, stop and describe them."""
        names = list(self.arns)
        if not names:
            return
        iam.Grant.add_to_principal(
            grantee=grantee, actions=["states:StartExecution"],
            resource_arns=[self.arns[name] for name in names],
        )
        iam.Grant.add_to_principal(
            grantee=grantee, actions=["states:StopExecution", "states:DescribeExecution"],
            resource_arns=[self._execution_arns(name) for name in names],
        )

    def grant_task_failure(self, grantee: iam.IGrantable) -> None:
        if self.arns:
            iam.Grant.add_to_principal(
                grantee=grantee, actions=["states:SendTaskFailure"], resource_arns=list(self.arns.values()),
            )


class FunctionFactory:
    """Makes Kilele's Lambdas: all run the repo's app.py + chalicelib/ (one asset, bundled once)
    with the same environment, apart from ``POWERTOOLS_SERVICE_NAME`` and what a caller adds."""

    def __init__(
        self, *, stage: str, data: Data, serving: Serving, state_machine_arns: StateMachineArns,
        max_trials_per_execution: int,
    ) -> None:
        self.stage = stage
        self.data = data
        self.serving = serving
        self.state_machine_arns = state_machine_arns
        # Also a DefinitionSubstitution of the state machines (Workflows): one value for both.
        self.max_trials_per_execution = max_trials_per_execution
        self.code = api_code(REPO_ROOT)
        # optuna, numpy, SQLAlchemy, Alembic: a layer of the propose Lambda only (Workflows).
        self.advisor_code = advisor_layer_code(REPO_ROOT)

    def environment(self, service: str) -> dict[str, str]:
        """What every Kilele function reads through chalicelib.settings.Settings."""
        environment = {
            "KILELE_STAGE": self.stage,
            "POWERTOOLS_SERVICE_NAME": service,
            "KILELE_TRIALS_QUEUE_URL": self.data.trials_queue.queue_url,
            "KILELE_MAX_TRIALS_PER_EXECUTION": str(self.max_trials_per_execution),
        }
        for name, bucket in self.data.buckets.items():
            # "data" -> KILELE_DATA_BUCKET_NAME, read by Settings.data_bucket_name.
            environment[f"KILELE_{env_name(name)}_BUCKET_NAME"] = bucket.bucket_name
        for name, arn in self.state_machine_arns.arns.items():
            # "train-worker" -> KILELE_TRAIN_WORKER_STATE_MACHINE_ARN.
            environment[f"KILELE_{env_name(name)}_STATE_MACHINE_ARN"] = arn
        # Every function builds the same services (chalicelib.wiring): with sagemaker:// none of
        # them falls back to the local endpoint runner. Only the API and the serving-requests
        # consumer are granted anything on the endpoints.
        environment.update(self.serving.environment())
        return environment

    def function(
        self, scope: Construct, construct_id: str, *, handler: str, environment: dict[str, str],
        timeout: Duration, memory_size: int = 1024, layers: tuple[lambda_.ILayerVersion, ...] = (),
    ) -> lambda_.Function:
        """A function ``construct_id`` in ``scope`` (x86_64, X-Ray, one month of logs in
        ``{construct_id}Logs``), with ``layers`` besides the code asset."""
        return lambda_.Function(
            scope, construct_id,
            runtime=RUNTIME,
            architecture=lambda_.Architecture.X86_64,  # the bundled wheels are x86_64
            handler=handler,
            code=self.code,
            memory_size=memory_size,
            timeout=timeout,
            tracing=lambda_.Tracing.ACTIVE,
            environment=environment,
            layers=list(layers) or None,
            log_group=logs.LogGroup(scope, f"{construct_id}Logs", retention=logs.RetentionDays.ONE_MONTH),
        )
