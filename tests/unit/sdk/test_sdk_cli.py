"""The ``kilele`` CLI through click's CliRunner, against the fake API, with a temporary HOME."""
from __future__ import annotations

import builtins
import json
import stat
import sys

import pytest
from click.testing import CliRunner

from kilele import cli as cli_module
from kilele.cli import LOCAL_STACK_HINT, cli

USER = {"id": "u-1", "email": "superadmin@kilele", "user_type": "SUPERADMIN",
        "datetime_created": "2026-11-23T10:00:00+00:00", "banned_date": None}
MODEL = {"id": "m-1", "name": "logreg", "task": "TABULAR_CLASSIFICATION", "model_class": "LogReg"}


@pytest.fixture
def home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in ("KILELE_URL", "KILELE_API_KEY", "KILELE_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture
def run(home):
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(cli, list(args), input=input, catch_exceptions=False)

    return invoke


def session_file(home):
    return home / ".config" / "kilele" / "session.json"


def login(run, server):
    server.route("POST", "/tokens", 200, {"token": "tok-1", "expires_at": "2026-11-23T11:00:00+00:00", "user": USER})
    return run("--url", server.url, "login", "superadmin@kilele", "--password", "kilele")


def test_login_saves_session_0600_and_later_commands_use_it(server, run, home):
    result = login(run, server)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == USER

    path = session_file(home)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    saved = json.loads(path.read_text())["sessions"][server.url]
    assert saved["token"] == "tok-1" and saved["email"] == "superadmin@kilele"

    server.route("GET", "/users/me", 200, USER)
    result = run("--url", server.url + "/", "whoami")  # same URL, trailing slash
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["email"] == "superadmin@kilele"
    assert server.last("GET", "/users/me").headers["authorization"] == "Bearer tok-1"


def test_login_prompts_for_password(server, run):
    server.route("POST", "/tokens", 200, {"token": "tok-1", "expires_at": None, "user": USER})
    result = run("--url", server.url, "login", "superadmin@kilele", input="kilele\n")
    assert result.exit_code == 0, result.stderr
    assert server.last("POST", "/tokens").json()["password"] == "kilele"


def test_sessions_are_kept_per_url(server, run, home):
    login(run, server)
    data = json.loads(session_file(home).read_text())
    data["sessions"]["http://other:8000"] = {"token": "other"}
    session_file(home).write_text(json.dumps(data))
    server.route("DELETE", "/tokens/current", 200, {"logged_out": True})

    result = run("--url", server.url, "logout")

    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {"logged_out": True}
    assert server.last().headers["authorization"] == "Bearer tok-1"
    assert json.loads(session_file(home).read_text())["sessions"] == {"http://other:8000": {"token": "other"}}


def test_api_key_option_and_env(server, run, monkeypatch):
    server.route("GET", "/users/me", 200, USER)
    assert run("--url", server.url, "--api-key", "kk_a.b", "whoami").exit_code == 0
    assert server.last().headers["x-api-key"] == "kk_a.b"
    monkeypatch.setenv("KILELE_API_KEY", "kk_env.s")
    monkeypatch.setenv("KILELE_URL", server.url)
    assert run("whoami").exit_code == 0
    assert server.last().headers["x-api-key"] == "kk_env.s"


def test_error_exits_1_with_message_on_stderr(server, run):
    server.route("GET", "/models/nope", 404, {"error": {"code": "not_found", "message": "no model 'nope'"}})
    result = run("--url", server.url, "--api-key", "kk_a.b", "models", "get", "nope")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "404 not_found: no model 'nope'" in result.stderr
    assert "Traceback" not in result.stderr


def test_unauthenticated_error_hints_at_login(server, run):
    server.route("GET", "/users", 401, {"error": {"code": "unauthenticated", "message": "send a token"}})
    result = run("--url", server.url, "users", "list")
    assert result.exit_code == 1
    assert "send a token" in result.stderr and "kilele login" in result.stderr


def test_whoami_without_login(server, run):
    result = run("--url", server.url, "whoami")
    assert result.exit_code == 1
    assert "not logged in" in result.stderr
    assert server.requests == []


def test_unreachable_server(run, closed_port):
    result = run("--url", f"http://127.0.0.1:{closed_port}", "--api-key", "k", "models", "list")
    assert result.exit_code == 1
    assert f"http://127.0.0.1:{closed_port}" in result.stderr


def test_datasets_create_and_list(server, run, tmp_path):
    data = tmp_path / "iris.csv"
    data.write_text("a,b\n1,2\n")
    server.route("POST", "/datasets", 201, {"id": "d-1", "status": "READY"})
    server.route("GET", "/datasets", 200, [{"id": "d-1"}])

    result = run("--url", server.url, "--api-key", "k", "datasets", "create", "iris", "TABULAR_CLASSIFICATION",
                 "--file", str(data), "--target-column", "b")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {"id": "d-1", "status": "READY"}
    assert result.stdout.startswith('{\n  "id"')  # indent 2
    assert server.last("POST", "/datasets").json()["target_column"] == "b"

    result = run("--url", server.url, "--api-key", "k", "datasets", "list", "--task", "TABULAR_CLASSIFICATION")
    assert json.loads(result.stdout) == [{"id": "d-1"}]
    assert server.last().query == {"task": ["TABULAR_CLASSIFICATION"]}


def test_datasets_create_needs_exactly_one_source(server, run):
    result = run("--url", server.url, "--api-key", "k", "datasets", "create", "iris", "TABULAR_CLASSIFICATION")
    assert result.exit_code == 2
    assert "exactly one of --file and --url" in result.stderr
    assert server.requests == []


def test_models_create_with_dependencies_and_public(server, run, tmp_path):
    source = tmp_path / "m.py"
    source.write_text("class LogReg: pass\n")
    server.route("POST", "/models", 201, MODEL)
    result = run("--url", server.url, "--api-key", "k", "models", "create", "logreg", "TABULAR_CLASSIFICATION",
                 str(source), "LogReg", "--dependency", "numpy==2.1.0", "--dependency", "scikit-learn==1.5.2",
                 "--public")
    assert result.exit_code == 0, result.stderr
    body = server.last().json()
    assert body["dependencies"] == {"numpy": "2.1.0", "scikit-learn": "1.5.2"}
    assert body["access_right"] == "PUBLIC"


def test_models_download_and_delete(server, run, tmp_path):
    server.route("GET", "/models/m-1", 200, MODEL)
    server.route("GET", "/models/m-1/file", 200, "class LogReg: pass\n", {"Content-Type": "text/x-python"})
    server.route("DELETE", "/models/m-1", 200, MODEL)
    out = tmp_path / "out.py"
    result = run("--url", server.url, "--api-key", "k", "models", "download", "m-1", str(out))
    assert result.exit_code == 0, result.stderr
    assert out.read_text() == "class LogReg: pass\n"
    assert json.loads(result.stdout) == MODEL
    assert run("--url", server.url, "--api-key", "k", "models", "delete", "m-1").exit_code == 0
    assert server.last().method == "DELETE"


def test_users_and_api_keys_commands(server, run):
    server.route("POST", "/users", 201, {**USER, "email": "dev@x"})
    server.route("POST", "/api-keys", 201, {"id": "k1", "name": "ci", "key": "kk_k1.s"})
    server.route("DELETE", "/api-keys/k1", 200, {"id": "k1", "revoked": True})
    args = ("--url", server.url, "--api-key", "k")
    result = run(*args, "users", "create", "dev@x", "model_developer", "--password", "secret1")
    assert result.exit_code == 0, result.stderr
    assert server.last().json() == {"email": "dev@x", "password": "secret1", "user_type": "MODEL_DEVELOPER"}
    assert json.loads(run(*args, "api-keys", "create", "--name", "ci").stdout)["key"] == "kk_k1.s"
    assert json.loads(run(*args, "api-keys", "revoke", "k1").stdout)["revoked"] is True


def test_local_up_without_platform_prints_hint(run, monkeypatch):
    real_import = builtins.__import__

    def no_platform(name, *args, **kwargs):
        if name.startswith("chalicelib"):
            raise ImportError("No module named 'chalicelib'")
        return real_import(name, *args, **kwargs)

    cli.load_plugins()  # `kilele local` (the platform's plugin) is there; the stack's imports fail
    monkeypatch.delitem(sys.modules, "chalicelib.local.stack", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_platform)
    result = run("local", "up")
    assert result.exit_code == 1
    assert LOCAL_STACK_HINT in result.stderr


def test_local_up_calls_stack_main(run, monkeypatch):
    import types

    calls = []
    fake_stack = types.ModuleType("chalicelib.local.stack")
    fake_stack.main = lambda **options: calls.append(options) or 0
    import chalicelib.local

    monkeypatch.setitem(sys.modules, "chalicelib.local.stack", fake_stack)
    monkeypatch.setattr(chalicelib.local, "stack", fake_stack, raising=False)
    result = run("local", "up", "--port", "8123", "--moto-port", "5123", "--data-dir", "/tmp/kilele-x", "--reset",
                 "--snapshot-seconds", "0.5")
    assert result.exit_code == 0, result.stderr
    assert calls == [{"port": 8123, "moto_port": 5123, "data_dir": "/tmp/kilele-x", "reset": True,
                      "snapshot_seconds": 0.5, "aws_endpoint_url": None, "dynamodb_endpoint_url": None}]


def test_main_is_the_entry_point():
    assert callable(cli_module.main)
