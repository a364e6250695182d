"""Stress-test jobs (seed 002; docs/stress-tests-api.md)."""
from __future__ import annotations

from chalice import Blueprint

from chalicelib.api.http import Call, endpoint
from chalicelib.entities import StressTestStatus
from chalicelib.errors import InvalidInput
from chalicelib.schemas_stress import ResultVersionQuery, StartStressTestRequest, StartStressUploadRequest, StressTestListQuery
from chalicelib.schemas_responses_serving import (
    StressLogsOut,
    StressResultTableOut,
    StressTestOut,
    StressUploadOut,
    UrlOut,
)
from chalicelib.wiring import services

bp = Blueprint(__name__)


@endpoint(bp, "/stress-tests/uploads", "POST", "A presigned upload for a stress test's input file",
          body=StartStressUploadRequest, status=201, response=StressUploadOut)
def start_upload(call: Call) -> dict:
    return services().stress_tests.start_upload(call.user, call.body.filename)


@endpoint(bp, "/stress-tests", "POST", "Start a stress test on a test run config", body=StartStressTestRequest,
          status=201, response=StressTestOut)
def start_stress_test(call: Call) -> dict:
    req = call.body
    return services().stress_tests.start_stress_test(
        call.user, req.test_run_config, project_id=req.project_id, rime_managed_image=req.rime_managed_image,
        custom_image=req.custom_image.model_dump() if req.custom_image else None,
        ram_request_megabytes=req.ram_request_megabytes, cpu_request_millicores=req.cpu_request_millicores,
    )


def _statuses() -> list[StressTestStatus]:
    params = bp.current_request.query_params or {}
    if "status" not in params:
        return []
    values = params.getlist("status") if hasattr(params, "getlist") else [params["status"]]
    statuses = []
    for value in values:
        for name in (value or "").split(","):
            if not name.strip():
                continue
            try:
                statuses.append(StressTestStatus(name.strip()))
            except ValueError:
                known = ", ".join(s.value for s in StressTestStatus)
                raise InvalidInput(f"status: {name.strip()!r} is not one of {known}") from None
    return statuses


@endpoint(bp, "/stress-tests", "GET", "Your stress tests of the last two days, newest first",
          query=StressTestListQuery, response=list[StressTestOut])
def list_stress_tests(call: Call) -> list:
    return services().stress_tests.list_stress_tests(call.user, _statuses(), call.query.project_id)


@endpoint(bp, "/stress-tests/{job_id}", "GET", "One stress test", response=StressTestOut)
def get_stress_test(call: Call, job_id: str) -> dict:
    return services().stress_tests.get_stress_test(call.user, job_id)


@endpoint(bp, "/stress-tests/{job_id}/logs", "GET", "A stress test's engine log", response=StressLogsOut)
def get_logs(call: Call, job_id: str) -> dict:
    return services().stress_tests.get_logs(call.user, job_id)


@endpoint(bp, "/stress-tests/{job_id}/test-cases", "GET", "The test cases of a SUCCEEDED stress test",
          query=ResultVersionQuery, response=StressResultTableOut)
def get_test_cases(call: Call, job_id: str) -> dict:
    return services().stress_tests.get_test_cases(call.user, job_id, call.query.version)


@endpoint(bp, "/stress-tests/{job_id}/test-run", "GET", "The test run summary of a SUCCEEDED stress test",
          query=ResultVersionQuery, response=StressResultTableOut)
def get_test_run(call: Call, job_id: str) -> dict:
    return services().stress_tests.get_test_run(call.user, job_id, call.query.version)


@endpoint(bp, "/stress-tests/{job_id}/report", "GET", "A download URL of the HTML report", response=UrlOut)
def get_report(call: Call, job_id: str) -> dict:
    return services().stress_tests.get_report(call.user, job_id, iam_principal=call.iam_principal)
