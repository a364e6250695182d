"""``kilele events list [--follow]``: job state changes and monitor breaches (issue 12)."""
from __future__ import annotations

import json
from datetime import datetime

import click

from kilele.cli.core import Context, cli, output, pass_ctx
from kilele.resources.events import EVENT_KINDS


@cli.group("events")
def events() -> None:
    """Read the events the platform published (admins: everyone's; others: their own)."""


@events.command("list")
@click.option("--kind", type=click.Choice(EVENT_KINDS), help="Only events about this kind of record.")
@click.option("--id", "record_id", help="Only events about this record (a job id, an image name).")
@click.option("--status", help="Only events whose new status is this.")
@click.option("--owner-id", help="Only this user's events (admins).")
@click.option("--project-id")
@click.option("--app")
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"]),
              help="Only events at or after this UTC time.")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True, help="Events per page.")
@click.option("--page-token", help="Start after the page that gave this token.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events, one JSON line each, until Ctrl-C.")
@click.option("--poll", type=click.FloatRange(0.1, 3600), default=2.0, show_default=True,
              help="With --follow: seconds between polls.")
@pass_ctx
def list_events(obj: Context, kind: str, record_id: str, status: str, owner_id: str, project_id: str, app: str,
                since: datetime, limit: int, page_token: str, follow: bool, poll: float) -> None:
    """A page of events, oldest first, as JSON; with --follow, every event and then new ones as
    they come, one JSON object per line."""
    filters = {"kind": kind, "id": record_id, "status": status, "owner_id": owner_id, "project_id": project_id,
               "app": app, "since": since, "limit": limit, "page_token": page_token}
    client = obj.client()
    if not follow:
        output(client.list_events(**filters))
        return
    try:
        for event in client.follow_events(poll_rate_sec=poll, **filters):
            click.echo(json.dumps(event, sort_keys=True), nl=True)
    except KeyboardInterrupt:
        pass
