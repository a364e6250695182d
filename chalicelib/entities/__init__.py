"""Plain domain entities: what services work with and what the API returns.

The store converts its pynamodb items to these at its boundary, so nothing above the store
knows about DynamoDB. One module per area; everything is importable from here.
"""
from chalicelib.entities.accounts import (
    AccessRight,
    ApiKey,
    Dataset,
    DatasetStatus,
    Model,
    Session,
    Task,
    User,
    UserType,
    iso_or_none,
)
from chalicelib.entities.audit import AuditEvent, AuditEventType
from chalicelib.entities.serving import (
    ERROR,
    OK,
    Application,
    InferenceJob,
    InferenceJobStatus,
    InputType,
    ServingResult,
    queue_key,
)
from chalicelib.entities.stress import (
    DEFAULT_PROJECT_NAME,
    MODEL_STRESS_TEST,
    Project,
    StressTestJob,
    StressTestStatus,
)
from chalicelib.entities.training import (
    BudgetOption,
    StopReason,
    TrainJob,
    TrainJobStatus,
    Trial,
    TrialStatus,
    Worker,
    WorkerStatus,
)

__all__ = [
    "AuditEvent", "AuditEventType", "DEFAULT_PROJECT_NAME", "MODEL_STRESS_TEST", "Project", "StressTestJob", "StressTestStatus",
    "AccessRight", "ApiKey", "Application", "BudgetOption", "Dataset", "DatasetStatus", "ERROR", "InferenceJob",
    "InferenceJobStatus", "InputType", "Model", "OK", "ServingResult", "Session", "StopReason", "Task", "TrainJob",
    "TrainJobStatus", "Trial", "TrialStatus", "User", "UserType", "Worker", "WorkerStatus", "iso_or_none", "queue_key",
]
