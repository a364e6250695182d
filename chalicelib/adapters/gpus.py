"""Which NVIDIA GPUs this machine shows (the local stack's trials and endpoints run here).

The driver lists each GPU under ``/proc/driver/nvidia/gpus/``; ``nvidia-smi -L`` lists them too
(one ``GPU n: ...`` line each) where ``/proc`` is not the host's (some containers). Either is
enough; neither, and the machine has no GPU a job could use.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Optional

PROC_GPUS = Path("/proc/driver/nvidia/gpus")
NVIDIA_SMI_TIMEOUT_SECONDS = 10.0


def visible_gpus(proc_gpus: Path = PROC_GPUS, nvidia_smi: Optional[str] = "nvidia-smi") -> int:
    """How many NVIDIA GPUs this machine shows (0: none, or no NVIDIA driver); ``nvidia_smi``
    is the program to ask (None: ask only ``proc_gpus``)."""
    try:
        listed = sum(1 for _ in proc_gpus.iterdir())
    except OSError:  # no driver loaded (the usual case of a machine without a GPU)
        listed = 0
    if listed:
        return listed
    program = shutil.which(nvidia_smi) if nvidia_smi else None
    if program is None:
        return 0
    try:
        run = subprocess.run([program, "-L"], capture_output=True, text=True, timeout=NVIDIA_SMI_TIMEOUT_SECONDS)
    except (OSError, subprocess.SubprocessError):  # it could not run: as good as no GPU
        return 0
    if run.returncode != 0:  # e.g. "NVIDIA-SMI has failed because it couldn't communicate with the driver"
        return 0
    return sum(1 for line in run.stdout.splitlines() if line.startswith("GPU "))


NO_LOCAL_GPU = ("no NVIDIA GPU is visible on this machine: /proc/driver/nvidia/gpus lists none and nvidia-smi "
                "lists none or is not installed")

__all__ = ["visible_gpus", "NO_LOCAL_GPU"]
