"""How the platform finds out whether trials and endpoints can get GPUs: the GPUs this machine
shows (for the local runners), the GPU queue and image AWS was given, or the setting."""
from __future__ import annotations

import stat
from pathlib import Path

import pytest

from chalicelib import wiring
from chalicelib.adapters.gpus import NO_LOCAL_GPU, visible_gpus

from settings_support import make_settings


def _program(directory: Path, body: str) -> str:
    path = directory / "nvidia-smi"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_the_driver_listing_counts_each_gpu(tmp_path):
    (tmp_path / "0000:01:00.0").mkdir()
    (tmp_path / "0000:02:00.0").mkdir()
    assert visible_gpus(tmp_path, nvidia_smi=None) == 2


def test_without_a_driver_listing_nvidia_smi_is_asked(tmp_path):
    missing = tmp_path / "no-driver"
    listing = "echo 'GPU 0: Tesla T4 (UUID: GPU-1)'; echo 'GPU 1: Tesla T4 (UUID: GPU-2)'"
    assert visible_gpus(missing, _program(tmp_path, listing)) == 2
    assert visible_gpus(missing, _program(tmp_path, "echo 'NVIDIA-SMI has failed'; exit 9")) == 0
    assert visible_gpus(missing, str(tmp_path / "not-installed")) == 0
    assert visible_gpus(missing, nvidia_smi=None) == 0


@pytest.mark.parametrize("available", [True, False])
def test_the_setting_decides_when_set(available):
    gpus = wiring.gpu_support(make_settings(gpus_available=available, trial_dispatch_uri="local://"))
    assert (gpus.training, gpus.serving) == (available, available)
    assert (gpus.training_missing == "") is available


def test_on_aws_the_gpu_queue_and_image_decide():
    aws = {"trial_dispatch_uri": "batch://", "endpoints_uri": "sagemaker://"}
    bare = wiring.gpu_support(make_settings(**aws))
    assert (bare.training, bare.serving) == (False, False)
    assert "GPU job queue" in bare.training_missing and "GPU inference image" in bare.serving_missing
    given = wiring.gpu_support(make_settings(**aws, batch_gpu_job_queue="gpu", batch_gpu_job_definition="worker-gpu",
                                             sagemaker_gpu_image_uri="inference:gpu"))
    assert (given.training, given.serving) == (True, True)


def test_local_runners_have_gpus_when_this_machine_shows_one():
    gpus = wiring.gpu_support(make_settings(trial_dispatch_uri="local://", endpoints_uri="local://"))
    has_one = visible_gpus() > 0
    assert (gpus.training, gpus.serving) == (has_one, has_one)
    assert gpus.serving_missing == ("" if has_one else NO_LOCAL_GPU)
