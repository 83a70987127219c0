"""Node labels (`zone=a,canary=true`) and label selectors that pick nodes by them.

Pure functions, no Django: the settings module parses `CHAMELEON_NODE_LABELS` with
`parse_labels`, and a canary rollout picks its nodes with `parse_selector` /
`selector_matches`. A selector is requirements separated by commas, all of which must
hold: `key=value` (or `key==value`), `key!=value`, `key` (the label is set) and `!key`
(it is not). A JSON object `{"key": "value"}` means the same as `key=value,...`.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

#: Like Kubernetes label names and values: letters, digits, `-`, `_`, `.` (and `/` in keys).
LABEL_KEY = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._/-]{0,61}[A-Za-z0-9])?")
LABEL_VALUE = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?")
MAX_REQUIREMENTS = 20


class Requirement(NamedTuple):
    """One condition of a selector; `op` is `=`, `!=`, `exists` or `!exists`."""

    key: str
    op: str
    value: str = ""

    def __str__(self) -> str:
        if self.op == "exists":
            return self.key
        if self.op == "!exists":
            return f"!{self.key}"
        return f"{self.key}{self.op}{self.value}"

    def holds(self, labels: dict[str, str]) -> bool:
        if self.op == "exists":
            return self.key in labels
        if self.op == "!exists":
            return self.key not in labels
        if self.op == "=":
            return labels.get(self.key) == self.value
        return labels.get(self.key) != self.value


def _check(key: str, value: str, item: str) -> None:
    if not LABEL_KEY.fullmatch(key):
        raise ValueError(f"{key!r} is not a label name (letters, digits, '-', '_', '.', '/'; up to 63) in {item!r}")
    if not LABEL_VALUE.fullmatch(value):
        raise ValueError(f"{value!r} is not a label value (letters, digits, '-', '_', '.'; up to 63) in {item!r}")


def parse_labels(text: str) -> dict[str, str]:
    """`zone=a,canary=true` -> {"zone": "a", "canary": "true"}; ValueError on a bad entry."""
    labels: dict[str, str] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"expected key=value, got {item!r}")
        key, value = key.strip(), value.strip()
        _check(key, value, item)
        labels[key] = value
    return labels


def parse_selector(selector: str | dict[str, Any] | None) -> tuple[Requirement, ...]:
    """A selector (text or JSON object) as requirements; ValueError names what is wrong."""
    if not selector:
        return ()
    requirements: list[Requirement] = []
    if isinstance(selector, dict):
        for key, value in selector.items():
            if not isinstance(value, (str, int, bool)):
                raise ValueError(f"the value of {key!r} must be a string")
            value = str(value).lower() if isinstance(value, bool) else str(value)
            _check(str(key), value, f"{key}={value}")
            requirements.append(Requirement(str(key), "=", value))
    elif isinstance(selector, str):
        for item in (part.strip() for part in selector.split(",")):
            if not item:
                continue
            if "!=" in item:
                key, _, value = item.partition("!=")
                requirement = Requirement(key.strip(), "!=", value.strip())
            elif "=" in item:
                key, _, value = item.partition("==") if "==" in item else item.partition("=")
                requirement = Requirement(key.strip(), "=", value.strip())
            elif item.startswith("!"):
                requirement = Requirement(item[1:].strip(), "!exists")
            else:
                requirement = Requirement(item, "exists")
            _check(requirement.key, requirement.value, item)
            requirements.append(requirement)
    else:
        raise ValueError("a selector is text (zone=a,canary=true) or a JSON object of labels")
    if len(requirements) > MAX_REQUIREMENTS:
        raise ValueError(f"at most {MAX_REQUIREMENTS} requirements")
    return tuple(dict.fromkeys(requirements))


def format_selector(requirements: tuple[Requirement, ...]) -> str:
    """The canonical text of a selector (what is stored and shown)."""
    return ",".join(str(requirement) for requirement in requirements)


def selector_matches(requirements: tuple[Requirement, ...], labels: dict[str, str] | None) -> bool:
    """True when every requirement holds for `labels` (an empty selector matches nothing)."""
    labels = labels or {}
    return bool(requirements) and all(requirement.holds(labels) for requirement in requirements)
