"""The HTML report of a continuous test: a time series per metric, thresholds drawn, failed bins marked.

``write_continuous_report(result, path)`` writes one self-contained page (the stress-test
report's CSS and conventions: inline palette PNGs, no script, every user string escaped) with:

* a table of the bins tested (rows, severity, fail/warning counts, which reference was used);
* per test a plot of its worst graded metric in each bin (the metric its thresholds grade:
  PSI for drift, prevalence for abnormal inputs, the relative drop for performance), the
  ``low``/``medium``/``high`` thresholds as dotted lines, and the bins where the test FAILED
  marked with red crosses;
* the model's evaluation metrics per bin (with the reference's value as a line);
* each category's severity level per bin.

Tests that skipped in every bin have no plot (the table at the end says so).
"""
from __future__ import annotations

import base64
import math
from pathlib import Path
from typing import Any, Optional, Union

from matplotlib import rc_context

from kilele_stress.core import Status
from kilele_stress.report import CSS, SEVERITY_COLOURS, _badge, esc
from kilele_stress.report.plots import BAD, EVAL, GRID, REF, _figure, _png, _short, _title


def _series(result: Any) -> dict[str, dict[str, Any]]:
    """Per test key: name, category, x (bin starts), y (worst graded metric), failed (bool per
    bin) and the thresholds of its latest graded case."""
    from kilele_stress.continuous import worst_metric_by_test

    out: dict[str, dict[str, Any]] = {}
    for i, b in enumerate(result.bins):
        worst = worst_metric_by_test(b)
        names = {c.test_key: (c.test_name, str(c.category)) for c in b.cases}
        graded = {c.test_key: next(iter(c.metrics)) for c in b.cases if c.metrics}
        for key, (value, thr) in worst.items():
            s = out.setdefault(key, {"name": names[key][0], "category": names[key][1],
                                     "y": [math.nan] * len(result.bins), "failed": [False] * len(result.bins)})
            s["y"][i], s["thresholds"], s["metric"] = value, thr, graded.get(key, "metric")
        for c in b.cases:
            if c.status == Status.FAIL and c.test_key in out:
                out[c.test_key]["failed"][i] = True
    return out


def _time_axis(ax, starts: list) -> None:
    ax.set_xticks(range(len(starts)))
    step = max(1, len(starts) // 8)
    ax.set_xticklabels([str(s)[:16].replace("T", " ") if i % step == 0 else "" for i, s in enumerate(starts)],
                       rotation=35, ha="right", fontsize=6)


def plot_series(starts: list, values: list[float], title: str, ylabel: str, thresholds: Any = None,
                failed: Optional[list[bool]] = None, reference: Optional[float] = None) -> Optional[bytes]:
    """PNG of one metric over the bins: the line, the thresholds, the failed bins crossed."""
    with rc_context({"text.parse_math": False}):
        fig, ax = _figure()
        x = list(range(len(values)))
        ax.plot(x, values, marker="o", markersize=3, color=EVAL, linewidth=1, label="per bin")
        if reference is not None and math.isfinite(reference):
            ax.axhline(reference, color=REF, linewidth=0.8, label="reference")
        if thresholds is not None:
            for level in ("low", "medium", "high"):
                t = getattr(thresholds, level, None) if not isinstance(thresholds, dict) else thresholds.get(level)
                if t is not None and math.isfinite(t):
                    ax.axhline(t, color=BAD if level != "low" else GRID, linewidth=0.6, linestyle=":")
                    ax.text(len(values) - 0.5, t, level, fontsize=5.5, color="#555", va="bottom", ha="right")
        if failed and any(failed):
            xs = [i for i, f in enumerate(failed) if f]
            ax.scatter(xs, [values[i] for i in xs], marker="x", s=36, color=BAD, zorder=3, label="failed")
        _time_axis(ax, starts)
        ax.set_ylabel(_short(ylabel, 24), fontsize=7)
        _title(ax, title)
        ax.legend(fontsize=6, frameon=False, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=3)
        try:
            return _png(fig)
        except (ValueError, TypeError):
            return None


def _img(png: Optional[bytes], alt: str) -> str:
    if not png:
        return ""
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def render_continuous(result: Any) -> str:
    """The report of a :class:`~kilele_stress.continuous.ContinuousTestResult` as HTML."""
    starts = [b.time_bin[0].isoformat() for b in result.bins]
    out = [f"<h1>{esc(result.run_name)} — continuous test</h1>",
           f'<p class="muted">{len(result.bins)} bin(s) of {result.bin_seconds} s tested on column '
           f"{esc(result.timestamp_col)}; test run {esc(result.test_run_id)}.</p>",
           "<h2>Bins</h2><table><tr><th>bin start</th><th>bin end</th><th>rows</th><th>severity</th>"
           "<th>fail</th><th>warning</th><th>reference</th></tr>"]
    for b in result.bins:
        c = b.status_counts()
        out.append(f"<tr><td>{esc(b.time_bin[0].isoformat())}</td><td>{esc(b.time_bin[1].isoformat())}</td>"
                   f"<td class=n>{b.num_inputs}</td><td>{_badge(b.severity.name, SEVERITY_COLOURS[b.severity.name])}"
                   f"</td><td class=n>{c['fail']}</td><td class=n>{c['warning']}</td>"
                   f"<td>{esc(result.references.get(b.time_bin[0].isoformat(), ''))}</td></tr>")
    out.append("</table>")
    series = _series(result)
    out.append("<h2>Tests over time</h2>")
    for key, s in sorted(series.items(), key=lambda kv: (kv[1]["category"], kv[0])):
        png = plot_series(starts, s["y"], f"{s['name']} (worst case)", s["metric"], s.get("thresholds"), s["failed"])
        n_failed = sum(s["failed"])
        out.append(f'<section class="case" data-key="{esc(key)}"><div class="text"><h4>{esc(s["name"])}</h4>'
                   f'<div class="muted">{esc(s["category"])} · {esc(s["metric"])} · failed in {n_failed} of '
                   f"{len(starts)} bin(s)</div></div>{_img(png, s['name'])}</section>")
    metrics = sorted({m for b in result.bins for m in (b.model_performance.get("evaluation") or {})})
    if metrics:
        out.append("<h2>Model performance</h2>")
    for m in metrics:
        values = [(b.model_performance.get("evaluation") or {}).get(m, math.nan) for b in result.bins]
        refs = [(b.model_performance.get("reference") or {}).get(m) for b in result.bins]
        reference = next((r for r in refs if r is not None), None)
        out.append(f'<section class="case"><div class="text"><h4>{esc(m)}</h4></div>'
                   f"{_img(plot_series(starts, values, m, m, reference=reference), m)}</section>")
    cats = sorted({cat for b in result.bins for cat in b.category_severities()})
    if cats:
        out.append("<h2>Severity per category</h2>")
    for cat in cats:
        levels = [float(int(b.category_severities().get(cat, (0, 0))[1])) for b in result.bins]
        png = plot_series(starts, levels, cat, "level (0 NONE … 3 HIGH)", {"medium": 2.0},
                          [lvl >= 2 for lvl in levels])
        out.append(f'<section class="case"><div class="text"><h4>{esc(cat)}</h4></div>{_img(png, cat)}</section>')
    skipped = sorted({c.test_name for b in result.bins for c in b.cases} -
                     {s["name"] for s in series.values()})
    if skipped:
        out.append('<h2>Not plotted</h2><p class="muted">Skipped in every bin (or nothing graded): '
                   + esc(", ".join(skipped)) + "</p>")
    body = "\n".join(out)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{esc(result.run_name)} — continuous test report</title><style>{CSS}</style></head>"
            f"<body><main>\n{body}\n</main></body></html>\n")


def write_continuous_report(result: Any, path: Union[str, Path]) -> Path:
    """Write the continuous-test report of ``result`` to ``path``; returns the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_continuous(result), encoding="utf-8")
    return out


__all__ = ["write_continuous_report", "render_continuous", "plot_series"]
