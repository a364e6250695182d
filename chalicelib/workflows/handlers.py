"""The Python behind each Lambda task state. On AWS each is a Lambda function (registered in
app.py); locally the Lambda shim calls the same functions."""
from __future__ import annotations

from typing import Any, Callable

Handler = Callable[[dict[str, Any]], dict[str, Any]]


def _trial_loop() -> Any:
    from chalicelib.wiring import services

    return services().trial_loop


def _stress_tests() -> Any:
    from chalicelib.wiring import services

    return services().stress_tests


def _continuous_tests() -> Any:
    from chalicelib.wiring import services

    return services().continuous_tests


def _managed_images() -> Any:
    from chalicelib.wiring import services

    return services().managed_images


HANDLERS: dict[str, Handler] = {
    "propose_trial": lambda event: _trial_loop().propose(event),
    "record_knob_config": lambda event: _trial_loop().record_knob_config(event),
    "record_trial": lambda event: _trial_loop().record_trial(event),
    "record_trial_failure": lambda event: _trial_loop().record_trial_failure(event),
    "continue_worker": lambda event: _trial_loop().continue_worker(event),
    "finish_worker": lambda event: _trial_loop().finish_worker(event),
    "fail_worker": lambda event: _trial_loop().fail_worker(event),
    "start_stress_test": lambda event: _stress_tests().start(event),
    # A continuous test's bins, monitors and CT instance are recorded first, then the job as any stress test's.
    "record_stress_test": lambda event: _continuous_tests().record(event),
    "record_stress_test_failure": lambda event: _continuous_tests().record_failure(event),
    "poll_image_build": lambda event: _managed_images().follow_build(event),
    "record_image_build_failure": lambda event: _managed_images().record_follow_failure(event),
}

# ASL placeholder -> handler name; infra creates one Lambda per handler and passes its ARN.
FUNCTION_PLACEHOLDERS: dict[str, str] = {
    "ProposeTrialFunctionArn": "propose_trial",
    "RecordKnobConfigFunctionArn": "record_knob_config",
    "RecordTrialFunctionArn": "record_trial",
    "RecordTrialFailureFunctionArn": "record_trial_failure",
    "ContinueWorkerFunctionArn": "continue_worker",
    "FinishWorkerFunctionArn": "finish_worker",
    "FailWorkerFunctionArn": "fail_worker",
    "StartStressTestFunctionArn": "start_stress_test",
    "RecordStressTestFunctionArn": "record_stress_test",
    "RecordStressTestFailureFunctionArn": "record_stress_test_failure",
    "PollImageBuildFunctionArn": "poll_image_build",
    "RecordImageBuildFailureFunctionArn": "record_image_build_failure",
}


def invoke(function: str, event: dict[str, Any]) -> dict[str, Any]:
    """Run handler ``function`` on ``event`` (what Lambda, or the local shim, does)."""
    return HANDLERS[function](event)
