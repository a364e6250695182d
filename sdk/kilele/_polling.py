"""The polling loop of seed 002's ``get_status(verbose, wait_until_finish, poll_rate_sec)``,
shared by stress-test jobs and managed images."""
from __future__ import annotations

import time
from typing import Any, Callable, Collection, Optional


def follow(refresh: Callable[[], dict[str, Any]], final_statuses: Collection[str], *, wait: bool,
           poll_rate_sec: float, show: Optional[Callable[[dict[str, Any]], None]] = None) -> dict[str, Any]:
    """``refresh()`` once, or until its ``status`` is final when ``wait``, ``poll_rate_sec``
    apart; ``show`` is given every answer (verbose output). Returns the last answer."""
    if poll_rate_sec < 0:
        raise ValueError(f"poll_rate_sec must be >= 0, got {poll_rate_sec!r}")
    info = refresh()
    while True:
        if show is not None:
            show(info)
        if not wait or info.get("status") in final_statuses:
            return info
        time.sleep(poll_rate_sec)
        info = refresh()
