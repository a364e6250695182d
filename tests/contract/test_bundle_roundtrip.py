"""The bundle contract: what the platform's one bundle writer (chalicelib.bundle_format, used by
BundleBuilder) writes, the inference server's reader (kilele_inference.bundle) reads, and the
server's app answers what the models' own predict() answers.

Bundles of one and two members, with an ONNX graph and with parameters only, as the tar.gz the
platform stores (extracted as SageMaker extracts model.tar.gz into /opt/ml/model) and as a
directory (``kilele-serve --bundle DIR``). The app runs in-process (its lifespan driven here,
requests through httpx's ASGI transport), so the test needs no port and no subprocess.
"""
from __future__ import annotations

import asyncio
import io
import sys
import tarfile
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
INFERENCE_SRC = ROOT / "containers" / "inference"
if str(INFERENCE_SRC) not in sys.path:  # the server works from the source tree, installed or not
    sys.path.insert(0, str(INFERENCE_SRC))

from chalicelib import bundle_format  # noqa: E402
from chalicelib.bundle_format import BundleMember  # noqa: E402
from kilele.model import load_model_class, serialize_params  # noqa: E402
from kilele_inference.app import InferenceApp  # noqa: E402
from kilele_inference import bundle as reader  # noqa: E402
from kilele_inference.bundle import read_bundle  # noqa: E402
from kilele_inference.settings import ServerConfig  # noqa: E402

MODELS = ROOT / "examples" / "models"
DATASETS = ROOT / "examples" / "datasets"
TOLERANCE = 1e-6

SAMPLES = {
    # name: (model file, class, knobs, data set, task, export ONNX)
    "logreg": ("sk_logistic_regression.py", "SkLogisticRegression",
               {"C": 1.0, "max_iter": 200, "penalty_solver": "l2-lbfgs"}, "iris", "TABULAR_CLASSIFICATION", True),
    "tree": ("sk_decision_tree.py", "SkDecisionTree",
             {"max_depth": 3, "min_samples_leaf": 5, "criterion": "gini", "ccp_alpha": 0.0001},
             "iris", "TABULAR_CLASSIFICATION", False),
    "ridge": ("sk_ridge_regression.py", "SkRidgeRegression", {"alpha": 1.0, "fit_intercept": True},
              "diabetes", "TABULAR_REGRESSION", False),
}

CASES = {
    # id: (task, member names, data set)
    "one-onnx-member": ("TABULAR_CLASSIFICATION", ["logreg"], "iris"),
    "one-params-only-member": ("TABULAR_CLASSIFICATION", ["tree"], "iris"),
    "two-members-onnx-and-params-only": ("TABULAR_CLASSIFICATION", ["logreg", "tree"], "iris"),
    "regression-params-only": ("TABULAR_REGRESSION", ["ridge"], "diabetes"),
}


def features(dataset: str, split: str = "val") -> list[list[float]]:
    lines = (DATASETS / f"{dataset}_{split}.csv").read_text().strip().splitlines()
    header = lines[0].split(",")
    target = header.index("target") if "target" in header else len(header) - 1
    return [[float(v) for i, v in enumerate(line.split(",")) if i != target] for line in lines[1:]]


@pytest.fixture(scope="module")
def trained() -> dict[str, tuple[object, BundleMember]]:
    """Each sample model trained once, with the bundle member the platform would make of its trial."""
    out = {}
    for name, (file_name, class_name, knobs, dataset, _task, with_onnx) in SAMPLES.items():
        model = load_model_class(str(MODELS / file_name), class_name)(**knobs)
        model.train(str(DATASETS / f"{dataset}_train.csv"))
        onnx = model.export_onnx() if with_onnx else None
        if with_onnx:
            assert onnx, f"{name} exported no ONNX graph (is skl2onnx installed?)"
        member = BundleMember(
            trial_id=f"contract-{name}", model_class=class_name, model_name=name,
            model_source=(MODELS / file_name).read_bytes(), params=serialize_params(model.dump_parameters()),
            onnx=onnx, knobs=knobs, score=model.evaluate(str(DATASETS / f"{dataset}_val.csv")),
            dependencies={"scikit-learn": "1.9.1", "numpy": ""},
        )
        out[name] = (model, member)
    return out


def write(form: str, tmp_path: Path, task: str, members: list[BundleMember]) -> tuple[Path, dict]:
    """A bundle written by the one writer, in ``form``: the platform's tar.gz, extracted, or a directory."""
    if form == "directory":
        manifest = bundle_format.write_bundle(tmp_path / "bundle", "contract_app", 3, task, members)
        return tmp_path / "bundle", manifest
    data, manifest = bundle_format.bundle_bytes("contract_app", 3, task, members, created_at="2026-12-01T00:00:00+00:00")
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        archive.extractall(tmp_path / "opt-ml-model", filter="data")
    return tmp_path / "opt-ml-model", manifest


def expected_predictions(task: str, models: list, queries: list) -> list:
    """The ensemble of the models' own predict(): the mean probability per label (labels as JSON
    keys, a label a member does not name counting 0), or the mean number."""
    answers = [model.predict(queries) for model in models]
    if task == "TABULAR_REGRESSION":
        return [sum(float(a[i]) for a in answers) / len(answers) for i in range(len(queries))]
    out = []
    for i in range(len(queries)):
        per_member = [{str(label): float(p) for label, p in a[i].items()} for a in answers]
        labels = set().union(*per_member)
        out.append({label: sum(m.get(label, 0.0) for m in per_member) / len(per_member) for label in labels})
    return out


async def serve_in_process(bundle: Path, queries: list) -> tuple[dict, dict, dict]:
    """The server's app on ``bundle`` (loaded as at startup), asked /invocations, /ping and /."""
    app = InferenceApp(ServerConfig(bundle=str(bundle)), load_in_background=False)
    await app.startup()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://kilele-serve") as client:
            ping = (await client.get("/ping")).json()
            info = (await client.get("/")).json()
            response = await client.post("/invocations", json={"queries": queries})
            assert response.status_code == 200, response.text
            return ping, info, response.json()
    finally:
        await app.shutdown()


@pytest.mark.parametrize("form", ["tar.gz", "directory"])
@pytest.mark.parametrize("case", list(CASES))
def test_what_the_writer_writes_the_server_reads_and_serves(tmp_path, trained, case, form):
    task, names, dataset = CASES[case]
    models = [trained[name][0] for name in names]
    members = [trained[name][1] for name in names]
    root, manifest = write(form, tmp_path, task, members)

    spec = read_bundle(root)
    assert (spec.app, spec.app_version, spec.task) == ("contract_app", 3, task)
    assert spec.requirements == manifest["requirements"] == ["numpy", "scikit-learn==1.9.1"]
    assert [m.trial_id for m in spec.members] == [m.trial_id for m in members]
    for read, written in zip(spec.members, members):
        assert (read.model_name, read.model_class, read.knobs, read.score) == (
            written.model_name, written.model_class, written.knobs, written.score)
        assert read.dependencies == written.dependencies
        assert read.model_file.read_bytes() == written.model_source and read.params.read_bytes() == written.params
        assert (read.onnx.read_bytes() if read.onnx else None) == written.onnx

    queries = features(dataset)[:20]
    ping, info, answer = asyncio.run(serve_in_process(root, queries))
    assert ping == {"status": "ok"}
    # A member with a graph is served by ONNX Runtime, one without by its own predict().
    assert [m["path"] for m in info["members"]] == ["onnx" if m.onnx else "predict" for m in members]

    want = expected_predictions(task, models, queries)
    got = answer["predictions"]
    assert len(got) == len(want)
    for served, own in zip(got, want):
        if task == "TABULAR_REGRESSION":
            assert served == pytest.approx(own, abs=TOLERANCE)
        else:
            assert served.keys() == own.keys()
            assert all(served[label] == pytest.approx(own[label], abs=TOLERANCE) for label in own)


def test_a_bundle_of_a_managed_image_pins_its_freeze_and_the_reader_still_reads_it(tmp_path, trained):
    # The image key is additive in format 1: the reader (which ignores keys it does not know)
    # reads the bundle, and its requirements are pinned to what the image resolved.
    member = trained["tree"][1]
    image = {"name": "deps-0123456789abcdef", "ref": "venv:///images/envs/x",
             "pip_freeze": ["numpy==2.4.6", "scikit-learn==1.9.1", "six==1.16.0"]}
    manifest = bundle_format.write_bundle(tmp_path, "contract_app", 3, "TABULAR_CLASSIFICATION", [member],
                                          image=image)
    assert manifest["image"] == image and manifest["format"] == bundle_format.FORMAT
    spec = read_bundle(tmp_path)
    assert spec.requirements == manifest["requirements"] == ["numpy==2.4.6", "scikit-learn==1.9.1"]
    assert (tmp_path / bundle_format.REQUIREMENTS).read_text().split() == ["numpy==2.4.6", "scikit-learn==1.9.1"]


def test_writer_and_reader_agree_on_the_manifest_name_and_format():
    # The reader cannot import the writer (the inference image has no chalicelib): they keep
    # their own constants, which must stay equal.
    assert (bundle_format.MANIFEST, bundle_format.FORMAT) == (reader.MANIFEST, reader.FORMAT)


def test_the_writer_refuses_what_the_reader_could_not_serve(trained):
    _, member = trained["tree"]
    with pytest.raises(ValueError, match="at least one member"):
        bundle_format.build_manifest("a", 1, "TABULAR_CLASSIFICATION", [])
    with pytest.raises(ValueError, match="twice"):
        bundle_format.build_manifest("a", 1, "TABULAR_CLASSIFICATION", [member, member])
    escaping = BundleMember(trial_id="../x", model_class="M", model_source=b"", params=b"")
    with pytest.raises(ValueError, match="cannot name a folder"):
        bundle_format.build_manifest("a", 1, "TABULAR_CLASSIFICATION", [escaping])
