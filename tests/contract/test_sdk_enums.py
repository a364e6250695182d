"""The SDK mirrors the service's enums and status strings (it cannot import the platform); this
pins each mirror to its original, so a member added, renamed or dropped on either side fails here.

Service side: ``chalicelib/entities.py`` (and the inference budget rule in ``chalicelib/schemas.py``,
which has no enum of its own). SDK side: ``sdk/kilele/constants.py`` and ``kilele._progress``.
"""
from __future__ import annotations

from enum import Enum

import pytest
from pydantic import ValidationError

from chalicelib import entities as service
from chalicelib.schemas import CreateInferenceJobRequest
from kilele import _progress as sdk_progress
from kilele import constants as sdk

PAIRS = [
    (sdk.UserType, service.UserType),
    (sdk.Task, service.Task),
    (sdk.ModelAccessRight, service.AccessRight),
    (sdk.BudgetOption, service.BudgetOption),
    (sdk.DatasetStatus, service.DatasetStatus),
    (sdk.InputType, service.InputType),
    (sdk.StressTestJobStatus, service.StressTestStatus),
]


def values(enum: type[Enum]) -> set[str]:
    return {member.value for member in enum}


@pytest.mark.parametrize("sdk_enum, service_enum", PAIRS, ids=[sdk_enum.__name__ for sdk_enum, _ in PAIRS])
def test_sdk_enum_has_the_services_values(sdk_enum, service_enum):
    assert values(sdk_enum) == values(service_enum), (
        f"kilele.constants.{sdk_enum.__name__} drifted from chalicelib.entities.{service_enum.__name__}: "
        f"only in the SDK {sorted(values(sdk_enum) - values(service_enum))}, "
        f"only in the service {sorted(values(service_enum) - values(sdk_enum))}"
    )
    # Same spelling of the names too: ``Task.TABULAR_CLASSIFICATION`` reads the same on both sides.
    assert {m.name: m.value for m in sdk_enum} == {m.name: m.value for m in service_enum}


def test_inference_budget_options_are_the_ones_the_service_accepts():
    """The service takes an inference budget of BudgetOption keys but allows only some of them."""
    for option in sdk.InferenceBudgetOption:
        CreateInferenceJobRequest(app="iris_app", budget={option.value: 0})
    for option in values(service.BudgetOption) - values(sdk.InferenceBudgetOption):
        with pytest.raises(ValidationError):
            CreateInferenceJobRequest(app="iris_app", budget={option: 0})


def test_final_train_job_statuses_are_the_services():
    final = {status.value for status in service.TrainJobStatus if status.is_final}
    assert set(sdk.FINAL_TRAIN_JOB_STATUSES) == final
    assert len(sdk.FINAL_TRAIN_JOB_STATUSES) == len(final)


def test_trial_statuses_the_sdk_counts_cover_the_services():
    """``trial_progress`` sorts every trial status into done, running or uncounted."""
    sorted_by_sdk = [*sdk_progress.TRIAL_DONE_STATUSES, *sdk_progress.TRIAL_ACTIVE_STATUSES,
                     *sdk_progress.TRIAL_UNCOUNTED_STATUSES]
    assert len(sorted_by_sdk) == len(set(sorted_by_sdk)), "a trial status is in two of the SDK's groups"
    assert set(sorted_by_sdk) == values(service.TrialStatus)
