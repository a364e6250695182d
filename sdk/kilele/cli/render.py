"""Pure renderers: API JSON in, the text the CLI prints out. No client, no server, no clock
unless given (``now``), so each is testable alone."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Optional

from kilele._progress import trial_progress


def render_json(data: Any) -> str:
    """What every command prints: the API's answer as indented JSON (dates and other
    non-JSON values as their ``str``)."""
    return json.dumps(data, indent=2, default=str)


def parse_time(value: Any) -> Optional[datetime]:
    """An ISO 8601 time from the API as an aware datetime (UTC when it has no zone); None when
    absent or unreadable."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def format_duration(started: Any, stopped: Any, now: datetime) -> str:
    """``"42s"``, ``"3m07s"`` or ``"2h05m"`` from ``started`` to ``stopped`` (or ``now`` while
    running); ``"-"`` before the start."""
    start = parse_time(started)
    if start is None:
        return "-"
    seconds = max(0.0, ((parse_time(stopped) or now) - start).total_seconds())
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


def truncate(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, ending in ``...`` when cut."""
    return text if len(text) <= width else text[: max(0, width - 3)] + "..."


def format_knobs(knobs: Any) -> str:
    """``{"c": 0.123456, "kernel": "rbf"}`` -> ``"c=0.1235, kernel=rbf"`` (floats to 4
    significant digits, other non-strings as JSON); ``""`` when not a dict."""
    if not isinstance(knobs, dict):
        return ""
    parts = []
    for name, value in knobs.items():
        if isinstance(value, float):
            shown = f"{value:.4g}"
        else:
            shown = value if isinstance(value, str) else json.dumps(value)
        parts.append(f"{name}={shown}")
    return ", ".join(parts)


def table(headers: list[str], rows: list[list[str]]) -> list[str]:
    """Left-aligned columns two spaces apart: the header line, a rule of dashes, one line per row
    (trailing spaces stripped)."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return [line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def render_watch(job: dict[str, Any], trials: list[dict[str, Any]], now: Optional[datetime] = None,
                 knob_width: int = 40) -> str:
    """The text of one ``train-jobs watch`` snapshot."""
    now = now or datetime.now(timezone.utc)
    lines = [
        f"train job {job.get('app')} v{job.get('app_version')}  {job.get('status')}  "
        f"({job.get('task')}, elapsed {format_duration(job.get('datetime_started'), job.get('datetime_stopped'), now)})",
    ]
    if job.get("error"):
        lines.append(f"error: {job['error']}")
    workers = job.get("workers") or []
    if workers:
        lines += ["", *table(
            ["worker", "model", "status", "error"],
            [[str(w.get("service_id", "")), str(w.get("model_name") or w.get("model_id") or ""),
              str(w.get("status", "")), truncate(str(w.get("error") or ""), 40)] for w in workers],
        )]
    lines.append("")
    if trials:
        lines += table(
            ["no", "model", "status", "score", "duration", "knobs"],
            [[str(t.get("no", "")), str(t.get("model_name") or t.get("model_id") or ""),
              str(t.get("status", "")) + (" (screen)" if t.get("screening") else "")
              + (" (model check)" if t.get("model_check") else ""),
              "-" if t.get("score") is None else f"{t['score']:.4g}",
              format_duration(t.get("datetime_started"), t.get("datetime_stopped"), now),
              # a failed model check has no knobs: where its logs are instead
              f"logs: kilele trials logs {t.get('id')}" if t.get("model_check")
              else truncate(format_knobs(t.get("knobs")), knob_width)] for t in trials],
        )
    else:
        lines.append("no trials yet")
    p = trial_progress(job, trials)
    of = f"/{p['total']}" if p["total"] is not None else " (no trial limit)"
    best = "-" if p["best_score"] is None else f"{p['best_score']:.4g}"
    lines += ["", f"progress: {p['done']}{of} trials done ({p['completed']} completed, {p['errored']} errored, "
                  f"{p['running']} running), best score {best}"]
    return "\n".join(lines)


def watch_key(job: dict[str, Any], trials: list[dict[str, Any]]) -> Any:
    """What a snapshot shows apart from the clock: a change of it prints a new snapshot."""
    return (
        job.get("status"), job.get("error"),
        tuple((w.get("service_id"), w.get("status"), w.get("error")) for w in job.get("workers") or []),
        tuple((t.get("id"), t.get("status"), t.get("score")) for t in trials),
    )
