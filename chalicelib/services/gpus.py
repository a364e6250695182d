"""Whether this platform can give GPUs to what asks for them (``GPU_COUNT`` > 0).

A job that asks for GPUs where there are none is refused when it is created (422, saying why and
what to ask instead), rather than accepted and run on CPU: a CPU run of a model written for a GPU
can take many times longer (or fail late, on a CUDA call), and a warning on a job that already
runs is read, if at all, after that time is spent. Refused, nothing is created and the caller
knows at once. The composition root finds out what the platform has (chalicelib/wiring.py:
a setting, or the GPUs visible on this machine, or the GPU queue and image AWS was given).
"""
from __future__ import annotations

from dataclasses import dataclass

from chalicelib.errors import Unprocessable


@dataclass(frozen=True)
class GpuSupport:
    """What GPUs the platform has for trials (``training``) and for endpoints (``serving``);
    each ``*_missing`` says why not, when it has none (shown to the caller)."""

    training: bool = True
    serving: bool = True
    training_missing: str = ""
    serving_missing: str = ""

    def check_training(self, gpu_count: float) -> None:
        """Refuse (Unprocessable) a train job asking for ``gpu_count`` > 0 GPUs where trials get none."""
        if gpu_count > 0 and not self.training:
            raise Unprocessable(_refusal(gpu_count, "trials", self.training_missing, "train on CPU"))

    def check_serving(self, gpu_count: float) -> None:
        """Refuse (Unprocessable) an inference job asking for ``gpu_count`` > 0 GPUs where endpoints get none."""
        if gpu_count > 0 and not self.serving:
            raise Unprocessable(_refusal(gpu_count, "endpoints", self.serving_missing, "serve on CPU"))


def _refusal(gpu_count: float, what: str, missing: str, instead: str) -> str:
    why = f" ({missing})" if missing else ""
    return (f"budget GPU_COUNT {gpu_count:g} asked, but this platform has no GPU for {what}{why}; "
            f"ask GPU_COUNT 0 to {instead}")


__all__ = ["GpuSupport"]
