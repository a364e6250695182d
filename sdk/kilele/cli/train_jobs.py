"""``kilele train-jobs …`` (including the live ``watch``) and ``kilele trials …``."""
from __future__ import annotations

import json
import time
from typing import Any, Optional

import click

from kilele.cli.core import Context, cli, follow_log, output, pass_ctx, version_option
from kilele.cli.render import render_watch, watch_key
from kilele.constants import FINAL_TRAIN_JOB_STATUSES, BudgetOption


def _train_arg(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``("epochs=3", "name=abc")`` -> ``{"epochs": 3, "name": "abc"}`` (values parsed as JSON when they are)."""
    args: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{pair!r} should look like key=value", param_hint="--train-arg")
        try:
            args[key.strip()] = json.loads(value)
        except ValueError:
            args[key.strip()] = value
    return args


@cli.group("train-jobs")
def train_jobs() -> None:
    """Manage train jobs (hyperparameter searches)."""


@train_jobs.command("create")
@click.argument("app")
@click.argument("task")
@click.option("--train-dataset", "train_dataset_id", required=True, help="Id of the train dataset.")
@click.option("--val-dataset", "val_dataset_id", required=True, help="Id of the validation dataset.")
@click.option("--model", "model_ids", multiple=True, metavar="ID",
              help="A model to train; repeat for several (default: every model available for TASK).")
@click.option("--trials", type=int, help="Trials per model (MODEL_TRIAL_COUNT; -1: unlimited).")
@click.option("--hours", type=float, help="Time budget in hours (TIME_HOURS).")
@click.option("--gpus", type=int, help="GPUs across all models (GPU_COUNT).")
@click.option("--train-arg", "train_args", multiple=True, metavar="KEY=VALUE",
              help="An argument for the models' train(); repeat for several. JSON values are parsed.")
@pass_ctx
def train_jobs_create(obj: Context, app: str, task: str, train_dataset_id: str, val_dataset_id: str,
                      model_ids: tuple[str, ...], trials: Optional[int], hours: Optional[float],
                      gpus: Optional[int], train_args: tuple[str, ...]) -> None:
    """Create and start a train job of APP for TASK."""
    budget: dict[BudgetOption, Any] = {}
    if trials is not None:
        budget[BudgetOption.MODEL_TRIAL_COUNT] = trials
    if hours is not None:
        budget[BudgetOption.TIME_HOURS] = hours
    if gpus is not None:
        budget[BudgetOption.GPU_COUNT] = gpus
    output(obj.client().create_train_job(app, task, train_dataset_id, val_dataset_id, budget,
                                         models=list(model_ids) or None, train_args=_train_arg(train_args)))


@train_jobs.command("list")
@click.option("--app", help="Only the train jobs of this app.")
@pass_ctx
def train_jobs_list(obj: Context, app: Optional[str]) -> None:
    """List your train jobs."""
    client = obj.client()
    output(client.get_train_jobs_of_app(app) if app else client.get_train_jobs_by_user(None))


@train_jobs.command("get")
@click.argument("app")
@version_option
@pass_ctx
def train_jobs_get(obj: Context, app: str, app_version: int) -> None:
    """Show a train job of APP with its workers."""
    output(obj.client().get_train_job(app, app_version))


@train_jobs.command("stop")
@click.argument("app")
@version_option
@pass_ctx
def train_jobs_stop(obj: Context, app: str, app_version: int) -> None:
    """Stop a train job of APP."""
    output(obj.client().stop_train_job(app, app_version))

def _stdout_is_tty() -> bool:
    try:
        return click.get_text_stream("stdout").isatty()
    except (AttributeError, ValueError):
        return False


@train_jobs.command("watch")
@click.argument("app")
@version_option
@click.option("--interval", type=click.FloatRange(min=0.0), default=2.0, show_default=True,
              help="Seconds between refreshes.")
@pass_ctx
def train_jobs_watch(obj: Context, app: str, app_version: int, interval: float) -> None:
    """Follow a train job of APP live until it is STOPPED or ERRORED (or Ctrl-C).

    On a terminal the view is redrawn in place; otherwise each snapshot is printed once, when
    something changes. Exits 1 when the job ends ERRORED.
    """
    client = obj.client()
    tty = _stdout_is_tty()
    last_key: Any = None
    try:
        while True:
            job = client.get_train_job(app, app_version)
            app_version = int(job.get("app_version") or app_version)  # stay on this version
            trials = client.get_trials_of_train_job(app, app_version)
            key = watch_key(job, trials)
            if tty:
                click.clear()
                click.echo(render_watch(job, trials))
            elif key != last_key:
                if last_key is not None:
                    click.echo("")
                click.echo(render_watch(job, trials))
            last_key = key
            if job.get("status") in FINAL_TRAIN_JOB_STATUSES:
                break
            time.sleep(interval)
    except KeyboardInterrupt:
        click.echo("\nstopped watching; the train job goes on", err=True)
        return
    if job.get("status") == "ERRORED":
        click.echo(f"train job {app} v{app_version} ended ERRORED: {job.get('error') or 'no reason given'}", err=True)
        raise SystemExit(1)


@cli.group()
def trials() -> None:
    """Inspect the trials of train jobs."""


@trials.command("list")
@click.argument("app")
@version_option
@click.option("--best", type=click.IntRange(min=1), metavar="N", help="Only the N best COMPLETED trials, best first.")
@pass_ctx
def trials_list(obj: Context, app: str, app_version: int, best: Optional[int]) -> None:
    """List the trials of a train job of APP (oldest first)."""
    client = obj.client()
    if best is not None:
        output(client.get_best_trials_of_train_job(app, app_version, max_count=best))
    else:
        output(client.get_trials_of_train_job(app, app_version))


@trials.command("get")
@click.argument("trial_id")
@pass_ctx
def trials_get(obj: Context, trial_id: str) -> None:
    """Show one trial."""
    output(obj.client().get_trial(trial_id))


@trials.command("logs")
@click.argument("trial_id")
@click.option("--follow", "-f", is_flag=True, help="Print the log text as it grows, until the trial ends.")
@click.option("--poll", default=2.0, show_default=True, type=click.FloatRange(min=0.1), help="Seconds between polls.")
@pass_ctx
def trials_logs(obj: Context, trial_id: str, follow: bool, poll: float) -> None:
    """Show a trial's logs (JSON; --follow: the text as it grows)."""
    client = obj.client()
    if not follow:
        output(client.get_trial_logs(trial_id))
        return

    def fetch() -> tuple[str, bool]:
        got = client.get_trial_logs(trial_id)
        return str(got.get("logs") or ""), got.get("status") not in ("PENDING", "RUNNING")

    follow_log(fetch, poll)


@trials.command("params")
@click.argument("trial_id")
@click.argument("out", type=click.Path(dir_okay=False, writable=True))
@pass_ctx
def trials_params(obj: Context, trial_id: str, out: str) -> None:
    """Save a COMPLETED trial's parameters to OUT (a numpy .npz archive)."""
    output(obj.client().download_trial_parameters(trial_id, out))
