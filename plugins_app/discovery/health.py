"""Health checks of service instances: `http` (2xx), `tcp` (connect) and custom checks plugins register.

An instance's `check` is `{"type": "http", "url": "...", "interval": 10, "timeout": 2}`
(`url` defaults to the endpoint; `path` is appended to it), `{"type": "tcp", "address":
"host:port"}` (defaults to the endpoint's host and port) or `{"type": "custom", "name":
"<registered check>"}`. A check passes or fails with a message; a timeout or an
exception is a failure. Without a check an instance is healthy while it heartbeats.
"""

from __future__ import annotations

import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from plugins_app.discovery.registry import Instance

CHECK_TYPES = ("http", "tcp", "custom")
DEFAULT_INTERVAL = 10.0
DEFAULT_TIMEOUT = 2.0

#: A custom check: called with the instance, returns True/False, (ok, message), or raises.
CustomCheck = Callable[[Instance], Any]

_custom_checks: dict[str, CustomCheck] = {}
_custom_lock = threading.Lock()
_executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="chameleon-service-check")


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    message: str


def register_check(name: str, func: CustomCheck, *, replace: bool = False) -> None:
    """Make `func` available as `{"type": "custom", "name": name}` (plugins call this)."""
    if not name or not callable(func):
        raise ValueError("A custom check needs a name and a callable")
    with _custom_lock:
        if name in _custom_checks and not replace and _custom_checks[name] is not func:
            raise ValueError(f"A custom health check named {name!r} is registered already")
        _custom_checks[name] = func


def unregister_check(name: str) -> None:
    with _custom_lock:
        _custom_checks.pop(name, None)


def custom_checks() -> list[str]:
    with _custom_lock:
        return sorted(_custom_checks)


def validate_check(check: dict[str, Any]) -> dict[str, Any]:
    """The check with defaults filled in; raises ValueError with a readable message."""
    if not check:
        return {}
    if not isinstance(check, dict):
        raise ValueError("must be an object")
    kind = check.get("type")
    if kind not in CHECK_TYPES:
        raise ValueError(f"type must be one of {', '.join(CHECK_TYPES)}")
    result = dict(check)
    for key, default in (("interval", DEFAULT_INTERVAL), ("timeout", DEFAULT_TIMEOUT)):
        value = result.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ValueError(f"{key} must be a positive number of seconds")
        result[key] = float(value)
    if kind == "custom" and not isinstance(result.get("name"), str):
        raise ValueError("a custom check needs the name of a registered check")
    if kind == "http" and "url" in result and urlsplit(str(result["url"])).scheme not in ("http", "https"):
        raise ValueError("url must be an http:// or https:// URL")
    return result


def _http_url(instance: Instance, check: dict[str, Any]) -> str:
    url = check.get("url") or instance.endpoint
    if "://" not in url:
        url = f"http://{url}"
    if check.get("path"):
        url = url.rstrip("/") + "/" + str(check["path"]).lstrip("/")
    return url


def check_http(instance: Instance, check: dict[str, Any]) -> CheckResult:
    url = _http_url(instance, check)
    if urlsplit(url).scheme not in ("http", "https"):
        return CheckResult(False, f"not an http URL: {url}")
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="GET"), timeout=check["timeout"]) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (OSError, ValueError) as exc:
        return CheckResult(False, f"GET {url}: {exc}")
    return CheckResult(200 <= status < 300, f"GET {url}: HTTP {status}")


def check_tcp(instance: Instance, check: dict[str, Any]) -> CheckResult:
    address = check.get("address") or instance.endpoint
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host or not port:
        return CheckResult(False, f"no host:port in {address!r}")
    try:
        with socket.create_connection((host, port), timeout=check["timeout"]):
            return CheckResult(True, f"connected to {host}:{port}")
    except OSError as exc:
        return CheckResult(False, f"connect {host}:{port}: {exc}")


def check_custom(instance: Instance, check: dict[str, Any]) -> CheckResult:
    with _custom_lock:
        func = _custom_checks.get(check["name"])
    if func is None:
        return CheckResult(False, f"no custom check named {check['name']!r} is registered")
    future = _executor.submit(func, instance)
    try:
        outcome = future.result(timeout=check["timeout"])
    except FutureTimeout:
        return CheckResult(False, f"custom check {check['name']} timed out after {check['timeout']:g}s")
    except Exception as exc:
        return CheckResult(False, f"custom check {check['name']} raised {type(exc).__name__}: {exc}")
    if isinstance(outcome, tuple):
        return CheckResult(bool(outcome[0]), str(outcome[1]) if len(outcome) > 1 else "")
    return CheckResult(bool(outcome), "")


CHECKS: dict[str, Callable[[Instance, dict[str, Any]], CheckResult]] = {
    "http": check_http,
    "tcp": check_tcp,
    "custom": check_custom,
}


def run_check(instance: Instance) -> CheckResult:
    """Run the instance's check once; an error inside the check is a failure, never an exception."""
    if not instance.check:
        return CheckResult(True, "no check: healthy while heartbeating")
    try:
        check = validate_check(instance.check)
        return CHECKS[check["type"]](instance, check)
    except Exception as exc:
        return CheckResult(False, f"check failed: {type(exc).__name__}: {exc}")


def check_interval(instance: Instance) -> float:
    return float(instance.check.get("interval", DEFAULT_INTERVAL)) if instance.check else DEFAULT_INTERVAL
