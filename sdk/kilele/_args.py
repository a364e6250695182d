"""Call arguments in the API's spelling: enum values, path segments, app versions, budgets.

Shared by the HTTP plumbing and the resource mixins; nothing here talks to the network.
"""
from __future__ import annotations

from enum import Enum
from typing import Any, Mapping, Optional, Union
from urllib.parse import quote

StrOrEnum = Union[str, Enum]


def _enum_value(value: StrOrEnum) -> str:
    """``Task.X`` or ``"x"`` -> ``"X"`` (the API's enums are upper case)."""
    if isinstance(value, Enum):
        return str(value.value)
    return str(value).strip().upper()


def _segment(value: str) -> str:
    """One path segment, escaped (ids never contain ``/``, but a typo must not change the route)."""
    return quote(str(value), safe="")


def _version(app_version: Union[int, str]) -> str:
    """An app version path segment: a whole number >= 1, or -1 for the latest."""
    message = f"app_version must be a whole number >= 1, or -1 for the latest; got {app_version!r}"
    try:
        version = int(app_version)
    except (TypeError, ValueError):
        raise ValueError(message) from None
    if version == 0 or version < -1 or isinstance(app_version, bool):
        raise ValueError(message)
    return str(version)


def _budget(budget: Optional[Mapping[StrOrEnum, Any]]) -> dict[str, Any]:
    """``{BudgetOption.MODEL_TRIAL_COUNT: 5, "time_hours": 0.5}`` -> ``{"MODEL_TRIAL_COUNT": 5, "TIME_HOURS": 0.5}``."""
    if budget is None:
        return {}
    if not isinstance(budget, Mapping):
        raise TypeError(f"budget must be a dict of {{BudgetOption: amount}}, got {type(budget).__name__}")
    return {_enum_value(option): amount for option, amount in budget.items()}
