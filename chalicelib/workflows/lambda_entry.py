"""Lambda entry points of the workflow handlers: ``chalicelib.workflows.lambda_entry.<name>``.

infra/ points one Lambda at each name in :data:`~chalicelib.workflows.handlers.HANDLERS`;
each entry is ``<name>(event, context)``, made here from the table so the two cannot drift.
"""
from __future__ import annotations

from typing import Any, Callable

from chalicelib.workflows.handlers import HANDLERS


def _entry(name: str) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    def entry(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        return HANDLERS[name](event)

    entry.__name__ = entry.__qualname__ = name
    entry.__doc__ = f"Lambda entry of the {name!r} workflow step."
    return entry


for _name in HANDLERS:
    globals()[_name] = _entry(_name)

__all__ = sorted(HANDLERS)
