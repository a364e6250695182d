"""Ports of the dataset check job (issue 13, finding 3): a large upload is checked outside the API."""
from __future__ import annotations

from typing import Protocol


class DatasetCheckDispatcher(Protocol):
    """Starts the format check of one PENDING dataset somewhere other than the API request.

    The job it starts calls :meth:`chalicelib.services.dataset_checks.DatasetCheckJob.run`,
    which records READY or INVALID. Raises :class:`chalicelib.errors.Unavailable` when the job
    cannot be started; the caller then records the dataset INVALID with that reason.
    """

    def dispatch(self, dataset_id: str) -> None: ...
