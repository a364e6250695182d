"""Domain services. Each receives its adapters in its constructor (see chalicelib/wiring.py)."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Callable

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def new_id() -> str:
    return str(uuid.uuid4())
