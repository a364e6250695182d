"""When the local endpoint runner starts a dead inference server again: the local stand-in for
SageMaker replacing an instance that failed its health checks.

A server that died is started again after a delay that doubles with each restart of the last
``window_seconds`` (1 s, 2 s, 4 s … up to ``max_backoff_seconds``), so a server that crashes at
once does not spin; the delay falls back to the first one after a quiet window. Past
``max_restarts`` restarts within the window the runner gives up: the endpoint is Failed, and its
inference job ERRORED with the reason (a crash loop would only hide what is wrong).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Optional


@dataclass(frozen=True)
class RestartPolicy:
    """How often a dead server is started again (see the module doc)."""

    backoff_seconds: float = 1.0
    max_backoff_seconds: float = 60.0
    max_restarts: int = 3
    window_seconds: float = 300.0

    def delay(self, recent_restarts: int) -> float:
        """The wait before the next restart, after ``recent_restarts`` within the window."""
        return min(self.max_backoff_seconds, self.backoff_seconds * 2 ** recent_restarts)


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class RestartLog:
    """One endpoint's restarts: how many (``count``, since it was deployed), the last one's
    reason and time, and whether another one is allowed."""

    def __init__(self, policy: RestartPolicy, clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], datetime] = _utc_now):
        self.policy = policy
        self.count = 0
        self.last_reason: Optional[str] = None
        self.last_at: Optional[datetime] = None
        self._clock = clock
        self._wall_clock = wall_clock
        self._recent: list[float] = []  # when each restart of the window happened (clock time)

    def due(self) -> Optional[float]:
        """The server just died: the clock time at which to start it again, or None when one
        more restart would be more than ``max_restarts`` within the window (give up)."""
        now = self._clock()
        self._recent = [t for t in self._recent if now - t < self.policy.window_seconds]
        if len(self._recent) >= self.policy.max_restarts:
            return None
        return now + self.policy.delay(len(self._recent))

    def restarted(self, reason: str) -> None:
        """Record a restart, started because of ``reason``."""
        self.count += 1
        self.last_reason = reason
        self.last_at = self._wall_clock()
        self._recent.append(self._clock())

    def given_up(self, reason: str) -> str:
        """Why the endpoint failed for good, its last death being ``reason``."""
        policy = self.policy
        return (f"the inference server died again after {len(self._recent)} restart(s) within "
                f"{policy.window_seconds:g} s (at most {policy.max_restarts} are made); last: {reason}")


__all__ = ["RestartLog", "RestartPolicy"]
