"""The platform's side of the worker contract for stress tests, as pure functions.

Out: the ``stress_test`` message (the ``trial`` of the ``{"task_token", "trial"}`` body the
stress-test state machine sends with ``sqs:sendMessage.waitForTaskToken``). The worker
(containers/worker, ``kilele_worker.message``) parses it; tests/contract/test_trial_message.py
checks that what this builds parses there. The config in it names local files (``ref.csv``,
``eval.parquet``, ``model.py``): the worker downloads ``ref_key``/``eval_key``/``model_key`` to
those names and runs the engine on them in the sandboxed model process.

Back: on success the task output is a small summary (:func:`summary_of`); on failure the worker
writes ``error.json`` at ``error_key`` (``trial_messages.read_error_report`` reads it).
"""
from __future__ import annotations

import copy
import posixpath
import re
from dataclasses import dataclass
from typing import Any, Optional

from chalicelib.entities import StressTestJob
from chalicelib.services.trial_messages import beside_log

KIND = "stress_test"
RESULT_FILES = ("test_cases.parquet", "test_run.parquet", "test_cases.json", "test_run.json", "report.html")


@dataclass(frozen=True)
class StressMessageConfig:
    bucket: str
    timeout_seconds: int
    heartbeat_seconds: int


def results_prefix(job_id: str) -> str:
    return f"stress/{job_id}/"


def job_keys(job_id: str) -> dict[str, str]:
    """Where a job's objects go (all under ``stress/<id>/``)."""
    prefix = results_prefix(job_id)
    logs_key = f"{prefix}logs.txt"
    return {"results_prefix": prefix, "logs_key": logs_key, **beside_log(logs_key)}


def result_key(job_id: str, name: str) -> str:
    return posixpath.join(results_prefix(job_id), name)


def local_name(stem: str, key: str) -> str:
    """The worker's file name for an input: ``stem`` plus the key's suffix (``.csv``, ``.parquet``,
    ``.py``), if it has a plain one (the engine tells Parquet from CSV by its magic bytes too)."""
    match = re.search(r"(\.[A-Za-z0-9]{1,8}(?:\.gz)?)$", posixpath.basename(key))
    return stem + (match.group(1).lower() if match else "")


def stress_test_message(job: StressTestJob, ref_key: str, eval_key: str, model_key: Optional[str],
                        config: StressMessageConfig, trial_model: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """The worker's message for ``job``, whose resolved config is ``job.config``.

    ``trial_model``: the model is a Kilele trial (``StressTestService`` resolved ``model_info``):
    ``{"trial_id", "train_job_id", "model_id", "model_name", "model_class", "model_key",
    "params_key", "knobs", "dependencies", "task"}``; the worker rebuilds it from its model file
    and parameters, and the engine's config names it as ``model_info: {"trial_id"}``."""
    worker_config = copy.deepcopy(job.config)
    data_info = worker_config.setdefault("data_info", {})
    data_info["ref_path"] = local_name("ref", ref_key)
    data_info["eval_path"] = local_name("eval", eval_key)
    extra: dict[str, Any] = {}
    if trial_model is not None:
        model_key = trial_model["model_key"]
        worker_config["model_info"] = {"trial_id": trial_model["trial_id"]}
        extra = {k: trial_model.get(k) for k in ("trial_id", "train_job_id", "model_id", "model_name", "model_class",
                                                 "params_key", "knobs", "dependencies", "task")}
    else:
        worker_config["model_info"] = {"path": "model.py"} if model_key else {}
    return {
        "kind": KIND,
        "id": job.id,
        "project_id": job.project_id,
        "test_run_id": job.test_run_id,
        "bucket": config.bucket,
        "ref_key": ref_key,
        "eval_key": eval_key,
        "model_key": model_key,
        "config": worker_config,
        **job_keys(job.id),
        "timeout_seconds": config.timeout_seconds,
        # The seed's limit: twice the request.
        "memory_limit_mb": job.ram_request_megabytes * 2,
        "cpu_limit_millicores": job.cpu_request_millicores * 2,  # limit 2x the request, as on AWS
        "ram_request_megabytes": job.ram_request_megabytes,
        "cpu_request_millicores": job.cpu_request_millicores,
        "heartbeat_seconds": config.heartbeat_seconds,
        **extra,
    }


def summary_of(output: Any) -> dict[str, Any]:
    """What the record step keeps of the worker's task output (small, JSON)."""
    if not isinstance(output, dict):
        return {}
    keep = ("test_run_id", "num_test_cases", "status_counts", "severity_counts", "severity", "has_report",
            "duration_millis")
    return {k: output[k] for k in keep if k in output and output[k] is not None}


__all__ = ["KIND", "RESULT_FILES", "StressMessageConfig", "results_prefix", "job_keys", "result_key", "local_name",
           "stress_test_message", "summary_of"]
