"""End-to-end: seed 002's stress-test section on the real local stack, through ``Client`` and
through ``kilele.rime.RIMEClient`` with the seed's own calls: a project, a stress test of local
CSVs and a RIME-convention model file, waiting verbosely, both DataFrames and the report; and a
model trained here (a one-trial train job) stress-tested by its trial_id."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kilele.errors import NotFoundError

from .conftest import developers

pytestmark = pytest.mark.slow

MODEL = '''import numpy as np


def predict_df(df):
    """RIME's convention: the positive-class probability."""
    z = 0.08 * (df["age"].fillna(40).to_numpy() - 40) + 0.9 * (df["plan"] == "gold").to_numpy()
    return 1 / (1 + np.exp(-z))
'''


def _frame(rng: np.random.Generator, n: int, shift: float = 0.0) -> pd.DataFrame:
    age = rng.normal(40 + shift, 10, n).round()
    plan = rng.choice(["basic", "gold", "silver"], n, p=[0.5, 0.2, 0.3])
    income = rng.lognormal(10, 0.4, n).round(2)
    z = 0.08 * (age - 40) + 0.9 * (plan == "gold")
    label = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)
    return pd.DataFrame({"age": age, "plan": plan, "income": income, "churned": label})


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stress-inputs")
    rng = np.random.default_rng(7)
    _frame(rng, 1500).to_csv(folder / "ref.csv", index=False)
    _frame(rng, 1500, shift=6.0).to_csv(folder / "eval.csv", index=False)  # drifted age
    (folder / "model.py").write_text(MODEL)
    return folder


@pytest.fixture(scope="module")
def user(stack):
    return developers(stack)["MODEL_DEVELOPER"]


def config_for(inputs, name):
    return {"run_name": name,
            "data_info": {"label_col": "churned", "ref_path": str(inputs / "ref.csv"),
                          "eval_path": str(inputs / "eval.csv")},
            "model_info": {"path": str(inputs / "model.py")}}


def check_finished_job(job, tmp_path, capsys):
    status = job.get_status(verbose=True, wait_until_finish=True, poll_rate_sec=1)
    assert list(status) == ["name", "type", "status", "start_time_secs", "running_time_secs"]
    assert status["status"] == "SUCCEEDED", job.get_logs()
    assert status["type"] == "MODEL_STRESS_TEST"
    assert "status SUCCEEDED" in capsys.readouterr().out

    cases = job.get_test_cases_result()
    assert list(cases.columns[:7]) == ["test_run_id", "features", "test_batch_type", "test_category", "status",
                                       "severity", "importance_score"]
    assert len(cases) >= 20
    assert set(cases["test_run_id"]) == {job.get_test_run_id()}
    drift = cases[(cases["test_batch_type"] == "Numeric Feature Drift")
                  & cases["features"].map(lambda f: "age" in list(f))]
    assert (drift["status"] == "FAIL").all() and len(drift) == 1

    run = job.get_test_run_result()
    assert len(run) == 1 and run.loc[0, "test_run_id"] == job.get_test_run_id()

    report = job.get_report(str(tmp_path / "report.html"))
    html = (tmp_path / "report.html").read_text()
    assert report.endswith("report.html") and "<html" in html.lower()


def test_through_the_client(user, inputs, tmp_path, capsys):
    project = user.create_project(name="churn", description="e2e")
    given = config_for(inputs, "churn via Client")
    job = user.start_stress_test(given, project_id=project.project_id)
    assert given["data_info"]["ref_path"] == str(inputs / "ref.csv")  # the user's dict, untouched
    check_finished_job(job, tmp_path, capsys)
    assert job in user.list_stress_test_jobs(status_filters=["SUCCEEDED"], project_id=project.project_id)
    assert user.get_project(project.project_id) == project


def test_through_kilele_rime_with_the_seeds_calls(stack, user, inputs, tmp_path, capsys):
    from kilele.rime import RIMEClient, RIMEProject, RIMEStressTestJob

    key = user.create_api_key("rime")["key"]
    rime_client = RIMEClient(f"127.0.0.1:{stack.port}", key)
    project = rime_client.create_project(name='foo', description='bar')
    assert isinstance(project, RIMEProject)

    config = config_for(inputs, "churn via RIMEClient")
    with pytest.raises(NotFoundError, match="tensorflow115"):  # no managed images exist yet
        rime_client.start_stress_test_job(test_run_config=config, project_id=project.project_id,
                                          rime_managed_image="tensorflow115")
    job = rime_client.start_stress_test_job(test_run_config=config, project_id=project.project_id)
    assert isinstance(job, RIMEStressTestJob)
    check_finished_job(job, tmp_path, capsys)

    df = job.get_test_cases_result(version="0.14.0")  # the version the seed's examples pin
    assert "severity" in df.columns
    jobs = rime_client.list_stress_test_jobs(status_filters=['RUNNING', 'SUCCEEDED'], project_id=project.project_id)
    assert [j.job_id for j in jobs] == [job.job_id]


def test_a_trial_trained_here_is_stress_tested_by_trial_id(user, tmp_path, capsys):
    """Issue 8 item 2(b): a small train job on the local stack, then its best trial by trial_id."""
    from .conftest import EXAMPLES, unique_email

    rng = np.random.default_rng(11)

    def numeric(n, shift=0.0):
        x = rng.normal(size=(n, 3))
        x[:, 0] += shift
        y = (x[:, 0] - x[:, 1] + rng.normal(scale=0.3, size=n) > 0).astype(int)
        return pd.DataFrame({"a": x[:, 0].round(4), "b": x[:, 1].round(4), "c": x[:, 2].round(4), "target": y})

    numeric(400).to_csv(tmp_path / "train.csv", index=False)
    numeric(200).to_csv(tmp_path / "val.csv", index=False)
    numeric(400, shift=1.5).to_csv(tmp_path / "eval.csv", index=False)  # drifted a
    train = user.create_dataset(name="st_train", task="TABULAR_CLASSIFICATION", dataset_path=str(tmp_path / "train.csv"))
    val = user.create_dataset(name="st_val", task="TABULAR_CLASSIFICATION", dataset_path=str(tmp_path / "val.csv"))
    tree = user.create_model(name=unique_email("st-tree"), task="TABULAR_CLASSIFICATION",
                             model_file_path=str(EXAMPLES / "models" / "sk_decision_tree.py"),
                             model_class="SkDecisionTree", dependencies={"scikit-learn": "1.9.1"})
    app = "stress_trial_app"
    user.create_train_job(app=app, task="TABULAR_CLASSIFICATION", train_dataset_id=train["id"],
                          val_dataset_id=val["id"], budget={"MODEL_TRIAL_COUNT": 1}, models=[tree["id"]])
    assert user.wait_for_train_job(app, timeout=180)["status"] == "STOPPED"
    [best] = user.get_best_trials_of_train_job(app, max_count=1)

    config = {"run_name": "tree trial", "data_info": {"label_col": "target", "ref_path": str(tmp_path / "train.csv"),
                                                      "eval_path": str(tmp_path / "eval.csv")},
              "model_info": {"trial_id": best["id"]}}
    job = user.start_stress_test(config)
    status = job.get_status(verbose=True, wait_until_finish=True, poll_rate_sec=1)
    assert status["status"] == "SUCCEEDED", job.get_logs()
    run = job.get_test_run_result()
    assert run.loc[0, "model_task"] == "Binary Classification"
    # The one trial's knobs are drawn at random (a depth-1 tree scores ~0.78 here): the loaded
    # model must beat chance clearly, whatever depth it drew.
    assert run.loc[0, "model_performance.reference.accuracy"] > 0.65
    cases = job.get_test_cases_result()
    drift = cases[(cases["test_batch_type"] == "Numeric Feature Drift") & cases["features"].map(lambda f: "a" in list(f))]
    assert (drift["status"] == "FAIL").all() and len(drift) == 1
    assert "loading the trial's model SkDecisionTree" in job.get_logs()
