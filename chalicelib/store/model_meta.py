"""The ``Meta`` classes of the pynamodb models: a table's logical name, unbound until
:func:`chalicelib.store.models.bind` names its table."""
from __future__ import annotations

from pynamodb.indexes import AllProjection

from chalicelib import resources


def table_meta(spec: resources.TableSpec) -> type:
    """A model's ``Meta`` for ``spec``'s table."""
    # table_name stays None until bind(): pynamodb then raises instead of guessing a table.
    return type("Meta", (), {"logical_name": spec.name, "table_name": None, "region": None, "host": None})


def index_meta(name: str) -> type:
    """A global secondary index's ``Meta`` (every attribute projected)."""
    return type("Meta", (), {"index_name": name, "projection": AllProjection()})
