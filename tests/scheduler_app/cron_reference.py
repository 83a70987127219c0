"""An independent reference for standard (Vixie) cron: match minute by minute.

Day-of-month and day-of-week: when both fields are restricted (neither starts with
`*`) a day matches if EITHER matches; otherwise both must (a `*` matches every day).
"""

from __future__ import annotations

from datetime import datetime, timedelta

NAMES = {
    3: {name: i for i, name in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct",
                                          "nov", "dec"], start=1)},
    4: {name: i for i, name in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])},
}
RANGES = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]


def _value(text: str, index: int) -> int:
    return NAMES.get(index, {}).get(text.lower(), None) if not text.isdigit() else int(text)


def parse_field(text: str, index: int) -> set[int]:
    low, high = RANGES[index]
    values: set[int] = set()
    for part in text.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/")
            step = int(step_text)
        if part == "*":
            start, end = low, high
        elif "-" in part:
            a, b = part.split("-")
            start, end = _value(a, index), _value(b, index)
        else:
            start = _value(part, index)
            end = high if step != 1 else start
        values.update(range(start, end + 1, step))
    if index == 4 and 7 in values:
        values.add(0)
    return values


class Reference:
    def __init__(self, expression: str) -> None:
        fields = expression.split()
        self.sets = [parse_field(field, i) for i, field in enumerate(fields)]
        self.dom_star = fields[2].startswith("*")
        self.dow_star = fields[4].startswith("*")

    def matches(self, moment: datetime) -> bool:
        minutes, hours, doms, months, dows = self.sets
        if moment.minute not in minutes or moment.hour not in hours or moment.month not in months:
            return False
        dom = moment.day in doms
        dow = (moment.isoweekday() % 7) in dows
        if self.dom_star or self.dow_star:
            return dom and dow
        return dom or dow

    def next_times(self, start: datetime, count: int, limit_days: int = 4000) -> list[datetime]:
        moment = start.replace(second=0, microsecond=0) + timedelta(minutes=1)
        found: list[datetime] = []
        end = start + timedelta(days=limit_days)
        while len(found) < count and moment < end:
            if self.matches(moment):
                found.append(moment)
                moment += timedelta(minutes=1)
            elif moment.minute == 0 and not self._day_possible(moment):
                moment += timedelta(days=1) - timedelta(hours=moment.hour)
            else:
                moment += timedelta(minutes=1)
        return found

    def _day_possible(self, moment: datetime) -> bool:
        _minutes, _hours, doms, months, dows = self.sets
        if moment.month not in months:
            return False
        dom = moment.day in doms
        dow = (moment.isoweekday() % 7) in dows
        return (dom and dow) if (self.dom_star or self.dow_star) else (dom or dow)
