"""Fixtures of the attack tests: a loopback listener on the host that counts who reached it, and
the local stack's moto server (helpers are in security_support.py)."""
from __future__ import annotations

from typing import Iterator

import pytest

from security_support import Listener


@pytest.fixture
def listener() -> Iterator[Listener]:
    made = Listener()
    yield made
    made.close()


@pytest.fixture(scope="module")
def moto():
    """The local stack's AWS: moto in server mode on a loopback port (chalicelib.local)."""
    from chalicelib.local.moto_server import MotoServer

    server = MotoServer()
    server.start()
    yield server
    server.stop()
