"""Error names the worker reports with ``SendTaskFailure`` (state machines ``Catch`` on them)."""

TRIAL_ERROR = "TrialError"  # the model raised, failed to import, broke the contract, or the worker could not run it
TRIAL_TIMEOUT = "TrialTimeout"  # the model ran longer than timeout_seconds
TRIAL_STOPPED = "TrialStopped"  # the worker received SIGTERM (Batch TerminateJob, SageMaker StopTrainingJob)
DEPENDENCY_ERROR = "DependencyError"  # a declared dependency is not installed in this image
OUT_OF_MEMORY = "OutOfMemory"  # the model ran out of memory (MemoryError, or killed near the limit)

ALL = (TRIAL_ERROR, TRIAL_TIMEOUT, TRIAL_STOPPED, DEPENDENCY_ERROR, OUT_OF_MEMORY)

# Process exit codes of `kilele-worker run`.
EXIT_REPORTED = 0  # the outcome (success or a failure) was reported with the task token
EXIT_USAGE = 2  # bad arguments or a message without a task token: nothing could be reported
EXIT_NOT_REPORTED = 3  # the outcome could not be reported (SendTask* or AWS failed)
EXIT_TOKEN_GONE = 4  # the execution no longer waits for this token (timed out, stopped, unknown token)
# Another worker claimed this trial (a duplicate delivery): this one neither ran nor reported it.
# 0, so that whoever started this worker does not fail the task token on its behalf.
EXIT_NOT_MINE = 0


class TrialFailure(Exception):
    """A trial outcome other than success: ``error`` is one of :data:`ALL`."""

    def __init__(self, error: str, message: str):
        super().__init__(message)
        self.error = error
        self.message = message


class TokenGone(Exception):
    """The execution no longer waits for this task token (it timed out, was stopped, or was answered)."""
