"""Without the kilele[sagemaker] extra, kilele.sagemaker_model says what to install, before it
asks the API for anything (the main test venv has no SageMaker SDK; scripts/test-sagemaker's has)."""
from __future__ import annotations

import sys

import pytest

from kilele import Client
from kilele.errors import KileleError
from kilele.sagemaker_model import sagemaker_model


def test_without_the_extra_it_names_the_extra_and_exports_nothing(server, monkeypatch):
    monkeypatch.setitem(sys.modules, "sagemaker", None)  # as if not installed: importing it raises
    monkeypatch.setitem(sys.modules, "sagemaker.model", None)
    with pytest.raises(KileleError) as missing:
        sagemaker_model(Client(base_url=server.url, api_key="kk_a.b"), "iris_app", role="arn:aws:iam::1:role/r")
    assert missing.value.code == "missing_extra" and "kilele[sagemaker]" in missing.value.message
    assert server.paths() == []
