"""Loading the members of a bundle and running one of them on a batch.

Each member is rebuilt as the worker trained it (``load_model_class``, ``cls(**knobs)``,
``load_parameters(deserialize_params(...))``) and then served either

- by ONNX Runtime, when the bundle has its ONNX graph and the graph fits the task (a classifier
  whose ``onnx_classes()`` names the ``probabilities`` columns, or a regressor), or
- by the model's own ``predict(queries)``.

Members run in the server's model thread (never on the event loop).
"""
from __future__ import annotations

import importlib.metadata
import logging
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

from kilele.model import InvalidQuery, deserialize_params, load_model_class
from kilele_inference.bundle import BundleSpec, MemberSpec
from kilele_inference.errors import BundleError, ModelError

logger = logging.getLogger("kilele_inference")

PROBABILITIES = "probabilities"
_ONNX_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64}


class MemberRaised(Exception):
    """A member raised on a batch (base of :class:`MemberRejected` and :class:`MemberFailed`)."""

    verb = "raised on it"

    def __init__(self, member: Optional["Member"], error: BaseException):
        self.member = member
        self.error = error
        who = member.spec.describe() if member is not None else "the server"
        detail = str(error).strip() or type(error).__name__
        if len(detail) > 500:
            detail = detail[:500] + "…"
        super().__init__(f"{who} {self.verb}: {type(error).__name__}: {detail}")


class MemberRejected(MemberRaised):
    """The query is wrong for the model: the model raised the kit's
    :class:`kilele.model.InvalidQuery`, or ONNX Runtime refused the input. The caller's error (400)."""

    verb = "rejected it"


class MemberFailed(MemberRaised):
    """The model's ``predict`` raised anything else: the model's error (``model_error``), not
    the caller's, who cannot fix it by changing the query."""

    verb = "failed on it"


@dataclass
class LabelledProbabilities:
    """A classifier's answer for a batch as a matrix: ``matrix[i, j]`` is the probability of
    ``labels[j]`` for query ``i`` (ONNX members answer like this; it averages without dicts)."""

    labels: tuple[str, ...]
    matrix: np.ndarray

    def as_dicts(self) -> list[dict[str, float]]:
        return [dict(zip(self.labels, row)) for row in self.matrix.tolist()]


class Member:
    """One trained trial, ready to answer batches."""

    path = "predict"

    def __init__(self, spec: MemberSpec, model: Any):
        self.spec = spec
        self.model = model

    @property
    def name(self) -> str:
        return self.spec.model_name

    def run(self, queries: Sequence[Any], batch: Optional[np.ndarray]) -> Any:
        """The member's answers for the batch: a list with one prediction per query, or (ONNX
        classifiers) :class:`LabelledProbabilities`. Raises :class:`MemberRejected` when the model
        raises :class:`InvalidQuery`, :class:`MemberFailed` when it raises anything else,
        :class:`ModelError` when its answer is unusable."""
        try:
            predictions = self.model.predict(list(queries))
        except InvalidQuery as e:
            raise MemberRejected(self, e) from e
        except Exception as e:
            raise MemberFailed(self, e) from e
        if isinstance(predictions, np.ndarray):
            predictions = predictions.tolist()
        if not isinstance(predictions, (list, tuple)):
            raise ModelError(f"{self.spec.describe()}: predict() returned {type(predictions).__name__}, not a list")
        if len(predictions) != len(queries):
            raise ModelError(
                f"{self.spec.describe()}: predict() returned {len(predictions)} predictions for {len(queries)} queries"
            )
        return predictions

    def describe_path(self) -> str:
        return "its own predict() in the model thread"


class OnnxMember(Member):
    path = "onnx"

    def __init__(self, spec: MemberSpec, model: Any, session: Any, labels: Optional[tuple[str, ...]]):
        super().__init__(spec, model)
        self.session = session
        self.labels = labels  # None: regression (first output, flattened)
        model_input = session.get_inputs()[0]
        self.input_name = model_input.name
        self.input_dtype = _ONNX_TYPES[model_input.type]
        dims = list(model_input.shape[1:])
        self.input_dims = dims if all(isinstance(d, int) and d > 0 for d in dims) else None
        self.features = int(np.prod(dims)) if self.input_dims is not None else None
        outputs = [o.name for o in session.get_outputs()]
        self.output_name = PROBABILITIES if labels is not None else outputs[0]
        self.providers = session.get_providers()

    def run(self, queries: Sequence[Any], batch: Optional[np.ndarray]) -> Any:
        n = len(queries)
        try:
            if batch is None:
                raise ValueError("no numeric batch for an ONNX member")
            x = batch.astype(self.input_dtype, copy=False)
            if self.input_dims is not None and len(self.input_dims) > 1:
                x = x.reshape((n, *self.input_dims))
            (out,) = self.session.run([self.output_name], {self.input_name: x})
        except Exception as e:
            raise MemberRejected(self, e) from e
        out = np.asarray(out)
        if self.labels is not None:
            if out.ndim != 2 or out.shape != (n, len(self.labels)):
                raise ModelError(
                    f"{self.spec.describe()}: ONNX output {PROBABILITIES!r} has shape {list(out.shape)}, "
                    f"expected [{n}, {len(self.labels)}]"
                )
            return LabelledProbabilities(self.labels, out)
        flat = out.reshape(-1)
        if flat.shape[0] != n:
            raise ModelError(f"{self.spec.describe()}: ONNX output has {flat.shape[0]} values for {n} queries")
        return flat.tolist()

    def describe_path(self) -> str:
        threads = self.session.get_session_options().intra_op_num_threads
        return f"ONNX Runtime ({', '.join(self.providers)}; {threads} intra-op thread(s); output {self.output_name!r})"


def _check_dependencies(spec: MemberSpec) -> None:
    for name, wanted in spec.dependencies.items():
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            logger.warning("member %s depends on %s %s, which is not installed", spec.describe(), name, wanted)
            continue
        if wanted and installed != wanted:
            logger.warning("member %s was trained with %s %s; this server has %s", spec.describe(), name, wanted,
                           installed)


def _session_options(onnx_threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = onnx_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


def default_providers() -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    preferred = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
    return preferred or available


def _onnx_member(spec: MemberSpec, model: Any, task_kind: str, onnx_threads: int,
                 providers: Optional[list[str]]) -> tuple[Optional[OnnxMember], str]:
    """The member served by ONNX Runtime, or None and why not."""
    if spec.onnx is None:
        return None, "the bundle has no ONNX graph for it"
    labels: Optional[tuple[str, ...]] = None
    if task_kind == "classification":
        try:
            classes = model.onnx_classes()
        except Exception as e:
            return None, f"onnx_classes() raised {type(e).__name__}: {e}"
        if not classes:
            return None, "onnx_classes() returned no labels"
        labels = tuple(str(c) for c in classes)
    elif task_kind != "regression":
        return None, "ONNX serving covers classification and regression tasks only"
    try:
        import onnxruntime as ort

        session = ort.InferenceSession(spec.onnx.read_bytes(), sess_options=_session_options(onnx_threads),
                                       providers=providers or default_providers())
    except Exception as e:
        return None, f"ONNX Runtime cannot load its graph ({type(e).__name__}: {e})"
    inputs, outputs = session.get_inputs(), [o.name for o in session.get_outputs()]
    if len(inputs) != 1 or inputs[0].type not in _ONNX_TYPES:
        return None, f"the graph must have one float input, it has {[(i.name, i.type) for i in inputs]}"
    if labels is not None and PROBABILITIES not in outputs:
        return None, f"the graph has no {PROBABILITIES!r} output (outputs: {outputs})"
    member = OnnxMember(spec, model, session, labels)
    if member.input_dims is not None:
        # A smoke run on zeros: a graph that answers with the wrong shape is not served.
        try:
            member.run([None], np.zeros((1, member.features), dtype=np.float32))
        except (MemberRejected, ModelError) as e:
            return None, f"a test run of the graph failed: {e}"
    return member, ""


def load_member(spec: MemberSpec, task_kind: str, use_onnx: bool = True, onnx_threads: int = 1,
                providers: Optional[list[str]] = None) -> Member:
    """Rebuilds one member and picks how to serve it (``task_kind``: classification, regression, other)."""
    _check_dependencies(spec)
    try:
        cls = load_model_class(str(spec.model_file), spec.model_class)
    except Exception as e:
        raise BundleError(f"member {spec.describe()}: {e}") from e
    try:
        params = deserialize_params(spec.params.read_bytes())
    except Exception as e:
        raise BundleError(f"member {spec.describe()}: its parameters are unreadable: {type(e).__name__}: {e}") from e
    try:
        model = cls(**spec.knobs)
        model.load_parameters(params)
    except Exception as e:
        raise BundleError(f"member {spec.describe()}: rebuilding it failed: {type(e).__name__}: {e}") from e
    member: Optional[Member] = None
    reason = "ONNX serving is turned off (--no-onnx)"
    if use_onnx:
        member, reason = _onnx_member(spec, model, task_kind, onnx_threads, providers)
    if member is None:
        member = Member(spec, model)
        logger.info("member %s: served by %s (not ONNX: %s)", spec.describe(), member.describe_path(), reason)
    else:
        logger.info("member %s: served by %s", spec.describe(), member.describe_path())
    return member


def load_members(bundle: BundleSpec, task_kind: str, use_onnx: bool = True, onnx_threads: int = 1,
                 providers: Optional[list[str]] = None) -> list[Member]:
    return [load_member(spec, task_kind, use_onnx, onnx_threads, providers) for spec in bundle.members]
