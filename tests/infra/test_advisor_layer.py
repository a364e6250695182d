"""Issue 13, finding 8: the advisor's libraries are a layer of the propose Lambda only, and the
code assets ship compiled bytecode. Synthesis (bundling skipped) checks who gets the layer; the
bundler is checked on small inputs here, and for real (sizes, .pyc, what each asset holds) by
the slow test, which pip-installs both assets for Linux as a deploy does."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
from test_synth import _synth

from kilele_infra.bundling import (ADVISOR_REQUIREMENTS, LAYER_PYTHON_DIR, RUNTIME, PipLocalBundling,
                                   compile_bytecode, runtime_version)
from kilele_infra.workflows import ADVISOR_HANDLERS, WORKFLOW_ENTRY_MODULE

ROOT = Path(__file__).resolve().parents[2]
ON_RUNTIME_PYTHON = sys.version_info[:2] == runtime_version()
TAG = f"cpython-{runtime_version()[0]}{runtime_version()[1]}"
LAMBDA_LIMIT_BYTES = 250 * 1024 * 1024  # a function and its layers, unzipped


@pytest.fixture(scope="module")
def template():
    return _synth()


def test_only_the_propose_lambda_has_the_advisor_layer(template):
    layers = template.find_resources("AWS::Lambda::LayerVersion")
    assert len(layers) == 1
    [layer_id] = layers
    with_layer = {f["Properties"]["Handler"] for f in template.find_resources("AWS::Lambda::Function").values()
                  if f["Properties"].get("Layers")}
    assert with_layer == {f"{WORKFLOW_ENTRY_MODULE}.{name}" for name in ADVISOR_HANDLERS}
    propose = [f for f in template.find_resources("AWS::Lambda::Function").values()
               if f["Properties"]["Handler"] == f"{WORKFLOW_ENTRY_MODULE}.propose_trial"]
    assert propose[0]["Properties"]["Layers"] == [{"Ref": layer_id}]


def test_the_code_asset_leaves_the_advisor_requirements_to_the_layer(tmp_path):
    (tmp_path / "requirements.txt").write_text(f"boto3==1.0\n-r {ADVISOR_REQUIREMENTS}  # the layer's\nx==2\n")
    (tmp_path / "t").mkdir()
    kept = PipLocalBundling(tmp_path)._without_advisor(tmp_path / "t")
    assert kept.read_text().split() == ["boto3==1.0", "x==2"]
    assert "optuna" in (ROOT / ADVISOR_REQUIREMENTS).read_text()
    assert f"-r {ADVISOR_REQUIREMENTS}" in (ROOT / "requirements.txt").read_text()  # installs it locally


def test_bytecode_is_compiled_for_the_runtime_or_bundling_is_refused(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text("VALUE = 1\n")
    if not ON_RUNTIME_PYTHON:
        with pytest.raises(RuntimeError, match=RUNTIME.name):
            compile_bytecode(tmp_path)
        return
    compile_bytecode(tmp_path)
    assert (tmp_path / "pkg" / "__pycache__" / f"mod.{TAG}.pyc").is_file()


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


@pytest.mark.slow
def test_real_assets_fit_the_limit_ship_bytecode_and_split_the_advisor(tmp_path):
    if not ON_RUNTIME_PYTHON:  # bundling is refused off the runtime's Python (the test above)
        with pytest.raises(RuntimeError, match=RUNTIME.name):
            compile_bytecode(tmp_path)
        return
    api, layer = tmp_path / "api", tmp_path / "layer"
    assert PipLocalBundling(ROOT).try_bundle(str(api)) and PipLocalBundling(ROOT, "advisor").try_bundle(str(layer))
    assert not (api / "optuna").exists() and not (api / "numpy").exists()
    assert (layer / LAYER_PYTHON_DIR / "optuna").is_dir() and (layer / LAYER_PYTHON_DIR / "numpy").is_dir()
    assert _size(api) + _size(layer) < LAMBDA_LIMIT_BYTES
    assert _size(api) < 80 * 1024 * 1024, _size(api)  # was 143 MB with the advisor's libraries in it
    for root, module in ((api, "chalicelib/settings"), (api, "pydantic/main"), (layer, "python/optuna/__init__")):
        parent, name = (root / module).parent, (root / module).name
        assert (parent / "__pycache__" / f"{name}.{TAG}.pyc").is_file(), (root, module)
