"""Values the API accepts, as ``str`` enums (plain strings work everywhere too), and the
status strings it answers that the SDK acts on.

They mirror the service's enums (``chalicelib/entities.py``); ``tests/contract/test_sdk_enums.py``
keeps the two sides equal."""
from __future__ import annotations

from enum import Enum


class UserType(str, Enum):
    SUPERADMIN = "SUPERADMIN"
    ADMIN = "ADMIN"
    MODEL_DEVELOPER = "MODEL_DEVELOPER"
    APP_DEVELOPER = "APP_DEVELOPER"


class Task(str, Enum):
    TABULAR_CLASSIFICATION = "TABULAR_CLASSIFICATION"
    TABULAR_REGRESSION = "TABULAR_REGRESSION"
    IMAGE_CLASSIFICATION = "IMAGE_CLASSIFICATION"


class ModelAccessRight(str, Enum):
    PRIVATE = "PRIVATE"
    PUBLIC = "PUBLIC"


class BudgetOption(str, Enum):
    """Train job budget keys (seed 001's ``create_train_job``)."""

    TIME_HOURS = "TIME_HOURS"
    GPU_COUNT = "GPU_COUNT"
    MODEL_TRIAL_COUNT = "MODEL_TRIAL_COUNT"


class InferenceBudgetOption(str, Enum):
    """Inference job budget keys (seed 001's ``create_inference_job``)."""

    GPU_COUNT = "GPU_COUNT"


class DatasetStatus(str, Enum):
    UPLOADING = "UPLOADING"
    PENDING = "PENDING"  # large files: checked by a job after the upload (wait_for_dataset)
    READY = "READY"
    INVALID = "INVALID"  # the check refused the file; the dataset's ``error`` says why


class InputType(str, Enum):
    """Clipper's application input types (seed 004's ``register_application``)."""

    INTS = "ints"
    FLOATS = "floats"
    DOUBLES = "doubles"
    STRINGS = "strings"
    BYTES = "bytes"


class StressTestJobStatus(str, Enum):
    """Stress-test job statuses, as seed 002 (RIME) names them."""

    UNKNOWN_JOB_STATUS = "UNKNOWN_JOB_STATUS"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    FAILING = "FAILING"
    SUCCEEDED = "SUCCEEDED"


#: Stress-test job statuses after which nothing changes any more (``get_status`` stops waiting).
FINAL_STRESS_TEST_STATUSES = ("SUCCEEDED", "FAILING")

#: Train job statuses after which nothing changes any more.
FINAL_TRAIN_JOB_STATUSES = ("STOPPED", "ERRORED")
