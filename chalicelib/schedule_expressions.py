"""EventBridge Scheduler's schedule expressions, parsed and evaluated: ``rate(N unit)`` and
``cron(minutes hours day-of-month month day-of-week year)``, in UTC.

The one judge of an expression for both scheduler twins: a schedule whose expression this
refuses (``errors.InvalidInput``, saying what is wrong) is never created, locally or on AWS
(moto's Scheduler accepts any string). The local scheduler fires at :meth:`next_after`; on AWS
EventBridge Scheduler itself does. Syntax (the EventBridge user guide, "cron and rate expressions"):

- ``rate(value unit)``: a whole value >= 1; unit ``minute``/``hour``/``day`` when the value is 1,
  ``minutes``/``hours``/``days`` otherwise. A rate counts from when the schedule was created.
- ``cron(...)``, six fields: minutes 0-59, hours 0-23, day-of-month 1-31, month 1-12 or JAN-DEC,
  day-of-week 1-7 or SUN-SAT (1 is Sunday), year 1970-2199. Wildcards ``, - * /`` everywhere,
  ``?`` in day-of-month or day-of-week (one of them must be ``?``, the other not), ``L`` and
  ``nW`` in day-of-month, ``L``, ``nL`` and ``n#k`` (alone) in day-of-week.
"""
from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Optional, Union

from chalicelib.errors import InvalidInput

_RATE = re.compile(r"^rate\(\s*([0-9]{1,9})\s+([a-z]+)\s*\)$")
_CRON = re.compile(r"^cron\((.*)\)$")
_UNITS = {"minute": 60, "hour": 3600, "day": 86400}
_MONTHS = {name: i + 1 for i, name in enumerate(("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP",
                                                 "OCT", "NOV", "DEC"))}
_DAYS = {name: i + 1 for i, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))}
MAX_EXPRESSION_LENGTH = 256


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


@dataclass(frozen=True)
class RateExpression:
    text: str
    seconds: int

    def next_after(self, after: datetime, anchor: datetime) -> Optional[datetime]:
        """The first firing strictly after ``after`` of a rate counted from ``anchor``."""
        after, anchor = _utc(after), _utc(anchor)
        if after < anchor:
            return anchor + timedelta(seconds=self.seconds)
        periods = int((after - anchor).total_seconds() // self.seconds) + 1
        return anchor + timedelta(seconds=periods * self.seconds)


def _aws_weekday(day: date) -> int:
    return (day.weekday() + 1) % 7 + 1  # Monday is 0 in Python, 2 in AWS (1 is Sunday)


@dataclass(frozen=True)
class CronExpression:
    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    months: frozenset[int]
    years: frozenset[int]
    days_of_month: Optional[frozenset[int]]  # None: '?' or a special form below
    days_of_week: Optional[frozenset[int]]
    last_day_of_month: bool = False
    nearest_weekday: Optional[int] = None  # nW
    last_weekday_of_month: Optional[int] = None  # nL (and L: 7)
    nth_weekday: Optional[tuple[int, int]] = None  # n#k

    def _day_matches(self, day: date) -> bool:
        last = calendar.monthrange(day.year, day.month)[1]
        if self.days_of_month is not None and day.day in self.days_of_month:
            return True
        if self.last_day_of_month and day.day == last:
            return True
        if self.nearest_weekday is not None:
            target = date(day.year, day.month, min(self.nearest_weekday, last))
            if target.weekday() == 5:  # Saturday: the Friday before, unless that is last month
                target = target - timedelta(days=1) if target.day > 1 else target + timedelta(days=2)
            elif target.weekday() == 6:  # Sunday: the Monday after, unless that is next month
                target = target + timedelta(days=1) if target.day < last else target - timedelta(days=2)
            if day == target:
                return True
        weekday = _aws_weekday(day)
        if self.days_of_week is not None and weekday in self.days_of_week:
            return True
        if self.last_weekday_of_month is not None and weekday == self.last_weekday_of_month and day.day + 7 > last:
            return True
        if self.nth_weekday is not None:
            wanted, nth = self.nth_weekday
            if weekday == wanted and (day.day - 1) // 7 + 1 == nth:
                return True
        return False

    def next_after(self, after: datetime, anchor: Optional[datetime] = None) -> Optional[datetime]:
        """The first minute strictly after ``after`` the expression matches (None: never again)."""
        start = _utc(after).replace(second=0, microsecond=0) + timedelta(minutes=1)
        day = start.date()
        last_year = max(self.years)
        while day.year <= last_year:
            if day.year not in self.years:
                day = date(day.year + 1, 1, 1)
                continue
            if day.month not in self.months:
                day = date(day.year + (day.month == 12), day.month % 12 + 1, 1)
                continue
            if self._day_matches(day):
                for hour in sorted(self.hours):
                    for minute in sorted(self.minutes):
                        moment = datetime(day.year, day.month, day.day, hour, minute, tzinfo=timezone.utc)
                        if moment >= start:
                            return moment
            day += timedelta(days=1)
        return None


Expression = Union[RateExpression, CronExpression]


def _value(token: str, low: int, high: int, names: dict[str, int], field: str) -> int:
    upper = token.upper()
    if upper in names:
        return names[upper]
    if not token.isdigit():
        raise InvalidInput(f"cron {field}: {token!r} is not a number{' or a name' if names else ''}")
    value = int(token)
    if not low <= value <= high:
        raise InvalidInput(f"cron {field}: {value} is outside {low}-{high}")
    return value


def _field(text: str, low: int, high: int, field: str, names: dict[str, int] = {}) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        base, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) < 1:
                raise InvalidInput(f"cron {field}: the increment in {part!r} must be a whole number >= 1")
            step = int(step_text)
        if base == "*":
            first, last = low, high
        elif "-" in base:
            a, _, b = base.partition("-")
            first, last = _value(a, low, high, names, field), _value(b, low, high, names, field)
            if first > last:
                raise InvalidInput(f"cron {field}: the range {base!r} runs backwards")
        else:
            first = _value(base, low, high, names, field)
            last = high if slash else first
        values.update(range(first, last + 1, step))
    return frozenset(values)


def _cron(text: str, inner: str) -> CronExpression:
    fields = inner.split()
    if len(fields) != 6:
        raise InvalidInput(f"a cron expression has 6 fields (minutes hours day-of-month month day-of-week year); "
                           f"{text!r} has {len(fields)}")
    minute, hour, dom, month, dow, year = fields
    if (dom == "?") == (dow == "?"):
        raise InvalidInput("cron: exactly one of day-of-month and day-of-week must be '?'")
    for name, value in (("minutes", minute), ("hours", hour), ("month", month), ("year", year)):
        if "?" in value or "L" in value.upper() and name != "month" or "#" in value or "W" in value and name != "month":
            raise InvalidInput(f"cron {name}: {value!r} uses a wildcard only day-of-month or day-of-week allow")
    special: dict = {}
    days_of_month: Optional[frozenset[int]] = None
    days_of_week: Optional[frozenset[int]] = None
    if dom != "?":
        if dom.upper() == "L":
            special["last_day_of_month"] = True
        elif re.fullmatch(r"[0-9]{1,2}W", dom.upper()):
            special["nearest_weekday"] = _value(dom[:-1], 1, 31, {}, "day-of-month")
        else:
            days_of_month = _field(dom, 1, 31, "day-of-month")
    if dow != "?":
        upper = dow.upper()
        if upper == "L":
            special["last_weekday_of_month"] = 7
        elif re.fullmatch(r"[0-9A-Z]{1,3}L", upper):
            special["last_weekday_of_month"] = _value(upper[:-1], 1, 7, _DAYS, "day-of-week")
        elif "#" in upper:
            day, _, nth = upper.partition("#")
            if "," in upper or not nth.isdigit() or not 1 <= int(nth) <= 5:
                raise InvalidInput(f"cron day-of-week: {dow!r} must be one day#n with n from 1 to 5")
            special["nth_weekday"] = (_value(day, 1, 7, _DAYS, "day-of-week"), int(nth))
        else:
            days_of_week = _field(dow, 1, 7, "day-of-week", _DAYS)
    return CronExpression(text, _field(minute, 0, 59, "minutes"), _field(hour, 0, 23, "hours"),
                          _field(month, 1, 12, "month", _MONTHS), _field(year, 1970, 2199, "year"),
                          days_of_month, days_of_week, **special)


def parse(text: str) -> Expression:
    """The expression ``text`` (``rate(...)`` or ``cron(...)``); ``InvalidInput`` saying what is wrong."""
    if not isinstance(text, str) or not text or len(text) > MAX_EXPRESSION_LENGTH:
        raise InvalidInput(f"a schedule expression is rate(...) or cron(...), at most {MAX_EXPRESSION_LENGTH} characters")
    rate = _RATE.match(text)
    if rate:
        value, unit = int(rate.group(1)), rate.group(2)
        singular = unit.rstrip("s") if unit.endswith("s") else unit
        if singular not in _UNITS:
            raise InvalidInput(f"rate: the unit must be minute(s), hour(s) or day(s), not {unit!r}")
        if value < 1:
            raise InvalidInput("rate: the value must be a whole number >= 1")
        if (value == 1) != (unit == singular):
            raise InvalidInput(f"rate: write {value} {singular if value == 1 else singular + 's'}, not {value} {unit}")
        return RateExpression(text, value * _UNITS[singular])
    cron = _CRON.match(text)
    if cron:
        return _cron(text, cron.group(1))
    raise InvalidInput(f"{text[:80]!r} is neither rate(value unit) nor cron(6 fields)")


__all__ = ["CronExpression", "Expression", "RateExpression", "parse"]
