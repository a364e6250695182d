"""The Lambdas that answer events rather than HTTP requests, each running one of the Chalice
event handlers of app.py: the trials-queue dispatcher, the Batch job-failed handler (and its
EventBridge rule) and the serving-requests queue consumer."""
from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from chalice.app import CloudWatchEventConfig, SQSEventConfig
from constructs import Construct

from chalicelib import resources
from chalicelib.services.trial_messages import RUN_TOKEN_KEY_PATTERNS

from .chalice_app import (
    BATCH_JOB_FAILED_HANDLER, DISPATCH_TRIALS_HANDLER, SERVE_QUEUE_ITEMS_HANDLER, chalice_event_source,
)
from .data import Data
from .runtime import FunctionFactory, StateMachineArns
from .serving import Serving
from .worker_compute import WorkerCompute

# The dispatcher and the job-failed handler: below the trials queue's visibility timeout.
DISPATCH_TIMEOUT = Duration.seconds(60)
# The queue API's consumer: below the serving-requests queue's visibility timeout (60 s), or a
# batch still being answered would be delivered again.
SERVE_QUEUE_TIMEOUT = Duration.seconds(50)


class Functions(Construct):
    """Owns three Lambdas (with their log groups, roles, event source mappings and permissions):

    - ``dispatch_trials`` (``app.dispatch_trials``): the trials queue's consumer (batch size as
      app.py declares it); submits each trial as an AWS Batch job of ``worker_compute`` and may
      fail the trial's task token;
    - ``batch_job_failed`` (``app.batch_job_failed``), the target of the EventBridge rule on
      ``aws.batch`` "Batch Job State Change" FAILED on the worker's job queues: fails the task
      token at once instead of at the heartbeat timeout;
    - ``serve_queue`` (``app.serve_queue_items``): the serving-requests queue's consumer, whole
      batches (no ReportBatchItemFailures); reads and writes the tables, invokes this stage's
      SageMaker endpoints.

    Takes the data resources (the two queues, the tables), WorkerCompute (Batch queues and job
    definitions), Serving (endpoint grants), the state machine ARNs (task failure) and the
    function factory. Exposes the three functions as attributes. The serving consumer's
    ``KILELE_PUBLIC_API_URL`` is added by the stack once the API exists.
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, data: Data, worker_compute: WorkerCompute,
        serving: Serving, state_machine_arns: StateMachineArns, functions: FunctionFactory,
    ) -> None:
        super().__init__(scope, construct_id)
        self.dispatch_trials = self._dispatch_function(data, worker_compute, state_machine_arns, functions)
        self.batch_job_failed = self._batch_job_failed_function(worker_compute, state_machine_arns, functions)
        for function in (self.dispatch_trials, self.batch_job_failed):
            # A lost job is failed on its run task once it started: that token is beside its log.
            function.add_to_role_policy(iam.PolicyStatement(
                actions=["s3:GetObject"],
                resources=[data.data_bucket.arn_for_objects(p) for p in RUN_TOKEN_KEY_PATTERNS]))
        self.serve_queue = self._serve_queue_function(data, serving, functions)

    def _dispatch_function(
        self, data: Data, worker_compute: WorkerCompute, state_machine_arns: StateMachineArns,
        functions: FunctionFactory,
    ) -> lambda_.Function:
        """Consumes the trials queue: submits each trial message as a Batch job."""
        config = chalice_event_source(DISPATCH_TRIALS_HANDLER, SQSEventConfig)
        function = functions.function(
            self, "DispatchTrialsFunction",
            handler=DISPATCH_TRIALS_HANDLER,
            environment={**functions.environment("kilele-dispatch"), **worker_compute.environment()},
            timeout=DISPATCH_TIMEOUT,
        )
        function.add_event_source(event_sources.SqsEventSource(data.trials_queue, batch_size=config.batch_size))
        worker_compute.grant_submit(function)
        state_machine_arns.grant_task_failure(function)
        return function

    def _batch_job_failed_function(
        self, worker_compute: WorkerCompute, state_machine_arns: StateMachineArns, functions: FunctionFactory,
    ) -> lambda_.Function:
        """Fails the task token of a worker's Batch job that ended FAILED (killed, OOM, host lost)."""
        config = chalice_event_source(BATCH_JOB_FAILED_HANDLER, CloudWatchEventConfig)
        function = functions.function(
            self, "BatchJobFailedFunction",
            handler=BATCH_JOB_FAILED_HANDLER,
            environment={**functions.environment("kilele-dispatch"), **worker_compute.environment()},
            timeout=DISPATCH_TIMEOUT,
        )
        pattern = config.event_pattern
        events.Rule(
            self, "BatchJobFailedRule",
            description="Kilele: a trial's Batch job FAILED -> fail its Step Functions task token",
            event_pattern=events.EventPattern(
                source=pattern["source"],
                detail_type=pattern["detail-type"],
                # Chalice's pattern (status FAILED), narrowed to this stage's worker queues.
                detail={
                    **pattern.get("detail", {}),
                    "jobQueue": [queue.job_queue_arn for queue in worker_compute.job_queues],
                },
            ),
            targets=[targets.LambdaFunction(function)],
        )
        state_machine_arns.grant_task_failure(function)
        return function

    def _serve_queue_function(self, data: Data, serving: Serving, functions: FunctionFactory) -> lambda_.Function:
        """Consumes the serving-requests queue (the queue API): predicts each batch of items
        through the apps' endpoints and writes the results to the serving-results table."""
        config = chalice_event_source(SERVE_QUEUE_ITEMS_HANDLER, SQSEventConfig)
        visibility = resources.SERVING_REQUESTS_QUEUE.visibility_timeout_seconds
        if SERVE_QUEUE_TIMEOUT.to_seconds() >= visibility:
            raise ValueError(
                f"{SERVE_QUEUE_ITEMS_HANDLER}: timeout must be below the queue's visibility timeout ({visibility} s)"
            )
        function = functions.function(
            self, "ServeQueueItemsFunction",
            handler=SERVE_QUEUE_ITEMS_HANDLER,
            environment=functions.environment("kilele-serving"),
            timeout=SERVE_QUEUE_TIMEOUT,
        )
        # Whole batches: the handler returns normally only once every result is written, and
        # raises (SQS delivers the batch again) otherwise. No ReportBatchItemFailures.
        function.add_event_source(event_sources.SqsEventSource(
            data.serving_queue, batch_size=config.batch_size, report_batch_item_failures=False,
        ))
        data.grant_table_data(function)  # apps, inference-jobs, app-metrics, serving-results
        serving.grant_invoke(function)
        return function
