"""Schedule expressions (EventBridge Scheduler's syntax): what is refused and why, and when each
form fires next, in UTC."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from chalicelib.errors import InvalidInput
from chalicelib.schedule_expressions import parse

UTC = timezone.utc
T = datetime(2026, 12, 2, 10, 30, 15, tzinfo=UTC)  # a Wednesday


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize("text, first, second", [
    ("cron(0 10 * * ? *)", at(2026, 12, 3, 10, 0), at(2026, 12, 4, 10, 0)),
    ("cron(15 12 * * ? *)", at(2026, 12, 2, 12, 15), at(2026, 12, 3, 12, 15)),
    ("cron(0/15 * * * ? *)", at(2026, 12, 2, 10, 45), at(2026, 12, 2, 11, 0)),
    ("cron(0 18 ? * MON-FRI *)", at(2026, 12, 2, 18, 0), at(2026, 12, 3, 18, 0)),
    ("cron(0 8 1 * ? *)", at(2027, 1, 1, 8, 0), at(2027, 2, 1, 8, 0)),
    ("cron(0 9 ? * 2#1 *)", at(2026, 12, 7, 9, 0), at(2027, 1, 4, 9, 0)),  # first Monday
    ("cron(0 0 L * ? *)", at(2026, 12, 31, 0, 0), at(2027, 1, 31, 0, 0)),
    ("cron(0 0 ? * 6L *)", at(2026, 12, 25, 0, 0), at(2027, 1, 29, 0, 0)),  # last Friday
    ("cron(0 0 1W * ? *)", at(2027, 1, 1, 0, 0), at(2027, 2, 1, 0, 0)),  # 2027-05-01 is a Saturday: below
    ("cron(30 10 * * ? 2026)", at(2026, 12, 3, 10, 30), at(2026, 12, 4, 10, 30)),
    ("cron(0 12 ? JAN,JUL SUN *)", at(2027, 1, 3, 12, 0), at(2027, 1, 10, 12, 0)),
])
def test_cron_fires_at_the_next_matching_minutes(text: str, first: datetime, second: datetime) -> None:
    expression = parse(text)
    assert expression.next_after(T, T) == first
    assert expression.next_after(first, T) == second


def test_nearest_weekday_moves_off_a_weekend_within_the_month() -> None:
    expression = parse("cron(0 0 1W * ? *)")
    assert expression.next_after(at(2027, 4, 30, 0, 0), T) == at(2027, 5, 3, 0, 0)  # Sat 1st -> Mon 3rd
    assert parse("cron(0 0 31W * ? *)").next_after(at(2027, 10, 1), T) == at(2027, 10, 29, 0, 0)  # Sun 31st -> Fri


def test_a_cron_that_never_fires_again_has_no_next_time() -> None:
    assert parse("cron(0 0 1 1 ? 2020)").next_after(T, T) is None


def test_a_rate_counts_from_its_anchor_and_skips_what_was_missed() -> None:
    every_hour = parse("rate(1 hour)")
    assert every_hour.next_after(T, T) == T + timedelta(hours=1)
    assert every_hour.next_after(T + timedelta(hours=5, minutes=1), T) == T + timedelta(hours=6)
    assert parse("rate(15 minutes)").next_after(T + timedelta(minutes=15), T) == T + timedelta(minutes=30)
    assert parse("rate(2 days)").next_after(T, T) == T + timedelta(days=2)


@pytest.mark.parametrize("text, says", [
    ("rate(5 minute)", "5 minutes"), ("rate(1 hours)", "1 hour"), ("rate(0 minutes)", ">= 1"),
    ("rate(3 weeks)", "unit"), ("rate(1.5 hours)", "neither"), ("every 5 minutes", "neither"),
    ("cron(0 10 * * *)", "6 fields"), ("cron(0 10 * * * *)", "exactly one"), ("cron(0 10 ? * ? *)", "exactly one"),
    ("cron(60 10 * * ? *)", "0-59"), ("cron(0 24 * * ? *)", "0-23"), ("cron(0 0 32 * ? *)", "1-31"),
    ("cron(0 0 * 13 ? *)", "1-12"), ("cron(0 0 ? * 8 *)", "1-7"), ("cron(0 0 * * ? 1969)", "1970-2199"),
    ("cron(0 0 ? * MON#6 *)", "day#n"), ("cron(0 0 ? * 2#1,3#1 *)", "day#n"), ("cron(0 0 10-5 * ? *)", "backwards"),
    ("cron(0/0 * * * ? *)", "increment"), ("cron(? 0 * * ? *)", "wildcard"), ("cron(0 L * * ? *)", "wildcard"),
    ("cron(0 0 * FOO ? *)", "name"), ("", "rate(...)"), ("rate(1 minute)" + " " * 300, "256"),
])
def test_bad_expressions_are_refused_saying_why(text: str, says: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse(text)
    assert says in refused.value.message
