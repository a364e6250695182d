"""The built-in test catalogue: one module per category, each registering its tests on import.

Every module of this package is imported (catalogue order first, then any other module in name
order), so a new category is a new module here and nothing else: e.g. ``model_performance.py``
with ``@register(key=..., category=Category.MODEL_PERFORMANCE, requires={"labels", "predictions"})``.
"""
from __future__ import annotations

import importlib
import pkgutil

#: The catalogue's order (STRESS-TESTS.md); modules not listed load after these.
ORDER = ["cleanliness", "abnormal", "drift", "drift_multivariate", "performance", "subsets", "fairness",
         "transformations", "adversarial"]


def _load() -> None:
    found = sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))
    for name in ORDER + [n for n in found if n not in ORDER]:
        if name in found:
            importlib.import_module(f"{__name__}.{name}")


_load()
