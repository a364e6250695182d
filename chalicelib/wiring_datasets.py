"""Wiring of the dataset check job (issue 13, finding 3): which dispatcher, from the settings."""
from __future__ import annotations

from typing import Callable, Optional

from chalicelib.ports_datasets import DatasetCheckDispatcher
from chalicelib.settings import Settings
from chalicelib.wiring_runtimes import scheme_of


def dataset_check_dispatcher(settings: Settings, run: Callable[[str], object]) -> Optional[DatasetCheckDispatcher]:
    """Where large uploads are checked, following ``trial_dispatch_uri``: local:// runs the check
    job on a thread of the local stack's process. batch:// has no check job twin yet, so (None)
    uploads are still checked in the request there, as before."""
    scheme, _ = scheme_of(settings.trial_dispatch_uri, "KILELE_TRIAL_DISPATCH_URI", ("batch", "local"))
    if scheme != "local":
        return None
    from chalicelib.adapters.dataset_checks.local import LocalDatasetCheckDispatcher

    return LocalDatasetCheckDispatcher(run)
