"""When the local endpoint runner starts a dead server again: backoff doubling from the first
delay up to its cap, counted in a window, and a give-up past the most restarts in it."""
from __future__ import annotations

from datetime import datetime, timezone

from chalicelib.adapters.endpoints.restarts import RestartLog, RestartPolicy


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


WALL = datetime(2026, 12, 1, tzinfo=timezone.utc)


def test_the_delay_doubles_with_each_restart_of_the_window_up_to_the_cap():
    policy = RestartPolicy(backoff_seconds=1.0, max_backoff_seconds=5.0, max_restarts=10, window_seconds=300)
    assert [policy.delay(n) for n in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_restarts_are_counted_and_past_the_most_in_the_window_it_gives_up():
    clock = Clock()
    restarts = RestartLog(RestartPolicy(backoff_seconds=1.0, max_restarts=2, window_seconds=60), clock=clock,
                          wall_clock=lambda: WALL)
    assert restarts.due() == clock.now + 1.0
    restarts.restarted("exited with code -9")
    clock.now += 10
    assert restarts.due() == clock.now + 2.0
    restarts.restarted("exited with code 1")
    assert (restarts.count, restarts.last_reason, restarts.last_at) == (2, "exited with code 1", WALL)
    clock.now += 10
    assert restarts.due() is None  # a third within 60 s: given up
    why = restarts.given_up("exited with code 1")
    assert why == ("the inference server died again after 2 restart(s) within 60 s (at most 2 are made); "
                   "last: exited with code 1")


def test_after_a_quiet_window_the_delay_starts_over_and_restarts_are_allowed_again():
    clock = Clock()
    restarts = RestartLog(RestartPolicy(backoff_seconds=1.0, max_restarts=2, window_seconds=60), clock=clock)
    for _ in range(2):
        restarts.restarted("died")
    assert restarts.due() is None
    clock.now += 61
    assert restarts.due() == clock.now + 1.0 and restarts.count == 2  # the count is since deploy
