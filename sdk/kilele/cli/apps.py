"""``kilele apps …``: input type, latency SLO, default output, served version."""
from __future__ import annotations

import json
from typing import Any, Optional

import click

from kilele.cli.core import Context, cli, output, pass_ctx
from kilele.constants import InputType


def _json_or_text(value: str) -> Any:
    """A JSON value, or the text itself when it is not JSON (``default_pred`` -> ``"default_pred"``)."""
    try:
        return json.loads(value)
    except ValueError:
        return value


input_type_choice = click.Choice([t.value for t in InputType], case_sensitive=False)


@cli.group()
def apps() -> None:
    """Manage applications: input type, latency SLO, default output, served version."""


@apps.command("register")
@click.argument("name")
@click.option("--input-type", required=True, type=input_type_choice, help="Type of the queries.")
@click.option("--default-output", required=True, metavar="JSON",
              help="Answer when the model misses the SLO (JSON; other text is taken as a string).")
@click.option("--slo-micros", required=True, type=click.IntRange(min=1), help="Latency SLO in microseconds.")
@click.option("--top-n", type=click.IntRange(min=1), help="Keep only the N most probable classes.")
@click.option("--capture-percent", type=click.FloatRange(0, 100),
              help="Capture this share of its predict requests to S3 (default 0: off).")
@pass_ctx
def apps_register(obj: Context, name: str, input_type: str, default_output: str, slo_micros: int,
                  top_n: Optional[int], capture_percent: Optional[float]) -> None:
    """Register application NAME."""
    output(obj.client().register_application(name, input_type, _json_or_text(default_output), slo_micros,
                                             top_n=top_n, capture_percent=capture_percent))


@apps.command("update")
@click.argument("name")
@click.option("--input-type", type=input_type_choice, help="Type of the queries.")
@click.option("--default-output", metavar="JSON", help="Answer when the model misses the SLO.")
@click.option("--slo-micros", type=click.IntRange(min=1), help="Latency SLO in microseconds.")
@click.option("--top-n", type=click.IntRange(min=1), help="Keep only the N most probable classes.")
@pass_ctx
def apps_update(obj: Context, name: str, input_type: Optional[str], default_output: Optional[str],
                slo_micros: Optional[int], top_n: Optional[int]) -> None:
    """Change settings of application NAME (the others stay)."""
    default = _json_or_text(default_output) if default_output is not None else None
    if input_type is None and default is None and slo_micros is None and top_n is None:
        raise click.UsageError("nothing to update: give --input-type, --default-output, --slo-micros or --top-n")
    output(obj.client().update_application(name, input_type, default, slo_micros, top_n))


@apps.command("list")
@pass_ctx
def apps_list(obj: Context) -> None:
    """List your applications."""
    output(obj.client().get_applications())


@apps.command("get")
@click.argument("name")
@pass_ctx
def apps_get(obj: Context, name: str) -> None:
    """Show application NAME and the version it serves."""
    output(obj.client().get_application(name))


@apps.command("delete")
@click.argument("name")
@pass_ctx
def apps_delete(obj: Context, name: str) -> None:
    """Unregister application NAME (its inference jobs keep running)."""
    output(obj.client().delete_application(name))


@apps.command("set-version")
@click.argument("name")
@click.argument("version", type=click.IntRange(min=1))
@pass_ctx
def apps_set_version(obj: Context, name: str, version: int) -> None:
    """Make application NAME serve VERSION."""
    output(obj.client().set_model_version(name, version))


@apps.command("rollback")
@click.argument("name")
@pass_ctx
def apps_rollback(obj: Context, name: str) -> None:
    """Serve the version application NAME served before the last switch."""
    output(obj.client().rollback_application(name))


@apps.command("metrics")
@click.argument("name")
@click.option("--minutes", type=click.IntRange(min=1), default=60, show_default=True, help="Window to summarize.")
@pass_ctx
def apps_metrics(obj: Context, name: str, minutes: int) -> None:
    """Requests, errors, defaults and latency of application NAME."""
    output(obj.client().get_app_metrics(name, minutes))


@apps.command("capture")
@click.argument("name")
@click.argument("percent", type=click.FloatRange(0, 100), required=False)
@pass_ctx
def apps_capture(obj: Context, name: str, percent: Optional[float]) -> None:
    """Capture PERCENT (0-100; 0: off) of application NAME's predict requests to S3, in SageMaker
    Data Capture's layout; without PERCENT, show the setting and where the files are."""
    client = obj.client()
    if percent is not None:
        client.set_capture(name, percent)
    output(client.get_capture(name))


@apps.command("labels")
@click.argument("name")
@click.argument("labels_file", type=click.File("r"))
@pass_ctx
def apps_labels(obj: Context, name: str, labels_file: Any) -> None:
    """Send ground-truth labels of application NAME's answered queries: LABELS_FILE (- for stdin)
    holds JSON, {"<query id>": label, ...} or [{"query_id": ..., "label": ...}, ...]."""
    try:
        labels = json.load(labels_file)
    except ValueError as e:
        raise click.BadParameter(f"not JSON: {e}", param_hint="LABELS_FILE") from e
    if not isinstance(labels, (dict, list)):
        raise click.BadParameter("give a JSON object or list", param_hint="LABELS_FILE")
    output(obj.client().send_labels(name, labels))
