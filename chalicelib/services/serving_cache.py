"""Where a predict request learns what serves it, and why it may (or may not) cache it.

The rule: a request is never served by a version that a switch, rollback, stop, new inference
job, update or deletion has replaced once that call has returned. Everything that decides the
serving job (the app's settings and version pointer, and the ids of its live inference jobs)
is on one row, the app's (``ApplicationStore.serving_state``); every such change is a write to
that row (services/apps.py, services/inference_jobs.py). So:

- **Several processes write** (AWS: many Lambda instances, no shared memory): each request reads
  the app's row, one consistent GetItem, and nothing of it is cached; a change made by any
  instance is seen by the next request on every instance. Only a job's unchanging details
  (endpoint name, version, creation time) are cached, by job id (services/inference_jobs.py).
  No time-based cache is used for this row: a stale version pointer is never harmless.
- **One process writes** (the local stack: one API process, and every write to the apps table
  goes through its services): :class:`ProcessServingStates` keeps each app's serving state in
  memory and drops it in the very call that writes the row, after the write and before the
  call returns, so the next request reads the row again. A read that began before a write
  finished does not put what it read in the cache (an epoch counter, bumped by every write,
  tells). This is the ``serving_state_cache`` setting, which only the local stack turns on: a
  second process writing the same tables (a second API) would make it wrong.
"""
from __future__ import annotations

import threading
from typing import Iterable, Optional

from chalicelib.entities import Application
from chalicelib.ports import ApplicationStore, ServingState
from chalicelib.services.caches import LruCache

CACHE_ENTRIES = 10_000


class ProcessServingStates:
    """An :class:`ApplicationStore` that caches ``serving_state`` in this process; every write
    through it drops the app's entry (use it only where all writers share this object)."""

    def __init__(self, store: ApplicationStore, max_entries: int = CACHE_ENTRIES):
        self._store = store
        self._cache: LruCache[ServingState] = LruCache(max_entries)
        self._epoch = 0
        self._lock = threading.Lock()

    def serving_state(self, user_id: str, name: str) -> ServingState:
        key = (user_id, name)
        state = self._cache.get(key)
        if state is not None:
            return state
        epoch = self._epoch
        state = self._store.serving_state(user_id, name)
        with self._lock:
            if epoch == self._epoch:  # no write since the read began
                self._cache.put(key, state)
        return state

    def _written(self, user_id: str, name: str) -> None:
        with self._lock:
            self._epoch += 1
            self._cache.pop((user_id, name))

    # -- writes: each drops the app's entry once the store has it (or failed) ----------------

    def add(self, app: Application) -> None:
        try:
            self._store.add(app)
        finally:
            self._written(app.user_id, app.name)

    def save(self, app: Application) -> None:
        try:
            self._store.save(app)
        finally:
            self._written(app.user_id, app.name)

    def switch_version(self, user_id: str, name: str, version: Optional[int], expected: Optional[int]) -> bool:
        try:
            return self._store.switch_version(user_id, name, version, expected)
        finally:
            self._written(user_id, name)

    def delete(self, user_id: str, name: str) -> None:
        try:
            self._store.delete(user_id, name)
        finally:
            self._written(user_id, name)

    def add_live_jobs(self, user_id: str, name: str, job_ids: Iterable[str]) -> None:
        try:
            self._store.add_live_jobs(user_id, name, job_ids)
        finally:
            self._written(user_id, name)

    def remove_live_job(self, user_id: str, name: str, job_id: str) -> None:
        try:
            self._store.remove_live_job(user_id, name, job_id)
        finally:
            self._written(user_id, name)

    # -- reads that are not the predict path's: straight to the store ------------------------

    def get(self, user_id: str, name: str) -> Optional[Application]:
        return self._store.get(user_id, name)

    def list_of_user(self, user_id: str) -> list[Application]:
        return self._store.list_of_user(user_id)


__all__ = ["ProcessServingStates"]
