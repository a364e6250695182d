"""``kilele apps timeline|retrain-policy|retrain-policy-show|retrain-policy-remove`` (issue 12 item 6)."""
from __future__ import annotations

from typing import Any, Optional

import click

from kilele.cli.apps import apps
from kilele.cli.core import Context, output, pass_ctx


@apps.command("timeline")
@click.argument("app")
@pass_ctx
def apps_timeline(obj: Context, app: str) -> None:
    """APP's timeline: each step of its retrain loop with its reason, oldest first."""
    output(obj.client().get_app_timeline(app))


@apps.command("retrain-policy")
@click.argument("app")
@click.option("--monitor", "monitors", multiple=True, required=True,
              help="A CT monitor id whose breach retrains (repeatable), e.g. drift.")
@click.option("--dataset", "dataset_id", help="Retrain on this dataset (default: the labelled captured traffic).")
@click.option("--trials", type=click.IntRange(min=1), help="MODEL_TRIAL_COUNT of the retrain's budget.")
@click.option("--hours", type=float, help="TIME_HOURS of the retrain's budget.")
@click.option("--deploy/--no-deploy", default=False, help="Deploy the result if it beats the serving version.")
@click.option("--holdout", "holdout_dataset_id", help="The dataset deciding whether the new version is deployed.")
@pass_ctx
def apps_retrain_policy(obj: Context, app: str, monitors: tuple[str, ...], dataset_id: Optional[str],
                        trials: Optional[int], hours: Optional[float], deploy: bool,
                        holdout_dataset_id: Optional[str]) -> None:
    """Retrain APP when a continuous test on its traffic breaches one of the monitors."""
    budget: dict[str, Any] = {}
    if trials is not None:
        budget["MODEL_TRIAL_COUNT"] = trials
    if hours is not None:
        budget["TIME_HOURS"] = hours
    dataset: Any = {"dataset_id": dataset_id} if dataset_id else "labelled_captured_traffic"
    output(obj.client().set_retrain_policy(app, list(monitors), dataset, budget or None, deploy, holdout_dataset_id))


@apps.command("retrain-policy-show")
@click.argument("app")
@pass_ctx
def apps_retrain_policy_show(obj: Context, app: str) -> None:
    """APP's retrain policy and the last retrain it started."""
    output(obj.client().get_retrain_policy(app))


@apps.command("retrain-policy-remove")
@click.argument("app")
@pass_ctx
def apps_retrain_policy_remove(obj: Context, app: str) -> None:
    """Remove APP's retrain policy."""
    obj.client().remove_retrain_policy(app)
    output({"app": app, "removed": True})
