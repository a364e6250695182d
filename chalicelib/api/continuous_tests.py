"""Continuous tests (seed 002's CT instances; docs/continuous-tests.md)."""
from __future__ import annotations

from chalice import Blueprint

from chalicelib.api.http import Call, endpoint
from chalicelib.schemas_continuous import (BinOut, BreachOut, CreateCTInstanceRequest, CTInstanceOut, CTJobOut,
                                           MonitorChange, MonitorOut, NewMonitor, StartFromReferenceRequest,
                                           StartIncrementalRequest)
from chalicelib.wiring import services

bp = Blueprint(__name__)


@endpoint(bp, "/ct-instances", "POST", "Create an inactive CT instance on a SUCCEEDED stress test's run",
          body=CreateCTInstanceRequest, status=201, response=CTInstanceOut)
def create_ct_instance(call: Call) -> dict:
    b = call.body
    return services().continuous_tests.create_ct_instance(call.user, b.name, b.bin_size_seconds, b.ot_test_run_id,
                                                          b.project_id)


@endpoint(bp, "/ct-instances/{ct_instance_id}", "GET", "One CT instance", response=CTInstanceOut)
def get_ct_instance(call: Call, ct_instance_id: str) -> dict:
    return services().continuous_tests.get_ct_instance(call.user, ct_instance_id)


@endpoint(bp, "/projects/{project_id}/ct-instances", "GET", "A project's CT instances, oldest first",
          response=list[CTInstanceOut])
def list_ct_instances(call: Call, project_id: str) -> list:
    return services().continuous_tests.list_ct_instances(call.user, project_id)


@endpoint(bp, "/projects/{project_id}/active-ct-instance", "GET", "A project's active CT instance (404: none)",
          response=CTInstanceOut)
def get_active_ct_instance(call: Call, project_id: str) -> dict:
    return services().continuous_tests.get_active_ct_instance(call.user, project_id)


@endpoint(bp, "/ct-instances/{ct_instance_id}/activate", "POST",
          "Make the CT instance its project's active one (the others are deactivated)", response=CTInstanceOut)
def activate_ct_instance(call: Call, ct_instance_id: str) -> dict:
    return services().continuous_tests.activate_ct_instance(call.user, ct_instance_id)


@endpoint(bp, "/ct-instances/{ct_instance_id}/deactivate", "POST", "Make the CT instance inactive",
          response=CTInstanceOut)
def deactivate_ct_instance(call: Call, ct_instance_id: str) -> dict:
    return services().continuous_tests.deactivate_ct_instance(call.user, ct_instance_id)


@endpoint(bp, "/continuous-tests", "POST",
          "Stress-test a reference, make and activate a CT instance, test every bin of the evaluation data",
          body=StartFromReferenceRequest, status=201, response=CTJobOut)
def start_from_reference(call: Call) -> dict:
    b = call.body
    return services().continuous_tests.start_continuous_test_from_reference(
        call.user, b.test_run_config, project_id=b.project_id, **b.job_options())


@endpoint(bp, "/ct-instances/{ct_instance_id}/continuous-tests", "POST",
          "Test the bins of new data against the CT instance's reference (a bin seen before: the union of its rows)",
          body=StartIncrementalRequest, status=201, response=CTJobOut)
def start_incremental(call: Call, ct_instance_id: str) -> dict:
    b = call.body
    return services().continuous_tests.start_incremental_continuous_test(call.user, ct_instance_id, b.test_run_config,
                                                                         **b.job_options())


@endpoint(bp, "/ct-instances/{ct_instance_id}/bins", "GET", "Every bin's latest summary, oldest first",
          response=list[BinOut])
def list_bins(call: Call, ct_instance_id: str) -> list:
    return services().continuous_tests.list_bins(call.user, ct_instance_id)


@endpoint(bp, "/ct-instances/{ct_instance_id}/breaches", "GET", "The CT instance's monitor breaches, newest first",
          response=list[BreachOut])
def list_breaches(call: Call, ct_instance_id: str) -> list:
    return services().continuous_tests.list_breaches(call.user, ct_instance_id)


@endpoint(bp, "/ct-instances/{ct_instance_id}/monitors", "GET", "The CT instance's monitors",
          response=list[MonitorOut])
def list_monitors(call: Call, ct_instance_id: str) -> list:
    return services().continuous_tests.list_monitors(call.user, ct_instance_id)


@endpoint(bp, "/ct-instances/{ct_instance_id}/monitors", "POST", "Add a monitor", body=NewMonitor, status=201,
          response=MonitorOut)
def create_monitor(call: Call, ct_instance_id: str) -> dict:
    return services().continuous_tests.create_monitor(call.user, ct_instance_id,
                                                      call.body.model_dump(exclude_none=True))


@endpoint(bp, "/ct-instances/{ct_instance_id}/monitors/{monitor_id}", "PATCH", "Change a monitor's fields",
          body=MonitorChange, response=MonitorOut)
def update_monitor(call: Call, ct_instance_id: str, monitor_id: str) -> dict:
    return services().continuous_tests.update_monitor(call.user, ct_instance_id, monitor_id,
                                                      call.body.model_dump(exclude_none=True))
