"""A BentoML 1.4 service serving one bench model, for bench/serving.py (BentoML peer venv only).

The model is the one the MLServer peer serves: the logistic regression's ONNX graph (the bytes of
Kilele's bundle) run with ONNX Runtime on 1 intra-op thread, or the decision tree's fitted
scikit-learn estimator from a joblib file, answering ``predict_proba``. Which one comes from the
environment (``KILELE_BENCH_MODEL_KIND`` = onnx | sklearn, ``KILELE_BENCH_MODEL_FILE``), so one file
serves both.

``predict`` is batchable (unless ``KILELE_BENCH_BATCHABLE=0``): BentoML's adaptive batching (its CORK
dispatcher) concatenates the ``[1, 30]`` inputs of waiting requests along dimension 0, up to
``max_batch_size``, and splits the ``[n, 2]`` answer back. ``max_latency_ms`` keeps BentoML's default
(60 s: no request is shed). The access log is off, as it is for kilele-serve and MLServer; metrics
stay on (their ``adaptive_batch_size`` histogram gives the mean batch).

    bentoml serve kilele_bench_bentoml:Classifier --host 127.0.0.1 --port P --working-dir DIR
"""
from __future__ import annotations

import os

import bentoml
import numpy as np

MAX_BATCH_SIZE = int(os.environ.get("KILELE_BENCH_MAX_BATCH_SIZE", "128"))
BATCHING = (dict(batchable=True, batch_dim=0, max_batch_size=MAX_BATCH_SIZE)
            if os.environ.get("KILELE_BENCH_BATCHABLE", "1") == "1" else {})


@bentoml.service(name="kilele_bench", workers=1, logging={"access": {"enabled": False}})
class Classifier:
    def __init__(self) -> None:
        kind, path = os.environ["KILELE_BENCH_MODEL_KIND"], os.environ["KILELE_BENCH_MODEL_FILE"]
        if kind == "onnx":
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            session = ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])
            name = session.get_inputs()[0].name
            self._predict = lambda x: session.run(["probabilities"], {name: x.astype(np.float32)})[0]
        else:
            import joblib

            classifier = joblib.load(path)
            self._predict = classifier.predict_proba

    @bentoml.api(**BATCHING)
    def predict(self, input: np.ndarray) -> np.ndarray:  # noqa: A002 - the JSON field's name
        return self._predict(np.asarray(input, dtype=np.float64))
