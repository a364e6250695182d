"""A Kilele trial as the stress-test engine's model (kilele_worker.trial_model): the feature
columns, each shape of answer turned into the engine's convention, batching; and end to end
through the worker: sample models of examples/models/ trained here, their parameters serialized
with kilele.model, stress-tested in the sandboxed model process from the ``stress_test`` message."""
from __future__ import annotations

import io
import json
import math
import uuid

import numpy as np
import pandas as pd
import pytest
from worker_harness import BUCKET, EXAMPLES, TREE_KNOBS

from kilele_worker.trial_model import (BINARY, MULTICLASS, REGRESSION, AnswerError, TrialModel, feature_columns,
                                       to_engine)

# -- the wrapper ---------------------------------------------------------------------------------


def test_feature_columns_keep_the_reference_order_without_special_columns():
    info = {"label_col": "y", "pred_col": "p", "timestamp_col": "t", "features_not_in_model": ["id"]}
    assert feature_columns(["id", "b", "y", "a", "t", "p", "c"], info) == ["b", "a", "c"]
    assert feature_columns(["x", "y"], {"label_col": "y"}) == ["x"]


def test_dict_answers_are_matched_to_the_data_classes_by_name():
    answers = [{"0": 0.2, "1": 0.8}, {"1": 0.1, "0": 0.9}]
    np.testing.assert_allclose(to_engine(answers, BINARY, [0, 1]), [0.8, 0.1])  # int labels, text keys
    answers = [{"setosa": 0.5, "virginica": 0.5}, {"versicolor": 1.0}]
    out = to_engine(answers, MULTICLASS, ["setosa", "versicolor", "virginica"])
    np.testing.assert_allclose(out, [[0.5, 0, 0.5], [0, 1, 0]])  # a class the model does not name: 0
    np.testing.assert_allclose(to_engine([{2: 0.3, 10: 0.7}], MULTICLASS, [1, 2, 10]), [[0, 0.3, 0.7]])
    np.testing.assert_allclose(to_engine([{"1.0": 0.6, "0.0": 0.4}], BINARY, [0, 1]), [0.6])
    with pytest.raises(AnswerError, match="none of the data's"):
        to_engine([{"a": 1.0}], BINARY, [0, 1])


def test_probability_lists_are_in_sorted_class_order():
    np.testing.assert_allclose(to_engine([[0.3, 0.7], [1.0, 0.0]], BINARY, ["no", "yes"]), [0.7, 0.0])
    np.testing.assert_allclose(to_engine([np.array([0.1, 0.2, 0.7])], MULTICLASS, [0, 1, 2]), [[0.1, 0.2, 0.7]])
    np.testing.assert_allclose(to_engine([[0.25]], BINARY, [0, 1]), [0.25])  # one number: the positive class
    with pytest.raises(AnswerError, match="3 probabilities for 2 classes"):
        to_engine([[0.2, 0.3, 0.5]], BINARY, [0, 1])


def test_labels_become_one_hot_and_unknown_labels_nan():
    out = to_engine(["b", "c", "zzz", None], MULTICLASS, ["a", "b", "c"])
    np.testing.assert_allclose(out[:2], [[0, 1, 0], [0, 0, 1]])
    assert np.isnan(out[2]).all() and np.isnan(out[3]).all()
    np.testing.assert_allclose(to_engine(["1", 0, True], BINARY, [False, True])[2:], [1.0])
    np.testing.assert_allclose(to_engine(["1", 0], BINARY, [0, 1]), [1.0, 0.0])
    np.testing.assert_allclose(to_engine([0.35], BINARY, [0, 1]), [0.35])  # a number that is no label: a probability


def test_regression_answers_are_values():
    out = to_engine([1.5, [2.0], np.float32(3.0), None], REGRESSION, None)
    np.testing.assert_allclose(out[:3], [1.5, 2.0, 3.0]) and math.isnan(out[3])
    with pytest.raises(AnswerError, match="expected a number"):
        to_engine(["high"], REGRESSION, None)


class Recorder:
    def __init__(self, answer):
        self.calls, self.answer = [], answer

    def predict(self, queries):
        self.calls.append(queries)
        return [self.answer(q) for q in queries]


def test_predict_df_selects_the_features_by_name_in_batches():
    model = Recorder(lambda q: {"0": 1 - q[0], "1": q[0]})
    wrapper = TrialModel(model, ["a", "b"], BINARY, [0, 1], batch_rows=2)
    df = pd.DataFrame({"b": [10.0, 20.0, np.nan], "a": [0.1, 0.2, 0.3]})  # another order than the reference's
    np.testing.assert_allclose(wrapper.predict_df(df), [0.1, 0.2, 0.3])
    assert [len(c) for c in model.calls] == [2, 1] and model.calls[0][0] == [0.1, 10.0]
    assert math.isnan(model.calls[1][0][1])
    assert wrapper.predict_df(df.iloc[:0]).shape == (0,)


def test_predict_df_refuses_a_wrong_number_of_answers():
    class Short:
        def predict(self, queries):
            return [0.5]

    with pytest.raises(AnswerError, match="1 predictions for 3 queries"):
        TrialModel(Short(), ["a"], REGRESSION, None).predict_df(pd.DataFrame({"a": [1.0, 2.0, 3.0]}))


# -- end to end through the worker --------------------------------------------------------------


def trained(model_file: str, model_class: str, knobs: dict, train_csv: bytes, tmp_path) -> bytes:
    """The sample model trained here on ``train_csv``; its parameters serialized as the worker does."""
    from kilele.model import load_model_class, serialize_params

    path = tmp_path / f"train-{uuid.uuid4().hex[:6]}.csv"
    path.write_bytes(train_csv)
    model = load_model_class(str(EXAMPLES / "models" / model_file), model_class)(**knobs)
    model.train(str(path))
    return serialize_params(model.dump_parameters())


def start(platform, model_file: str, model_class: str, knobs: dict, params: bytes, ref: bytes, evaluation: bytes,
          label_col: str, **config_changes):
    job_id = "st-" + uuid.uuid4().hex[:10]
    inputs = f"stress-inputs/u1/{job_id}"
    model_key, params_key = f"models/m-{job_id}/{model_file}", f"trials/t-{job_id}/params.npz"
    for key, body in ((f"{inputs}/ref.csv", ref), (f"{inputs}/eval.csv", evaluation), (params_key, params),
                      (model_key, (EXAMPLES / "models" / model_file).read_bytes())):
        platform.s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    prefix = f"stress/{job_id}/"
    config = {"run_name": "trial test", "data_info": {"label_col": label_col, "ref_path": "ref.csv",
                                                       "eval_path": "eval.csv"},
              "model_info": {"trial_id": "t-" + job_id}, "random_seed": 1, **config_changes}
    fields = {
        "kind": "stress_test", "id": job_id, "project_id": "p1", "test_run_id": "run-" + job_id, "bucket": BUCKET,
        "ref_key": f"{inputs}/ref.csv", "eval_key": f"{inputs}/eval.csv", "config": config,
        "model_key": model_key, "model_class": model_class, "params_key": params_key, "knobs": knobs,
        "trial_id": "t-" + job_id, "train_job_id": "j1", "task": "TABULAR_CLASSIFICATION",
        "dependencies": {"scikit-learn": None},
        "results_prefix": prefix, "logs_key": prefix + "logs.txt", "error_key": prefix + "error.json",
        "claim_key": prefix + "claim.json", "timeout_seconds": 120, "memory_limit_mb": 8000, "heartbeat_seconds": 10,
    }
    arn = platform.sfn.start_execution(stateMachineArn=platform.state_machine_arn, name=job_id,
                                       input=json.dumps({"trial": fields}))["executionArn"]
    return platform.receive_message(), arn, fields


def results(platform, arn: str, fields: dict) -> tuple[dict, pd.DataFrame, str]:
    described = platform.wait_execution(arn)
    log = platform.s3.get_object(Bucket=BUCKET, Key=fields["logs_key"])["Body"].read().decode()
    assert described["status"] == "SUCCEEDED" and "result" in json.loads(described["output"]), log[-3000:]
    run = json.loads(platform.s3.get_object(Bucket=BUCKET, Key=fields["results_prefix"] + "test_run.json")["Body"].read())
    cases = platform.s3.get_object(Bucket=BUCKET, Key=fields["results_prefix"] + "test_cases.parquet")["Body"].read()
    return run["records"][0], pd.read_parquet(io.BytesIO(cases)), log


def table(n: int, seed: int, classes: int = 2) -> pd.DataFrame:
    """Numeric features (the sample models take numbers) and a label that depends on two of them."""
    r = np.random.default_rng(seed)
    x = r.normal(size=(n, 4))
    score = x[:, 0] - x[:, 1] + r.normal(scale=0.3, size=n)
    if classes == 2:
        y = (score > 0).astype(int)
    else:
        y = np.array(["low", "mid", "high"])[np.digitize(score, [-0.7, 0.7])]
    return pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "x3": x[:, 2], "x4": x[:, 3], "y": y})


def model_cases_ran(cases: pd.DataFrame) -> int:
    """Cases of the model-in-the-loop categories that did not SKIP."""
    loop = cases[cases["test_category"].isin(["Transformations", "Adversarial", "Model Performance"])]
    return int((loop["status"] != "SKIP").sum())


def test_a_trained_decision_tree_is_stress_tested_multiclass(platform, run_worker, tmp_path):
    ref, evaluation = table(600, 1, classes=3), table(400, 2, classes=3)
    params = trained("sk_decision_tree.py", "SkDecisionTree", TREE_KNOBS, ref.to_csv(index=False).encode(), tmp_path)
    # The evaluation data's columns in another order: the model's features are picked by name.
    evaluation = evaluation[["y", "x4", "x3", "x2", "x1"]]
    message, arn, fields = start(platform, "sk_decision_tree.py", "SkDecisionTree", TREE_KNOBS, params,
                                 ref.to_csv(index=False).encode(), evaluation.to_csv(index=False).encode(), "y")
    assert run_worker(message) == 0
    run, cases, log = results(platform, arn, fields)
    assert run["model_task"] == "Multi-class Classification" and not run.get("model_error"), run
    assert "loading the trial's model SkDecisionTree" in log and "x1, x2, x3, x4" in log
    # The model was called (a depth-4 tree on a two-feature rule is a good model) and tested.
    assert run["model_performance.evaluation.accuracy"] > 0.8, run
    assert model_cases_ran(cases) >= 3, cases[["test_category", "status"]].value_counts()


def test_a_trained_logistic_regression_is_stress_tested_binary(platform, run_worker, tmp_path):
    ref, evaluation = table(600, 3), table(400, 4)
    knobs = {"C": 1.0, "max_iter": 200, "penalty_solver": "l2-lbfgs"}
    params = trained("sk_logistic_regression.py", "SkLogisticRegression", knobs,
                     ref.to_csv(index=False).encode(), tmp_path)
    message, arn, fields = start(platform, "sk_logistic_regression.py", "SkLogisticRegression", knobs, params,
                                 ref.to_csv(index=False).encode(), evaluation.to_csv(index=False).encode(), "y")
    assert run_worker(message) == 0
    run, cases, log = results(platform, arn, fields)
    assert run["model_task"] == "Binary Classification" and not run.get("model_error"), run
    assert run["model_performance.evaluation.accuracy"] > 0.85, run
    assert model_cases_ran(cases) >= 3, cases[["test_category", "status"]].value_counts()


def test_a_trained_ridge_regression_is_stress_tested(platform, run_worker, tmp_path):
    ref, evaluation = table(600, 5), table(400, 6)
    for frame in (ref, evaluation):
        frame["y"] = 2.0 * frame["x1"] - frame["x3"] + 0.1 * frame["x2"]
    knobs = {"alpha": 1.0, "fit_intercept": True}
    params = trained("sk_ridge_regression.py", "SkRidgeRegression", knobs, ref.to_csv(index=False).encode(), tmp_path)
    message, arn, fields = start(platform, "sk_ridge_regression.py", "SkRidgeRegression", knobs, params,
                                 ref.to_csv(index=False).encode(), evaluation.to_csv(index=False).encode(), "y",
                                 model_task="Regression")
    assert run_worker(message) == 0
    run, cases, _ = results(platform, arn, fields)
    assert run["model_task"] == "Regression" and not run.get("model_error"), run
    assert model_cases_ran(cases) >= 3, cases[["test_category", "status"]].value_counts()


def test_a_trial_whose_parameters_do_not_load_fails_naming_why(platform, run_worker, tmp_path):
    ref = table(200, 7).to_csv(index=False).encode()
    message, arn, fields = start(platform, "sk_decision_tree.py", "SkDecisionTree", TREE_KNOBS, b"not an npz",
                                 ref, ref, "y")
    assert run_worker(message) == 0
    described = platform.wait_execution(arn)
    assert json.loads(described["output"])["path"] == "caught"
    report = json.loads(platform.s3.get_object(Bucket=BUCKET, Key=fields["error_key"])["Body"].read())
    assert report["kind"] == "stress_test" and report["message"], report
