"""The report's plots: matplotlib (Agg, no display, no pyplot state) to small palette PNGs.

:func:`plot_case` draws what a case's ``details`` hold — reference vs evaluation distributions
(``bins``/``ref``/``eval``), calibration curves, per-subset / per-group / per-segment bars,
per-corruption-kind bars, an attack's change per move, a metric's reference vs evaluation
bars — and returns PNG bytes, or None when there is nothing to draw. Small on purpose: a
figure 4.6 × 2.3 in at 80 dpi, quantised to a 48-colour palette, weighs 4–10 KB.
"""
from __future__ import annotations

import io
import math
from typing import Any, Optional, Sequence

from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

REF, EVAL, BAD, GRID = "#8da0cb", "#fc8d62", "#d73027", "#bbbbbb"
SIZE, DPI = (4.6, 2.3), 80
LABEL_CHARS = 16


def _short(label: Any, limit: int = LABEL_CHARS) -> str:
    text = str(label)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _num(values: Sequence[Any]) -> list[float]:
    return [float("nan") if v is None else float(v) for v in values]


def _png(fig: Figure) -> bytes:
    from PIL import Image  # matplotlib's own dependency

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    width, height = canvas.get_width_height()
    image = Image.frombuffer("RGBA", (width, height), canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
    out = io.BytesIO()
    image.convert("RGB").quantize(colors=48).save(out, format="PNG", compress_level=9)
    return out.getvalue()


def _figure(horizontal: bool = False) -> tuple[Figure, Any]:
    fig = Figure(figsize=SIZE, dpi=DPI)
    # Fixed margins rather than tight_layout, which draws the figure once more.
    fig.subplots_adjust(left=0.42 if horizontal else 0.12, right=0.98, bottom=0.17 if horizontal else 0.3, top=0.86)
    ax = fig.add_subplot(1, 1, 1)
    ax.tick_params(labelsize=7)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.yaxis.set_major_locator(MaxNLocator(4))
    ax.grid(axis="y", color=GRID, linewidth=0.4, alpha=0.6)
    ax.set_axisbelow(True)
    return fig, ax


def _xticks(ax, labels: Sequence[Any]) -> None:
    ax.set_xticks(range(len(labels)))
    rotate = len(labels) > 4 or max((len(str(x)) for x in labels), default=0) > 8
    ax.set_xticklabels([_short(x) for x in labels], rotation=35 if rotate else 0, ha="right" if rotate else "center",
                       fontsize=6.5)


def _legend(ax) -> None:
    ax.legend(fontsize=6, frameon=False, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=3, borderaxespad=0.2,
              handlelength=1.2, columnspacing=0.8)


def _title(ax, title: str) -> None:
    ax.set_title(_short(title, 30), fontsize=7.5, loc="left")


def _paired_bars(ax, labels, first, second, names=("reference", "evaluation"), colors=(REF, EVAL)) -> None:
    x = range(len(labels))
    w = 0.4
    if first is not None:
        ax.bar([i - w / 2 for i in x], _num(first), w, color=colors[0], label=names[0])
    ax.bar([i + (w / 2 if first is not None else 0) for i in x], _num(second), w if first is not None else 0.6,
           color=colors[1], label=names[1])
    _xticks(ax, labels)
    _legend(ax)


def distribution(fig, ax, d: dict, title: str) -> None:
    _paired_bars(ax, d["bins"], d.get("ref"), d["eval"])
    ax.set_ylabel("share of rows", fontsize=7)
    if d.get("threshold") is not None and d.get("kind") == "confidence":
        ax.set_xlabel(f"confidence (ATC threshold {d['threshold']:.3g})", fontsize=7)
    _title(ax, title)


def calibration(fig, ax, d: dict, title: str) -> None:
    ax.plot([0, 1], [0, 1], color=GRID, linewidth=0.8, linestyle="--")
    for which, color, name in (("reference", REF, "reference"), ("eval", EVAL, "evaluation")):
        c = d.get(which) or {}
        if c.get("predicted"):
            ax.plot(_num(c["predicted"]), _num(c["observed"]), marker="o", markersize=3, color=color, label=name)
    ax.set_xlabel(f"predicted ({d.get('kind', 'probability')})", fontsize=7)
    ax.set_ylabel("observed", fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    _legend(ax)
    _title(ax, title)


def subsets(fig, ax, d: dict, title: str) -> None:
    labels = d["labels"]
    name = d.get("name", "metric")
    if d.get("reference") is not None:
        _paired_bars(ax, labels, d["reference"], d["metric"])
    else:
        colors = [BAD if lab == d.get("worst") else EVAL for lab in labels]
        ax.bar(range(len(labels)), _num(d["metric"]), 0.6, color=colors, label="evaluation")
        if d.get("expected") is not None:
            ax.scatter(range(len(labels)), _num(d["expected"]), marker="_", s=120, color="black", zorder=3,
                       label="implied")
        if d.get("overall") is not None:
            ax.axhline(float(d["overall"]), color="black", linewidth=0.6, linestyle=":", label="overall")
        _xticks(ax, labels)
        _legend(ax)
    ax.set_ylabel(name, fontsize=7)
    _title(ax, title)


def segments(fig, ax, d: dict, title: str, thresholds: Optional[dict]) -> None:
    labels = [_short(x, 34) for x in d["labels"]][::-1]
    ax.barh(range(len(labels)), _num(d["ratio"])[::-1], color=EVAL)
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels(labels, fontsize=5.5)
    ax.axvline(1.0, color="black", linewidth=0.6)
    for level in ("low", "medium", "high"):
        if thresholds and thresholds.get(level) is not None:
            ax.axvline(thresholds[level], color=BAD, linewidth=0.5, linestyle=":")
    ax.grid(axis="x", color=GRID, linewidth=0.4)
    ax.set_xlabel(d.get("name", "ratio"), fontsize=7)
    _title(ax, title)


def groups(fig, ax, d: dict, title: str) -> None:
    if "tpr" in d:
        _paired_bars(ax, d["labels"], d["tpr"], d["fpr"], names=("TPR", "FPR"))
        ax.set_ylabel("rate", fontsize=7)
    else:
        ax.bar(range(len(d["labels"])), _num(d["positive_rate"]), 0.6, color=EVAL)
        _xticks(ax, d["labels"])
        ax.set_ylabel(f"positive rate ({d.get('class', '')})", fontsize=7)
    _title(ax, title)


def kinds(fig, ax, d: dict, title: str) -> None:
    if "flip_share" in d:
        ax.bar(range(len(d["labels"])), _num(d["flip_share"]), 0.6, color=EVAL)
        ax.set_ylabel("share of predictions changed", fontsize=7)
        _xticks(ax, d["labels"])
    else:
        graded = [max(a or 0, b or 0) for a, b in zip(d["excursion"], d["nan_share"])]
        _paired_bars(ax, d["labels"], d["change"], graded, names=("change", "beyond plausible"), colors=(REF, BAD))
        for i, kind in enumerate(d["labels"]):
            if kind in (d.get("errors") or {}):
                ax.text(i, 0, "model error", color=BAD, fontsize=6.5, ha="center", va="bottom", rotation=90)
    _title(ax, title)


def steps(fig, ax, d: dict, title: str) -> None:
    x = [100 * f for f in d["fraction"]]
    ax.plot(x, _num(d["mean_change"]), marker="o", markersize=3, color=EVAL, label="mean")
    ax.plot(x, _num(d["max_change"]), marker="o", markersize=3, color=BAD, label="largest")
    ax.axvline(0, color=GRID, linewidth=0.6)
    ax.set_xlabel("move (% of the feature's range)", fontsize=7)
    ax.set_ylabel(f"change ({d.get('unit', '')})", fontsize=7)
    _legend(ax)
    _title(ax, title)


def bars(fig, ax, d: dict, title: str) -> None:
    values = _num(d["values"])
    errors = d.get("errors")
    ax.bar(range(len(values)), values, 0.5, color=[REF, EVAL][:len(values)] + [EVAL] * max(len(values) - 2, 0),
           yerr=_num(errors) if errors else None, capsize=3)
    _xticks(ax, d["labels"])
    finite = [v for v in values if math.isfinite(v)]
    if finite and min(finite) >= 0:
        ax.set_ylim(0, max(finite) * 1.15 or 1)
    ax.set_ylabel(d.get("title", ""), fontsize=7)
    _title(ax, title)


PLOTTED = ("calibration", "subsets", "segments", "groups", "kinds", "steps", "bars")


def can_plot(details: dict, borrowed: Optional[dict] = None) -> bool:
    """Whether :func:`plot_case` has something to draw for these details."""
    return ("bins" in details and "eval" in details) or any(k in details for k in PLOTTED) or \
        bool(borrowed and "bins" in borrowed)


def plot_case(details: dict, title: str, thresholds: Optional[dict] = None,
              borrowed: Optional[dict] = None) -> Optional[bytes]:
    """PNG bytes of what ``details`` hold (``borrowed``: a drift case's distribution of the same
    feature, for a case with none of its own), or None."""
    # Feature names and values are the user's: "$" must not switch to mathtext.
    with rc_context({"text.parse_math": False}):
        return _draw(details, title, thresholds, borrowed)


def _draw(details: dict, title: str, thresholds: Optional[dict], borrowed: Optional[dict]) -> Optional[bytes]:
    fig, ax = _figure(horizontal="segments" in details)
    try:
        if "bins" in details and "eval" in details:
            distribution(fig, ax, details, title)
        elif "calibration" in details:
            calibration(fig, ax, details["calibration"], title)
        elif "subsets" in details:
            subsets(fig, ax, details["subsets"], title)
        elif "segments" in details:
            segments(fig, ax, details["segments"], title, thresholds)
        elif "groups" in details:
            groups(fig, ax, details["groups"], title)
        elif "kinds" in details:
            kinds(fig, ax, {**details["kinds"], "errors": details.get("errors")}, title)
        elif "steps" in details:
            steps(fig, ax, details["steps"], title)
        elif "bars" in details:
            bars(fig, ax, details["bars"], title)
        elif borrowed and "bins" in borrowed:
            distribution(fig, ax, borrowed, f"{title}: reference vs evaluation")
        else:
            return None
        return _png(fig)
    except (KeyError, TypeError, ValueError):  # details of an unexpected shape: no plot, never no report
        return None
