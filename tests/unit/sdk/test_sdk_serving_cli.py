"""``kilele inference-jobs``, ``apps``, ``predict`` and ``bundle`` through click's CliRunner,
against the fake API (``bundle serve`` runs a stand-in ``kilele-serve`` script)."""
from __future__ import annotations

import io
import json
import os
import stat
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from kilele.cli import bundles as cli_module  # the module of `kilele bundle`
from kilele.cli import cli

APP = {"name": "iris_app", "input_type": "floats", "default_output": "default_pred", "slo_micros": 100000,
       "top_n": None, "version": None, "previous_version": None, "datetime_created": "2026-11-23T10:00:00+00:00"}
JOB = {"id": "ij-1", "app": "iris_app", "app_version": 3, "status": "RUNNING", "workers": []}
MANIFEST = {"format": 1, "app": "iris_app", "app_version": 3, "task": "TABULAR_CLASSIFICATION", "members": [],
            "requirements": []}


@pytest.fixture
def run(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in ("KILELE_URL", "KILELE_API_KEY", "KILELE_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    runner = CliRunner()

    def invoke(server, *args: str):
        return runner.invoke(cli, ["--url", server.url, "--api-key", "kk_a.b", *args], catch_exceptions=False)

    return invoke


# ---------------------------------------------------------------------- inference jobs


def test_inference_jobs_create_with_version_and_gpus(server, run):
    server.route("POST", "/inference-jobs", 201, {"id": "ij-1", "app": "iris_app", "app_version": 2})
    result = run(server, "inference-jobs", "create", "iris_app", "--version", "2", "--gpus", "1")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["id"] == "ij-1"
    request = server.last("POST", "/inference-jobs")
    assert request.headers["x-api-key"] == "kk_a.b"
    assert request.json() == {"app": "iris_app", "app_version": 2, "budget": {"GPU_COUNT": 1}}


def test_inference_jobs_create_minimal_and_conflict(server, run):
    server.route("POST", "/inference-jobs", 409, {"error": {"code": "conflict", "message": "train job is RUNNING"}})
    result = run(server, "inference-jobs", "create", "iris_app")
    assert result.exit_code == 1
    assert "409 conflict: train job is RUNNING" in result.stderr and result.stdout == ""
    assert server.last().json() == {"app": "iris_app", "app_version": -1, "budget": {}}


def test_inference_jobs_list_of_user_and_of_app(server, run):
    server.route("GET", "/inference-jobs", 200, [JOB])
    server.route("GET", "/inference-jobs/iris_app", 200, [JOB, JOB])
    assert json.loads(run(server, "inference-jobs", "list").stdout) == [JOB]
    assert server.last().query == {}
    assert len(json.loads(run(server, "inference-jobs", "list", "--app", "iris_app").stdout)) == 2


def test_inference_jobs_get_and_stop(server, run):
    server.route("GET", "/inference-jobs/iris_app/-1", 200, JOB)
    server.route("POST", "/inference-jobs/iris_app/3/stop", 200, {**JOB, "status": "STOPPED"})
    assert json.loads(run(server, "inference-jobs", "get", "iris_app").stdout) == JOB
    result = run(server, "inference-jobs", "stop", "iris_app", "--version", "3")
    assert result.exit_code == 0 and json.loads(result.stdout)["status"] == "STOPPED"


def test_inference_jobs_get_says_the_endpoints_restarts_and_an_errored_jobs_reason(server, run):
    last = {"reason": "the inference server exited with code -9: ...", "at": "2026-12-01T10:00:05+00:00"}
    worker = {"service_id": "kilele-local-ij", "status": "RUNNING", "replicas": 1, "trial": {"id": "t1"},
              "restarts": 1, "last_restart": last}
    server.route("GET", "/inference-jobs/iris_app/-1", 200, {**JOB, "workers": [worker, worker]})
    result = run(server, "inference-jobs", "get", "iris_app")
    assert result.exit_code == 0 and json.loads(result.stdout)["workers"][0]["restarts"] == 1
    assert result.stderr == ("endpoint restarted 1 time(s) after its server died; last at 2026-12-01T10:00:05+00:00: "
                             "the inference server exited with code -9: ...\n")
    errored = {**JOB, "status": "ERRORED", "error": "the inference server died again after 3 restart(s) ...",
               "workers": [{**worker, "status": "ERRORED", "restarts": 3}]}
    server.route("GET", "/inference-jobs/iris_app/2/latest", 200, errored)
    result = run(server, "inference-jobs", "get", "iris_app", "--version", "2", "--any-status")
    assert result.exit_code == 0 and server.paths()[-1] == ("GET", "/inference-jobs/iris_app/2/latest")
    assert "endpoint restarted 3 time(s)" in result.stderr
    assert "inference job ERRORED: the inference server died again after 3 restart(s)" in result.stderr
    quiet = {**JOB, "workers": [{**worker, "restarts": 0, "last_restart": None}]}
    server.route("GET", "/inference-jobs/iris_app/-1", 200, quiet)
    assert run(server, "inference-jobs", "get", "iris_app").stderr == ""


def test_inference_jobs_get_not_found(server, run):
    result = run(server, "inference-jobs", "get", "nope", "--version", "2")
    assert result.exit_code == 1 and "404" in result.stderr
    assert server.paths() == [("GET", "/inference-jobs/nope/2")]


# ---------------------------------------------------------------------- apps


def test_apps_register_with_json_default_output(server, run):
    server.route("POST", "/apps", 201, APP)
    result = run(server, "apps", "register", "iris_app", "--input-type", "floats", "--default-output", '{"label": -1}',
                 "--slo-micros", "100000", "--top-n", "2")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == APP
    assert server.last().json() == {"name": "iris_app", "input_type": "floats", "default_output": {"label": -1},
                                    "slo_micros": 100000, "top_n": 2}


def test_apps_register_plain_text_default_output_is_a_string(server, run):
    server.route("POST", "/apps", 201, APP)
    result = run(server, "apps", "register", "iris_app", "--input-type", "FLOATS", "--default-output", "default_pred",
                 "--slo-micros", "100000")
    assert result.exit_code == 0, result.stderr
    assert server.last().json() == {"name": "iris_app", "input_type": "floats", "default_output": "default_pred",
                                    "slo_micros": 100000}


def test_apps_register_bad_input_type_and_missing_slo_are_usage_errors(server, run):
    result = run(server, "apps", "register", "a", "--input-type", "tensors", "--default-output", "0",
                 "--slo-micros", "1000")
    assert result.exit_code == 2 and "tensors" in result.stderr
    result = run(server, "apps", "register", "a", "--input-type", "ints", "--default-output", "0")
    assert result.exit_code == 2 and "--slo-micros" in result.stderr
    assert server.requests == []


def test_apps_update(server, run):
    server.route("PATCH", "/apps/iris_app", 200, APP)
    result = run(server, "apps", "update", "iris_app", "--slo-micros", "20000", "--default-output", "0")
    assert result.exit_code == 0, result.stderr
    assert server.last().json() == {"slo_micros": 20000, "default_output": 0}
    result = run(server, "apps", "update", "iris_app")
    assert result.exit_code == 2 and "nothing to update" in result.stderr


def test_apps_list_get_delete(server, run):
    server.route("GET", "/apps", 200, [APP])
    server.route("GET", "/apps/iris_app", 200, {**APP, "serving_version": 3})
    server.route("DELETE", "/apps/iris_app", 200, APP)
    assert json.loads(run(server, "apps", "list").stdout) == [APP]
    assert json.loads(run(server, "apps", "get", "iris_app").stdout)["serving_version"] == 3
    assert json.loads(run(server, "apps", "delete", "iris_app").stdout) == APP
    assert server.paths() == [("GET", "/apps"), ("GET", "/apps/iris_app"), ("DELETE", "/apps/iris_app")]


def test_apps_set_version_and_rollback(server, run):
    server.route("POST", "/apps/iris_app/version", 200, {**APP, "version": 2})
    server.route("POST", "/apps/iris_app/rollback", 409, {"error": {"code": "conflict", "message": "no previous version"}})
    result = run(server, "apps", "set-version", "iris_app", "2")
    assert result.exit_code == 0 and json.loads(result.stdout)["version"] == 2
    assert server.last().json() == {"version": 2}
    result = run(server, "apps", "rollback", "iris_app")
    assert result.exit_code == 1 and "no previous version" in result.stderr
    result = run(server, "apps", "set-version", "iris_app", "0")
    assert result.exit_code == 2
    assert len(server.requests) == 2


def test_apps_metrics(server, run):
    metrics = [{"name": "kilele.requests", "count": 1, "meanRate": 0.01}]
    server.route("GET", "/apps/iris_app/metrics", 200, metrics)
    assert json.loads(run(server, "apps", "metrics", "iris_app").stdout) == metrics
    assert server.last().query == {"minutes": ["60"]}
    run(server, "apps", "metrics", "iris_app", "--minutes", "5")
    assert server.last().query == {"minutes": ["5"]}


# ---------------------------------------------------------------------- predict


@pytest.mark.parametrize("option, value, answer, printed", [
    ("--query", "[5.1, 3.5]", {"prediction": 1}, 1),
    ("--queries", "[[5.1], [3.5]]", {"predictions": [1, 0]}, [1, 0]),
    ("--input", "[6.5, 3.0]", {"query_id": 1, "output": 2, "default": False}, {"query_id": 1, "output": 2, "default": False}),
    ("--input-batch", "[[6.5], [3.0]]", {"batch_predictions": [{"output": 2}]}, [{"output": 2}]),
    ("--instances", '[{"t": [1.0]}]', {"predictions": [{"a": 0.9}]}, [{"a": 0.9}]),
])
def test_predict_payload_styles(server, run, option, value, answer, printed):
    server.route("POST", "/apps/iris_app/predict", 200, answer)
    result = run(server, "predict", "iris_app", option, value)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == printed
    assert server.last().json() == {option.lstrip("-").replace("-", "_"): json.loads(value)}


@pytest.mark.parametrize("args, message", [
    ([], "exactly one"),
    (["--query", "[1]", "--input", "[1]"], "exactly one"),
    (["--query", "not json"], "not JSON"),
    (["--queries", "{}"], "JSON list"),
])
def test_predict_usage_errors_call_nothing(server, run, args, message):
    result = run(server, "predict", "iris_app", *args)
    assert result.exit_code == 2 and message in result.stderr
    assert server.requests == []


def test_predict_api_error(server, run):
    server.route("POST", "/apps/iris_app/predict", 400,
                 {"error": {"code": "invalid_input", "message": "query 0 has 'a'; input type floats takes only numbers"}})
    result = run(server, "predict", "iris_app", "--query", '["a"]')
    assert result.exit_code == 1 and "takes only numbers" in result.stderr


# ---------------------------------------------------------------------- bundles


def bundle_file(path: Path, with_manifest: bool = True, extra: dict[str, bytes] | None = None) -> Path:
    files = {"requirements.txt": b"scikit-learn==1.5.2\n", "README.md": b"# bundle\n",
             "members/t-1/model.py": b"class M: pass\n", **(extra or {})}
    if with_manifest:
        files["kilele-bundle.json"] = json.dumps(MANIFEST).encode()
    with tarfile.open(path, "w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_bundle_export(server, run, tmp_path):
    data = bundle_file(tmp_path / "src.tar.gz").read_bytes()
    server.route("POST", "/bundles", 201, {"url": f"{server.url}/storage/b.tar.gz?sig=1", "manifest": MANIFEST})
    server.route("GET", "/storage/b.tar.gz", 200, data)
    out = tmp_path / "out.tar.gz"
    result = run(server, "bundle", "export", "iris_app", "--version", "3", "--trial", "t-1", "--out", str(out))
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {"path": str(out), "manifest": MANIFEST}
    assert out.read_bytes() == data
    assert server.last("POST", "/bundles").json() == {"app": "iris_app", "app_version": 3, "trial_id": "t-1"}
    assert "x-api-key" not in server.last("GET", "/storage/b.tar.gz").headers


def test_bundle_export_api_error(server, run, tmp_path):
    server.route("POST", "/bundles", 422, {"error": {"code": "unprocessable", "message": "no completed trial"}})
    result = run(server, "bundle", "export", "iris_app", "--out", str(tmp_path / "b.tar.gz"))
    assert result.exit_code == 1 and "no completed trial" in result.stderr


@pytest.fixture
def fake_serve(tmp_path, monkeypatch):
    """A ``kilele-serve`` on PATH that records its arguments and the bundle it was given."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "record.json"
    script = bin_dir / "kilele-serve"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "args = sys.argv[1:]\n"
        "root = args[args.index('--bundle') + 1]\n"
        "files = sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)\n"
        f"json.dump({{'args': args, 'files': files}}, open({str(record)!r}, 'w'))\n"
        "sys.exit(int(os.environ.get('FAKE_SERVE_EXIT', '0')))\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", None)  # take TMPDIR
    return record


def test_bundle_serve_unpacks_runs_kilele_serve_and_cleans_up(server, run, tmp_path, fake_serve):
    path = bundle_file(tmp_path / "b.tar.gz")
    result = run(server, "bundle", "serve", str(path), "--port", "9123")
    assert result.exit_code == 0, result.stderr
    record = json.loads(fake_serve.read_text())
    args = record["args"]
    assert args[0] == "--bundle" and args[2:] == ["--host", "127.0.0.1", "--port", "9123"]
    assert record["files"] == ["README.md", "kilele-bundle.json", "members/t-1/model.py", "requirements.txt"]
    assert not Path(args[1]).exists()  # the unpacked copy is removed afterwards
    assert server.requests == []  # serving needs no API


def test_bundle_serve_passes_the_server_exit_code(server, run, tmp_path, fake_serve, monkeypatch):
    monkeypatch.setenv("FAKE_SERVE_EXIT", "3")
    result = run(server, "bundle", "serve", str(bundle_file(tmp_path / "b.tar.gz")))
    assert result.exit_code == 3
    assert json.loads(fake_serve.read_text())["args"][-1] == "8080"


def test_bundle_serve_without_kilele_serve_says_how_to_install(server, run, tmp_path, monkeypatch):
    monkeypatch.setattr(cli_module, "_find_server", lambda: None)
    result = run(server, "bundle", "serve", str(bundle_file(tmp_path / "b.tar.gz")))
    assert result.exit_code == 1
    assert "kilele-serve is not installed" in result.stderr
    assert "pip install -r requirements.txt kilele-inference" in result.stderr


def test_bundle_serve_refuses_a_file_that_is_not_a_bundle(server, run, tmp_path, fake_serve):
    not_gz = tmp_path / "x.tar.gz"
    not_gz.write_bytes(b"hello")
    result = run(server, "bundle", "serve", str(not_gz))
    assert result.exit_code == 1 and "not a bundle" in result.stderr
    result = run(server, "bundle", "serve", str(bundle_file(tmp_path / "y.tar.gz", with_manifest=False)))
    assert result.exit_code == 1 and "no kilele-bundle.json" in result.stderr
    assert not fake_serve.exists()


def test_bundle_serve_refuses_paths_that_escape(server, run, tmp_path, fake_serve):
    path = bundle_file(tmp_path / "evil.tar.gz", extra={"../escaped.txt": b"x"})
    result = run(server, "bundle", "serve", str(path))
    assert result.exit_code == 1 and "could not unpack" in result.stderr
    assert not fake_serve.exists()
    assert not (tmp_path / "tmp" / "escaped.txt").exists() and not (tmp_path / "escaped.txt").exists()
    assert list((tmp_path / "tmp").iterdir()) == []  # the temporary directory is gone too


def test_inference_jobs_cleanup_prints_what_it_deleted_and_fails_if_some_could_not_be(server, run):
    server.route("POST", "/jobs/cleanup-endpoints", 200, {"deleted": ["kilele-prod-a"], "failed": [], "kept": []})
    result = run(server, "inference-jobs", "cleanup")
    assert result.exit_code == 0 and json.loads(result.stdout)["deleted"] == ["kilele-prod-a"]
    server.route("POST", "/jobs/cleanup-endpoints", 200,
                 {"deleted": [], "failed": [{"name": "kilele-prod-b", "error": "AccessDenied"}], "kept": []})
    assert run(server, "inference-jobs", "cleanup").exit_code == 1
