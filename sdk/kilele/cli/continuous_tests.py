"""``kilele ct …``: continuous tests (seed 002's CT instances) on the platform.

A CT job is a stress-test job: follow it with ``kilele stress-tests status|logs|results|report``.
"""
from __future__ import annotations

import json
import os
from typing import Any, Optional

import click

from kilele.cli.core import Context, cli, output, pass_ctx
from kilele.cli.stress_tests import _read_config
from kilele.continuous import CTInstance
from kilele.stress import CustomImage


@cli.group("ct")
def ct() -> None:
    """Continuous tests: CT instances, their jobs over time bins, monitors and breaches."""


def _job_options(f):
    f = click.option("--ram-mb", "ram", type=click.IntRange(min=1), help="RAM request in MB (default 4000).")(f)
    f = click.option("--cpu-millicores", "cpu", type=click.IntRange(min=1),
                     help="CPU request in millicores (default 1500).")(f)
    f = click.option("--managed-image", help="Name of a managed image to run on.")(f)
    return click.option("--custom-image", help="A Docker image to run on.")(f)


@ct.command("start")
@click.option("--config", "config_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Test run config (JSON) with continuous_info {timestamp_col, bin_size: hour|day}; local paths "
                   "are relative to its folder and uploaded.")
@click.option("--project", "project_id", help="Project id (default: your 'default' project).")
@_job_options
@pass_ctx
def ct_start(obj: Context, config_path: str, project_id: Optional[str], ram: Optional[int], cpu: Optional[int],
             managed_image: Optional[str], custom_image: Optional[str]) -> None:
    """Stress-test a reference, make a CT instance and test every bin of the evaluation data; prints the job."""
    job = obj.client().start_continuous_test_from_reference(
        _read_config(config_path), project_id=project_id, rime_managed_image=managed_image,
        custom_image=CustomImage(custom_image) if custom_image else None, ram_request_megabytes=ram,
        cpu_request_millicores=cpu)
    output(job.info)


@ct.command("test")
@click.argument("ct_instance_id")
@click.option("--eval", "eval_path", required=True, help="New data: a local CSV/Parquet file (uploaded) or a URI.")
@click.option("--timestamp-col", required=True, help="The data's timestamp column.")
@_job_options
@pass_ctx
def ct_test(obj: Context, ct_instance_id: str, eval_path: str, timestamp_col: str, ram: Optional[int],
            cpu: Optional[int], managed_image: Optional[str], custom_image: Optional[str]) -> None:
    """Test the bins of new data against CT_INSTANCE_ID's reference (incremental); prints the job."""
    if "://" not in eval_path:
        eval_path = os.path.abspath(eval_path)
    job = CTInstance(obj.client(), ct_instance_id).start_incremental_continuous_test(
        {"eval_path": eval_path, "timestamp_col": timestamp_col}, rime_managed_image=managed_image,
        custom_image=CustomImage(custom_image) if custom_image else None, ram_request_megabytes=ram,
        cpu_request_millicores=cpu)
    output(job.info)


@ct.command("create")
@click.argument("name")
@click.option("--bin-size", type=click.Choice(["hour", "day"]), required=True)
@click.option("--run", "ot_test_run_id", required=True, help="A SUCCEEDED stress test's test_run_id.")
@click.option("--project", "project_id", required=True, help="The project the run is filed under.")
@pass_ctx
def ct_create(obj: Context, name: str, bin_size: str, ot_test_run_id: str, project_id: str) -> None:
    """Create an inactive CT instance NAME on a stress test's run."""
    seconds = {"hour": 3600, "day": 86400}[bin_size]
    output(obj.client().create_ct_instance(name, seconds, ot_test_run_id, project_id).info)


@ct.command("show")
@click.argument("ct_instance_id")
@pass_ctx
def ct_show(obj: Context, ct_instance_id: str) -> None:
    """Show a CT instance (with its monitors)."""
    output(obj.client().get_ct_instance(ct_instance_id).info)


@ct.command("active")
@click.argument("project_id")
@pass_ctx
def ct_active(obj: Context, project_id: str) -> None:
    """Show a project's active CT instance (exits 1 when it has none)."""
    output(obj.client().get_active_ct_instance_for_project(project_id).info)


@ct.command("list")
@click.argument("project_id")
@pass_ctx
def ct_list(obj: Context, project_id: str) -> None:
    """List a project's CT instances."""
    output([i.info for i in obj.client().list_ct_instances(project_id)])


@ct.command("activate")
@click.argument("ct_instance_id")
@pass_ctx
def ct_activate(obj: Context, ct_instance_id: str) -> None:
    """Make CT_INSTANCE_ID its project's active instance."""
    instance = CTInstance(obj.client(), ct_instance_id)
    instance.activate_ct_instance()
    output(instance.info)


@ct.command("deactivate")
@click.argument("ct_instance_id")
@pass_ctx
def ct_deactivate(obj: Context, ct_instance_id: str) -> None:
    """Make CT_INSTANCE_ID inactive."""
    instance = CTInstance(obj.client(), ct_instance_id)
    instance.deactivate_ct_instance()
    output(instance.info)


@ct.command("bins")
@click.argument("ct_instance_id")
@pass_ctx
def ct_bins(obj: Context, ct_instance_id: str) -> None:
    """Every bin's latest summary, oldest first."""
    output(CTInstance(obj.client(), ct_instance_id).list_bins())


@ct.command("breaches")
@click.argument("ct_instance_id")
@pass_ctx
def ct_breaches(obj: Context, ct_instance_id: str) -> None:
    """The monitors' breaches, newest bin first."""
    output(CTInstance(obj.client(), ct_instance_id).list_breaches())


@ct.command("monitors")
@click.argument("ct_instance_id")
@pass_ctx
def ct_monitors(obj: Context, ct_instance_id: str) -> None:
    """List the monitors."""
    output(CTInstance(obj.client(), ct_instance_id).list_monitors())


@ct.command("monitor")
@click.argument("ct_instance_id")
@click.argument("monitor_id")
@click.option("--set", "changes", multiple=True, metavar="FIELD=VALUE",
              help="A field to change (bound=0.5, window_bins=3, aggregation=mean, enabled=false); repeat.")
@pass_ctx
def ct_monitor(obj: Context, ct_instance_id: str, monitor_id: str, changes: tuple[str, ...]) -> None:
    """Change fields of monitor MONITOR_ID (values are read as JSON, else as text)."""
    fields: dict[str, Any] = {}
    for change in changes:
        name, sep, value = change.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{change!r} is not FIELD=VALUE", param_hint="--set")
        try:
            fields[name] = json.loads(value)
        except ValueError:
            fields[name] = value
    if not fields:
        raise click.UsageError("give at least one --set FIELD=VALUE")
    output(CTInstance(obj.client(), ct_instance_id).update_monitor(monitor_id, **fields))
