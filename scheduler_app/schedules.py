"""Schedules: parse and validate the seed's schedule JSON, compute next run times (DST aware).

Shapes (SPEC §5): `{"type": "cron", "cron": "*/5 * * * *", "timezone": "Europe/Paris"}`
(five fields, `@hourly`.. `@yearly`, `@every <duration>`), `{"type": "interval",
"interval": "30s"}`, `{"type": "once", "delay": "10s"}` or `{"type": "once", "at": "<ISO>"}`;
`max_runs` may sit in any of them. Cron follows standard (Vixie) cron semantics through
croniter -- notably a restricted day-of-month and day-of-week match when EITHER matches,
where Celery's own `crontab` requires both.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import isodate
from croniter import CroniterBadDateError, croniter
from django.core.exceptions import ValidationError
from django.utils.dateparse import parse_datetime

MIN_INTERVAL = 1.0
MAX_DURATION = 366 * 24 * 3600.0
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_GO_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_GO_DURATION = re.compile(r"^(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+$")
SCHEDULE_KEYS = {"type", "cron", "interval", "delay", "at", "timezone", "max_runs"}


class ScheduleError(ValidationError):
    """A schedule (or duration) is invalid; `message_dict` maps field names to messages."""


def parse_duration(value: Any, *, field: str = "duration") -> float:
    """Seconds from Go syntax (`1m30s`, `500ms`), ISO 8601 (`PT30S`) or integer seconds."""
    seconds: float | None = None
    if isinstance(value, bool):
        seconds = None
    elif isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"\d+(\.\d+)?", text):
            seconds = float(text)
        elif _GO_DURATION.match(text):
            seconds = sum(float(number) * _GO_UNITS[unit] for number, unit in _GO_PART.findall(text))
        elif text[:1].upper() == "P":
            try:
                parsed = isodate.parse_duration(text.upper())
            except (isodate.ISO8601Error, ValueError):
                parsed = None
            if isinstance(parsed, timedelta):
                seconds = parsed.total_seconds()
            elif parsed is not None:  # years/months: measured from now, as ISO 8601 allows
                now = datetime.now(UTC)
                seconds = ((now + parsed) - now).total_seconds()
    if seconds is None or not math.isfinite(seconds):
        raise ScheduleError({field: [
            f"{value!r} is not a duration: use Go syntax (500ms, 30s, 1m30s, 2h), ISO 8601 (PT30S) "
            "or a number of seconds"
        ]})
    if seconds < 0:
        raise ScheduleError({field: ["must not be negative"]})
    if seconds > MAX_DURATION:
        raise ScheduleError({field: ["must be at most 366 days"]})
    return seconds


def format_duration(seconds: float) -> str:
    """Go-style text for a number of seconds: 90 -> '1m30s', 0.5 -> '500ms'."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    frac = seconds - whole
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
    if secs or frac or not text:
        text += f"{secs + frac:g}s"
    return text


def get_zone(name: str, *, field: str = "timezone") -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ScheduleError({field: [f"unknown time zone {name!r} (use an IANA name such as Europe/Paris)"]}) from None


@dataclass(frozen=True)
class Schedule:
    """A validated schedule; `normalized` is the JSON stored on the task."""

    type: str
    cron: str = ""  # five standard fields (macros expanded)
    interval: float = 0.0  # seconds, for `interval` and `@every`
    at: datetime | None = None  # for `once`
    delay: float | None = None
    timezone: str = "UTC"
    max_runs: int | None = None
    expression: str = ""  # what the user wrote for cron

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def is_every(self) -> bool:
        return self.type == "interval" or (self.type == "cron" and self.interval > 0)

    @property
    def normalized(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.type}
        if self.type == "cron":
            data["cron"] = self.expression
        elif self.type == "interval":
            data["interval"] = format_duration(self.interval)
        elif self.delay is not None:
            data["delay"] = format_duration(self.delay)
        if self.type == "once" and self.delay is None and self.at is not None:
            data["at"] = self.at.astimezone(UTC).isoformat().replace("+00:00", "Z")
        if self.timezone != "UTC":
            data["timezone"] = self.timezone
        if self.max_runs is not None:
            data["max_runs"] = self.max_runs
        return data

    def first_run(self, now: datetime) -> datetime | None:
        """The first run time of a new (or resumed) task, after `now`."""
        if self.type == "once":
            return self.at
        return self.next_after(now, now)

    def next_after(self, previous: datetime, now: datetime) -> datetime | None:
        """The run time following `previous` that is after `now` (missed slots are skipped)."""
        if self.type == "once":
            return None
        if self.is_every:
            step = timedelta(seconds=self.interval)
            candidate = previous + step
            if candidate <= now:
                missed = math.floor((now - previous) / step)
                candidate = previous + step * (missed + 1)
                if candidate <= now:
                    candidate += step
            return candidate
        zone = self.zone
        fixed_hour = not self.cron.split()[1].startswith("*")
        candidate = cron_next(self.cron, max(previous, now).astimezone(zone))
        # Like cron, a job at a fixed hour runs once when clocks fall back: not again in
        # the repeated hour (fold=1). Spring-forward gaps run at the jump (croniter's way).
        while fixed_hour and candidate.astimezone(zone).fold == 1:
            candidate = cron_next(self.cron, candidate)
        return candidate.astimezone(UTC)

    def preview(self, count: int, now: datetime) -> list[datetime]:
        """The next `count` run times from `now` (for display; ignores max_runs)."""
        times: list[datetime] = []
        if self.type == "once":
            return [self.at] if self.at and count else []
        current = self.first_run(now)
        while current is not None and len(times) < count:
            times.append(current)
            current = self.next_after(current, current)
        return times


_SAME_RANGE = re.compile(r"^(\w+)-(\w+)(?:/\d+)?$")


def normalize_cron(expression: str) -> str:
    """Rewrite `a-a` ranges as `a`: croniter reads a one-value range as the whole field."""
    fields = []
    for field in expression.split():
        parts = []
        for part in field.split(","):
            match = _SAME_RANGE.match(part)
            parts.append(match.group(1) if match and match.group(1).lower() == match.group(2).lower() else part)
        fields.append(",".join(parts))
    return " ".join(fields)


def day_or(expression: str) -> bool:
    """Standard cron: day-of-month OR day-of-week only when neither field starts with `*`."""
    fields = expression.split()
    return not (fields[2].startswith("*") or fields[4].startswith("*"))


def cron_next(expression: str, base: datetime) -> datetime:
    """The first time after `base` (tz-aware) matching `expression` with standard (Vixie) semantics.

    A day-of-month OR day-of-week expression is evaluated as the earlier of its two halves,
    each with AND semantics: croniter's own OR mode gives up when one half can never
    match (e.g. `* * 31 9 0`, which standard cron runs on September's Sundays).
    """
    fields = normalize_cron(expression).split()
    if not day_or(expression):
        return croniter(" ".join(fields), base, day_or=False).get_next(datetime)
    halves = (fields[:4] + ["*"], fields[:2] + ["*"] + fields[3:])
    found = []
    for half in halves:
        try:
            found.append(croniter(" ".join(half), base, day_or=False).get_next(datetime))
        except CroniterBadDateError:
            continue
    if not found:
        raise CroniterBadDateError(f"{expression!r} never matches a date")
    return min(found)


def _check_cron(expression: str) -> str:
    fields = expression.split()
    if len(fields) != 5:
        raise ScheduleError({"cron": [
            f"{expression!r} must have five fields (minute hour day-of-month month day-of-week) "
            "or be @hourly, @daily, @weekly, @monthly, @yearly or @every <duration>"
        ]})
    if not croniter.is_valid(normalize_cron(expression)):
        raise ScheduleError({"cron": [f"{expression!r} is not a valid cron expression"]})
    try:
        cron_next(expression, datetime(2024, 1, 1, tzinfo=UTC))
    except Exception as exc:  # croniter raises several types for impossible dates (e.g. 30 Feb)
        raise ScheduleError({"cron": [f"{expression!r} never matches a date ({exc})"]}) from None
    return expression


def parse_schedule(data: Any, *, now: datetime | None = None, max_runs: int | None = None) -> Schedule:
    """Validate the schedule JSON; raises ScheduleError with messages keyed by field."""
    now = now or datetime.now(UTC)
    if isinstance(data, str):
        data = {"type": "cron", "cron": data}
    if not isinstance(data, dict):
        raise ScheduleError({"schedule": ["must be an object such as {\"type\": \"interval\", \"interval\": \"30s\"}"]})
    unknown = sorted(set(data) - SCHEDULE_KEYS)
    if unknown:
        raise ScheduleError({key: ["unknown schedule field"] for key in unknown})
    kind = data.get("type")
    if kind is None:  # infer from the fields present, as the seed's clients do
        kind = next((name for name, key in (("cron", "cron"), ("interval", "interval"), ("once", "at"),
                                            ("once", "delay")) if key in data), None)
    if kind not in ("cron", "interval", "once"):
        raise ScheduleError({"type": ["must be one of cron, interval, once"]})
    zone_name = data.get("timezone") or "UTC"
    if not isinstance(zone_name, str):
        raise ScheduleError({"timezone": ["must be a string"]})
    get_zone(zone_name)
    runs = data.get("max_runs", max_runs)
    if runs is not None and (isinstance(runs, bool) or not isinstance(runs, int) or runs < 1):
        raise ScheduleError({"max_runs": ["must be a positive integer"]})

    if kind == "cron":
        expression = data.get("cron")
        if not isinstance(expression, str) or not expression.strip():
            raise ScheduleError({"cron": ["is required for a cron schedule"]})
        expression = " ".join(expression.split())
        lowered = expression.lower()
        if lowered.startswith("@every"):
            interval = parse_duration(expression[6:].strip(), field="cron")
            if interval < MIN_INTERVAL:
                raise ScheduleError({"cron": [f"@every must be at least {MIN_INTERVAL:g}s"]})
            return Schedule("cron", interval=interval, timezone=zone_name, max_runs=runs, expression=expression)
        if lowered.startswith("@"):
            if lowered not in MACROS:
                raise ScheduleError({"cron": [f"unknown macro {expression!r}; use @hourly, @daily, @weekly, "
                                              "@monthly, @yearly or @every <duration>"]})
            return Schedule("cron", cron=MACROS[lowered], timezone=zone_name, max_runs=runs, expression=lowered)
        return Schedule("cron", cron=_check_cron(expression), timezone=zone_name, max_runs=runs, expression=expression)

    if kind == "interval":
        if "interval" not in data:
            raise ScheduleError({"interval": ["is required for an interval schedule"]})
        interval = parse_duration(data["interval"], field="interval")
        if interval < MIN_INTERVAL:
            raise ScheduleError({"interval": [f"must be at least {MIN_INTERVAL:g}s"]})
        return Schedule("interval", interval=interval, timezone=zone_name, max_runs=runs)

    # once
    if ("at" in data) == ("delay" in data):
        raise ScheduleError({"at": ["a once schedule needs exactly one of `at` (ISO 8601) or `delay` (duration)"]})
    if "delay" in data:
        delay = parse_duration(data["delay"], field="delay")
        return Schedule("once", at=now + timedelta(seconds=delay), delay=delay, timezone=zone_name, max_runs=1)
    at_value = data["at"]
    at = parse_datetime(at_value) if isinstance(at_value, str) else None
    if at is None:
        raise ScheduleError({"at": [f"{at_value!r} is not an ISO 8601 date-time (e.g. 2030-01-31T09:00:00Z)"]})
    if at.tzinfo is None:
        at = at.replace(tzinfo=ZoneInfo(zone_name))
    return Schedule("once", at=at.astimezone(UTC), timezone=zone_name, max_runs=1)


def describe(schedule: Schedule) -> str:
    """A short human description, for lists and the admin."""
    if schedule.type == "once":
        return f"once at {schedule.at.isoformat()}" if schedule.at else "once"
    if schedule.is_every:
        return f"every {format_duration(schedule.interval)}"
    zone = f" ({schedule.timezone})" if schedule.timezone != "UTC" else ""
    return f"cron {schedule.expression}{zone}"
