"""``kilele projects …`` and ``kilele stress-tests …`` (seed 002's stress tests on the platform).

Not to be confused with ``kilele stress run``, the engine run locally (the ``kilele_stress``
package's command group).
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
from typing import Any, Optional

import click

from kilele.cli.core import Context, cli, fail, follow_log, output, pass_ctx
from kilele.constants import StressTestJobStatus
from kilele.resources.stress_tests import CONFIG_PATH_KEYS, is_local_path
from kilele.stress import CustomImage, StressTestJob


@cli.group()
def projects() -> None:
    """Manage projects (where stress-test runs are filed)."""


@projects.command("create")
@click.argument("name")
@click.option("--description", help="A short blurb about the project.")
@pass_ctx
def projects_create(obj: Context, name: str, description: Optional[str]) -> None:
    """Create project NAME."""
    output(obj.client().create_project(name, description).to_dict())


@projects.command("list")
@pass_ctx
def projects_list(obj: Context) -> None:
    """List your projects."""
    output([p.to_dict() for p in obj.client().list_projects()])


@projects.command("show")
@click.argument("project_id")
@pass_ctx
def projects_show(obj: Context, project_id: str) -> None:
    """Show one project."""
    output(obj.client().get_project(project_id).to_dict())


@cli.group("stress-tests")
def stress_tests() -> None:
    """Run stress tests of models and data on the platform (seed 002)."""


def _read_config(path: str) -> dict[str, Any]:
    """The JSON config, its relative local paths made relative to the config file's folder."""
    with open(path) as f:
        try:
            config = json.load(f)
        except ValueError as e:
            raise click.BadParameter(f"{path} is not JSON: {e}", param_hint="--config") from e
    if not isinstance(config, dict):
        raise click.BadParameter(f"{path} must hold a JSON object", param_hint="--config")
    base = os.path.dirname(os.path.abspath(path))
    for section, key in CONFIG_PATH_KEYS:
        block = config.get(section)
        if isinstance(block, dict) and is_local_path(block.get(key)) and not os.path.isabs(block[key]):
            block[key] = os.path.join(base, block[key])
    return config


@stress_tests.command("start")
@click.option("--config", "config_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Test run config (JSON); local paths in it are relative to its folder and uploaded.")
@click.option("--project", "project_id", help="Project id (default: your 'default' project).")
@click.option("--ram-mb", "ram", type=click.IntRange(min=1), help="RAM request in MB (default 4000).")
@click.option("--cpu-millicores", "cpu", type=click.IntRange(min=1), help="CPU request in millicores (default 1500).")
@click.option("--managed-image", help="Name of a managed image to run on.")
@click.option("--custom-image", help="A Docker image to run on.")
@click.option("--pull-secret", help="Registry secret that pulls --custom-image.")
@pass_ctx
def stress_tests_start(obj: Context, config_path: str, project_id: Optional[str], ram: Optional[int],
                       cpu: Optional[int], managed_image: Optional[str], custom_image: Optional[str],
                       pull_secret: Optional[str]) -> None:
    """Start a stress test; prints the job."""
    if pull_secret and not custom_image:
        raise click.UsageError("--pull-secret goes with --custom-image")
    image = CustomImage(custom_image, pull_secret) if custom_image else None
    job = obj.client().start_stress_test(_read_config(config_path), project_id=project_id,
                                         rime_managed_image=managed_image, custom_image=image,
                                         ram_request_megabytes=ram, cpu_request_millicores=cpu)
    output(job.info)


@stress_tests.command("list")
@click.option("--status", "statuses", multiple=True, type=click.Choice([s.value for s in StressTestJobStatus]),
              help="Only jobs of this status; repeat for several.")
@click.option("--project", "project_id", help="Only jobs of this project.")
@pass_ctx
def stress_tests_list(obj: Context, statuses: tuple[str, ...], project_id: Optional[str]) -> None:
    """List your stress-test jobs of the last two days."""
    output([job.info for job in obj.client().list_stress_test_jobs(list(statuses) or None, project_id)])


@stress_tests.command("get")
@click.argument("job_id")
@pass_ctx
def stress_tests_get(obj: Context, job_id: str) -> None:
    """Show a job with every field."""
    output(obj.client().get_stress_test_job(job_id).info)


@stress_tests.command("status")
@click.argument("job_id")
@click.option("--wait", is_flag=True, help="Wait until the job is SUCCEEDED or FAILING.")
@click.option("--verbose", is_flag=True, help="Print progress (and the logs at the end) on stderr.")
@click.option("--poll", type=click.FloatRange(min=0.0), default=5.0, show_default=True,
              help="Seconds between polls while waiting.")
@pass_ctx
def stress_tests_status(obj: Context, job_id: str, wait: bool, verbose: bool, poll: float) -> None:
    """Show a job's status; exits 1 when it is FAILING."""
    job = StressTestJob(obj.client(), job_id)
    with contextlib.redirect_stdout(sys.stderr):  # the progress lines; stdout keeps the JSON
        status = job.get_status(verbose=verbose, wait_until_finish=wait, poll_rate_sec=poll)
    output(status)
    if status["status"] == StressTestJobStatus.FAILING.value:
        click.echo(f"error: stress test {job_id} is FAILING: {job.info.get('error') or 'no reason given'}", err=True)
        raise SystemExit(1)


@stress_tests.command("results")
@click.argument("job_id")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=".", show_default=True,
              help="Folder to write test_cases and test_run into.")
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet"]), default="csv", show_default=True)
@click.option("--version", "version", help="Result format to pin (default: the latest).")
@pass_ctx
def stress_tests_results(obj: Context, job_id: str, out_dir: str, fmt: str, version: Optional[str]) -> None:
    """Write a SUCCEEDED job's test cases and test-run summary as CSV or Parquet."""
    job = StressTestJob(obj.client(), job_id)
    try:
        frames = {"test_cases": job.get_test_cases_result(version), "test_run": job.get_test_run_result(version)}
    except ImportError as e:
        fail(str(e))
    os.makedirs(out_dir, exist_ok=True)
    written: dict[str, Any] = {}
    for name, frame in frames.items():
        path = os.path.join(out_dir, f"{name}.{fmt}")
        if fmt == "csv":
            frame.to_csv(path, index=False)
        else:
            try:
                frame.to_parquet(path, index=False)
            except ImportError as e:
                fail(f"{e} (or use --format csv)")
        written[name] = {"path": path, "rows": len(frame), "columns": len(frame.columns)}
    output(written)


@stress_tests.command("report")
@click.argument("job_id")
@click.argument("path", type=click.Path())
@pass_ctx
def stress_tests_report(obj: Context, job_id: str, path: str) -> None:
    """Download a SUCCEEDED job's HTML report to PATH (a file, or a folder)."""
    output({"job_id": job_id, "path": StressTestJob(obj.client(), job_id).get_report(path)})


@stress_tests.command("logs")
@click.argument("job_id")
@click.option("--raw", is_flag=True, help="Print the log text instead of JSON.")
@click.option("--follow", "-f", is_flag=True, help="Print the log text as it grows, until the job ends.")
@click.option("--poll", default=2.0, show_default=True, type=click.FloatRange(min=0.1), help="Seconds between polls.")
@pass_ctx
def stress_tests_logs(obj: Context, job_id: str, raw: bool, follow: bool, poll: float) -> None:
    """Show the engine's logs of a job (--follow: the text as it grows)."""
    job = StressTestJob(obj.client(), job_id)
    if follow:
        def fetch() -> tuple[str, bool]:
            ended = job.refresh().get("status") in ("SUCCEEDED", "FAILING")
            return job.get_logs(), ended  # read after the status: the last text is in

        follow_log(fetch, poll)
        return
    logs = job.get_logs()
    if raw:
        click.echo(logs, nl=not logs.endswith("\n"))
    else:
        output({"job_id": job_id, "logs": logs})
