"""A small thread-safe LRU map with a bounded size, for the per-process caches of the request
path (authenticated principals, inference jobs by id). What each cache may hold, and for how
long, is decided by its user (see services/auth.py and services/inference_jobs.py)."""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable, Generic, Hashable, Optional, TypeVar

V = TypeVar("V")


class LruCache(Generic[V]):
    def __init__(self, max_entries: int):
        self._max = max(1, max_entries)
        self._items: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Optional[V]:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: Hashable, value: V) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._max:
                self._items.popitem(last=False)

    def pop(self, key: Hashable) -> None:
        with self._lock:
            self._items.pop(key, None)

    def pop_where(self, predicate: Callable[[Hashable, V], bool]) -> int:
        """Drop every entry ``predicate(key, value)`` holds for; returns how many."""
        with self._lock:
            doomed = [k for k, v in self._items.items() if predicate(k, v)]
            for key in doomed:
                del self._items[key]
            return len(doomed)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


__all__ = ["LruCache"]
