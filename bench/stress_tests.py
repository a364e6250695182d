"""Stress tests: Kilele's engine vs Evidently's DataDriftPreset and deepchecks' train_test_validation.

Speed: the whole default catalogue (a logistic regression in the loop) on N reference + N
evaluation rows, generated with numpy (bench/stress_faults.py), written once to Parquet and read
by each tool in its own process (bench/stress_runner.py); wall time of the tool's call, the
process's peak RSS (``os.wait4``'s rusage of that child), rows/s. A peer slower than
``--peer-timeout`` is stopped and reported as "> N s (timeout)".

Detection: a grid of injected faults × prevalences × seeds, plus untouched controls, each tool
run once over the whole grid in its own process (the three at the same time); recall per fault
and false-positive rate on controls, by the rules in DETECTION_RULES.

Peers run in their own pinned venvs, bench/.venvs/{evidently,deepchecks} (git-ignored), made by
bench/serving_peers.py's machinery from bench/envs/{evidently,deepchecks}.txt; never in .venv.

    .venv/bin/python bench/stress_tests.py                 # everything, writes bench/README.md
    .venv/bin/python bench/stress_tests.py --no-write --seeds 2 --sizes 20000x20
    .venv/bin/python bench/stress_tests.py --render results.json   # the section from saved results
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import serving_peers  # noqa: E402
from readme_section import machine, write_section  # noqa: E402
from serving_peers import PEER_ENVS, PeerEnv, ensure_env, env_versions, log  # noqa: E402
from stress_faults import FAULTS, LABEL, grid, inject, make_data, population, target_of  # noqa: E402

HEADING = "## Stress tests: Kilele's engine vs Evidently and deepchecks"
RUNNER = BENCH / "stress_runner.py"
TOOLS = ("kilele", "evidently", "deepchecks")
LABELS = {"kilele": "Kilele (whole default catalogue, model in the loop)",
          "evidently": "Evidently `Report([DataDriftPreset()])`",
          "deepchecks": "deepchecks `train_test_validation()` suite"}
SHORT = {"kilele": "Kilele", "evidently": "Evidently DataDriftPreset", "deepchecks": "deepchecks train_test_validation"}
# Test categories that grade the model on its own (perturbed copies of clean rows), not the evaluation
# data against the reference: left out of the detection rule (their FAILs on controls are reported apart).
MODEL_ONLY_CATEGORIES = ("Transformations", "Adversarial")
POPULATION_ROWS = 200_000

PEER_ENVS["evidently"] = PeerEnv("evidently", sys.executable, versions=(
    "evidently", "pandas", "numpy", "scipy", "scikit-learn", "pyarrow"))
PEER_ENVS["deepchecks"] = PeerEnv("deepchecks", sys.executable, versions=(
    "deepchecks", "pandas", "numpy", "scipy", "scikit-learn", "pyarrow"))

DETECTION_RULES = {
    "kilele": ("a FAIL case (severity MEDIUM or HIGH; WARNINGs do not count) whose features include the faulted "
               "column; for duplicated rows and label noise, a FAIL case anywhere. Cases of the Transformations and "
               "Adversarial categories (substitutions, numeric perturbation, bounded single-feature attack) are left "
               "out: they perturb clean rows to grade the model, whatever the evaluation data holds. Controls: a FAIL "
               "case whose claim is false of the distribution both frames were drawn from. Claims about the model "
               "and the label can be true of clean data (a subset where the logistic regression does worse than its "
               "own confidence says, a drop from the reference it was fitted on, a label imbalance), so each such "
               "flag on a control is checked on a fresh draw of 200,000 rows of that distribution "
               "(`verify_claims` in bench/stress_runner.py: the claimed effect at the level it was flagged at, "
               "recomputed there); every other flag on a control (drift, abnormal inputs, cleanliness) is false. "
               "The row *controls: flagged* counts every flag, true or not"),
    "evidently": ("the faulted column drifted (its drift score past the preset's default threshold for the method "
                  "Evidently picked); for duplicated rows and label noise, the label column drifted or the dataset "
                  "drifted (share of drifted columns ≥ 0.5); controls: any column drifted"),
    "deepchecks": ("a condition of the suite that did not pass (FAIL or WARN) and names the faulted column in its "
                   "details; for duplicated rows and label noise, any condition that did not pass; controls: any "
                   "condition that did not pass"),
}


def python_of(tool: str) -> str:
    return sys.executable if tool == "kilele" else str(PEER_ENVS[tool].bin / "python")


def other_cpu_snapshot() -> tuple[float, float]:
    """(busy jiffies of the whole machine, wall) from /proc/stat."""
    parts = open("/proc/stat").readline().split()[1:]
    values = [float(v) for v in parts]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values[:8]) - idle, time.time()


def run_child(argv: list[str], timeout: float, env: dict) -> dict:
    """Runs one tool's process in its own group; its wall time, CPU and peak RSS (wait4's rusage)."""
    busy0, t0 = other_cpu_snapshot()
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out_chunks: list[bytes] = []
    os.set_blocking(proc.stdout.fileno(), False)
    timed_out, status, usage, hwm = False, 0, None, 0
    while True:
        try:
            chunk = proc.stdout.read()
            if chunk:
                out_chunks.append(chunk)
        except (BlockingIOError, TypeError):
            pass
        try:  # the child's own high-water mark (see stress_runner.peak_rss), sampled until it exits
            for line in open(f"/proc/{proc.pid}/status"):
                if line.startswith("VmHWM:"):
                    hwm = max(hwm, int(line.split()[1]) * 1024)
        except (OSError, ValueError):
            pass
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() - start > timeout:
            timed_out = True
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                time.sleep(2)
            _, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.05)
    wall = time.perf_counter() - start
    try:
        rest = proc.stdout.read()
        if rest:
            out_chunks.append(rest)
    except (BlockingIOError, TypeError):
        pass
    proc.returncode = os.waitstatus_to_exitcode(status) if not timed_out else -9
    busy1, t1 = other_cpu_snapshot()
    cpu = usage.ru_utime + usage.ru_stime
    hz = os.sysconf("SC_CLK_TCK")
    machine_cores = (busy1 - busy0) / hz / max(t1 - t0, 1e-9)
    return {"wall": wall, "cpu": cpu, "peak_rss": hwm, "timed_out": timed_out,
            "returncode": proc.returncode, "output": b"".join(out_chunks).decode(errors="replace")[-3000:],
            "other_cpu_cores": max(0.0, machine_cores - cpu / max(wall, 1e-9))}


def child_env() -> dict:
    env = serving_peers.clean_env()
    env.update({"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                "PYTHONWARNINGS": "ignore", "DO_NOT_TRACK": "1", "EVIDENTLY_DISABLE_TELEMETRY": "1"})
    return env


# -- speed -------------------------------------------------------------------------------------------

def speed(sizes: list[tuple[int, int]], tools: list[str], work: Path, peer_timeout: float) -> list[dict]:
    rows = []
    for n, features in sizes:
        n_cat = max(1, features // 5)
        ref, ev = make_data(n, features - n_cat, n_cat, seed=7)
        ref_path, eval_path = work / f"ref_{n}x{features}.parquet", work / f"eval_{n}x{features}.parquet"
        ref.to_parquet(ref_path, index=False)
        ev.to_parquet(eval_path, index=False)
        del ref, ev
        for tool in tools:
            out = work / f"speed_{tool}_{n}x{features}.json"
            timeout = peer_timeout if tool != "kilele" else max(peer_timeout, 900)
            log(f"speed {n:,} x {features}: {tool}")
            child = run_child([python_of(tool), str(RUNNER), "speed", tool, str(ref_path), str(eval_path), str(out)],
                              timeout, child_env())
            row = {"tool": tool, "rows": n, "features": features, "n_cat": n_cat, **child}
            if out.exists():
                row.update(json.loads(out.read_text()))
                row["peak_rss"] = max(row["peak_rss"], row.get("peak_rss_self", 0))
            elif not child["timed_out"]:
                row["error"] = child["output"].strip().splitlines()[-1] if child["output"].strip() else "no output"
            log(f"  -> wall {child['wall']:.1f} s, tool {row.get('tool_seconds', float('nan')):.2f} s, "
                f"peak {child['peak_rss'] / 2**20:.0f} MiB{', TIMEOUT' if child['timed_out'] else ''}"
                f"{', ' + row['error'] if row.get('error') else ''}")
            rows.append(row)
        ref_path.unlink()
        eval_path.unlink()
    return rows


# -- detection ---------------------------------------------------------------------------------------

def write_grid(work: Path, seeds: int, n: int, n_num: int, n_cat: int) -> list[dict]:
    work.mkdir(parents=True, exist_ok=True)
    cells = []
    by_seed = defaultdict(list)
    for index, (fault, prevalence, seed) in enumerate(grid(seeds)):
        by_seed[seed].append((index, fault, prevalence))
    for seed in sorted(by_seed):
        ref, ev = make_data(n, n_num, n_cat, seed=1000 + seed)
        ref.to_parquet(work / f"ref_{seed}.parquet", index=False)
        # the ground truth flags on controls are checked against (bench/stress_runner.py: verify_claims)
        population(POPULATION_ROWS, n_num, n_cat, seed=1000 + seed).to_parquet(work / f"pop_{seed}.parquet", index=False)
        for index, fault, prevalence in by_seed[seed]:
            rng = np.random.default_rng([seed, index])
            faulted = inject(ref, ev, fault, prevalence, rng)
            name = f"eval_{index}.parquet"
            faulted.to_parquet(work / name, index=False)
            cells.append({"fault": fault, "prevalence": prevalence, "seed": seed, "file": name})
    (work / "cells.json").write_text(json.dumps(cells))
    return cells


def detected(tool: str, result: dict, statuses: tuple = ("FAIL",), any_claim: bool = False) -> bool:
    """Whether ``tool`` flagged the cell by DETECTION_RULES. On a control, Kilele's flag counts as a
    false positive only when its claim is false of the population (``verified``, see
    bench/stress_runner.py: verify_claims); ``any_claim`` counts every flag instead."""
    flags, fault = result["flags"], result["fault"]
    if result.get("error"):
        return False
    target = target_of(fault)
    if tool == "kilele":
        verified = flags.get("verified") or [[False, ""]] * len(flags["cases"])
        fails = [(c, v) for c, v in zip(flags["cases"], verified)
                 if c[2] in statuses and c[4] not in MODEL_ONLY_CATEGORIES]
        if fault == "control" and not any_claim:  # a false positive: a flag whose claim is false
            return any(not v[0] for _, v in fails)
        if target is None:
            return bool(fails)
        return any(target in c[1] for c, _ in fails)
    if tool == "evidently":
        if target is None:
            return bool(flags["drifted"]) if fault == "control" else (LABEL in flags["drifted"] or flags["dataset"])
        return target in flags["drifted"]
    failed = flags["failed"]
    if target is None:
        return bool(failed)
    import re
    return any(re.search(rf"(?<![\w]){re.escape(target)}(?![\w])", str(f[3])) for f in failed)


def detection(seeds: int, n: int, tools: list[str], work: Path, timeout: float) -> dict:
    data = work / "grid"
    t0 = time.perf_counter()
    cells = write_grid(data, seeds, n, 5, 3)
    log(f"detection grid: {len(cells)} cells ({n:,} rows x 8 features each) written in {time.perf_counter() - t0:.0f} s")
    procs = {}
    import threading
    results: dict[str, dict] = {}

    def one(tool: str) -> None:
        out = work / f"detect_{tool}.json"
        child = run_child([python_of(tool), str(RUNNER), "detect", tool, str(data), str(out)], timeout, child_env())
        entry = {**child}
        if out.exists():
            entry["results"] = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
        results[tool] = entry
        log(f"detection {tool}: wall {child['wall']:.0f} s{', TIMEOUT' if child['timed_out'] else ''}"
            f", {len(entry.get('results', []))} runs"
            f"{'' if entry.get('results') else ', no results: ' + child['output'][-300:]}")

    threads = [threading.Thread(target=one, args=(tool,)) for tool in tools]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    del procs
    return {"cells": len(cells), "rows": n, "seeds": seeds, "tools": results}


# -- the README section ------------------------------------------------------------------------------

def fmt_s(x: float) -> str:
    return f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 100 else f"{x:.0f}"


def render(res: dict) -> str:
    versions = res["versions"]
    lines = [HEADING, ""]
    sp = res.get("speed", [])
    det = res.get("detection")
    lines.append(
        "Synthetic binary-classification data made with numpy (`bench/stress_faults.py`): numeric features "
        "(normal, log-normal, uniform, Poisson counts) and categorical ones (3–14 string categories, skewed), "
        "a label drawn from a logistic model of half the numeric features and the categories; reference and "
        "evaluation are two draws of the same distribution, N rows each, written once to Parquet and read "
        "with pandas by each tool in its own process (`bench/stress_runner.py`). Kilele runs its whole default "
        "catalogue with a scikit-learn logistic regression in the loop (`predict_df`; standardised numerics, "
        "one-hot categories; fitted on ≤ 100k reference rows before the timed call); Evidently "
        "`Report([DataDriftPreset()]).run(...)` with the label as a categorical column; deepchecks "
        "`train_test_validation().run(train_dataset, test_dataset)` with the label and the categorical "
        "features declared, no model (the suite needs none). Every tool at its default thresholds.")
    lines.append("")
    if sp:
        lines.append("### Speed")
        lines.append("")
        lines.append("*tool s*: the tool's own call (reading the Parquet files and fitting the model excluded); *tool CPU s*: "
                     "the CPU time of that call (every thread; what the shared machine's load does not inflate); *model s*: "
                     "of *tool s*, the time spent inside the model's `predict_df` (Kilele only; the rest is the engine's); "
                     "*process s*: the whole process (interpreter start, imports, reading, fit, call); *peak RSS*: the process's "
                     "high-water mark (`os.wait4` rusage of that child); *rows/s*: (reference + evaluation rows) ÷ tool s; "
                     "*other CPU*: cores the rest of this shared machine used meanwhile (from /proc/stat).")
        lines.append("")
        lines.append("| data (ref + eval) | tool | tool s | tool CPU s | model s | process s | peak RSS | rows/s | other CPU | notes |")
        lines.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
        for r in sp:
            size = f"{r['rows']:,} + {r['rows']:,} × {r['features']}"
            note = []
            if r["timed_out"]:
                tool_s = f"> {r['wall']:.0f} (timeout)"
                rate = "-"
            elif "tool_seconds" in r:
                tool_s = fmt_s(r["tool_seconds"])
                rate = f"{2 * r['rows'] / r['tool_seconds']:,.0f}"
            else:
                tool_s, rate = "failed", "-"
                note.append(f"error: {r.get('error', '')[:160]}")
            info = r.get("info", {})
            if r["tool"] == "kilele" and info:
                note.append(f"{info['tests']} tests, {info['cases']} cases ({', '.join(f'{k} {v}' for k, v in sorted(info['status'].items()))})")
            if info.get("checks"):
                note.append(f"{info['checks']} checks")
            if info.get("metrics"):
                note.append(f"{info['metrics']} metrics")
            cpu_s = fmt_s(r["tool_cpu_seconds"]) if "tool_cpu_seconds" in r else "-"
            model_s = fmt_s(r["model_call_seconds"]) if r["tool"] == "kilele" and "model_call_seconds" in r else "-"
            lines.append(f"| {size} | {SHORT[r['tool']]} | {tool_s} | {cpu_s} | {model_s} | {fmt_s(r['wall'])} | "
                         f"{r['peak_rss'] / 2**30:.2f} GiB | {rate} | {r['other_cpu_cores']:.2f} | {'; '.join(note)} |")
        lines.append("")
        lines += targets(sp)
        lines.append("")
    if det:
        lines += render_detection(det)
    reused = ""
    if det and det.get("reused"):
        reused = (f"; the detection grid's results were taken from the previous run of the same code "
                  f"(`--reuse-detection`: the grid took {max(e['wall'] for e in det['tools'].values()) / 60:.1f} min), "
                  f"this run measured speed only")
    lines.append(f"Reproduce: `.venv/bin/python bench/stress_tests.py` (this run: {res['minutes']:.1f} min, "
                 f"including making or reusing the peer venvs{reused}). Peer venvs: `bench/.venvs/NAME` (git-ignored), made "
                 f"by `bench/serving_peers.py`'s machinery from `bench/envs/NAME.txt` (every package pinned, as "
                 f"`pip freeze` printed it; the file says why those versions) when missing or changed; never in the "
                 f"project's venv. This run: {', '.join(f'{k} {v}' for k, v in res['envs'].items())}.  ")
    lines.append(f"Machine: {res['machine']}, shared with other engineers' work (test suites and benches ran "
                 f"during this run: see *other CPU*); Python {res['python']}. Versions: "
                 + "; ".join(f"{SHORT.get(k, k)}: " + ", ".join(f"{p} {v}" for p, v in vs.items())
                             for k, vs in versions.items()) + ".")
    return "\n".join(lines) + "\n"


def targets(sp: list[dict]) -> list[str]:
    out = []
    by = {(r["tool"], r["rows"], r["features"]): r for r in sp}
    for (tool, n, f), r in by.items():
        if tool != "kilele" or "tool_seconds" not in r:
            continue
        t = r["tool_seconds"]
        if (n, f) == (100_000, 50):
            engine = t - r.get("model_call_seconds", 0.0)
            ev = by.get(("evidently", n, f))
            ratio = ""
            if ev and "tool_seconds" in ev and not ev["timed_out"]:
                x, y = ev["tool_seconds"] / engine, ev["tool_seconds"] / t
                ratio = (f"; engine time ×{x:.1f} faster than Evidently's preset (target ≥ 7×: "
                         f"{'met' if x >= 7 else 'not met'}), the whole call with the model ×{y:.1f}")
            out.append(f"- Target 100k × 50 ≤ 3 s of engine time: {fmt_s(engine)} s of engine time ({fmt_s(t)} s call less "
                       f"{fmt_s(t - engine)} s in the model's `predict_df`; {'met' if engine <= 3 else 'not met'}); "
                       f"the whole call {fmt_s(t)} s ({'within' if t <= 3 else 'over'} 3 s){ratio}.")
        elif (n, f) == (1_000_000, 20):
            mem = r["peak_rss"] / 2**30
            ok = t <= 60 and r["peak_rss"] <= 4 * 10**9
            out.append(f"- Target 1M × 20 ≤ 60 s within 4 GB: {fmt_s(t)} s, peak RSS {mem:.2f} GiB "
                       f"({'met' if ok else 'not met'}).")
    return out


def detection_targets(agg: dict, order: list, columns: list) -> list[str]:
    """The targets' verdict from the table, for each of Kilele's columns (the FAIL rule, and WARNING
    counting too): recall ≥ every peer's on every fault, zero false positives on controls."""
    peers = [name for t, _, name in columns if t != "kilele"]
    mine_columns = [name for t, _, name in columns if t == "kilele"]
    if not mine_columns or not peers:
        return []

    def rate(key, name):
        hit, total, _ = agg[key][name]
        return hit / total if total else None

    out = []
    for kilele in mine_columns:
        short = []
        for fault, p in order:
            if fault.startswith("control") or (fault, p) not in agg:
                continue
            mine = rate((fault, p), kilele)
            best = max((r, n) for n in peers if (r := rate((fault, p), n)) is not None)
            if mine is not None and mine < best[0]:
                prev = "" if p is None else f" {p:.0%}"
                short.append(f"{FAULTS[fault][2]}{prev} ({mine:.0%} vs {best[1]}'s {best[0]:.0%})")
        fp = agg[("control", None)][kilele] if ("control", None) in agg else [0, 0, 0]
        out.append(f"- *{kilele}*: target recall ≥ every peer's on every fault type "
                   + ("met" if not short else "not met on " + "; ".join(short))
                   + f"; target zero false positives on controls {fp[0]}/{fp[1]} ({'met' if fp[0] == 0 else 'not met'}).")
    return out + [""]


def render_detection(det: dict) -> list[str]:
    tools = [t for t in TOOLS if t in det["tools"]]
    lines = ["### Detection", ""]
    lines.append(
        f"{det['seeds']} seeds × every cell below: a fresh reference/evaluation pair of {det['rows']:,} rows each "
        f"(5 numeric, 3 categorical features + label) per seed, one fault injected into the evaluation copy "
        f"(`bench/stress_faults.py`: numeric faults on `num_1` (normal), categorical ones on `cat_1` (6 categories), "
        f"duplicated rows and label noise on the table); controls are the untouched pairs. Faults and their "
        f"parameters were fixed before any tool ran; no threshold of any tool was set or changed (all defaults). "
        f"Mean shift is in reference standard deviations on every row; *scale ×1.5* stretches every row around the "
        f"reference mean; *category reassignment* moves the share of rows to an existing category (the third most "
        f"frequent); *out-of-range* sets values 0.5–1.5 reference ranges above the reference maximum; *unseen "
        f"categories* writes 3 new category values; *type corruption* turns the column into text (the numbers as "
        f"written) with the share replaced by non-numbers (`n/a?`, `#VALUE!`…); *duplicated rows* replaces the "
        f"share by copies of other evaluation rows; *label noise* flips the share of labels. A cell is detected when:")
    lines.append("")
    for t in tools:
        lines.append(f"- **{SHORT[t]}**: {DETECTION_RULES[t]}.")
        if t == "kilele":
            lines.append("- **Kilele, WARNING counts too**: the same runs, WARNING cases (severity LOW) counting as "
                         "FAIL ones (controls too, each checked as above). This is the like-for-like rule: deepchecks' "
                         "column counts its WARN conditions as well as its FAIL ones. The FAIL-only rule above was the "
                         "one written before the first run; this column and the check of control flags on the "
                         "population were added after it, and both verdicts are given below.")
    lines.append("")
    columns = [(t, ("FAIL",), SHORT[t]) for t in tools]
    if "kilele" in tools:  # the same runs read with the looser rule, for reference
        columns.insert(1, ("kilele", ("FAIL", "WARNING"), "Kilele, WARNING counts too"))
    header = "| fault | prevalence | " + " | ".join(c[2] for c in columns) + " |"
    lines += [header, "|---|---:|" + "---:|" * len(columns)]
    agg: dict = defaultdict(lambda: defaultdict(lambda: [0, 0, 0]))
    for col in columns:
        t, statuses, name = col
        for r in det["tools"][t].get("results", []):
            key = (r["fault"], r["prevalence"])
            a = agg[key][name]
            a[0] += detected(t, r, statuses)
            a[1] += 1
            a[2] += bool(r.get("error"))
            if r["fault"] == "control":
                b = agg[("control_any", None)][name]
                b[0] += detected(t, r, statuses, any_claim=True)
                b[1] += 1
                b[2] += bool(r.get("error"))
    order = [(f, p) for f, (_, ps, _) in FAULTS.items() for p in ps] + [("control_any", None), ("control", None)]
    for fault, p in order:
        if (fault, p) not in agg:
            continue
        label = FAULTS[fault][2] if fault in FAULTS else {
            "control_any": "controls: flagged (any flag, its claim true or false)",
            "control": "**controls: false positives** (a flag whose claim is false of the population)"}[fault]
        prev = "all rows" if p is None and not fault.startswith("control") else ("-" if p is None else f"{p:.0%}")
        cells = []
        for _, _, name in columns:
            hit, total, err = agg[(fault, p)][name]
            if not total:
                cells.append("not run")
                continue
            s = f"{hit}/{total}"
            if err:
                s += f" ({err} raised)"
            cells.append(s)
        lines.append(f"| {label} | {prev} | " + " | ".join(cells) + " |")
    lines.append("")
    lines += detection_targets(agg, order, columns)
    notes = []
    for t in tools:
        e = det["tools"][t]
        n = len(e.get("results", []))
        if e.get("timed_out"):
            done = sorted({r["seed"] for r in e.get("results", [])})
            notes.append(f"{SHORT[t]} was stopped after {e['wall']:.0f} s (timeout) having finished {n} of {det['cells']} "
                         f"runs (cells run seed by seed: seeds {done[0] if done else '-'}–{done[-1] if done else '-'}; the "
                         f"last seed may be partial), so its column has fewer runs than the others.")
        if t == "deepchecks":
            failures = defaultdict(int)
            for r in e.get("results", []):
                for header, msg in (r.get("flags") or {}).get("errors", []):
                    if "does not contain" not in msg:
                        failures[(r["fault"], header, msg[:100])] += 1
            if failures:
                notes.append("deepchecks checks that raised inside the suite (the suite went on; the check counts as not "
                             "flagging): " + "; ".join(f"{f}: {h} `{m}` ×{k}" for (f, h, m), k in failures.items()) +
                             ". Its three date/index leakage checks do not apply to this data (no datetime, no index) in every run.")
        errs = [r["error"] for r in e.get("results", []) if r.get("error")]
        if errs:
            by = defaultdict(int)
            for r in e["results"]:
                if r.get("error"):
                    by[(r["fault"], r["error"][:140])] += 1
            notes.append(f"{SHORT[t]} raised in {len(errs)} runs (counted as not detected): " + "; ".join(
                f"{f}: `{msg}` ×{k}" for (f, msg), k in list(by.items())[:4]) + ".")
        notes.append(f"{SHORT[t]}: {n} runs in {e['wall']:.0f} s of wall time "
                     f"({e['wall'] / max(n, 1):.2f} s per run, process included; the three tools ran at the same time).")
    k = det["tools"].get("kilele")
    if k:
        ctrl = [r for r in k.get("results", []) if r["fault"] == "control" and not r.get("error")]
        model_only = defaultdict(int)
        for r in ctrl:
            for c in r["flags"]["cases"]:
                if c[2] == "FAIL" and c[4] in MODEL_ONLY_CATEGORIES:
                    model_only[(c[0], tuple(c[1]))] += 1
        if model_only:
            notes.append("Kilele's model-only cases that FAILed on controls (left out by the rule above; they grade the "
                         "logistic regression's robustness, the same whatever the data): " + ", ".join(
                             f"`{key}` on {list(feat)} in {v}/{len(ctrl)}" for (key, feat), v in model_only.items()) + ".")
        for status in ("FAIL", "WARNING"):
            seen = []
            for r in ctrl:
                verified = r["flags"].get("verified") or [[False, ""]] * len(r["flags"]["cases"])
                for c, v in zip(r["flags"]["cases"], verified):
                    if c[2] == status and c[4] not in MODEL_ONLY_CATEGORIES:
                        seen.append(f"seed {r['seed']} `{c[0]}` on {c[1]}: {'true' if v[0] else 'false'} ({v[1]})")
            if seen:
                notes.append(f"Kilele's {status} cases on controls, each with its check on the population: "
                             + "; ".join(seen) + ".")
        notes.append("Kilele's abnormal-input tests grade by STRESS-TESTS.md's one severity rule: prevalence "
                     "0.01 / 0.05 / 0.1 (and the model's change on those rows), so faults on 2% of rows are LOW, a "
                     "WARNING, unless the model's answers move more; the *WARNING counts too* column shows them found.")
    lines += [f"- {n}" for n in notes]
    lines.append("")
    return lines


# -- main --------------------------------------------------------------------------------------------

def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000x50,1000000x20", help="comma-separated ROWSxFEATURES for speed")
    parser.add_argument("--tools", default=",".join(TOOLS))
    parser.add_argument("--peer-timeout", type=float, default=600.0, help="seconds before a peer's speed run is stopped")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--detect-rows", type=int, default=2000)
    parser.add_argument("--detect-timeout", type=float, default=1800.0)
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-detection", action="store_true")
    parser.add_argument("--no-write", action="store_true", help="print the section instead of writing bench/README.md")
    parser.add_argument("--json", help="also write the raw results here")
    parser.add_argument("--render", metavar="JSON", help="only render the section from saved results")
    parser.add_argument("--reuse-detection", metavar="JSON",
                        help="take the detection results from a previous run's --json instead of running the grid")
    parser.add_argument("--lock", metavar="NAME", help="re-resolve bench/envs/NAME.txt from its '# Chosen:' line")
    args = parser.parse_args(argv)
    if args.lock:
        serving_peers.lock(args.lock)
        return
    if args.render:
        res = json.loads(Path(args.render).read_text())
    else:
        started = time.perf_counter()
        tools = [t for t in args.tools.split(",") if t]
        envs, versions = {}, {}
        from importlib import metadata
        versions["kilele"] = {p: metadata.version(p) for p in ("kilele-stress", "pandas", "numpy", "scipy",
                                                              "scikit-learn", "pyarrow")
                              if _has(metadata, p)}
        for tool in [t for t in tools if t != "kilele"]:
            ok, why = ensure_env(tool)
            envs[tool] = why if ok else f"FAILED: {why}"
            log(f"{tool} venv: {envs[tool]}")
            if ok:
                versions[tool] = env_versions(tool)
            else:
                tools.remove(tool)
        work = Path(tempfile.mkdtemp(prefix="kilele-bench-stress-"))
        res = {"envs": envs, "versions": versions, "machine": machine(), "python": platform.python_version()}
        try:
            if not args.skip_speed:
                sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes.split(",") if s]
                res["speed"] = speed(sizes, tools, work, args.peer_timeout)
            if args.reuse_detection:
                res["detection"] = json.loads(Path(args.reuse_detection).read_text())["detection"]
                res["detection"]["reused"] = True
            elif not args.skip_detection:
                res["detection"] = detection(args.seeds, args.detect_rows, tools, work, args.detect_timeout)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        res["minutes"] = (time.perf_counter() - started) / 60
        if args.json:
            Path(args.json).write_text(json.dumps(res, default=str))
    section = render(res)
    if args.no_write:
        print(section)
    else:
        write_section(HEADING, section)
        log(f"wrote {HEADING!r} into bench/README.md")


def _has(metadata, name: str) -> bool:
    try:
        metadata.version(name)
        return True
    except metadata.PackageNotFoundError:
        return False


if __name__ == "__main__":
    main()
