"""Loads a model class from its Python file (in the worker, the inference server and dev tests)."""
from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path

from kilele.model.base import BaseModel


class ModelLoadError(Exception):
    """The model file could not be imported or does not define a usable model class."""


def load_model_class(model_file_path: str, model_class: str) -> type[BaseModel]:
    path = Path(model_file_path)
    # A unique module name per file content, so two models with the same file name can coexist.
    module_name = "kilele_user_model_" + hashlib.sha1(path.read_bytes()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ModelLoadError(f"{path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except ImportError as e:
        raise ModelLoadError(f"importing {path.name} failed: {e} (is it listed in the model's dependencies?)") from e
    except Exception as e:
        raise ModelLoadError(f"importing {path.name} raised {type(e).__name__}: {e}") from e
    cls = getattr(module, model_class, None)
    if not isinstance(cls, type):
        raise ModelLoadError(f"{path.name} defines no class {model_class!r}")
    if not issubclass(cls, BaseModel):
        raise ModelLoadError(f"{model_class} does not subclass kilele.model.BaseModel")
    return cls
