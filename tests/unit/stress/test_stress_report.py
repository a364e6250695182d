"""The HTML report: one self-contained file (no network to open it), escaped, small, complete."""
from __future__ import annotations

import json
import time
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from stress_gen import config, make_frame, predict_binary, run

from kilele_stress.core import Status
from kilele_stress.report import render, write_report
from kilele_stress.results import StressTestResult

EVIL = "<script>alert(1)</script>"
FEATURES = 50


class Page(HTMLParser):
    """Collects what the tests look at: resource references, the failing cases' cards, text."""

    def __init__(self):
        super().__init__()
        self.resources, self.cards, self.scripts, self.text = [], [], 0, []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script":
            self.scripts += 1
        for name in ("src", "href", "data", "srcset", "action"):
            if a.get(name):
                self.resources.append((tag, a[name]))
        if tag == "section" and "case" in (a.get("class") or ""):
            self.cards.append((a["data-key"], tuple(json.loads(a["data-features"]))))

    def handle_data(self, data):
        self.text.append(data)


def parse(text: str) -> Page:
    page = Page()
    page.feed(text)
    page.close()
    return page


def _wide(n: int, seed: int) -> pd.DataFrame:
    """50 features (40 numeric, 10 categorical), one named like a script; a binary label."""
    rng = np.random.default_rng(seed)
    cols = {f"x{i}": rng.normal(0, 1, n) for i in range(39)}
    cols[EVIL] = rng.normal(0, 1, n)
    cols.update({f"c{i}": rng.choice(["a", "b", "c", "d"], n) for i in range(9)})
    cols["c<i>9</i>"] = rng.choice(["<b>v</b>", "w", "x"], n)
    df = pd.DataFrame(cols)
    df["y"] = (rng.uniform(size=n) < 1 / (1 + np.exp(-(2 * df["x0"] + df[EVIL])))).astype(int)
    return df


def model(df: pd.DataFrame) -> np.ndarray:
    x0 = pd.to_numeric(df["x0"], errors="coerce").fillna(0).to_numpy()
    x1 = pd.to_numeric(df[EVIL], errors="coerce").fillna(0).to_numpy()
    return 1 / (1 + np.exp(-(2 * x0 + x1)))


@pytest.fixture(scope="module")
def failing_run():
    """Many failures: every numeric feature shifted, nulls, unseen categories, labels flipped."""
    ref, ev = _wide(2000, 1), _wide(2000, 2)
    for i in range(39):
        ev[f"x{i}"] = ev[f"x{i}"] * 1.5 + 0.8
    ev[EVIL] = ev[EVIL] + 1
    ev.loc[:300, "x1"] = np.nan
    for i in range(5):
        ev.loc[100 * i:100 * i + 150, f"c{i}"] = "unseen"
    ev.loc[:400, "y"] = 1 - ev.loc[:400, "y"]
    cfg = config(protected_features=["c<i>9</i>"])
    cfg["run_name"] = "wide <run> & 'quotes'"
    return run(ref, ev, model=model, cfg=cfg)


@pytest.fixture(scope="module")
def report(failing_run, tmp_path_factory):
    path = tmp_path_factory.mktemp("report") / "out" / "report.html"
    started = time.perf_counter()
    written = write_report(failing_run, path)
    return written, path.read_text(encoding="utf-8"), time.perf_counter() - started


def test_file_is_written_and_parses(report):
    written, text, _ = report
    assert written.is_file() and text.startswith("<!DOCTYPE html>")
    page = parse(text)
    assert page.scripts == 0
    assert "Warnings and failures" in text and "Passing and skipped cases" in text


def test_no_network_resources(report):
    _, text, _ = report
    page = parse(text)
    assert page.resources, "the plots are inline images"
    assert all(ref.startswith("data:image/png;base64,") for tag, ref in page.resources), page.resources[:3]
    assert "http://" not in text and "https://" not in text
    assert "@import" not in text and "url(" not in text


def test_user_strings_are_escaped(report):
    _, text, _ = report
    assert EVIL not in text and "<i>9</i>" not in text and "<b>v</b>" not in text and "<run>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    page = parse(text)
    assert any(EVIL in t for t in page.text)  # shown as text
    assert any(EVIL in features for _, features in page.cards)


def test_under_2_mb_with_many_failures(failing_run, report):
    _, text, seconds = report
    failing = failing_run.failing_cases()
    assert len({f for c in failing_run.cases for f in c.features}) >= FEATURES
    assert len(failing) > 100, len(failing)
    size = len(text.encode("utf-8"))
    assert size < 2 * 1024 * 1024, size
    print(f"report: {size / 1024:.0f} KB, {len(failing)} failing cases, {seconds:.1f} s")


def test_every_failing_case_is_listed(failing_run, report):
    _, text, _ = report
    cards = parse(text).cards
    expected = [(c.test_key, tuple(c.features)) for c in failing_run.failing_cases()]
    assert sorted(cards) == sorted(expected)
    assert text.count("data:image/png;base64,") == 100  # the plot budget, most severe first


def test_summary_by_category_and_severity(failing_run, report):
    _, text, _ = report
    for category in failing_run.category_severities():
        assert f"<td>{category.replace('&', '&amp;')}</td>" in text
    for header in ("<th>fail</th>", "<th>skip</th>", "<th>high</th>", "<th>medium</th>", "Sampling",
                   "Model performance"):
        assert header in text


def test_skip_reasons_are_listed():
    ref, ev = make_frame(300, 1), make_frame(300, 2)
    result = run(ref, ev.drop(columns=["y"]), tests=["label_drift", "numeric_drift", "demographic_parity"],
                 model=predict_binary)
    text = render(result)
    skipped = [c for c in result.cases if c.status == Status.SKIP]
    assert skipped and all(c.reason.split(":")[0] in text for c in skipped)
    assert "No test case warned or failed" in text or "Warnings and failures" in text


def test_report_from_stored_results(failing_run, tmp_path):
    failing_run.to_parquet(tmp_path)
    again = StressTestResult.from_parquet(tmp_path)
    text = render(again, max_plots=5)
    assert text.count("data:image/png;base64,") == 5 and "plot left out" in text
    assert len(parse(text).cards) == len(failing_run.failing_cases())


def test_cli_writes_the_report(tmp_path):
    from click.testing import CliRunner

    from kilele_stress.cli import stress

    ref, ev = make_frame(400, 1), make_frame(400, 2)
    ev["num_a"] = ev["num_a"] + 1
    ref.to_csv(tmp_path / "ref.csv", index=False)
    ev.to_csv(tmp_path / "eval.csv", index=False)
    (tmp_path / "model.py").write_text(
        "import numpy as np, pandas as pd\n"
        "def predict_df(df):\n"
        "    x = pd.to_numeric(df['num_a'], errors='coerce').fillna(0).to_numpy()\n"
        "    return 1 / (1 + np.exp(-2 * x))\n")
    out = tmp_path / "out"
    res = CliRunner().invoke(stress, ["run", "--ref", str(tmp_path / "ref.csv"), "--eval", str(tmp_path / "eval.csv"),
                                      "--label-col", "y", "--model", str(tmp_path / "model.py"), "--out", str(out),
                                      "--quiet"])
    assert res.exit_code == 0, res.output
    assert (out / "report.html").is_file() and "report: " + str(out / "report.html") in res.output
    page = parse((out / "report.html").read_text())
    assert ("numeric_drift", ("num_a",)) in page.cards
