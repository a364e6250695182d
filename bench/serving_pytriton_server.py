"""Triton (through PyTriton) serving one bench model, for bench/serving.py.

Runs in the PyTriton peer venv (bench/envs/pytriton.txt, made from Debian's /usr/bin/python3.11: the
bundled Triton's Python backend stub needs a shared libpython3.11), never in the project's venv.

The model is the one the MLServer peer serves: the logistic regression's ONNX graph (the bytes of
Kilele's bundle) run with ONNX Runtime on 1 intra-op thread, or the decision tree's fitted
scikit-learn estimator from a joblib file, answering ``predict_proba``. Triton's dynamic batcher
(``max_batch_size``, ``max_queue_delay_microseconds``) groups requests; PyTriton's ``@batch`` hands
the batch to ``infer`` as one array. Every server binds 127.0.0.1: HTTP (KServe v2 JSON), gRPC and
the Prometheus metrics (whose ``nv_inference_count`` / ``nv_inference_exec_count`` give the mean
batch).

    python bench/serving_pytriton_server.py --model-file F --kind onnx|sklearn --name N \
        --http-port P --grpc-port G --metrics-port M [--max-batch-size 128 --max-queue-delay-us 2000] \
        [--workspace DIR]
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys

import numpy as np
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig


def predictor(kind: str, model_file: str):
    if kind == "onnx":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(model_file, sess_options=options, providers=["CPUExecutionProvider"])
        input_name = session.get_inputs()[0].name
        return lambda x: session.run(["probabilities"], {input_name: x.astype(np.float32)})[0]
    import joblib

    classifier = joblib.load(model_file)
    return lambda x: classifier.predict_proba(x)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-file", required=True)
    parser.add_argument("--kind", choices=["onnx", "sklearn"], required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--features", type=int, default=30)
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--grpc-port", type=int, required=True)
    parser.add_argument("--metrics-port", type=int, required=True)
    parser.add_argument("--max-batch-size", type=int, default=128)
    parser.add_argument("--max-queue-delay-us", type=int, default=2000)
    parser.add_argument("--workspace", help="PyTriton's workspace (model store, sockets); must not exist yet")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    predict = predictor(args.kind, args.model_file)
    out_dtype = np.float32 if args.kind == "onnx" else np.float64  # what the model itself returns

    @batch
    def infer(input):  # noqa: A002 - the tensor's name in requests
        return {"probabilities": np.asarray(predict(input), dtype=out_dtype)}

    config = TritonConfig(
        http_address="127.0.0.1", http_port=args.http_port,
        grpc_address="127.0.0.1", grpc_port=args.grpc_port,
        metrics_address="127.0.0.1", metrics_port=args.metrics_port,
        allow_gpu_metrics=False, exit_timeout_secs=5, log_verbose=0,
    )
    # SIGTERM from the bench: leave the `with` block so PyTriton stops Triton and its stubs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with Triton(config=config, workspace=args.workspace) as triton:
        triton.bind(
            model_name=args.name,
            infer_func=infer,
            inputs=[Tensor(name="input", dtype=np.float64, shape=(args.features,))],
            outputs=[Tensor(name="probabilities", dtype=out_dtype, shape=(-1,))],
            config=ModelConfig(max_batch_size=args.max_batch_size,
                               batcher=DynamicBatcher(max_queue_delay_microseconds=args.max_queue_delay_us)),
            strict=True,
        )
        triton.serve()


if __name__ == "__main__":
    main()
