"""Stress tests through the SDK (seed 002) against the fake API: the request shapes of
docs/stress-tests-api.md, local files uploaded for the user, get_status and its waiting, the
results as DataFrames, the report, and the typed errors.

:class:`StressApi` is the stress-test half of the API in canned answers; the CLI and the
``kilele.rime`` tests use it too.
"""
from __future__ import annotations

import copy
import json
import sys
from email import message_from_bytes
from email.policy import HTTP

import pandas as pd
import pytest

from kilele import Client, CustomImage, Project, StressTestFailedError, StressTestJob
from kilele.constants import StressTestJobStatus
from kilele.errors import BadRequestError, ConflictError, NotFoundError, UploadFailedError

PROJECT = {"project_id": "p-1", "name": "foo", "description": "bar", "owner_id": "u-1",
           "created_at": "2026-11-23T10:00:00+00:00"}
CASE_COLUMNS = ["test_run_id", "features", "test_batch_type", "test_category", "status", "severity",
                "importance_score", "metric:psi", "threshold:low", "threshold:medium", "threshold:high"]
CASES = [
    {"test_run_id": "tr-1", "features": ["Age"], "test_batch_type": "Numeric Feature Drift",
     "test_category": "Drift", "status": "FAIL", "severity": "HIGH", "importance_score": 0.9,
     "metric:psi": 0.8, "threshold:low": 0.1, "threshold:medium": 0.2, "threshold:high": 0.6},
    {"test_run_id": "tr-1", "features": ["Fare"], "test_batch_type": "Null Check",
     "test_category": "Abnormal Inputs", "status": "PASS", "severity": "NONE", "importance_score": 0.2,
     "metric:psi": None, "threshold:low": 0.01, "threshold:medium": 0.05, "threshold:high": 0.1},
]
RUN_COLUMNS = ["test_run_id", "name", "project_id", "model_task", "testing_type", "summary_counts.total",
               "summary_counts.fail", "severity_counts.high"]
RUN = [{"test_run_id": "tr-1", "name": "Titanic", "project_id": "p-1", "model_task": "Binary Classification",
        "testing_type": "STRESS_TESTING", "summary_counts.total": 2, "summary_counts.fail": 1,
        "severity_counts.high": 1}]
REPORT = b"<!doctype html><title>stress test</title><p>1 failing test</p>"
S3_FIELDS = {"key": "stress-inputs/u-1/abc/file", "policy": "eyJ4Ijoi", "signature": "c2ln"}


def job_body(status: str = "PENDING", **overrides) -> dict:
    job = {"job_id": "j-1", "name": "Titanic", "type": "MODEL_STRESS_TEST", "status": status,
           "project_id": "p-1", "test_run_id": "tr-1", "start_time_secs": 1795000000,
           "running_time_secs": 0.0, "created_at": "2026-11-23T10:00:00+00:00", "error": None,
           "progress": None, "ram_request_megabytes": 4000, "cpu_request_millicores": 1500,
           "rime_managed_image": None, "custom_image": None}
    job.update(overrides)
    return job


class StressApi:
    """The stress-test routes of the contract, canned. ``statuses`` are what successive
    ``GET /stress-tests/j-1`` answer (the last one repeats); ``failure`` the FAILING job's error."""

    def __init__(self, server, statuses=("SUCCEEDED",), failure: str | None = None):
        self.server = server
        self.statuses = list(statuses)
        self.failure = failure
        self.polls = 0
        self.uploaded: dict[str, bytes] = {}  # uri -> file content
        server.handler("POST", "/projects", lambda r: server.Canned(201, {**PROJECT, **r.json()}))
        server.route("GET", "/projects", 200, [PROJECT])
        server.route("GET", "/projects/p-1", 200, PROJECT)
        server.handler("POST", "/stress-tests/uploads", self._uploads)
        server.handler("POST", "/fake-s3/bucket", self._s3_post)
        server.handler("POST", "/stress-tests",
                       lambda r: server.Canned(201, job_body(name=r.json()["test_run_config"].get("run_name"))))
        server.handler("GET", "/stress-tests", lambda r: server.Canned(200, [job_body("RUNNING"),
                                                                            job_body("SUCCEEDED", job_id="j-0")]))
        server.handler("GET", "/stress-tests/j-1", self._job)
        server.route("GET", "/stress-tests/j-1/logs", 200, {"job_id": "j-1", "logs": "loaded 891 rows\n42 tests ran\n"})
        server.handler("GET", "/stress-tests/j-1/test-cases", lambda r: self._results(r, CASE_COLUMNS, CASES))
        server.handler("GET", "/stress-tests/j-1/test-run", lambda r: self._results(r, RUN_COLUMNS, RUN))
        server.handler("GET", "/stress-tests/j-1/report",
                       lambda r: self._finished() or server.Canned(200, {"url": f"{server.url}/fake-s3/report.html"}))
        server.route("GET", "/fake-s3/report.html", 200, REPORT, {"Content-Type": "text/html"})

    def current(self) -> dict:
        status = self.statuses[min(self.polls, len(self.statuses) - 1)]
        running = {"PENDING": 0.0}.get(status, 1.5 * (self.polls + 1))
        return job_body(status, running_time_secs=running,
                        progress=f"{10 * (self.polls + 1)} of 42 tests" if status == "RUNNING" else None,
                        error=self.failure if status == "FAILING" else None)

    def _job(self, recorded):
        job = self.current()
        self.polls += 1
        return self.server.Canned(200, job)

    def _finished(self):
        if self.current()["status"] != "SUCCEEDED":
            return self.server.Canned(409, {"error": {"code": "conflict", "message": "stress test j-1 is not SUCCEEDED"}})
        return None

    def _results(self, recorded, columns, records):
        version = recorded.query.get("version", ["1.0"])[0]
        if version != "1.0":
            return self.server.Canned(400, {"error": {"code": "invalid_input", "message": f"version: unknown {version!r}"}})
        return self._finished() or self.server.Canned(200, {"test_run_id": "tr-1", "version": "1.0",
                                                            "columns": columns, "records": records})

    def _uploads(self, recorded):
        filename = recorded.json()["filename"]
        uri = f"s3://kilele-data/stress-inputs/u-1/{len(self.uploaded) + 1}/{filename}"
        self.uploaded[uri] = b""
        return self.server.Canned(201, {"uri": uri, "upload": {"url": f"{self.server.url}/fake-s3/bucket",
                                                               "fields": {**S3_FIELDS, "key": uri}}})

    def _s3_post(self, recorded):
        raw = f"Content-Type: {recorded.headers['content-type']}\r\n\r\n".encode() + recorded.body
        parts = {p.get_param("name", header="content-disposition"): p.get_payload(decode=True)
                 for p in message_from_bytes(raw, policy=HTTP).iter_parts()}
        self.uploaded[parts["key"].decode()] = parts["file"]
        return self.server.Canned(204, b"")


S3_CONFIG = {
    "run_name": "Titanic",
    "data_info": {"label_col": "Survived", "ref_path": "s3://rime-datasets/titanic/titanic_example.csv",
                  "eval_path": "kilele://datasets/d-1"},
    "model_info": {"path": "s3://rime-models/titanic_s3_test/titanic_example_model.py"},
}


@pytest.fixture
def api(server):
    return StressApi(server)


@pytest.fixture
def client(server):
    return Client(base_url=server.url, token="t")


@pytest.fixture
def local_config(tmp_path):
    (tmp_path / "ref.csv").write_bytes(b"Age,Survived\n22,0\n38,1\n")
    (tmp_path / "eval.csv").write_bytes(b"Age,Survived\n26,1\n35,0\n")
    (tmp_path / "model.py").write_text("def predict_df(df):\n    return df['Age'].values / 100\n")
    return {"run_name": "Titanic",
            "data_info": {"label_col": "Survived", "ref_path": str(tmp_path / "ref.csv"),
                          "eval_path": tmp_path / "eval.csv"},
            "model_info": {"path": str(tmp_path / "model.py")}}


# ---- projects -----------------------------------------------------------------------------

def test_create_project_posts_name_and_description_and_answers_a_project(server, api, client):
    project = client.create_project(name="foo", description="bar")
    assert server.last("POST", "/projects").json() == {"name": "foo", "description": "bar"}
    assert isinstance(project, Project)
    assert (project.project_id, project.name, project.description) == ("p-1", "foo", "bar")

    client.create_project("only-a-name")
    assert server.last("POST", "/projects").json() == {"name": "only-a-name"}


def test_get_and_list_projects(server, api, client):
    assert client.get_project("p-1") == Project.from_dict(PROJECT)
    assert client.list_projects() == [Project.from_dict(PROJECT)]
    assert server.paths() == [("GET", "/projects/p-1"), ("GET", "/projects")]


def test_unknown_project_is_not_found(server, client):
    server.route("GET", "/projects/nope", 404, {"error": {"code": "not_found", "message": "no project 'nope'"}})
    with pytest.raises(NotFoundError, match="no project 'nope'"):
        client.get_project("nope")


# ---- starting -----------------------------------------------------------------------------

def test_start_with_uris_sends_the_config_as_given(server, api, client):
    job = client.start_stress_test(S3_CONFIG)
    assert server.paths() == [("POST", "/stress-tests")]
    assert server.last().json() == {"test_run_config": S3_CONFIG}
    assert isinstance(job, StressTestJob) and job.job_id == "j-1"
    assert job.info["type"] == "MODEL_STRESS_TEST"


def test_start_sends_every_option_in_the_contracts_names(server, api, client):
    client.start_stress_test_job(test_run_config=S3_CONFIG, project_id="p-1", rime_managed_image="tensorflow115",
                                 custom_image=CustomImage("registry.example/me/img:1", pull_secret="regcred"),
                                 ram_request_megabytes=8000, cpu_request_millicores=2000)
    assert server.last().json() == {
        "test_run_config": S3_CONFIG, "project_id": "p-1", "rime_managed_image": "tensorflow115",
        "custom_image": {"name": "registry.example/me/img:1", "pull_secret": {"name": "regcred"}},
        "ram_request_megabytes": 8000, "cpu_request_millicores": 2000}

    client.start_stress_test(S3_CONFIG, project_id=Project.from_dict(PROJECT), custom_image=CustomImage("img"))
    assert server.last().json() == {"test_run_config": S3_CONFIG, "project_id": "p-1", "custom_image": {"name": "img"}}


@pytest.mark.parametrize("custom_image", ["img:1", {"name": "img:1"}])
def test_custom_image_must_be_a_custom_image(server, client, custom_image):
    with pytest.raises(TypeError, match="CustomImage"):
        client.start_stress_test(S3_CONFIG, custom_image=custom_image)
    assert server.requests == []


def test_config_must_be_a_dict(server, client):
    with pytest.raises(TypeError, match="test_run_config must be a dict"):
        client.start_stress_test(json.dumps(S3_CONFIG))
    assert server.requests == []


def test_local_files_are_uploaded_and_replaced_by_their_uris(server, api, client, local_config):
    given = copy.deepcopy(local_config)

    client.start_stress_test(local_config, project_id="p-1")

    assert local_config == given  # the user's dict comes back as given
    uploads = [r.json() for r in server.requests if r.path == "/stress-tests/uploads"]
    assert uploads == [{"filename": "ref.csv"}, {"filename": "eval.csv"}, {"filename": "model.py"}]
    sent = server.last("POST", "/stress-tests").json()
    config = sent["test_run_config"]
    assert config["data_info"] == {"label_col": "Survived", "ref_path": "s3://kilele-data/stress-inputs/u-1/1/ref.csv",
                                   "eval_path": "s3://kilele-data/stress-inputs/u-1/2/eval.csv"}
    assert config["model_info"] == {"path": "s3://kilele-data/stress-inputs/u-1/3/model.py"}
    assert api.uploaded[config["data_info"]["ref_path"]] == b"Age,Survived\n22,0\n38,1\n"
    assert api.uploaded[config["model_info"]["path"]].startswith(b"def predict_df")
    assert all("authorization" not in r.headers for r in server.requests if r.path.startswith("/fake-s3"))


def test_the_same_local_file_twice_is_uploaded_once(server, api, client, local_config):
    local_config["data_info"]["eval_path"] = local_config["data_info"]["ref_path"]
    local_config["model_info"] = {"trial_id": "t-1"}
    client.start_stress_test(local_config)
    assert [r.json()["filename"] for r in server.requests if r.path == "/stress-tests/uploads"] == ["ref.csv"]
    data_info = server.last("POST", "/stress-tests").json()["test_run_config"]["data_info"]
    assert data_info["ref_path"] == data_info["eval_path"]


def test_a_missing_local_file_fails_before_any_request(server, api, client, local_config, tmp_path):
    local_config["model_info"]["path"] = str(tmp_path / "nope.py")
    with pytest.raises(FileNotFoundError, match=r"model_info\.path: .*nope\.py.* does not exist"):
        client.start_stress_test(local_config)
    assert server.requests == []


def test_a_refused_upload_says_nothing_was_started(server, api, client, local_config):
    server.route("POST", "/fake-s3/bucket", 403, "<Error><Code>AccessDenied</Code><Message>expired</Message></Error>")
    with pytest.raises(UploadFailedError, match="AccessDenied.*nothing was started"):
        client.start_stress_test(local_config)
    assert ("POST", "/stress-tests") not in server.paths()


def test_a_bad_config_is_the_apis_400(server, client):
    server.route("POST", "/stress-tests", 400, {"error": {"code": "invalid_input",
                                                          "message": "data_info.label_col: field required"}})
    with pytest.raises(BadRequestError, match=r"data_info\.label_col"):
        client.start_stress_test({"run_name": "x", "data_info": {}, "model_info": {}})


# ---- listing ------------------------------------------------------------------------------

def test_list_sends_repeated_status_and_project(server, api, client):
    jobs = client.list_stress_test_jobs(status_filters=["RUNNING", StressTestJobStatus.SUCCEEDED], project_id="foo")
    assert server.last().query == {"status": ["RUNNING", "SUCCEEDED"], "project_id": ["foo"]}
    assert [(j.job_id, j.info["status"]) for j in jobs] == [("j-1", "RUNNING"), ("j-0", "SUCCEEDED")]

    client.list_stress_test_jobs()
    assert server.last().query == {}
    client.list_stress_test_jobs("FAILING")  # one status, not its letters
    assert server.last().query == {"status": ["FAILING"]}


# ---- status -------------------------------------------------------------------------------

def test_get_status_answers_exactly_seed_002s_keys(server, api, client):
    status = StressTestJob(client, "j-1").get_status()
    assert list(status) == ["name", "type", "status", "start_time_secs", "running_time_secs"]
    assert status == {"name": "Titanic", "type": "MODEL_STRESS_TEST", "status": "SUCCEEDED",
                      "start_time_secs": 1795000000, "running_time_secs": 1.5}
    assert server.paths() == [("GET", "/stress-tests/j-1")]


def test_without_waiting_one_poll_and_no_output(server, client, capsys):
    api = StressApi(server, statuses=["RUNNING", "SUCCEEDED"])
    assert StressTestJob(client, "j-1").get_status()["status"] == "RUNNING"
    assert api.polls == 1
    assert capsys.readouterr().out == ""


def test_waiting_polls_until_succeeded(server, client, capsys):
    api = StressApi(server, statuses=["PENDING", "RUNNING", "RUNNING", "SUCCEEDED"])
    status = StressTestJob(client, "j-1").get_status(wait_until_finish=True, poll_rate_sec=0.01)
    assert status["status"] == "SUCCEEDED" and api.polls == 4
    assert capsys.readouterr().out == ""  # quiet unless verbose
    assert ("GET", "/stress-tests/j-1/logs") not in server.paths()


def test_verbose_waiting_prints_progress_then_the_logs(server, client, capsys):
    StressApi(server, statuses=["PENDING", "RUNNING", "SUCCEEDED"])
    StressTestJob(client, "j-1").get_status(verbose=True, wait_until_finish=True, poll_rate_sec=0.01)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Job j-1 (Titanic): status PENDING, running time 0.00 secs"
    assert out[1] == "Job j-1 (Titanic): status RUNNING, running time 3.00 secs, progress: 20 of 42 tests"
    assert out[2].startswith("Job j-1 (Titanic): status SUCCEEDED")
    assert out[3:] == ["---- engine logs of stress test j-1 ----", "loaded 891 rows", "42 tests ran",
                       "---- end of logs ----"]


def test_waiting_stops_on_failing_and_verbose_shows_the_reason(server, client, capsys):
    api = StressApi(server, statuses=["RUNNING", "FAILING"], failure="model.py: predict_df is not defined")
    status = StressTestJob(client, "j-1").get_status(verbose=True, wait_until_finish=True, poll_rate_sec=0)
    assert status["status"] == "FAILING" and api.polls == 2
    out = capsys.readouterr().out
    assert "Error: model.py: predict_df is not defined" in out and "42 tests ran" in out


def test_verbose_without_waiting_on_a_running_job_prints_no_logs(server, client, capsys):
    StressApi(server, statuses=["RUNNING"])
    StressTestJob(client, "j-1").get_status(verbose=True)
    assert capsys.readouterr().out == "Job j-1 (Titanic): status RUNNING, running time 1.50 secs, progress: 10 of 42 tests\n"
    assert ("GET", "/stress-tests/j-1/logs") not in server.paths()


def test_negative_poll_rate_is_refused(server, client):
    with pytest.raises(ValueError, match="poll_rate_sec"):
        StressTestJob(client, "j-1").get_status(poll_rate_sec=-1)


def test_test_run_id_and_logs(server, api, client):
    job = StressTestJob(client, "j-1")
    assert job.get_test_run_id() == "tr-1"
    assert job.get_test_run_id() == "tr-1"
    assert server.paths() == [("GET", "/stress-tests/j-1")]  # fetched once
    assert job.get_logs() == "loaded 891 rows\n42 tests ran\n"


# ---- results ------------------------------------------------------------------------------

def test_test_cases_are_a_dataframe_with_the_contracts_columns(server, api, client):
    df = StressTestJob(client, "j-1").get_test_cases_result()
    assert isinstance(df, pd.DataFrame)
    assert list(df.columns) == CASE_COLUMNS
    assert len(df) == 2
    assert df.loc[0, "features"] == ["Age"] and df.loc[0, "severity"] == "HIGH"
    assert pd.isna(df.loc[1, "metric:psi"])
    assert server.last().query == {}  # version None: the latest format


def test_test_run_is_one_row(server, api, client):
    df = StressTestJob(client, "j-1").get_test_run_result(version="1.0")
    assert list(df.columns) == RUN_COLUMNS and len(df) == 1
    assert df.iloc[0]["summary_counts.fail"] == 1
    assert server.last().query == {"version": ["1.0"]}


def test_records_as_lists_and_no_records_keep_the_columns(server, client):
    server.route("GET", "/stress-tests/j-1/test-cases", 200,
                 {"test_run_id": "tr-1", "version": "1.0", "columns": ["a", "b"], "records": [[1, "x"]]})
    server.route("GET", "/stress-tests/j-1/test-run", 200,
                 {"test_run_id": "tr-1", "version": "1.0", "columns": ["a", "b"], "records": []})
    job = StressTestJob(client, "j-1")
    assert job.get_test_cases_result().to_dict("records") == [{"a": 1, "b": "x"}]
    empty = job.get_test_run_result()
    assert list(empty.columns) == ["a", "b"] and len(empty) == 0


def test_rimes_pinned_version_asks_for_the_same_format(server, api, client):
    """Seed 002's examples pin version="0.14.0"; Kilele's format 1.0 follows those columns."""
    df = StressTestJob(client, "j-1").get_test_cases_result(version="0.14.0")
    assert server.last().query == {"version": ["1.0"]}
    assert list(df.columns) == CASE_COLUMNS


def test_an_unknown_version_is_the_apis_400(server, api, client):
    with pytest.raises(BadRequestError, match="version"):
        StressTestJob(client, "j-1").get_test_run_result(version="9.9")


def test_results_of_a_failing_job_raise_its_error(server, client):
    StressApi(server, statuses=["FAILING"], failure="eval_path: no column 'Survived'")
    job = StressTestJob(client, "j-1")
    for call in (job.get_test_cases_result, job.get_test_run_result, lambda: job.get_report("r.html")):
        with pytest.raises(StressTestFailedError) as caught:
            call()
        assert caught.value.error == "eval_path: no column 'Survived'"
        assert caught.value.job_id == "j-1"
        assert "FAILING" in str(caught.value) and "no column 'Survived'" in str(caught.value)


def test_results_of_a_running_job_are_the_apis_conflict(server, client):
    StressApi(server, statuses=["RUNNING"])
    with pytest.raises(ConflictError, match="not SUCCEEDED") as caught:
        StressTestJob(client, "j-1").get_test_cases_result()
    assert not isinstance(caught.value, StressTestFailedError)


def test_without_pandas_the_error_names_the_extra(server, api, client, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=r"kilele\[rime\]"):
        StressTestJob(client, "j-1").get_test_cases_result()
    assert server.requests == []


# ---- report -------------------------------------------------------------------------------

def test_report_is_downloaded_without_our_credentials(server, api, client, tmp_path):
    target = tmp_path / "report.html"
    assert StressTestJob(client, "j-1").get_report(str(target)) == str(target)
    assert target.read_bytes() == REPORT
    assert "authorization" not in server.last("GET", "/fake-s3/report.html").headers


def test_report_into_a_directory(server, api, client, tmp_path):
    path = StressTestJob(client, "j-1").get_report(tmp_path)
    assert path == str(tmp_path / "stress-test-j-1.html")
    assert (tmp_path / "stress-test-j-1.html").read_bytes() == REPORT


# ---- objects ------------------------------------------------------------------------------

def test_custom_image_shapes():
    assert CustomImage("img").to_dict() == {"name": "img"}

    class PullSecret:  # RIME's CustomImage.PullSecret(name=...)
        name = "regcred"

    assert CustomImage("img", PullSecret()).pull_secret == "regcred"
    assert CustomImage("img", {"name": "regcred"}) == CustomImage("img", "regcred")
    assert CustomImage("img", "regcred").to_dict() == {"name": "img", "pull_secret": {"name": "regcred"}}
    with pytest.raises(ValueError):
        CustomImage("")


def test_jobs_compare_by_id(client):
    assert StressTestJob(client, "j-1") == StressTestJob(client, "j-1", {"status": "RUNNING"})
    assert len({StressTestJob(client, "j-1"), StressTestJob(client, "j-2")}) == 2
    assert "j-1" in repr(StressTestJob(client, "j-1"))
