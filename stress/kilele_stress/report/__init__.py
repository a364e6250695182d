"""The HTML report of a test run: one self-contained file, nothing fetched when it opens.

``write_report(result, path)`` (the CLI and the SDK call it) writes a page with: a header (run
name, model task, rows, duration, the samplings tests did, the model's metrics), a summary by
category and severity, every warning and failing case with its metric, its thresholds and a
plot of what its ``details`` hold, then a compact table of the passing and skipped cases (with
the reasons). CSS is inline, plots are small palette PNGs inlined as ``data:`` URIs (matplotlib,
Agg), no script, no font, no link leaves the file. Every string that comes from the data, the
model or the config is HTML-escaped.

Size: a plot weighs 2–10 KB; at most ``max_plots`` (100) are drawn, the most severe cases
first (the others say why they have none), which keeps a 50-feature run with many failures
well under 2 MB.
"""
from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import Any, Iterable, Optional, Union

from kilele_stress.core import Category, Severity, Status, TestCase
from kilele_stress.report.plots import can_plot, plot_case

MAX_PLOTS = 100
#: The catalogue's order of the categories (STRESS-TESTS.md, #1–#42).
CATEGORY_ORDER = [Category.DATA_CLEANLINESS, Category.ABNORMAL_INPUTS, Category.DRIFT, Category.MODEL_PERFORMANCE,
                  Category.SUBSET_PERFORMANCE, Category.BIAS_AND_FAIRNESS, Category.TRANSFORMATIONS,
                  Category.ADVERSARIAL]
SEVERITY_COLOURS = {"HIGH": "#d73027", "MEDIUM": "#fc8d59", "LOW": "#fee08b", "NONE": "#d9ead3"}
STATUS_COLOURS = {"FAIL": "#d73027", "WARNING": "#fdae61", "PASS": "#91cf60", "SKIP": "#cccccc"}

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#222;background:#fafafa}
main{max-width:1100px;margin:0 auto;padding:16px 24px}
h1{font-size:22px;margin:8px 0}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}
h3{font-size:15px;margin:20px 0 6px}
table{border-collapse:collapse;font-size:12.5px;margin:6px 0}
th,td{border:1px solid #ddd;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f0f0f0}td.n{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;padding:1px 7px;border-radius:9px;font-size:11.5px;font-weight:600;color:#222}
.case{background:#fff;border:1px solid #ddd;border-left:5px solid #999;border-radius:4px;margin:10px 0;padding:8px 12px;
display:flex;gap:14px;flex-wrap:wrap}
.case .text{flex:1 1 420px;min-width:300px}.case img{width:368px;height:auto;align-self:center}
.case h4{margin:0 0 4px;font-size:14px}.muted{color:#666;font-size:12px}.reason{font-size:12.5px;margin:4px 0}
.metrics td{font-size:11.5px;padding:1px 6px}code,pre{font-size:11.5px}
pre{white-space:pre-wrap;word-break:break-word;background:#f4f4f4;padding:6px}
.small td{font-size:11.5px}.meta td:first-child{color:#555}
"""


def esc(value: Any) -> str:
    """``value`` as text safe in HTML (every user-provided string goes through here)."""
    return html.escape(str(value), quote=True)


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        if math.isinf(value):
            return "∞" if value > 0 else "−∞"
        return f"{value:.4g}"
    return str(value)


def _badge(text: str, colour: str) -> str:
    return f'<span class="badge" style="background:{colour}">{esc(text)}</span>'


def _features(case: TestCase, limit: int = 6) -> str:
    if not case.features:
        return "(whole data)"
    shown = ", ".join(case.features[:limit])
    return shown + (f" … +{len(case.features) - limit} more" if len(case.features) > limit else "")


def _category_key(category: str) -> int:
    values = [c.value for c in CATEGORY_ORDER]
    return values.index(category) if category in values else len(values)


def _thresholds(thr: Any) -> str:
    if thr is None:
        return "—"
    sign = "≥" if thr.higher_is_worse else "≤"
    parts = [f"{level} {sign} {_fmt(getattr(thr, level))}" for level in ("low", "medium", "high")
             if getattr(thr, level) is not None]
    return " · ".join(parts) or "—"


def _header(result: Any) -> str:
    rows = [("model task", result.model_task), ("testing type", result.testing_type),
            ("evaluation rows", f"{result.num_inputs:,}"), ("failing inputs", f"{result.num_failing_inputs:,}"),
            ("duration", f"{result.duration_millis / 1000:.2f} s"), ("uploaded", result.upload_time),
            ("test run id", result.test_run_id), ("random seed", result.random_seed)]
    if result.project_id:
        rows.append(("project", result.project_id))
    if result.time_bin:
        rows.append(("time bin", f"{result.time_bin[0]} → {result.time_bin[1]}"))
    out = [f"<h1>{esc(result.run_name)}</h1>", '<table class="meta">']
    out += [f"<tr><td>{esc(k)}</td><td>{esc(_fmt(v))}</td></tr>" for k, v in rows]
    out.append("</table>")
    if result.model_error:
        out.append(f'<p class="reason"><b>Model error:</b> {esc(result.model_error)}</p>')
    perf = result.model_performance or {}
    metrics = sorted({m for values in perf.values() for m in values})
    if metrics:
        out.append("<h3>Model performance</h3><table><tr><th>metric</th><th>reference</th><th>evaluation</th></tr>")
        out += [f"<tr><td>{esc(m)}</td><td class=n>{_fmt(perf.get('reference', {}).get(m))}</td>"
                f"<td class=n>{_fmt(perf.get('evaluation', {}).get(m))}</td></tr>" for m in metrics]
        out.append("</table>")
    out.append("<h3>Sampling</h3>")
    if result.samplings:
        out.append("<table><tr><th>test</th><th>what</th><th>rows</th><th>seed</th></tr>")
        out += [f"<tr><td>{esc(s.get('test_key'))}</td><td>{esc(s.get('reason'))}</td>"
                f"<td class=n>{esc(s.get('to_rows'))} of {esc(s.get('from_rows'))}</td>"
                f"<td class=n>{esc(s.get('seed'))}</td></tr>" for s in result.samplings]
        out.append("</table>")
    else:
        out.append('<p class="muted">No test sampled: every test saw every row.</p>')
    return "\n".join(out)


def _summary(result: Any) -> str:
    counts, sev = result.status_counts(), result.severity_counts()
    cats = result.category_severities()
    out = [f"<h2>Summary</h2><p>Run severity {_badge(result.severity.name, SEVERITY_COLOURS[result.severity.name])}"
           f" (the highest of its categories'; a category's is the mean of its cases' levels).</p>",
           "<table><tr>" + "".join(f"<th>{esc(k)}</th>" for k in counts) + "".join(
               f"<th>{esc(k)}</th>" for k in sev) + "</tr><tr>"
           + "".join(f"<td class=n>{v}</td>" for v in counts.values())
           + "".join(f"<td class=n>{v}</td>" for v in sev.values()) + "</tr></table>",
           "<table><tr><th>category</th><th>severity</th><th>mean level</th>"
           + "".join(f"<th>{s.value.lower()}</th>" for s in Status)
           + "".join(f"<th>{s.name.lower()}</th>" for s in Severity) + "</tr>"]
    for cat in sorted(cats, key=_category_key):
        mean, level = cats[cat]
        cases = [c for c in result.cases if str(c.category) == cat]
        out.append(f"<tr><td>{esc(cat)}</td><td>{_badge(level.name, SEVERITY_COLOURS[level.name])}</td>"
                   f"<td class=n>{mean:.2f}</td>"
                   + "".join(f"<td class=n>{sum(c.status == s for c in cases)}</td>" for s in Status)
                   + "".join(f"<td class=n>{sum(c.severity == s for c in cases)}</td>" for s in Severity) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _borrowed(result: Any) -> dict[str, dict]:
    """Each feature's binned distribution from its drift case (plotted for abnormal inputs)."""
    out = {}
    for c in result.cases:
        if c.test_key in ("numeric_drift", "categorical_drift") and len(c.features) == 1 and "bins" in c.details:
            out[c.features[0]] = c.details
    return out


#: Cases whose rows are missing from the binned distributions (nulls, wrong types): their plot is
#: the share of flagged rows in each frame.
SHARE_PLOTS = {"null_check": "null", "null_drift": "null", "type_check": "wrong type"}


def _plot_details(case: TestCase) -> dict:
    """What to plot for ``case``: its details, or the flagged share of a null/type case."""
    what = SHARE_PLOTS.get(case.test_key)
    if what is None:
        return case.details
    m = case.metrics
    ref = m.get("reference_null_rate", m.get("expected_share", 0.0))
    ev = m.get("eval_null_rate", m.get("eval_share", m.get("prevalence", float("nan"))))
    return {"bars": {"labels": ["reference", "evaluation"], "values": [ref, ev], "title": f"share of {what} rows"}}


def _case_card(case: TestCase, png: Optional[bytes], note: str) -> str:
    metrics = list(case.metrics.items())
    graded = metrics[0] if metrics else ("", float("nan"))
    colour = SEVERITY_COLOURS[case.severity.name]
    out = [f'<section class="case" style="border-left-color:{colour}" data-key="{esc(case.test_key)}" '
           f'data-features="{esc(json.dumps(case.features))}"><div class="text">',
           f"<h4>{esc(case.test_name)} — {esc(_features(case))}</h4>",
           f"<div>{_badge(case.status.value, STATUS_COLOURS[case.status.value])} "
           f"{_badge(case.severity.name, colour)} <b>{esc(graded[0])}</b> = {esc(_fmt(graded[1]))}"
           f' <span class="muted">thresholds: {esc(_thresholds(case.thresholds))}</span></div>']
    for name, thr in case.extra_thresholds.items():
        out.append(f'<div class="muted">{esc(name)} = {esc(_fmt(case.metrics.get(name)))}; thresholds: '
                   f"{esc(_thresholds(thr))}</div>")
    if case.reason:
        out.append(f'<p class="reason">{esc(case.reason)}</p>')
    others = [(k, v) for k, v in metrics[1:] if k not in case.extra_thresholds][:10]
    if others:
        out.append('<table class="metrics">' + "".join(
            f"<tr><td>{esc(k)}</td><td class=n>{esc(_fmt(v))}</td></tr>" for k, v in others) + "</table>")
    for key in ("examples", "rare", "pairs", "required", "variants", "spellings", "missing", "extra", "drifted"):
        values = case.details.get(key)
        if values:
            shown = ", ".join(esc(json.dumps(v, ensure_ascii=False) if not isinstance(v, str) else repr(v))
                              for v in values[:8])
            out.append(f'<div class="muted">{esc(key)}: {shown}</div>')
    for kind, error in (case.details.get("errors") or {}).items():
        out.append(f'<div class="muted">error on {esc(kind)}: <code>{esc(error)}</code></div>')
    if note:
        out.append(f'<div class="muted">{esc(note)}</div>')
    out.append("</div>")
    if png:
        data = base64.b64encode(png).decode("ascii")
        out.append(f'<img alt="{esc(case.test_name)}" src="data:image/png;base64,{data}">')
    out.append("</section>")
    return "\n".join(out)


def _failing(result: Any, max_plots: int) -> str:
    bad = result.failing_cases()
    out = [f"<h2>Warnings and failures ({len(bad)})</h2>"]
    if not bad:
        return out[0] + '<p class="muted">No test case warned or failed.</p>'
    borrowed = _borrowed(result)

    def extra(case: TestCase) -> Optional[dict]:  # a single-feature case's distribution, when it has none
        return borrowed.get(case.features[0]) if len(case.features) == 1 else None
    plottable = [c for c in bad if can_plot(_plot_details(c), extra(c))]
    plotted = {id(c) for c in plottable[:max_plots]}  # the most severe first
    for cat in sorted({str(c.category) for c in bad}, key=_category_key):
        cases = [c for c in bad if str(c.category) == cat]
        out.append(f"<h3>{esc(cat)} ({len(cases)})</h3>")
        for case in cases:
            png, note = None, ""
            if id(case) in plotted:
                thr = case.thresholds.to_dict() if case.thresholds else None
                title = _features(case, 2) if case.features else case.test_name
                png = plot_case(_plot_details(case), title, thr, extra(case))
            elif can_plot(_plot_details(case), extra(case)):
                note = f"plot left out: the report draws the {max_plots} most severe cases"
            out.append(_case_card(case, png, note))
    return "\n".join(out)


def _rest(cases: Iterable[TestCase]) -> str:
    cases = sorted(cases, key=lambda c: (c.status != Status.SKIP, _category_key(str(c.category)), c.test_key))
    out = ["<h2>Passing and skipped cases</h2>", '<table class="small"><tr><th>category</th><th>test</th>'
           "<th>features</th><th>status</th><th>metric</th><th>reason</th></tr>"]
    for c in cases:
        graded = next(iter(c.metrics.items()), None)
        metric = f"{graded[0]} = {_fmt(graded[1])}" if graded else ""
        out.append(f"<tr><td>{esc(c.category)}</td><td>{esc(c.test_name)}</td><td>{esc(_features(c, 4))}</td>"
                   f"<td>{_badge(c.status.value, STATUS_COLOURS[c.status.value])}</td><td>{esc(metric)}</td>"
                   f"<td>{esc(c.reason[:300])}</td></tr>")
    out.append("</table>")
    return "\n".join(out)


def render(result: Any, max_plots: int = MAX_PLOTS) -> str:
    """The report of ``result`` (a :class:`~kilele_stress.results.StressTestResult`) as HTML."""
    rest = [c for c in result.cases if c.status in (Status.PASS, Status.SKIP)]
    config = json.dumps(result.config, indent=1, default=str, ensure_ascii=False) if result.config else "{}"
    body = "\n".join([_header(result), _summary(result), _failing(result, max_plots), _rest(rest),
                      f"<h2>Config</h2><details><summary>test run config</summary><pre>{esc(config)}</pre></details>"])
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(result.run_name)} — stress test report</title><style>{CSS}</style></head>"
            f"<body><main>\n{body}\n</main></body></html>\n")


def write_report(result: Any, path: Union[str, Path], max_plots: int = MAX_PLOTS) -> Path:
    """Write the report of ``result`` to ``path`` (folders created); returns the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(result, max_plots), encoding="utf-8")
    return out


__all__ = ["write_report", "render", "esc", "MAX_PLOTS"]
