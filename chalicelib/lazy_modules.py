"""Modules imported on first use. The advisor's numeric modules (chalicelib.advisor.gp, tpe:
numpy, optuna) are shipped on AWS only to the propose Lambda, as a layer (issue 13, finding 8);
every other function imports chalicelib.advisor for its types and knob-config parsing alone."""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any, Optional


class LazyModule:
    """Stands for module ``name`` and imports it at the first attribute read."""

    def __init__(self, name: str):
        self._name = name
        self._module: Optional[ModuleType] = None

    def __getattr__(self, attribute: str) -> Any:
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attribute)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


def lazy_module(name: str) -> Any:
    """``name``, imported when first used (``Any``: read it as the module)."""
    return LazyModule(name)
