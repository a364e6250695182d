"""The SDK stands alone: it never imports the platform, and its modules stay small and documented."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import kilele

SDK = Path(kilele.__file__).parent
MODULES = sorted(SDK.rglob("*.py"))
PLATFORM_PACKAGES = ("chalicelib", "app")


def imported_modules(path: Path) -> set[str]:
    """Every module an ``import`` or ``from … import`` names (at any depth, lazy ones too), plus
    ``importlib.import_module("…")`` / ``__import__("…")`` calls with a literal name."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                names.add(node.args[0].value)
    return names


def test_the_scan_sees_modules():
    assert len(MODULES) > 20
    assert {"kilele.client", "kilele.cli.core"} <= {
        ".".join(p.relative_to(SDK.parent).with_suffix("").parts) for p in MODULES}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SDK.parent)))
def test_no_sdk_module_imports_the_platform(path):
    platform = {name for name in imported_modules(path) if name.split(".")[0] in PLATFORM_PACKAGES}
    assert not platform, f"{path} imports {sorted(platform)}; the SDK must not depend on the platform"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SDK.parent)))
def test_every_sdk_module_is_small_and_has_a_docstring(path):
    source = path.read_text()
    assert len(source.splitlines()) < 400, f"{path} has grown past 400 lines: split it"
    assert ast.get_docstring(ast.parse(source)), f"{path} has no module docstring"


def test_public_client_methods_have_docstrings():
    from kilele import Client

    undocumented = [name for name in dir(Client)
                    if not name.startswith("_") and callable(getattr(Client, name)) and not getattr(Client, name).__doc__]
    assert undocumented == []


def test_the_client_keeps_its_public_import_paths():
    from kilele import Client as top
    from kilele.client import FINAL_TRAIN_JOB_STATUSES, Client, trial_progress

    assert top is Client
    assert FINAL_TRAIN_JOB_STATUSES == ("STOPPED", "ERRORED")
    assert trial_progress({"budget": {}}, [])["done"] == 0
