"""Reading Chameleon's configuration from the environment and an optional YAML file.

`CONFIG_PATH` may name a YAML mapping whose keys are the environment variable names
(`HTTP_PORT: 8080`); a variable set in the environment overrides the file. Every getter
raises `ConfigError`, whose message is one line that starts with the variable's name.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import urlsplit

import yaml
from django.core.exceptions import ImproperlyConfigured


class ConfigError(ImproperlyConfigured):
    """A configuration value is missing or malformed; the message names the variable."""

    def __init__(self, variable: str, problem: str) -> None:
        self.variable = variable
        super().__init__(f"{variable}: {problem}")


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class Env:
    """Typed access to configuration values: environment first, then the YAML file."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.environ = os.environ if environ is None else environ
        self.file_values = self._load_file(self.environ.get("CONFIG_PATH", "").strip())

    @staticmethod
    def _load_file(path: str) -> dict[str, str]:
        if not path:
            return {}
        try:
            with open(path, encoding="utf-8") as handle:
                loaded = yaml.safe_load(handle)
        except OSError as exc:
            raise ConfigError("CONFIG_PATH", f"cannot read {path!r}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            raise ConfigError("CONFIG_PATH", f"{path!r} is not valid YAML{where}") from None
        if loaded is None:
            return {}
        if not isinstance(loaded, dict):
            raise ConfigError("CONFIG_PATH", f"{path!r} must hold a mapping of variable names to values")
        values = {}
        for key, value in loaded.items():
            if isinstance(value, dict):
                raise ConfigError(str(key), f"in {path!r} must be a single value or a list, not a mapping")
            if isinstance(value, bool):
                value = "true" if value else "false"
            elif isinstance(value, list):
                value = ",".join(str(item) for item in value)
            elif value is None:
                value = ""
            values[str(key).upper()] = str(value)
        return values

    def raw(self, name: str) -> str | None:
        """The value as text, or None when neither the environment nor the file sets it."""
        if name in self.environ:
            return self.environ[name].strip()
        return self.file_values.get(name)

    def str(self, name: str, default: str = "") -> str:
        value = self.raw(name)
        return default if value in (None, "") else value

    def int(self, name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
        value = self.raw(name)
        if value in (None, ""):
            return default
        try:
            number = int(value)
        except ValueError:
            raise ConfigError(name, f"expected a whole number, got {value!r}") from None
        if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
            bounds = f"from {minimum} to {maximum}" if maximum is not None else f"of at least {minimum}"
            raise ConfigError(name, f"expected a number {bounds}, got {number}")
        return number

    def float(self, name: str, default: float, *, minimum: float = 0.0) -> float:
        value = self.raw(name)
        if value in (None, ""):
            return default
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(name, f"expected a number, got {value!r}") from None
        if number < minimum:
            raise ConfigError(name, f"expected a number of at least {minimum}, got {number}")
        return number

    def bool(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ConfigError(name, f"expected true or false, got {value!r}")

    def choice(self, name: str, default: str, choices: Iterable[str]) -> str:
        allowed = tuple(choices)
        value = self.str(name, default).lower()
        if value not in allowed:
            raise ConfigError(name, f"expected one of {', '.join(allowed)}, got {value!r}")
        return value

    def list(self, name: str, default: Iterable[str] = (), *, separators: str = ",") -> list[str]:
        value = self.raw(name)
        if value in (None, ""):
            return list(default)
        for separator in separators[1:]:
            value = value.replace(separator, separators[0])
        return [item.strip() for item in value.split(separators[0]) if item.strip()]

    def labels(self, name: str) -> dict[str, str]:
        """`key=value` pairs separated by commas (`zone=a,canary=true`); {} when unset."""
        from core.labels import parse_labels

        try:
            return parse_labels(self.str(name))
        except ValueError as exc:
            raise ConfigError(name, f"expected key=value labels separated by commas: {exc}") from None

    def host_ports(self, name: str) -> list[str]:
        """A comma-separated list of `host:port` (an `http://` or `https://` prefix is allowed)."""
        endpoints = []
        for item in self.list(name):
            address = item.split("://", 1)[1] if "://" in item else item
            host, _, port = address.rstrip("/").rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ConfigError(name, f"expected host:port entries separated by commas, got {item!r}")
            endpoints.append(item.rstrip("/"))
        return endpoints

    def redis_url(self) -> str:
        """`REDIS_URL`, or the seed's `REDIS_ADDR` (`host:port`) turned into one; '' when unset."""
        url = self.str("REDIS_URL")
        if url:
            parts = urlsplit(url)
            if parts.scheme not in ("redis", "rediss", "unix") or not (parts.hostname or parts.path):
                raise ConfigError("REDIS_URL", f"expected redis://host:port/db, got {url!r}")
            try:
                parts.port  # noqa: B018 - raises ValueError on a bad port
            except ValueError:
                raise ConfigError("REDIS_URL", f"has an invalid port: {url!r}") from None
            return url
        address = self.str("REDIS_ADDR")
        if address:
            host, _, port = address.rpartition(":")
            if not host or not port.isdigit():
                raise ConfigError("REDIS_ADDR", f"expected host:port, got {address!r}")
            return f"redis://{host}:{port}/0"
        return ""


def exit_on_config_error() -> None:
    """Load Django settings now; on a configuration error print one line and exit.

    Entry points (manage.py, the ASGI module, the Celery app) call this before anything
    else so that a bad value never surfaces as a traceback.
    """
    from django.conf import settings

    try:
        settings.INSTALLED_APPS  # noqa: B018 - forces the settings module to load
    except ConfigError as exc:
        sys.stderr.write(f"chameleon: configuration error: {exc}\n")
        sys.exit(2)


def project_root() -> Path:
    return Path(__file__).resolve().parent.parent
