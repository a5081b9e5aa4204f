"""When a schedule runs next: five-field cron expressions (`nbfan.Cron`) and fixed periods
(`nbfan.Period`), as plain data the scheduler plugin can keep and journal.

Cron fields: minute (0-59), hour (0-23), day of month (1-31), month (1-12 or jan-dec), day
of week (0-6 or sun-sat, 7 is Sunday too); each `*`, a value, a range `a-b`, a step `*/n` or
`a-b/n`, or a comma-separated list of those. As in cron, when both day fields are restricted a
day matches either. Times are in the schedule's IANA time zone (UTC by default)."""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_NAMES = {
    3: {name: i for i, name in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov",
                                          "dec"], start=1)},
    4: {name: i for i, name in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])},
}
_RANGES = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]
_FIELDS = ["minute", "hour", "day of month", "month", "day of week"]
SEARCH_YEARS = 5  # a cron expression that matches no time within this many years is refused


class ScheduleError(ValueError):
    """A schedule that cannot run; the message says what is wrong with it."""


@dataclass(frozen=True)
class CronSpec:
    """A parsed cron expression: the allowed values of each field."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool  # the day-of-month field is `*`
    any_weekday: bool  # the day-of-week field is `*`
    timezone: str = "UTC"

    def matches_day(self, day: dt.date) -> bool:
        weekday = (day.weekday() + 1) % 7  # Python: Monday 0; cron: Sunday 0
        if self.any_day or self.any_weekday:
            return day.day in self.days and weekday in self.weekdays
        return day.day in self.days or weekday in self.weekdays

    def next_after(self, after: float) -> float:
        """The first matching minute strictly after unix time `after`, as unix time."""
        zone = ZoneInfo(self.timezone)
        moment = dt.datetime.fromtimestamp(after, zone).replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
        limit = moment + dt.timedelta(days=366 * SEARCH_YEARS)
        while moment < limit:
            if moment.month not in self.months or not self.matches_day(moment.date()):
                moment = (moment + dt.timedelta(days=1)).replace(hour=0, minute=0)
                continue
            if moment.hour not in self.hours:
                moment = (moment + dt.timedelta(hours=1)).replace(minute=0)
                continue
            if moment.minute not in self.minutes:
                moment += dt.timedelta(minutes=1)
                continue
            return moment.timestamp()
        raise ScheduleError(f"Cron({self.text!r}) matches no time in the next {SEARCH_YEARS} years")


def parse_cron(text: str, timezone: str = "UTC") -> CronSpec:
    """A cron expression, checked; ScheduleError says which field is wrong and why."""
    if not isinstance(text, str):
        raise ScheduleError(f"Cron({text!r}): give a string like '0 3 * * *' (minute hour day month weekday)")
    fields = text.split()
    if len(fields) != 5:
        raise ScheduleError(f"Cron({text!r}) has {len(fields)} fields; give 5: minute hour day-of-month month "
                            f"day-of-week, e.g. '0 3 * * *' for 03:00 every day")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ScheduleError(f"Cron({text!r}, timezone={timezone!r}): unknown time zone; give an IANA name like "
                            f"'Europe/Paris' or 'UTC'") from None
    values = [_field(text, i, field) for i, field in enumerate(fields)]
    weekdays = frozenset(d % 7 for d in values[4])  # 7 is Sunday too
    minutes, hours, days, months = (frozenset(v) for v in values[:4])
    spec = CronSpec(text, minutes, hours, days, months, weekdays, fields[2] == "*", fields[4] == "*", timezone)
    spec.next_after(dt.datetime.now(dt.timezone.utc).timestamp())  # refuses a date that never comes (Feb 30)
    return spec


def _field(text: str, index: int, field: str) -> set[int]:
    low, high = _RANGES[index]
    names = _NAMES.get(index, {})
    found: set[int] = set()
    for part in field.lower().split(","):
        body, _, step_text = part.partition("/")
        try:
            step = int(step_text) if step_text else 1
            if body == "*":
                start, end = low, high
            elif "-" in body:
                a, b = body.split("-", 1)
                start, end = _value(a, names), _value(b, names)
            else:
                start = _value(body, names)
                end = high if step_text else start
        except ValueError:
            raise ScheduleError(f"Cron({text!r}): the {_FIELDS[index]} field {field!r} is not a number, range or "
                                f"step") from None
        if step < 1 or not (low <= start <= high and low <= end <= high) or start > end:
            raise ScheduleError(f"Cron({text!r}): the {_FIELDS[index]} field {field!r} is out of its range "
                                f"{low}-{high}")
        found.update(range(start, end + 1, step))
    if index == 2:  # a day of month no month has is not an error in cron, but never runs
        found = {d for d in found if d <= 31}
    return found


def _value(text: str, names: dict[str, int]) -> int:
    return names[text] if text in names else int(text)


def add_months(moment: dt.datetime, months: int) -> dt.datetime:
    """`moment` plus whole calendar months (the day clamped to the month's last)."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))


@dataclass(frozen=True)
class PeriodSpec:
    """Every `months` calendar months plus `seconds`, counted from `anchor` (the deployment)."""

    months: int
    seconds: float

    def next_after(self, after: float, anchor: float) -> float:
        """The first time anchor + k periods (k >= 1) strictly after `after`."""
        if not self.months:
            k = max(1, int((after - anchor) // self.seconds) + 1)
            return anchor + k * self.seconds
        start = dt.datetime.fromtimestamp(anchor, dt.timezone.utc)
        k = 1
        while True:  # months vary in length: step (a schedule of months runs rarely, this is cheap)
            moment = add_months(start, self.months * k) + dt.timedelta(seconds=self.seconds * k)
            if moment.timestamp() > after:
                return moment.timestamp()
            k += 1
