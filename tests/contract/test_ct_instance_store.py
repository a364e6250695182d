"""The CT instance store's behaviours, run against the DynamoDB repository under moto
("dynamodb") and the unit tests' in-memory fake ("memory"), so the fake stays honest: round
trips of every field (monitors, breaches, the source config with its floats), listing a project's
instances oldest first, updates that set and clear fields, and ``claim_run`` only when no job
runs (or the one given as ended does)."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import pytest

from chalicelib.entities.continuous import Breach, CTInstance, Monitor
from chalicelib.errors import Conflict, NotFound
from settings_support import make_settings

from unit.services.fakes_continuous import FakeCTInstanceStore

T0 = datetime(2026, 12, 1, 9, 0, 0, 123456, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def moto_tables() -> Iterator[Any]:
    from moto import mock_aws

    from chalicelib.local.provision import provision
    from chalicelib.store import models

    settings = make_settings()
    with mock_aws():
        provision(settings)
        models.bind(settings.resource_name, settings.region)
        yield settings


@pytest.fixture(params=["dynamodb", "memory"])
def store(request) -> Any:
    if request.param == "memory":
        return FakeCTInstanceStore()
    request.getfixturevalue("moto_tables")
    from chalicelib.store.continuous import CTInstanceRepository

    return CTInstanceRepository()


def an_instance(project_id: str, created_at: datetime = T0, **changes: Any) -> CTInstance:
    values = dict(id=uuid.uuid4().hex, owner_id="u-1", project_id=project_id, name="ct", bin_size_seconds=86400,
                  ot_test_run_id="run-1", created_at=created_at,
                  source={"data_info": {"label_col": "y", "ref_path": "s3://b/k.csv"}, "random_seed": 7,
                          "tests_config": {"numeric_drift": {"thresholds": [0.1, 0.25, 0.6]}}})
    values.update(changes)
    return CTInstance(**values)


def test_an_instance_round_trips_with_every_field(store):
    breach = Breach(monitor_id="drift", metric="category_worst:Drift", value=3.0, operator=">=", bound=2.0,
                    severity="HIGH", time_bin_start="2024-01-02T00:00:00+00:00",
                    time_bin_end="2024-01-03T00:00:00+00:00", job_id="j-1", report="/stress-tests/j-1/report",
                    created_at=T0)
    instance = an_instance(uuid.uuid4().hex, active=True, timestamp_col="ts", history_key="stress/j/h.parquet",
                           bins_key="ct/x/bins.json", last_job_id="j-1", error="why",
                           monitors=[Monitor(id="m", metric="model_performance:auc", operator="<", bound=0.75,
                                             aggregation="mean", window_bins=3, severity="LOW", enabled=False)],
                           breaches=[breach])
    store.add(instance)
    assert store.get(instance.id) == instance
    with pytest.raises(Conflict):
        store.add(instance)
    assert store.get("nope") is None


def test_a_projects_instances_oldest_first_and_no_others(store):
    project = uuid.uuid4().hex
    later = an_instance(project, T0 + timedelta(seconds=5), name="later")
    first = an_instance(project, T0, name="first")
    store.add(later)
    store.add(first)
    store.add(an_instance(uuid.uuid4().hex, name="elsewhere"))
    assert [i.name for i in store.list_of_project(project)] == ["first", "later"]
    assert store.list_of_project(uuid.uuid4().hex) == []


def test_update_sets_and_clears_fields(store):
    instance = an_instance(uuid.uuid4().hex, running_job_id="j-1")
    store.add(instance)
    monitors = [Monitor(id="x", metric="severity", operator=">=", bound=3)]
    store.update(instance.id, active=True, running_job_id=None, monitors=monitors, error="failed")
    stored = store.get(instance.id)
    assert stored.active and stored.running_job_id is None and stored.monitors == monitors and stored.error == "failed"
    store.update(instance.id, error=None)
    assert store.get(instance.id).error is None
    with pytest.raises(NotFound):
        store.update("nope", active=True)


def test_claim_run_only_when_idle_or_from_an_ended_job(store):
    instance = an_instance(uuid.uuid4().hex)
    store.add(instance)
    assert store.claim_run(instance.id, "j-1")
    assert not store.claim_run(instance.id, "j-2")  # j-1 runs
    assert not store.claim_run(instance.id, "j-2", unless_running="j-0")  # not the one running
    assert store.claim_run(instance.id, "j-2", unless_running="j-1")  # j-1 ended
    assert store.get(instance.id).running_job_id == "j-2"
    assert not store.claim_run("nope", "j-3")
