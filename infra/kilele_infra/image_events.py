"""CodeBuild's build-state events for managed images (issue 11): an EventBridge rule on the image
project's "CodeBuild Build State Change" events (SUCCEEDED, FAILED, FAULT, STOPPED, TIMED_OUT)
invokes ``app.image_build_changed``, which records the build's outcome and log link in the build
ledger and the state of every image the build serves. A build that dies is FAILED when it dies,
not at the image workflow's next poll, nor (if that workflow is gone) never: the workflow's own
bound (max_polls) and the service's build deadline are what remain if an event is lost.
"""
from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from chalice.app import CloudWatchEventConfig
from constructs import Construct

from chalicelib.adapters.images.codebuild import FREEZE_PREFIX

from .chalice_app import IMAGE_BUILD_CHANGED_HANDLER, chalice_event_source
from .data import Data
from .images import ManagedImages
from .runtime import FunctionFactory

EVENT_TIMEOUT = Duration.seconds(60)


class ImageBuildEvents(Construct):
    """The ``app.image_build_changed`` Lambda (tables, the builds' freeze objects, the project's
    builds and logs) and the rule that sends it the image project's finished builds."""

    def __init__(self, scope: Construct, construct_id: str, *, data: Data, images: ManagedImages,
                 functions: FunctionFactory) -> None:
        super().__init__(scope, construct_id)
        config = chalice_event_source(IMAGE_BUILD_CHANGED_HANDLER, CloudWatchEventConfig)
        self.function: lambda_.Function = functions.function(
            self, "ImageBuildChangedFunction",
            handler=IMAGE_BUILD_CHANGED_HANDLER,
            environment={**functions.environment("kilele-images"), **images.environment()},
            timeout=EVENT_TIMEOUT,
        )
        data.grant_table_data(self.function)  # the build ledger and the managed-image records
        data.data_bucket.grant_read(self.function, f"{FREEZE_PREFIX}*")  # READY = the freeze exists
        images.grant_builds(self.function.role, "ImageBuildChanged")
        pattern = config.event_pattern
        self.rule = events.Rule(
            self, "ImageBuildChangedRule",
            description="Kilele: a managed-image CodeBuild build ended -> record it and its images' state",
            event_pattern=events.EventPattern(
                source=pattern["source"],
                detail_type=pattern["detail-type"],
                # app.py's pattern (the final statuses), narrowed to this stage's image project.
                detail={**pattern.get("detail", {}), "project-name": [images.project_name]},
            ),
            targets=[targets.LambdaFunction(self.function, retry_attempts=8, max_event_age=Duration.hours(2))],
        )
