"""``kilele inference-jobs …`` and ``kilele predict``."""
from __future__ import annotations

import json
from typing import Any, Optional

import click

from kilele.cli.core import Context, cli, output, pass_ctx, version_option
from kilele.constants import InferenceBudgetOption


@cli.group("inference-jobs")
def inference_jobs() -> None:
    """Manage inference jobs (the best trials of a train job, served as one ensemble)."""


@inference_jobs.command("create")
@click.argument("app")
@version_option
@click.option("--gpus", type=click.IntRange(min=0), help="GPUs for the endpoint (GPU_COUNT; default 0).")
@pass_ctx
def inference_jobs_create(obj: Context, app: str, app_version: int, gpus: Optional[int]) -> None:
    """Serve the best trials of the STOPPED train job of APP."""
    budget = {InferenceBudgetOption.GPU_COUNT: gpus} if gpus is not None else None
    output(obj.client().create_inference_job(app, app_version, budget))


@inference_jobs.command("list")
@click.option("--app", help="Only the inference jobs of this app.")
@pass_ctx
def inference_jobs_list(obj: Context, app: Optional[str]) -> None:
    """List your inference jobs."""
    client = obj.client()
    output(client.get_inference_jobs_of_app(app) if app else client.get_inference_jobs_by_user(None))


@inference_jobs.command("get")
@click.argument("app")
@version_option
@click.option("--any-status", is_flag=True,
              help="The newest inference job whatever its status (seed 000's get_inference_job), e.g. an ERRORED one.")
@pass_ctx
def inference_jobs_get(obj: Context, app: str, app_version: int, any_status: bool) -> None:
    """Show the running inference job of APP with its workers. When its endpoint's server was
    restarted after it died, stderr says how often, when last and why (also in each worker's
    ``restarts`` and ``last_restart``); an ERRORED job's reason too."""
    client = obj.client()
    get = client.get_inference_job if any_status else client.get_running_inference_job
    job = get(app, app_version)
    output(job)
    _say_restarts(job)


def _say_restarts(job: dict[str, Any]) -> None:
    # Every worker is served by the job's one endpoint: its first worker speaks for all.
    worker = next(iter(job.get("workers") or []), {})
    restarts, last = worker.get("restarts"), worker.get("last_restart") or {}
    if restarts:
        click.echo(f"endpoint restarted {restarts} time(s) after its server died; last at {last.get('at')}: "
                   f"{last.get('reason')}", err=True)
    if job.get("status") == "ERRORED":
        click.echo(f"inference job ERRORED: {job.get('error') or 'no reason given'}", err=True)


@inference_jobs.command("stop")
@click.argument("app")
@version_option
@pass_ctx
def inference_jobs_stop(obj: Context, app: str, app_version: int) -> None:
    """Stop the running inference job of APP."""
    output(obj.client().stop_inference_job(app, app_version))


@inference_jobs.command("cleanup")
@pass_ctx
def inference_jobs_cleanup(obj: Context) -> None:
    """Admins: delete endpoints no live inference job serves (left by failures); exits 1 if some
    could not be deleted."""
    result = obj.client().cleanup_inference_jobs()
    output(result)
    if result.get("failed"):
        raise SystemExit(1)


def _json_value(value: Optional[str], option: str) -> Any:
    try:
        return json.loads(value)  # type: ignore[arg-type]
    except ValueError as e:
        raise click.BadParameter(f"not JSON ({e}); quote strings, e.g. '\"text\"'", param_hint=option) from None


@cli.command()
@click.argument("app")
@click.option("--query", metavar="JSON", help="One query (Rafiki style); prints its prediction.")
@click.option("--queries", metavar="JSON", help="A list of queries (Rafiki style); prints the predictions.")
@click.option("--input", "input_", metavar="JSON", help="One input (Clipper style); prints the answer.")
@click.option("--input-batch", metavar="JSON", help="A list of inputs (Clipper style); prints the answers.")
@click.option("--instances", metavar="JSON", help="A list of instances (Cluster Serving style).")
@pass_ctx
def predict(obj: Context, app: str, query: Optional[str], queries: Optional[str], input_: Optional[str],
            input_batch: Optional[str], instances: Optional[str]) -> None:
    """Ask APP for predictions; give exactly one of the payload options."""
    given = {name: value for name, value in (("--query", query), ("--queries", queries), ("--input", input_),
                                             ("--input-batch", input_batch), ("--instances", instances))
             if value is not None}
    if len(given) != 1:
        raise click.UsageError("give exactly one of --query, --queries, --input, --input-batch and --instances")
    (option, text), = given.items()
    value = _json_value(text, option)
    if option in ("--queries", "--input-batch", "--instances") and not isinstance(value, list):
        raise click.BadParameter("must be a JSON list", param_hint=option)
    client = obj.client()
    if option == "--query":
        output(client.predict(app, query=value))
    elif option == "--queries":
        output(client.predict(app, queries=value))
    elif option == "--input":
        output(client.query(app, input=value))
    elif option == "--input-batch":
        output(client.query(app, input_batch=value))
    else:
        output(client.predict_instances(app, value))
