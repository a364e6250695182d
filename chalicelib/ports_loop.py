"""The ports of scheduled continuous tests and the retrain loop (issue 12 items 4 and 6).

A section of the ports kept in its own module (like ``ports_schedules``). ``KeyLister`` is what
a schedule's data source needs beyond :class:`chalicelib.ports.BlobStore`: the keys under a
prefix (an S3 prefix where new files land, an app's capture folders). Its AWS twin is
``chalicelib.adapters.blobs.BlobStore.list_keys`` (the local stack runs the same code on its S3
server); the unit tests' twin is ``tests/unit/services/fakes.FakeBlobStore.list_keys``.
"""
from __future__ import annotations

from typing import Protocol


class KeyLister(Protocol):
    def list_keys(self, prefix: str) -> list[str]:
        """Every object key starting with ``prefix``, in key order."""


__all__ = ["KeyLister"]
