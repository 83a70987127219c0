"""Schedule parsing, durations, standard cron semantics against a reference, DST-aware previews."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from celery.schedules import crontab

from scheduler_app.schedules import ScheduleError, parse_duration, parse_schedule
from tests.scheduler_app.cron_reference import Reference

START = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(("text", "seconds"), [
    ("500ms", 0.5), ("30s", 30), ("1m30s", 90), ("2h", 7200), ("1h2m3s", 3723), ("1.5h", 5400),
    ("PT30S", 30), ("PT1H30M", 5400), ("P1D", 86400), ("pt2m", 120), (45, 45), ("45", 45), (2.5, 2.5),
])
def test_durations_accept_go_iso8601_and_seconds(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "abc", "10 s", "1x", "-5", -1, "P", "PTXS", True, None, [], "1m-3s"])
def test_bad_durations_are_refused_with_the_field_name(text):
    with pytest.raises(ScheduleError) as caught:
        parse_duration(text, field="interval")
    assert "interval" in caught.value.message_dict


def random_field(rng: random.Random, index: int) -> str:
    low, high = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 6)][index]
    pick = rng.random()
    if pick < 0.3:
        return "*"
    if pick < 0.45:
        return f"*/{rng.randint(2, high // 2 + 1)}"
    if pick < 0.65:
        return str(rng.randint(low, high))
    if pick < 0.8:
        a = rng.randint(low, high)
        return f"{a}-{rng.randint(a, high)}"
    if pick < 0.9:
        return ",".join(sorted({str(rng.randint(low, high)) for _ in range(3)}, key=int))
    a = rng.randint(low, high)
    return f"{a}-{rng.randint(a, high)}/{rng.randint(1, 3)}"


def cron_expressions() -> list[str]:
    fixed = ["0 0 13 * 5", "0 12 1,15 * 1-5", "30 8 */2 * 1", "0 0 1 1 *", "*/15 * * * *", "0 9 * * mon-fri",
             "0 0 29 2 *", "0 0 31 * 0", "0 0 1 8-8 *", "5 13-13 * * *", "0 0 * * 7", "59 23 31 12 *",
             "0 0 * jan,jul sun", "15 10 1-7 * 1", "0 */6 * * *"]
    rng = random.Random(20261122)
    return fixed + [" ".join(random_field(rng, i) for i in range(5)) for _ in range(300)]


def test_cron_next_times_match_the_standard_cron_reference():
    mismatches = []
    checked = 0
    for expression in cron_expressions():
        reference = Reference(expression).next_times(START, 8)
        try:
            schedule = parse_schedule({"type": "cron", "cron": expression})
        except ScheduleError:
            assert reference == [], f"{expression} was refused but matches {reference[:2]}"
            continue
        assert reference, f"{expression} was accepted but never matches"
        ours = schedule.preview(8, START)[:len(reference)]  # the reference looks ~11 years ahead
        checked += 1
        if ours != reference:
            mismatches.append((expression, ours[:3], reference[:3]))
    assert checked > 250
    assert mismatches == []


def test_day_of_month_and_day_of_week_match_either_like_standard_cron_unlike_celery():
    schedule = parse_schedule({"type": "cron", "cron": "0 0 13 * 5"})  # the 13th, or any Friday
    first = schedule.preview(3, START)
    assert first[0] == datetime(2025, 1, 3, tzinfo=UTC)  # a Friday, not the 13th
    assert datetime(2025, 1, 13, tzinfo=UTC) in first
    # Celery's crontab requires both: its next run is a Friday the 13th (June 2025).
    celery_cron = crontab(minute="0", hour="0", day_of_month="13", day_of_week="5")
    remaining = celery_cron.remaining_estimate(START)
    assert (START + remaining).date() != first[0].date()


def test_star_step_day_fields_keep_and_semantics():
    # Vixie cron: a field starting with '*' is "unrestricted", so both must match.
    schedule = parse_schedule({"type": "cron", "cron": "0 0 18 * */3"})
    assert schedule.preview(1, START)[0] == datetime(2025, 1, 18, tzinfo=UTC)


@pytest.mark.parametrize(("macro", "expected"), [
    ("@hourly", datetime(2025, 1, 1, 1, tzinfo=UTC)), ("@daily", datetime(2025, 1, 2, tzinfo=UTC)),
    ("@weekly", datetime(2025, 1, 5, tzinfo=UTC)), ("@monthly", datetime(2025, 2, 1, tzinfo=UTC)),
    ("@yearly", datetime(2026, 1, 1, tzinfo=UTC)),
])
def test_macros(macro, expected):
    assert parse_schedule({"type": "cron", "cron": macro}).preview(1, START) == [expected]


def test_every_and_interval_step_from_the_previous_slot():
    every = parse_schedule({"type": "cron", "cron": "@every 1m30s"})
    assert every.preview(3, START) == [START + timedelta(seconds=90 * i) for i in (1, 2, 3)]
    interval = parse_schedule({"type": "interval", "interval": "PT10S", "max_runs": 3})
    assert interval.max_runs == 3
    # Missed slots are skipped, the phase is kept.
    assert interval.next_after(START, START + timedelta(seconds=35)) == START + timedelta(seconds=40)


def test_once_delay_and_at():
    once = parse_schedule({"type": "once", "delay": "10s"}, now=START)
    assert once.first_run(START) == START + timedelta(seconds=10)
    assert once.next_after(START, START) is None
    at = parse_schedule({"type": "once", "at": "2030-01-31T09:00:00+01:00"})
    assert at.first_run(START) == datetime(2030, 1, 31, 8, tzinfo=UTC)
    local = parse_schedule({"type": "once", "at": "2030-07-01T09:00:00", "timezone": "Europe/Paris"})
    assert local.at == datetime(2030, 7, 1, 7, tzinfo=UTC)


def paris(times: list[datetime]) -> list[str]:
    return [t.astimezone(ZoneInfo("Europe/Paris")).isoformat() for t in times]


def test_preview_is_daylight_saving_aware():
    daily = parse_schedule({"type": "cron", "cron": "30 2 * * *", "timezone": "Europe/Paris"})
    # 30 March 2025 02:30 does not exist in Paris: like cron, the job runs at the jump.
    assert paris(daily.preview(4, datetime(2025, 3, 28, tzinfo=UTC))) == [
        "2025-03-28T02:30:00+01:00", "2025-03-29T02:30:00+01:00", "2025-03-30T03:00:00+02:00",
        "2025-03-31T02:30:00+02:00"]
    # 26 October 2025 02:30 happens twice: a fixed-hour job runs once.
    assert paris(daily.preview(3, datetime(2025, 10, 25, tzinfo=UTC))) == [
        "2025-10-25T02:30:00+02:00", "2025-10-26T02:30:00+02:00", "2025-10-27T02:30:00+01:00"]
    # A job on every hour follows real time through the repeated hour.
    half_hourly = parse_schedule({"type": "cron", "cron": "*/30 * * * *", "timezone": "Europe/Paris"})
    assert paris(half_hourly.preview(5, datetime(2025, 10, 25, 23, 45, tzinfo=UTC))) == [
        "2025-10-26T02:00:00+02:00", "2025-10-26T02:30:00+02:00", "2025-10-26T02:00:00+01:00",
        "2025-10-26T02:30:00+01:00", "2025-10-26T03:00:00+01:00"]
    nine = parse_schedule({"type": "cron", "cron": "0 9 * * *", "timezone": "America/New_York"})
    assert [t.hour for t in nine.preview(3, datetime(2025, 3, 7, 15, tzinfo=UTC))] == [14, 13, 13]


@pytest.mark.parametrize(("schedule", "field"), [
    ({"type": "cron", "cron": "* * *"}, "cron"),
    ({"type": "cron", "cron": "61 * * * *"}, "cron"),
    ({"type": "cron", "cron": "0 0 30 2 *"}, "cron"),
    ({"type": "cron", "cron": "@fortnightly"}, "cron"),
    ({"type": "cron", "cron": "@every 0s"}, "cron"),
    ({"type": "cron"}, "cron"),
    ({"type": "interval", "interval": "soon"}, "interval"),
    ({"type": "interval", "interval": "100ms"}, "interval"),
    ({"type": "interval"}, "interval"),
    ({"type": "once"}, "at"),
    ({"type": "once", "at": "tomorrow"}, "at"),
    ({"type": "once", "delay": "10s", "at": "2030-01-01T00:00:00Z"}, "at"),
    ({"type": "weekly"}, "type"),
    ({"type": "cron", "cron": "* * * * *", "timezone": "Mars/Olympus"}, "timezone"),
    ({"type": "interval", "interval": "1s", "max_runs": 0}, "max_runs"),
    ({"type": "interval", "interval": "1s", "every": 3}, "every"),
    ("not json", "cron"),
    (42, "schedule"),
])
def test_invalid_schedules_are_refused_with_a_field_message(schedule, field):
    with pytest.raises(ScheduleError) as caught:
        parse_schedule(schedule)
    assert field in caught.value.message_dict, caught.value.message_dict
    assert all(caught.value.message_dict[field])
