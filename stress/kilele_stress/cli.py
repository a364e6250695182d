"""``kilele stress …`` (and ``kilele-stress …``): the engine from a shell.

``run`` reads the data and the model, prints one line per test while it runs, then a summary
(counts per status, severity per category, the warning and failing cases), and writes the
results as Parquet to ``--out`` with the HTML report beside them when ``kilele_stress.report`` is
installed. ``report`` renders the report of results already written. ``continuous`` runs a
continuous test (each time bin of the evaluation data against the reference) and keeps every
bin's rows in ``--out``, so running it again on new data is an incremental run. Errors (a bad config,
unreadable data, a model that does not load) print one line on stderr and exit 1, like the
SDK's other commands.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import click

REPORT_NAME = "report.html"


def _write_report(result: Any, path: Path) -> Optional[str]:
    """The report's path, or why there is none (the report module is another package part)."""
    try:
        from kilele_stress import report  # noqa: PLC0415 (optional: written separately)
    except ImportError:
        return None
    report.write_report(result, path)
    return str(path)


@click.group()
def stress() -> None:
    """Stress tests of a model and its data (RIME's tests, on this machine)."""


@stress.command("run")
@click.option("--ref", "ref_path", type=click.Path(dir_okay=False), help="Reference data (CSV or Parquet).")
@click.option("--eval", "eval_path", type=click.Path(dir_okay=False), help="Evaluation data (CSV or Parquet).")
@click.option("--label-col", help="Label column.")
@click.option("--pred-col", help="Column of precomputed predictions (instead of a model).")
@click.option("--model", "model_path", type=click.Path(dir_okay=False),
              help="Python file defining predict_df(df) or predict_dict(row).")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              help="Test run config (JSON); the options above override its keys.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="stress-results", show_default=True,
              help="Folder for the results (Parquet) and the report.")
@click.option("--name", "run_name", help="Run name.")
@click.option("--seed", type=int, help="Random seed of the sampling tests.")
@click.option("--quiet", is_flag=True, help="No per-test progress lines.")
def run_cmd(ref_path, eval_path, label_col, pred_col, model_path, config_path, out_dir, run_name, seed, quiet) -> None:
    """Run the stress tests and write the results."""
    from kilele_stress.config import ConfigError
    from kilele_stress.data import DataError
    from kilele_stress.model import ModelError
    from kilele_stress.run import run_stress_test

    config: dict[str, Any] = json.loads(Path(config_path).read_text()) if config_path else {}
    data_info = dict(config.get("data_info") or {})
    for key, value in (("ref_path", ref_path), ("eval_path", eval_path), ("label_col", label_col),
                       ("pred_col", pred_col)):
        if value is not None:
            data_info[key] = value
    config["data_info"] = data_info
    if model_path:
        config["model_info"] = {"path": model_path}
    if run_name:
        config["run_name"] = run_name
    if seed is not None:
        config["random_seed"] = seed
    echo = None if quiet else (lambda line: click.echo(f"  {line}", err=True))
    try:
        result = run_stress_test(config, progress=echo)
    except (ConfigError, DataError, ModelError) as e:
        raise click.ClickException(str(e)) from None
    click.echo(result.summary())
    out = result.to_parquet(out_dir)
    click.echo(f"results: {out / 'test_cases.parquet'}, {out / 'test_run.parquet'}")
    report = _write_report(result, out / REPORT_NAME)
    click.echo(f"report: {report}" if report else "report: not available (kilele_stress.report is not installed)")


@stress.command("report")
@click.argument("results_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--out", "out_path", type=click.Path(dir_okay=False), help="HTML file (default: RESULTS_DIR/report.html).")
def report_cmd(results_dir: str, out_path: Optional[str]) -> None:
    """Print the summary of stored results and write their HTML report."""
    from kilele_stress.results import StressTestResult

    result = StressTestResult.from_parquet(results_dir)
    click.echo(result.summary())
    report = _write_report(result, Path(out_path) if out_path else Path(results_dir) / REPORT_NAME)
    click.echo(f"report: {report}" if report else "report: not available (kilele_stress.report is not installed)")


@stress.command("continuous")
@click.option("--ref", "ref_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Reference data (CSV or Parquet).")
@click.option("--eval", "eval_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Timestamped data to test, bin by bin (CSV or Parquet).")
@click.option("--label-col", required=True, help="Label column.")
@click.option("--timestamp-col", required=True, help="Timestamp column of the evaluation data.")
@click.option("--bin-size", type=click.Choice(["hour", "day"]), default="day", show_default=True)
@click.option("--rolling-bins", type=click.IntRange(min=1), help="Test each bin against the N bins before it.")
@click.option("--pred-col", help="Column of precomputed predictions (instead of a model).")
@click.option("--model", "model_path", type=click.Path(dir_okay=False),
              help="Python file defining predict_df(df) or predict_dict(row).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="ct-results", show_default=True,
              help="Folder for the results, the report and every bin's rows (history.parquet); an existing "
                   "history.parquet there is merged with the new rows (an incremental run).")
@click.option("--quiet", is_flag=True, help="No per-test progress lines.")
def continuous_cmd(ref_path, eval_path, label_col, timestamp_col, bin_size, rolling_bins, pred_col, model_path,
                   out_dir, quiet) -> None:
    """Run a continuous test: each time bin of --eval against the reference."""
    from kilele_stress.config import ConfigError
    from kilele_stress.continuous import history_bins, run_continuous_test
    from kilele_stress.data import DataError, read_table
    from kilele_stress.model import ModelError

    out = Path(out_dir)
    info = {"timestamp_col": timestamp_col, "bin_size": bin_size}
    if rolling_bins:
        info["reference"] = {"rolling_bins": rolling_bins}
    config: dict[str, Any] = {"run_name": Path(eval_path).stem, "continuous_info": info,
                              "data_info": {"label_col": label_col, "ref_path": ref_path, "eval_path": eval_path,
                                            **({"pred_col": pred_col} if pred_col else {})},
                              "model_info": {"path": model_path} if model_path else {}}
    echo = None if quiet else (lambda line: click.echo(f"  {line}", err=True))
    try:
        previous = out / "history.parquet"
        history = history_bins(read_table(previous), timestamp_col, {"hour": 3600, "day": 86400}[bin_size]) \
            if previous.exists() else None
        result = run_continuous_test(config, history=history, progress=echo)
    except (ConfigError, DataError, ModelError) as e:
        raise click.ClickException(str(e)) from None
    click.echo(result.summary())
    out.mkdir(parents=True, exist_ok=True)
    result.test_cases_df(include_details=True).to_parquet(out / "test_cases.parquet", index=False)
    result.test_run_df().to_parquet(out / "test_run.parquet", index=False)
    kept = result.history_df()
    kept.astype({c: "string" for c in kept.columns if kept[c].dtype == object}).to_parquet(previous, index=False)
    click.echo(f"results: {out / 'test_cases.parquet'}, {out / 'test_run.parquet'}; rows so far: {previous}")
    try:
        from kilele_stress.report.continuous import write_continuous_report
    except ImportError:
        click.echo("report: not available (kilele_stress.report is not installed)")
        return
    click.echo(f"report: {write_continuous_report(result, out / REPORT_NAME)}")
