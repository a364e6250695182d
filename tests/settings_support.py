"""Settings for tests: the defaults with a fast password hash (argon2id at its cheapest, so the
tests do not wait on it). Tests change settings by passing values, never through the environment."""
from __future__ import annotations

from typing import Any

from chalicelib.settings import Settings


def make_settings(**values: Any) -> Settings:
    return Settings().with_values(password_hash_time_cost=1, password_hash_memory_kib=256, **values)
