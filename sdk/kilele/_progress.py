"""Train job progress: the trial summary (:func:`trial_progress`) and the tqdm bar that
``Client.wait_for_train_job(progress=True)`` draws on stderr."""
from __future__ import annotations

from typing import Any, Iterable, Mapping, Optional

#: Trial statuses that count as done (the trial will not change any more and used its budget).
TRIAL_DONE_STATUSES = ("COMPLETED", "ERRORED")
#: Trial statuses that count as running (scheduled or training).
TRIAL_ACTIVE_STATUSES = ("RUNNING", "PENDING")
#: Trial statuses counted neither as done nor as running (stopped with their train job).
TRIAL_UNCOUNTED_STATUSES = ("TERMINATED",)


def _trial_budget(job: Mapping[str, Any]) -> Optional[int]:
    """Trials the job aims at (MODEL_TRIAL_COUNT × models), or None when unlimited."""
    per_model = (job.get("budget") or {}).get("MODEL_TRIAL_COUNT", -1)
    try:
        per_model = int(per_model)
    except (TypeError, ValueError):
        return None
    if per_model < 1:
        return None
    return per_model * max(1, len(job.get("model_ids") or []))


def trial_progress(job: Mapping[str, Any], trials: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """A summary of a train job's trials: ``done`` (COMPLETED + ERRORED), ``total`` (the trial
    budget, None when unlimited), ``running``, ``completed``, ``errored`` and ``best_score``
    (the best score of a COMPLETED trial, None before the first one)."""
    counts: dict[str, int] = {}
    best: Optional[float] = None
    for trial in trials:
        if trial.get("model_check"):  # a failed model check (its record): no trial of the budget
            continue
        status = str(trial.get("status") or "")
        counts[status] = counts.get(status, 0) + 1
        score = trial.get("score")
        if status == "COMPLETED" and isinstance(score, (int, float)) and (best is None or score > best):
            best = float(score)
    completed, errored = counts.get("COMPLETED", 0), counts.get("ERRORED", 0)
    return {
        "done": completed + errored,
        "total": _trial_budget(job),
        "completed": completed,
        "errored": errored,
        "running": sum(counts.get(status, 0) for status in TRIAL_ACTIVE_STATUSES),
        "best_score": best,
    }


def _progress_bar(description: str, total: Optional[int]) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, unit="trial", dynamic_ncols=True)


def _update_bar(bar: Any, job: Mapping[str, Any], summary: Mapping[str, Any]) -> None:
    total = summary["total"]
    if total is not None and summary["done"] > total:  # the trial count is a soft target
        total = summary["done"]
    if bar.total != total:
        bar.total = total
    if summary["done"] != bar.n:
        bar.update(summary["done"] - bar.n)
    best = summary["best_score"]
    bar.set_postfix(status=job.get("status"), running=summary["running"],
                    best="-" if best is None else f"{best:.4g}", refresh=False)
    bar.refresh()
