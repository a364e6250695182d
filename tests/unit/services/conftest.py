"""Fixtures of the services' unit tests: every service built on in-memory fakes (no moto)."""
from __future__ import annotations

from typing import Iterator

import pytest

from unit.services.fakes import Harness, services


@pytest.fixture
def h() -> Iterator[Harness]:
    """The services on fresh fakes: ``h.services.<service>``, ``h.fakes.<part>``, seeding helpers."""
    harness = services()
    yield harness
    harness.services.close()
