"""MLServer runtimes for bench/serving.py (imported by MLServer in the peer venv, not by Kilele).

- ``OnnxProbabilities``: serves the logistic regression's ONNX graph (the same bytes Kilele's bundle
  holds) with ONNX Runtime, one intra-op thread as Kilele does; answers the ``probabilities`` output.
  MLServer ships no ONNX runtime of its own, so this is a custom runtime as its docs describe.
- ``CountingSKLearn``: ``mlserver_sklearn.SKLearnModel`` unchanged, plus one histogram observation
  per ``predict`` call.

Both log each call's batch size into the custom metric ``kilele_bench_batch_size`` (a Prometheus
histogram on MLServer's metrics port), so the bench can report the mean batch from /metrics as it
does for Kilele: MLServer has no batch-size metric of its own.
"""
from __future__ import annotations

import mlserver
import numpy as np
from mlserver import MLModel
from mlserver.codecs import NumpyCodec, NumpyRequestCodec
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver.utils import get_model_uri
from mlserver_sklearn import SKLearnModel

BATCH_METRIC = "kilele_bench_batch_size"


def _register() -> None:
    try:
        mlserver.register(BATCH_METRIC, "queries per predict() call (bench)")
    except Exception:  # already registered in this process
        pass


class OnnxProbabilities(MLModel):
    async def load(self) -> bool:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        uri = await get_model_uri(self._settings, wellknown_filenames=["model.onnx"])
        self._session = ort.InferenceSession(uri, sess_options=options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        _register()
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        x = self.decode_request(payload, default_codec=NumpyRequestCodec)
        x = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
        mlserver.log(**{BATCH_METRIC: len(x)})
        (probabilities,) = self._session.run(["probabilities"], {self._input: x})
        return InferenceResponse(model_name=self.name, model_version=self.version,
                                 outputs=[NumpyCodec.encode_output("probabilities", probabilities)])


class CountingSKLearn(SKLearnModel):
    async def load(self) -> bool:
        _register()
        return await super().load()

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        shape = payload.inputs[0].shape if payload.inputs else [0]
        mlserver.log(**{BATCH_METRIC: int(shape[0]) if shape else 0})
        return await super().predict(payload)
