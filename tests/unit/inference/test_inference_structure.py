"""The inference server's structure: its imports form a DAG, only kilele_inference.settings reads
the environment and nothing writes it, and ``--workers N`` hands the settings to each worker
process as a picklable factory."""
from __future__ import annotations

import ast
import functools
import pickle
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

import kilele_inference
from kilele_inference.app import InferenceApp
from kilele_inference.server import worker_app
from kilele_inference.settings import ServerConfig

PACKAGE = Path(kilele_inference.__file__).parent


def package_imports() -> dict[str, set[str]]:
    """module -> the package modules it imports (anywhere in the file, functions included)."""
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.glob("*.py")):
        name = path.stem
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("kilele_inference"):
                module = node.module.removeprefix("kilele_inference").lstrip(".")
                targets.add(module or "__init__")
            elif isinstance(node, ast.Import):
                targets.update(a.name.removeprefix("kilele_inference.") for a in node.names
                               if a.name.startswith("kilele_inference."))
        graph[name] = targets - {name}
    return graph


def test_the_package_imports_form_a_dag_and_nothing_imports_main():
    graph = package_imports()
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as e:  # pragma: no cover - the message names the cycle
        pytest.fail(f"import cycle in kilele_inference: {e.args[1]}")
    assert not [m for m, targets in graph.items() if "__main__" in targets]
    assert "cli" not in graph["app"] and "server" not in graph["app"]


def test_only_settings_reads_the_environment_and_nothing_writes_it():
    readers = []
    for path in PACKAGE.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "putenv", "unsetenv", "getenv"):
                readers.append(path.stem)
    assert set(readers) == {"settings"}
    source = (PACKAGE / "settings.py").read_text()
    assert "os.environ[" not in source and "putenv" not in source and "environ.update" not in source


def test_the_worker_factory_travels_by_pickle_and_builds_a_preloading_app(tmp_path):
    config = ServerConfig(bundle=str(tmp_path / "bundle"), workers=2, max_wait_ms=7.0)
    failure_file = tmp_path / "failure"
    factory = pickle.loads(pickle.dumps(functools.partial(worker_app, config, str(failure_file))))
    app = factory()
    assert isinstance(app, InferenceApp) and app.config == config and app.load_in_background is False
    app.on_fatal(RuntimeError("no luck"))
    assert failure_file.read_text() == "no luck"
