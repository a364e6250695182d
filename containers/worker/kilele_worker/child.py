"""The model process: ``python -m kilele_worker.child <workdir>/spec.json``.

Runs the untrusted model code, without AWS credentials, under the memory limit the supervisor
set. Writes ``result.json`` (``{"status": "ok", "score", "train_seconds", "evaluate_seconds",
"onnx": bool}`` or ``{"status": "error", "error_type", "error_message"}``) into the output
directory; the parameters go to ``params.npz`` and the ONNX graph (if any) to ``model.onnx``.
Exit code 0 on success, 1 when the model failed (the traceback is on stderr, in the trial log).
"""
from __future__ import annotations

import json
import math
import numbers
import os
import sys
import time
import traceback

RESULT_FILE = "result.json"
PARAMS_FILE = "params.npz"
ONNX_FILE = "model.onnx"


class ContractError(Exception):
    """The model broke the model contract (e.g. evaluate() did not return a finite float)."""


def _say(text: str) -> None:
    print(f"kilele: {text}", flush=True)


def _write(path: str, data: bytes) -> None:
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def describe(cls: type) -> dict:
    from kilele.model.knobs import BaseKnob, serialize_knob_config

    config = cls.get_knob_config()
    if not isinstance(config, dict) or not all(isinstance(k, str) and isinstance(v, BaseKnob) for k, v in config.items()):
        raise ContractError("get_knob_config() must return a dict of knob name -> Knob")
    knob_config = serialize_knob_config(config)
    json.dumps(knob_config)  # must be JSON for the platform
    _say(f"knob config: {json.dumps(knob_config, sort_keys=True)}")
    return {"status": "ok", "knob_config": knob_config}


#: What a stress test leaves in the output directory (the JSON tables are what the API serves).
STRESS_TABLES = ("test_cases.parquet", "test_run.parquet", "test_cases.json", "test_run.json")
REPORT_FILE = "report.html"


def _table_json(df) -> bytes:
    """``{"columns", "records"}`` (one object per row; NaN -> null, times as ISO-8601)."""
    table = json.loads(df.to_json(orient="split", index=False, date_format="iso"))
    records = [dict(zip(table["columns"], row)) for row in table["data"]]
    return json.dumps({"columns": table["columns"], "records": records}).encode()


#: What a continuous test leaves besides (``continuous_test``); the supervisor uploads only these.
CT_FILES = ("ct_bins.json", "history.parquet", "reference_test_cases.json", "reference_test_run.json",
            "reference_report.html")


def _engine_model(spec: dict, config: dict):
    """The engine's model and reference: a Kilele trial (``spec["kilele_model"]``) rebuilt and
    wrapped (:mod:`kilele_worker.trial_model`), else None (the engine loads ``model_info.path``)."""
    model = ref = None
    if spec.get("kilele_model"):
        from kilele_stress.data import read_table

        from kilele_worker import trial_model

        kilele_model = spec["kilele_model"]
        ref = read_table(config["data_info"]["ref_path"])  # read once: the engine gets it too
        _say(f"loading the trial's model {kilele_model['model_class']} from "
             f"{os.path.basename(kilele_model['model_path'])} with its parameters")
        model = trial_model.load(kilele_model, config, ref)
        _say(f"the model's features ({len(model.features)}, in the reference's column order): "
             f"{', '.join(model.features[:50])}{' ...' if len(model.features) > 50 else ''}")
    return model, ref


def stress_test(spec: dict) -> dict:
    """Run the stress-test engine on the local files the config names (the model file, if any,
    is imported here, in the sandbox); write its results and report into the output directory.
    A Kilele trial (``spec["kilele_model"]``) is rebuilt here and wrapped as the engine's model
    (:mod:`kilele_worker.trial_model`). A continuous test (``spec["continuous"]``): see
    :func:`continuous_test`."""
    from kilele_stress import run_stress_test

    if spec.get("continuous"):
        return continuous_test(spec)
    output_dir = spec["output_dir"]
    config = spec["config"]
    model, ref = _engine_model(spec, config)
    _say(f"stress test {config.get('run_name', '')!r}: the engine starts")
    result = run_stress_test(config, model=model, ref=ref, test_run_id=spec.get("test_run_id"),
                             project_id=spec.get("project_id"), progress=_say)
    result.to_parquet(output_dir)
    _write(os.path.join(output_dir, "test_cases.json"), _table_json(result.test_cases_df()))
    _write(os.path.join(output_dir, "test_run.json"), _table_json(result.test_run_df()))
    has_report = False
    try:
        from kilele_stress.report import write_report
    except ImportError:
        _say("no kilele_stress.report in this image: no HTML report")
    else:
        write_report(result, os.path.join(output_dir, REPORT_FILE))
        has_report = True
    for line in result.summary().splitlines():
        _say(line)
    return {"status": "ok", "test_run_id": result.test_run_id, "num_test_cases": len(result.cases),
            "status_counts": result.status_counts(), "severity_counts": result.severity_counts(),
            "severity": result.severity.name, "duration_millis": int(result.duration_millis),
            "has_report": has_report}


def continuous_test(spec: dict) -> dict:
    """A continuous test (``kilele_stress.continuous``): for ``mode`` "from_reference" the
    stress test of the reference and evaluation data first (``reference_*`` files: the CT
    instance's run), then each time bin of the evaluation data, merged with the bins' earlier
    rows (``spec["history_path"]``). Writes the bins' results as a stress test's tables (with
    ``time_bin_start``/``time_bin_end``), the time-series report, every bin's rows so far
    (``history.parquet``) and each bin's summary for the platform's monitors (``ct_bins.json``)."""
    from kilele_stress import run_stress_test
    from kilele_stress.continuous import history_bins, parse_continuous_info, run_continuous_test
    from kilele_stress.data import read_table
    from kilele_stress.report import write_report
    from kilele_stress.report.continuous import write_continuous_report

    output_dir = spec["output_dir"]
    config = spec["config"]
    mode = spec["continuous"].get("mode")
    info = parse_continuous_info(config.get("continuous_info"), config["data_info"].get("timestamp_col"))
    model, ref = _engine_model(spec, config)
    if model is None and (config.get("model_info") or {}).get("path"):
        from kilele_stress.model import load_model_file

        model = load_model_file(config["model_info"]["path"])  # imported once, not once per bin
    if ref is None:
        ref = read_table(config["data_info"]["ref_path"])  # read once: every run uses it
    files = []
    if mode == "from_reference":
        _say("the stress test of the reference and the evaluation data (the CT instance's run) starts")
        # The timestamp column is no feature: named as such, the engine leaves it out of the tests.
        ot_config = {**config, "continuous_info": None,
                     "data_info": {**config["data_info"], "timestamp_col": info.timestamp_col}}
        reference = run_stress_test(ot_config, model=model, ref=ref,
                                    test_run_id=spec.get("test_run_id"), project_id=spec.get("project_id"),
                                    progress=_say)
        _write(os.path.join(output_dir, "reference_test_cases.json"), _table_json(reference.test_cases_df()))
        _write(os.path.join(output_dir, "reference_test_run.json"), _table_json(reference.test_run_df()))
        write_report(reference, os.path.join(output_dir, "reference_report.html"))
        files += ["reference_test_cases.json", "reference_test_run.json", "reference_report.html"]
    history = None
    if spec.get("history_path"):
        history = history_bins(read_table(spec["history_path"]), info.timestamp_col, info.seconds)
        _say(f"earlier rows: {sum(len(f) for f in history.values())} in {len(history)} bin(s)")
    eval_df = gathered = None
    if spec.get("sources_path"):  # a scheduled firing's new data, read here (kilele_worker.ct_sources)
        from kilele_worker.ct_sources import eval_frame

        eval_df, gathered = eval_frame(spec["sources_path"], _say)
    _say(f"continuous test {config.get('run_name', '')!r}: bins of {info.seconds} s on {info.timestamp_col!r}")
    started = time.perf_counter()
    if eval_df is not None and eval_df.empty:
        # The firing's files hold no query of its window (they were written in an hour the window
        # only touches): no bin to test, the bins and their history stay as they were.
        from kilele_stress.continuous import ContinuousTestResult

        _say("no row of the new data falls in the firing's window: no bin to test")
        result = ContinuousTestResult(test_run_id=spec.get("test_run_id") or "", run_name=config.get("run_name") or "",
                                      bin_seconds=info.seconds, timestamp_col=info.timestamp_col, bins=[])
    else:
        result = run_continuous_test(config, model=model, ref=ref, eval=eval_df, history=history,
                                     test_run_id=spec.get("test_run_id"), project_id=spec.get("project_id"),
                                     progress=_say)
    cases, runs = result.test_cases_df(), result.test_run_df()
    result.test_cases_df(include_details=True).to_parquet(os.path.join(output_dir, "test_cases.parquet"), index=False)
    runs.to_parquet(os.path.join(output_dir, "test_run.parquet"), index=False)
    _write(os.path.join(output_dir, "test_cases.json"), _table_json(cases))
    _write(os.path.join(output_dir, "test_run.json"), _table_json(runs))
    write_continuous_report(result, os.path.join(output_dir, REPORT_FILE))
    # Text for columns of mixed types (pyarrow takes one type per column); merging compares text too.
    if result.bins:  # else the instance keeps the history it has
        kept = result.history_df()
        kept = kept.astype({c: "string" for c in kept.columns if kept[c].dtype == object})
        kept.to_parquet(os.path.join(output_dir, "history.parquet"), index=False)
        files.append("history.parquet")
    _write(os.path.join(output_dir, "ct_bins.json"), json.dumps(result.bin_summaries()).encode())
    files.append("ct_bins.json")
    for line in result.summary().splitlines():
        _say(line)
    status_counts: dict = {}
    severity_counts: dict = {}
    for b in result.bins:
        for k, v in b.status_counts().items():
            status_counts[k] = status_counts.get(k, 0) + v
        for k, v in b.severity_counts().items():
            severity_counts[k] = severity_counts.get(k, 0) + v
    worst = max((b.severity for b in result.bins), default=None)
    return {"status": "ok", "test_run_id": result.test_run_id, "num_test_cases": int(len(cases)),
            "status_counts": status_counts, "severity_counts": severity_counts,
            "severity": worst.name if worst is not None else "NONE",
            "duration_millis": int((time.perf_counter() - started) * 1000), "has_report": True,
            "num_bins": len(result.bins), "extra_files": files, **({"gathered": gathered} if gathered else {})}


def run(spec: dict) -> dict:
    if spec.get("mode") == "stress_test":
        return stress_test(spec)
    from kilele.model import load_model_class, serialize_params

    output_dir = spec["output_dir"]
    _say(f"loading {spec['model_class']} from {os.path.basename(spec['model_path'])}")
    cls = load_model_class(spec["model_path"], spec["model_class"])
    if spec.get("mode") == "describe":
        return describe(cls)
    knobs = spec.get("knobs") or {}
    train_args = spec.get("train_args") or {}
    _say(f"knobs: {json.dumps(knobs, sort_keys=True, default=str)}")
    model = cls(**knobs)

    _say("train() starts")
    started = time.perf_counter()
    model.train(spec["train_path"], **train_args)
    train_seconds = time.perf_counter() - started
    _say(f"train() done in {train_seconds:.3f} s; evaluate() starts")

    started = time.perf_counter()
    score = model.evaluate(spec["val_path"])
    evaluate_seconds = time.perf_counter() - started
    if isinstance(score, bool) or not isinstance(score, numbers.Real) or not math.isfinite(float(score)):
        raise ContractError(f"evaluate() must return a finite float, got {score!r}")
    score = float(score)
    _say(f"evaluate() done in {evaluate_seconds:.3f} s; score {score:.6g}")

    _write(os.path.join(output_dir, PARAMS_FILE), serialize_params(model.dump_parameters()))
    onnx = model.export_onnx()
    if onnx is not None:
        if not isinstance(onnx, (bytes, bytearray)):
            raise ContractError(f"export_onnx() must return bytes or None, got {type(onnx).__name__}")
        _write(os.path.join(output_dir, ONNX_FILE), bytes(onnx))
    _say(f"parameters saved{' and ONNX graph exported' if onnx is not None else ''}")
    return {"status": "ok", "score": score, "train_seconds": train_seconds,
            "evaluate_seconds": evaluate_seconds, "onnx": onnx is not None}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    with open(argv[0], encoding="utf-8") as f:
        spec = json.load(f)
    result_path = os.path.join(spec["output_dir"], RESULT_FILE)
    try:
        result = run(spec)
        code = 0
    except BaseException as e:  # noqa: BLE001 - anything the model does (even SystemExit) is a trial failure
        error_type = type(e).__name__
        try:
            message = str(e)
        except Exception:  # noqa: BLE001 - a broken __str__ in user code
            message = "<unprintable exception>"
        try:
            traceback.print_exc()
        except MemoryError:  # formatting needs memory too
            sys.stderr.write(f"{error_type}: {message}\n")
        sys.stderr.flush()
        result = {"status": "error", "error_type": error_type, "error_message": message[:4000]}
        code = 1
    _write(result_path, json.dumps(result).encode())
    return code


def exit_now(code: int) -> None:
    """Ends the model process at once, its output flushed: the outputs are written, and the
    interpreter's teardown (every module of scikit-learn, pandas... finalized: a third of a
    second of CPU) and any thread the model left running would only delay the trial's end."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


if __name__ == "__main__":
    exit_now(main())
