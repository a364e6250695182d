"""Ensemble math and query checks (in-process, no HTTP)."""
from __future__ import annotations

import numpy as np
import pytest

from inference_harness import read_csv_features, write_bundle
from kilele_inference import load_ensemble
from kilele_inference.bundle import BundleSpec
from kilele.model import InvalidQuery
from kilele_inference.ensemble import Ensemble, Failed, Rejected
from kilele_inference.errors import InvalidInput, ModelError
from kilele_inference.members import Member


def manual_mean(*member_answers):
    """The mean of {label: probability} dicts over the union of labels (missing labels count 0)."""
    means = []
    for answers in zip(*member_answers):
        labels = {label for answer in answers for label in answer}
        means.append({str(label): sum(a.get(label, 0.0) for a in answers) / len(answers) for label in labels})
    return means


def test_classification_is_the_mean_of_the_members_probabilities(iris_bundle, iris_tree, iris_logreg):
    ensemble = load_ensemble(str(iris_bundle))  # tree by predict(), logistic regression by ONNX Runtime
    queries = read_csv_features("iris")
    served = ensemble.predict_batch(queries)
    expected = manual_mean(iris_tree.model.predict(queries), iris_logreg.model.predict(queries))
    assert len(served) == len(queries)
    for got, want in zip(served, expected):
        assert set(got) == set(want) == {"0", "1", "2"}
        for label in want:
            assert got[label] == pytest.approx(want[label], abs=1e-5)
        assert sum(got.values()) == pytest.approx(1.0, abs=1e-5)


def test_predict_and_onnx_paths_agree(iris_bundle):
    queries = read_csv_features("iris")
    with_onnx = load_ensemble(str(iris_bundle)).predict_batch(queries)
    without = load_ensemble(str(iris_bundle), use_onnx=False).predict_batch(queries)
    for a, b in zip(with_onnx, without):
        assert a.keys() == b.keys()
        assert all(a[k] == pytest.approx(b[k], abs=1e-5) for k in a)


def test_two_onnx_classifiers_average_as_matrices(tmp_path, iris_logreg, iris_tree):
    bundle = write_bundle(tmp_path / "b", "TABULAR_CLASSIFICATION", [iris_logreg, iris_logreg])
    queries = read_csv_features("iris")[:10]
    served = load_ensemble(str(bundle)).predict_batch(queries)
    expected = iris_logreg.model.predict(queries)
    for got, want in zip(served, expected):
        assert list(got) == ["0", "1", "2"]
        assert all(got[k] == pytest.approx(want[k], abs=1e-5) for k in want)


def test_regression_is_the_mean_of_the_members_floats(tmp_path, diabetes_ridge):
    bundle = write_bundle(tmp_path / "b", "TABULAR_REGRESSION", [diabetes_ridge, diabetes_ridge],
                          onnx=[True, False])
    ensemble = load_ensemble(str(bundle))
    assert [m.path for m in ensemble.members] == ["onnx", "predict"]
    queries = read_csv_features("diabetes")[:25]
    expected = diabetes_ridge.model.predict(queries)
    assert ensemble.predict_batch(queries) == pytest.approx(expected, rel=1e-5)


class FakeModel:
    def __init__(self, answers):
        self.answers = answers

    def predict(self, queries):
        if any(q == "bad" for q in queries):
            raise InvalidQuery("bad query")
        if any(q == "boom" for q in queries):
            raise ValueError("the model broke")
        return [self.answers(q) for q in queries]


def fake_ensemble(task, *answer_functions):
    from kilele_inference.bundle import MemberSpec
    from pathlib import Path

    members = [Member(MemberSpec(f"t{i}", f"m{i}", "Fake", Path("m.py"), Path("p.npz"), None), FakeModel(f))
               for i, f in enumerate(answer_functions)]
    return Ensemble(BundleSpec(Path("."), "app", 1, task, members=[m.spec for m in members]), members)


def test_union_of_labels_counts_a_missing_label_as_zero():
    ensemble = fake_ensemble("TABULAR_CLASSIFICATION", lambda q: {"cat": 0.8, "dog": 0.2},
                             lambda q: {"cat": 0.5, "bird": 0.5}, lambda q: {1: 1.0})
    (answer,) = ensemble.predict_batch(["x"])
    assert answer == pytest.approx({"cat": 1.3 / 3, "dog": 0.2 / 3, "bird": 0.5 / 3, "1": 1 / 3})
    assert list(answer) == ["cat", "dog", "bird", "1"]  # first-seen order


def test_one_member_answers_as_its_predict_returned():
    # A list stays a list, a label stays a label (it used to become {"0": ..., "1": ...}).
    assert fake_ensemble("TABULAR_CLASSIFICATION", lambda q: [0.25, 0.75]).predict_batch(["x"]) == [[0.25, 0.75]]
    assert fake_ensemble("IMAGE_CLASSIFICATION", lambda q: "cat").predict_batch(["x", "y"]) == ["cat", "cat"]
    assert fake_ensemble("TABULAR_CLASSIFICATION", lambda q: 2).predict_batch(["x"]) == [2]


def test_members_average_like_with_like():
    lists = fake_ensemble("TABULAR_CLASSIFICATION", lambda q: [0.2, 0.8], lambda q: [0.6, 0.4])
    assert lists.predict_batch(["x"]) == [pytest.approx([0.4, 0.6])]
    assert isinstance(lists.predict_batch(["x"])[0], list)
    labels = fake_ensemble("TABULAR_CLASSIFICATION", lambda q: "cat", lambda q: "dog", lambda q: "dog")
    assert labels.predict_batch(["x"]) == ["dog"]  # the majority
    tie = fake_ensemble("TABULAR_CLASSIFICATION", lambda q: 1, lambda q: 0)
    assert tie.predict_batch(["x"]) == [1]  # a tie goes to the first (best-scored) member
    # Labels with probabilities: each probability answer votes with its most probable label.
    mixed = fake_ensemble("TABULAR_CLASSIFICATION", lambda q: "b", lambda q: {"a": 0.1, "b": 0.9},
                          lambda q: {"a": 0.7, "b": 0.3})
    assert mixed.predict_batch(["x"]) == ["b"]


def test_unusable_member_answers_are_model_errors():
    with pytest.raises(ModelError, match="a classifier answers"):
        fake_ensemble("IMAGE_CLASSIFICATION", lambda q: "cat", lambda q: None).predict_batch(["x"])
    with pytest.raises(ModelError, match="one number per query"):
        fake_ensemble("TABULAR_REGRESSION", lambda q: {"a": 1}).predict_batch(["x"])

    class Short(FakeModel):
        def predict(self, queries):
            return []

    ensemble = fake_ensemble("TABULAR_REGRESSION", lambda q: 1.0)
    ensemble.members[0].model = Short(None)
    with pytest.raises(ModelError, match="returned 0 predictions for 2 queries"):
        ensemble.predict_batch(["a", "b"])


def test_a_rejected_batch_is_evaluated_query_by_query():
    ensemble = fake_ensemble("TABULAR_REGRESSION", lambda q: 1.0, lambda q: 3.0)
    outcomes = ensemble.evaluate(["a", "bad", "c", "boom"])
    assert outcomes[0] == 2.0 and outcomes[2] == 2.0
    # The kit's InvalidQuery is the caller's error; any other exception is the model's.
    assert isinstance(outcomes[1], Rejected) and not isinstance(outcomes[1], Failed)
    assert outcomes[1].message("query 1") == "query 1: m0 (Fake, trial t0) rejected it: InvalidQuery: bad query"
    assert isinstance(outcomes[3], Failed)
    assert outcomes[3].message("query 3") == "query 3: m0 (Fake, trial t0) failed on it: ValueError: the model broke"


@pytest.mark.parametrize("query, message", [
    ([1, 2, 3], "query 7 has 3 features, the model expects 4"),
    ([[1, 2], [3, 4], [5]], "query 7 is a ragged nested list; the model expects a list of 4 numbers"),
    ([1, 2, "3", 4], "query 7 has the string '3' at [2]; the model expects a list of 4 numbers"),
    ([1, 2, None, 4], "query 7 has null at [2]"),
    ([1, 2, True, 4], "query 7 has a boolean at [2]"),
    ({"a": 1}, "query 7 is an object; the model expects a list of 4 numbers"),
    (5, "query 7 is a number; the model expects a list of 4 numbers"),
    ([1, 2, 3, 1e39], "query 7 has a value out of the float32 range"),
])
def test_queries_are_checked_before_they_join_a_batch(iris_bundle, query, message):
    ensemble = load_ensemble(str(iris_bundle))
    with pytest.raises(InvalidInput) as caught:
        ensemble.prepare(query, "query 7")
    assert message in caught.value.message


def test_prepared_queries_are_flat_float32(iris_bundle):
    array = load_ensemble(str(iris_bundle)).prepare([[5, 3.5], [1.4, 0.2]], "q")
    assert array.dtype == np.float32 and array.shape == (4,)
