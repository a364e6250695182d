"""``kilele ct schedule|schedule-show|unschedule``: a CT instance's schedule and data source (issue 12)."""
from __future__ import annotations

from typing import Optional

import click

from kilele.cli.continuous_tests import ct
from kilele.cli.core import Context, output, pass_ctx
from kilele.continuous import CTInstance


@ct.command("schedule")
@click.argument("ct_instance_id")
@click.option("--expression", required=True, help='When to run: "rate(1 hour)" or "cron(0 6 * * ? *)" (UTC).')
@click.option("--app", help="Test this app's captured traffic (labels sent so far joined in).")
@click.option("--s3-prefix", help="Test the new files under this prefix of your uploads (s3://...).")
@pass_ctx
def ct_schedule(obj: Context, ct_instance_id: str, expression: str, app: Optional[str],
                s3_prefix: Optional[str]) -> None:
    """Run an incremental continuous test of CT_INSTANCE_ID on a schedule over the data that arrived since the last run."""
    if (app is None) == (s3_prefix is None):
        raise click.UsageError("give one data source: --app NAME or --s3-prefix s3://...")
    source = {"app": app} if app is not None else {"s3_prefix": s3_prefix}
    output(CTInstance(obj.client(), ct_instance_id).set_schedule(expression, source))


@ct.command("schedule-show")
@click.argument("ct_instance_id")
@pass_ctx
def ct_schedule_show(obj: Context, ct_instance_id: str) -> None:
    """CT_INSTANCE_ID's schedule, data source, watermark and recent runs."""
    output(CTInstance(obj.client(), ct_instance_id).get_schedule())


@ct.command("unschedule")
@click.argument("ct_instance_id")
@pass_ctx
def ct_unschedule(obj: Context, ct_instance_id: str) -> None:
    """Remove CT_INSTANCE_ID's schedule."""
    CTInstance(obj.client(), ct_instance_id).remove_schedule()
    output({"ct_instance_id": ct_instance_id, "removed": True})
