"""Starts and stops Step Functions executions (moto locally, AWS in the cloud)."""
from __future__ import annotations

import json
from typing import Any, Optional

from botocore.exceptions import ClientError


class WorkflowRunner:
    """Executions of one state machine."""

    def __init__(self, state_machine_arn: str, client: Any):
        self.state_machine_arn = state_machine_arn
        self._sfn = client

    def execution_arn(self, name: str) -> str:
        return f"{self.state_machine_arn.replace(':stateMachine:', ':execution:')}:{name}"

    def start(self, name: str, payload: dict[str, Any]) -> str:
        """Start execution ``name``; starting the same name again (a retried step) is a no-op."""
        try:
            return self._sfn.start_execution(
                stateMachineArn=self.state_machine_arn, name=name, input=json.dumps(payload)
            )["executionArn"]
        except ClientError as e:
            if e.response["Error"]["Code"] == "ExecutionAlreadyExists":
                return self.execution_arn(name)
            raise

    def stop(self, execution_arn: Optional[str], cause: str) -> None:
        """Stop an execution if it still runs (already finished ones are left alone)."""
        if not execution_arn:
            return
        try:
            self._sfn.stop_execution(executionArn=execution_arn, error="Stopped", cause=cause[:256])
        except ClientError as e:
            if e.response["Error"]["Code"] not in ("ExecutionDoesNotExist", "InvalidArn"):
                raise
