"""``kilele.rime``: seed 002's own stress-test examples, verbatim but for the import line, run
against the fake API; RIME's domain argument; RIME's names for Kilele's classes."""
from __future__ import annotations

import textwrap

import pytest
from test_sdk_stress_tests import CASE_COLUMNS, RUN_COLUMNS, StressApi, job_body

import kilele._polling
import kilele.stress
from kilele import Client, CustomImage, Project, StressTestJob

# Seed 002's import line with `rime_sdk` changed to `kilele.rime`: the only change allowed.
SEED_IMPORT = "from kilele.rime import RIMEClient, RIMEStressTestJob, RIMEProject, RIMECTInstance\n"

# The stress-test examples of seed 002, verbatim, in the order of the seed.
SEED_START = '''
# This example will likely not work for you because it requires permissions to a specific S3 bucket.
# This demonstrates how you might specify such a configuration.
config = {
  "run_name": "Titanic",
  "data_info": {
    "label_col": "Survived",
    "ref_path": "s3://rime-datasets/titanic/titanic_example.csv", "eval_path": "s3://rime-datasets/titanic/titanic_example.csv"
  },
  "model_info": {
    "path": "s3://rime-models/titanic_s3_test/titanic_example_model.py"
  }
}
# Run the job using the specified config and the default Docker image in the RIME backend.
# Store the results under project ID "foo"
# Use the RIME Managed Image "tensorflow115".
# This assumes you have already created the Managed Image and waited for it to be ready.
job = rime_client.start_stress_test_job(test_run_config=config, project_id="foo", rime_managed_image="tensorflow115")
'''
SEED_CREATE_PROJECT = '''
project = rime_client.create_project(name='foo', description='bar')
'''
SEED_LIST = '''
# Get all running and succeeded jobs for project 'foo'
jobs = rime_client.list_stress_test_jobs(status_filters=['RUNNING', 'SUCCEEDED'], project_id='foo')
'''
SEED_GET_STATUS = '''
# Block until this job is finished and dump monitoring info to stdout.
job_status = job.get_status(verbose=True, wait_until_finish=True)
'''
SEED_TEST_CASES = '''
 # Wait until the job has finished, since this method only works on SUCCEEDED jobs.
 job.get_status(verbose=True, wait_until_finish=True)
 # Dump the test cases in dataframe `df`.
 # Pin the version to RIME version 0.14.0.
 df = job.get_test_cases_result(version="0.14.0")
 # Print out the column names and types.
 print(df.columns)
'''
SEED_TEST_RUN = '''
 # Wait until the job has finished, since this method only works on SUCCEEDED jobs.
 job.get_status(verbose=True, wait_until_finish=True)
 # Dump the test cases in dataframe `df`.
 # Pin the version to RIME version 0.14.0.
 df = job.get_test_run_result(version="0.14.0")
 # Print out the column names and types.
 print(df.columns)
'''


class InstantTime:
    """Stands in for ``time`` in kilele._polling: the seed's examples poll every 5 s by default."""

    def __init__(self):
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


def run_seed(code: str, namespace: dict) -> dict:
    exec(compile(textwrap.dedent(code), "<seed 002>", "exec"), namespace)
    return namespace


def test_seed_002s_stress_test_examples_run_with_only_the_import_changed(server, monkeypatch, capsys):
    api = StressApi(server, statuses=["PENDING", "RUNNING", "SUCCEEDED"])
    clock = InstantTime()
    monkeypatch.setattr(kilele._polling, "time", clock)
    ns = run_seed(SEED_IMPORT, {})
    ns["rime_client"] = ns["RIMEClient"](f"127.0.0.1:{server.port}", "api-key")

    run_seed(SEED_START, ns)
    assert server.last("POST", "/stress-tests").json() == {
        "test_run_config": ns["config"], "project_id": "foo", "rime_managed_image": "tensorflow115"}
    assert server.last().headers["x-api-key"] == "api-key"
    assert isinstance(ns["job"], ns["RIMEStressTestJob"])

    run_seed(SEED_CREATE_PROJECT, ns)
    assert isinstance(ns["project"], ns["RIMEProject"]) and ns["project"].project_id == "p-1"
    assert (ns["project"].name, ns["project"].description) == ("foo", "bar")

    run_seed(SEED_LIST, ns)
    assert server.last().query == {"status": ["RUNNING", "SUCCEEDED"], "project_id": ["foo"]}
    assert all(isinstance(j, ns["RIMEStressTestJob"]) for j in ns["jobs"])

    run_seed(SEED_GET_STATUS, ns)
    assert ns["job_status"]["status"] == "SUCCEEDED"
    assert set(ns["job_status"]) == {"name", "type", "status", "start_time_secs", "running_time_secs"}
    assert clock.sleeps == [5.0, 5.0]  # polled at the seed's default rate until SUCCEEDED
    out = capsys.readouterr().out
    assert "status RUNNING" in out and "progress: 20 of 42 tests" in out and "42 tests ran" in out

    run_seed(SEED_TEST_CASES, ns)
    assert list(ns["df"].columns) == CASE_COLUMNS
    run_seed(SEED_TEST_RUN, ns)
    assert list(ns["df"].columns) == RUN_COLUMNS and len(ns["df"]) == 1
    assert "summary_counts.total" in capsys.readouterr().out  # print(df.columns)
    assert api.polls >= 3


def test_rime_names_are_kileles_classes():
    from kilele import rime

    assert rime.RIMEStressTestJob is StressTestJob
    assert rime.RIMEProject is Project
    assert rime.CustomImage is CustomImage
    assert issubclass(rime.RIMEClient, Client)


SEED_CT = '''
# Get CT instance foo if it exists.
ct_instance = rime_client.get_ct_instance("foo")
# Get CT instance in foo-project if it exists.
ct_instance = rime_client.get_active_ct_instance_for_project("foo-project")
# Create CT instance based on foo stress test in bar project.
ct_instance = rime_client.create_ct_instance("ct name", 86400, "foo", "bar")
config_from_reference = {
  "run_name": "Five Day Fraud Detection",
  "data_info": {
    "label_col": "is_fraud",
    "pred_col": "is_fraud_preds",
    "ref_path": "s3://rime-datasets/fraud_continuous_testing/ref.csv",
    "eval_path": "s3://rime-datasets/fraud_continuous_testing/eval_2021_04_01_to_2021_04_06.csv"
  },
  "continuous_info": {
    "timestamp_col": "timestamp",
    "bin_size": "day"
  },
}
job = rime_client.start_continuous_test_from_reference(test_run_config=config_from_reference,
                                                       project_id="foo",
                                                       rime_managed_image="tensorflow115",
                                                       ram_request_megabytes=8000,
                                                       cpu_request_millicores=2000)
incremental_config = {
  "eval_path": "s3://rime-datasets/fraud_continuous_testing/eval_2021_04_30_to_2021_05_01.csv",
  "timestamp_col": "timestamp"
}
ct_instance = rime_client.get_ct_instance("foo")
job = ct_instance.start_incremental_continuous_test(test_run_config=incremental_config,
                                                       rime_managed_image="tensorflow115",
                                                       ram_request_megabytes=8000,
                                                       cpu_request_millicores=2000)
ct_instance.activate_ct_instance()
ct_instance.deactivate_ct_instance()
'''


def test_seed_002s_continuous_testing_examples_call_the_ct_routes(server):
    instance = {"ct_instance_id": "foo", "name": "ct name", "project_id": "bar", "active": False}
    server.route("GET", "/ct-instances/foo", 200, instance)
    server.route("GET", "/projects/foo-project/active-ct-instance", 200, {**instance, "active": True})
    server.route("POST", "/ct-instances", 201, instance)
    server.route("POST", "/continuous-tests", 201, {**job_body(job_id="j-ct"), "ct_instance_id": "foo"})
    server.route("POST", "/ct-instances/foo/continuous-tests", 201, {**job_body(job_id="j-inc"), "ct_instance_id": "foo"})
    server.route("POST", "/ct-instances/foo/activate", 200, {**instance, "active": True})
    server.route("POST", "/ct-instances/foo/deactivate", 200, instance)
    ns = run_seed(SEED_IMPORT, {})
    ns["rime_client"] = ns["RIMEClient"](f"127.0.0.1:{server.port}", "api-key")
    run_seed(SEED_CT, ns)
    assert server.last("POST", "/ct-instances").json() == {"name": "ct name", "bin_size_seconds": 86400,
                                                          "ot_test_run_id": "foo", "project_id": "bar"}
    started = server.last("POST", "/continuous-tests").json()
    assert started == {"test_run_config": ns["config_from_reference"], "project_id": "foo",
                       "rime_managed_image": "tensorflow115", "ram_request_megabytes": 8000,
                       "cpu_request_millicores": 2000}
    assert server.last("POST", "/ct-instances/foo/continuous-tests").json()["test_run_config"] == ns["incremental_config"]
    assert isinstance(ns["ct_instance"], ns["RIMECTInstance"]) and ns["ct_instance"].ct_instance_id == "foo"
    assert isinstance(ns["job"], ns["RIMEStressTestJob"]) and ns["job"].job_id == "j-inc"
    assert ns["ct_instance"].info["active"] is False  # activated, then deactivated
    assert [r.path for r in server.requests if r.method == "POST"][-2:] == ["/ct-instances/foo/activate",
                                                                             "/ct-instances/foo/deactivate"]


@pytest.mark.parametrize("domain, base_url", [
    ("my_vpc.rime.com", "https://my_vpc.rime.com"),
    ("127.0.0.1:8000", "http://127.0.0.1:8000"),
    ("localhost:8000", "http://localhost:8000"),
    ("[::1]:8000", "http://[::1]:8000"),
    ("10.0.0.5:8000", "https://10.0.0.5:8000"),
    ("https://abc.execute-api.eu-west-1.amazonaws.com/api/", "https://abc.execute-api.eu-west-1.amazonaws.com/api"),
    ("http://kilele.internal:8000", "http://kilele.internal:8000"),
])
def test_domain_becomes_the_api_root(domain, base_url):
    from kilele.rime import RIMEClient

    client = RIMEClient(domain, "api-key")
    assert client.base_url == base_url
    assert client.api_key == "api-key"


def test_disable_tls_and_an_empty_domain():
    from kilele.rime import RIMEClient

    assert RIMEClient("kilele.internal:8000", disable_tls=True).base_url == "http://kilele.internal:8000"
    assert RIMEClient("127.0.0.1:8000").api_key is None  # RIME's default api_key="" sends none
    with pytest.raises(ValueError, match="domain"):
        RIMEClient("")


def test_a_custom_image_from_kilele_rime_is_sent(server):
    from kilele.rime import CustomImage as RimeCustomImage
    from kilele.rime import RIMEClient

    StressApi(server)
    rime_client = RIMEClient(f"localhost:{server.port}", "k")
    rime_client.start_stress_test(test_run_config={"run_name": "x"}, custom_image=RimeCustomImage("img:1"))
    assert server.last().json()["custom_image"] == {"name": "img:1"}
