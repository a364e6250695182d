"""The Kilele client: Rafiki's ``Client`` (seed 001) over Kilele's HTTPS API.

::

    from kilele import Client
    client = Client()                       # http://127.0.0.1:8000, the local stack
    client.login(email="superadmin@kilele", password="kilele")
    client.create_dataset("iris", "TABULAR_CLASSIFICATION", dataset_path="iris.csv",
                          target_column="species")

Every call returns the API's JSON as plain dicts and lists, and raises a
:class:`~kilele.errors.KileleError` subclass when the API answers an error.

The methods live in one mixin per resource (:mod:`kilele.resources`), on top of the HTTP
plumbing (:mod:`kilele._http`) and the file transfers (:mod:`kilele._transfer`).
"""
from __future__ import annotations

from kilele._progress import trial_progress
from kilele.constants import FINAL_TRAIN_JOB_STATUSES
from kilele.resources import (
    ApplicationsMixin,
    AuthMixin,
    BundlesMixin,
    CaptureMixin,
    ContinuousTestsMixin,
    DatasetsMixin,
    EventsMixin,
    InferenceJobsMixin,
    ManagedImagesMixin,
    ModelsMixin,
    PlatformImagesMixin,
    PredictionsMixin,
    ProjectsMixin,
    StressTestsMixin,
    TrainJobsMixin,
    TrialsMixin,
    UsersMixin,
)
from kilele.resources.app_loop import AppLoopMixin


class Client(
    AuthMixin,
    UsersMixin,
    DatasetsMixin,
    ModelsMixin,
    TrainJobsMixin,
    TrialsMixin,
    ApplicationsMixin,  # before InferenceJobsMixin, which it builds on
    InferenceJobsMixin,
    PredictionsMixin,
    CaptureMixin,
    AppLoopMixin,
    BundlesMixin,
    ProjectsMixin,
    ContinuousTestsMixin,  # before StressTestsMixin, which it builds on
    StressTestsMixin,
    ManagedImagesMixin,
    EventsMixin,
    PlatformImagesMixin,
):
    """A connection to a Kilele API.

    :param admin_host: host of the API (Rafiki's name for it); ignored when ``base_url`` is given
    :param admin_port: port of the API
    :param base_url: full API root, e.g. ``https://abc123.execute-api.eu-west-1.amazonaws.com/api``
    :param api_key: an API key, sent as ``x-api-key`` (a login session token takes precedence)
    :param token: a session token from an earlier :meth:`login`
    :param timeout: seconds to wait for each answer
    """

    def __enter__(self) -> "Client":
        return self


__all__ = ["Client", "FINAL_TRAIN_JOB_STATUSES", "trial_progress"]
