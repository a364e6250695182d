"""Reading bundles and loading members: the ONNX path vs the model's own predict()."""
from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pytest

from inference_harness import SLOW_MODEL, custom_member, read_csv_features, write_bundle
from kilele_inference import find_bundle_root, load_ensemble, read_bundle
from kilele_inference.errors import BundleError
from kilele_inference.members import LabelledProbabilities, OnnxMember


def paths(ensemble):
    return {m.spec.model_name: m.path for m in ensemble.members}


def test_manifest_is_read(iris_bundle):
    bundle = read_bundle(iris_bundle)
    assert (bundle.app, bundle.app_version, bundle.task) == ("iris_app", 1, "TABULAR_CLASSIFICATION")
    assert [m.model_class for m in bundle.members] == ["SkDecisionTree", "SkLogisticRegression"]
    tree, logreg = bundle.members
    assert tree.onnx is None and logreg.onnx is not None and logreg.onnx.name == "model.onnx"
    assert tree.knobs["max_depth"] == 3 and tree.dependencies == {"scikit-learn": "1.9.1"}
    assert bundle.requirements == ["scikit-learn==1.9.1"]


def test_loader_paths_and_their_log(iris_bundle, caplog):
    with caplog.at_level(logging.INFO, logger="kilele_inference"):
        ensemble = load_ensemble(str(iris_bundle))
    assert paths(ensemble) == {"sk_decision_tree": "predict", "sk_logistic_regression": "onnx"}
    assert ensemble.needs_arrays and ensemble.features == 4
    log = caplog.text
    assert "sk_decision_tree" in log and "its own predict()" in log and "no ONNX graph" in log
    assert "sk_logistic_regression" in log and "ONNX Runtime (CPUExecutionProvider; 1 intra-op thread(s)" in log
    onnx_member = ensemble.members[1]
    assert isinstance(onnx_member, OnnxMember) and onnx_member.labels == ("0", "1", "2")
    assert onnx_member.session.get_session_options().intra_op_num_threads == 1


def test_onnx_threads_are_configurable(iris_bundle):
    ensemble = load_ensemble(str(iris_bundle), onnx_threads=2)
    assert ensemble.members[1].session.get_session_options().intra_op_num_threads == 2


def test_regression_uses_the_first_onnx_output(ridge_bundle, diabetes_ridge):
    ensemble = load_ensemble(str(ridge_bundle))
    assert paths(ensemble) == {"sk_ridge_regression": "onnx"}
    assert ensemble.members[0].output_name == "variable" and ensemble.features == 10
    queries = read_csv_features("diabetes")[:20]
    served = ensemble.predict_batch(queries)
    expected = diabetes_ridge.model.predict(queries)
    assert all(isinstance(v, float) for v in served)
    assert served == pytest.approx(expected, rel=1e-5)


def test_without_onnx_file_or_with_no_onnx_everything_uses_predict(tmp_path, iris_tree, iris_logreg, iris_bundle):
    bundle = write_bundle(tmp_path / "b", "TABULAR_CLASSIFICATION", [iris_tree, iris_logreg], onnx=[False, False])
    ensemble = load_ensemble(str(bundle))
    assert set(paths(ensemble).values()) == {"predict"} and not ensemble.needs_arrays
    assert set(paths(load_ensemble(str(iris_bundle), use_onnx=False)).values()) == {"predict"}


def test_classifier_without_onnx_classes_uses_predict(tmp_path, iris_logreg, caplog):
    # The same logistic regression, but its class does not name its ONNX probability columns.
    source = iris_logreg.model_file.read_text() + (
        "\n\nclass NoClasses(SkLogisticRegression):\n    def onnx_classes(self):\n        return None\n")
    member = custom_member(tmp_path / "src", source, "NoClasses", iris_logreg.knobs, iris_logreg.params,
                           iris_logreg.onnx)
    bundle = write_bundle(tmp_path / "b", "TABULAR_CLASSIFICATION", [member])
    assert read_bundle(bundle).members[0].onnx is not None
    with caplog.at_level(logging.INFO, logger="kilele_inference"):
        ensemble = load_ensemble(str(bundle))
    assert paths(ensemble) == {"noclasses": "predict"}
    assert "onnx_classes() returned no labels" in caplog.text


def test_an_unusable_onnx_graph_falls_back_to_predict(tmp_path, iris_logreg, caplog):
    member = custom_member(tmp_path / "src", iris_logreg.model_file.read_text(), "SkLogisticRegression",
                           iris_logreg.knobs, iris_logreg.params, b"not an onnx graph")
    bundle = write_bundle(tmp_path / "b", "TABULAR_CLASSIFICATION", [member])
    with caplog.at_level(logging.INFO, logger="kilele_inference"):
        ensemble = load_ensemble(str(bundle))
    assert ensemble.members[0].path == "predict"
    assert "ONNX Runtime cannot load its graph" in caplog.text


def test_other_tasks_serve_the_first_member_only(tmp_path):
    member = custom_member(tmp_path / "src", SLOW_MODEL, "SlowModel", {"load_seconds": 0.0, "predict_seconds": 0.0})
    bundle = write_bundle(tmp_path / "b", "TEXT_SENTIMENT", [member, member])
    ensemble = load_ensemble(str(bundle))
    assert len(ensemble.members) == 1 and ensemble.kind == "other"
    assert ensemble.predict_batch(["great", "bad"]) == [{"yes": 0.25, "no": 0.75}] * 2


def test_bundle_nested_one_level_is_found(tmp_path, iris_bundle):
    # SageMaker extracts model.tar.gz into /opt/ml/model; a tarball with a top folder nests the bundle.
    shutil.copytree(iris_bundle, tmp_path / "model" / "iris_app-v1")
    assert find_bundle_root(tmp_path / "model") == tmp_path / "model" / "iris_app-v1"
    assert paths(load_ensemble(str(tmp_path / "model")))["sk_logistic_regression"] == "onnx"


@pytest.mark.parametrize("change, message", [
    (lambda m: m.update(format=2), "format 2"),
    (lambda m: m.update(members=[]), "at least one member"),
    (lambda m: m.pop("task"), "no 'task'"),
    (lambda m: m["members"][0].update(params="members/nope/params.npz"), "is missing from the bundle"),
    (lambda m: m["members"][0].update(model_file="../../etc/passwd"), "outside the bundle"),
    (lambda m: m["members"][0].pop("model_class"), "has no 'model_class'"),
])
def test_bad_manifests_are_explained(tmp_path, iris_bundle, change, message):
    copy = shutil.copytree(iris_bundle, tmp_path / "b")
    manifest = json.loads((copy / "kilele-bundle.json").read_text())
    change(manifest)
    (copy / "kilele-bundle.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=message):
        read_bundle(copy)


def test_missing_bundle_and_broken_model_are_explained(tmp_path, iris_bundle):
    with pytest.raises(BundleError, match="does not exist"):
        read_bundle(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleError, match="holds no kilele-bundle.json"):
        read_bundle(tmp_path / "empty")
    copy = shutil.copytree(iris_bundle, tmp_path / "b")
    manifest = json.loads((copy / "kilele-bundle.json").read_text())
    (copy / manifest["members"][0]["model_file"]).write_text("import not_a_module_anywhere\n")
    with pytest.raises(BundleError, match="not_a_module_anywhere"):
        load_ensemble(str(copy))


def test_onnx_member_answers_a_probability_matrix(iris_bundle):
    ensemble = load_ensemble(str(iris_bundle))
    member = ensemble.members[1]
    batch = np.asarray(read_csv_features("iris")[:5], dtype=np.float32)
    answer = member.run([None] * 5, batch)
    assert isinstance(answer, LabelledProbabilities) and answer.matrix.shape == (5, 3)
    assert answer.matrix.sum(axis=1) == pytest.approx([1.0] * 5, abs=1e-5)
