"""Configuration from the environment and CONFIG_PATH, and how bad values are refused."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from chameleon_site.env import ConfigError, Env
from tests.fixtures.processes import ROOT


def run_manage(env_overrides: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(DJANGO_SETTINGS_MODULE="chameleon_site.settings", **env_overrides)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("HTTP_PORT", "eighty"),
        ("HTTP_PORT", "70000"),
        ("LOG_FORMAT", "xml"),
        ("CHAMELEON_ENV", "staging"),
        ("DATABASE_URL", "oracle://db/x"),
        ("REDIS_URL", "http://cache:6379"),
        ("KAFKA_BROKERS", "broker-without-port"),
    ],
)
def test_bad_value_stops_startup_with_one_line_naming_the_variable(variable, value):
    result = run_manage({variable: value}, "check")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"chameleon: configuration error: {variable}:")
    assert "Traceback" not in result.stderr


def test_production_refuses_to_start_without_secret_key(tmp_path):
    result = run_manage({"CHAMELEON_ENV": "production", "SECRET_KEY": "", "CHAMELEON_DATA_DIR": str(tmp_path)}, "check")
    assert result.returncode == 2
    assert "SECRET_KEY: is required" in result.stderr


def test_production_refuses_debug(tmp_path):
    result = run_manage(
        {"CHAMELEON_ENV": "production", "SECRET_KEY": "x" * 50, "DEBUG": "true", "CHAMELEON_DATA_DIR": str(tmp_path)},
        "check",
    )
    assert result.returncode == 2
    assert "DEBUG: must be off" in result.stderr


def test_production_refuses_a_weak_secret_key(tmp_path):
    result = run_manage(
        {"CHAMELEON_ENV": "production", "SECRET_KEY": "django-insecure-abc", "CHAMELEON_DATA_DIR": str(tmp_path)},
        "check",
    )
    assert result.returncode == 2
    assert "SECRET_KEY:" in result.stderr


def test_config_file_is_read_and_the_environment_overrides_it(tmp_path):
    config = tmp_path / "chameleon.yaml"
    config.write_text("HTTP_PORT: 9191\nLOG_FORMAT: json\nKAFKA_BROKERS: [k1:9092, k2:9092]\n")
    env = Env({"CONFIG_PATH": str(config), "LOG_FORMAT": "console"})
    assert env.int("HTTP_PORT", 8080) == 9191
    assert env.choice("LOG_FORMAT", "console", ("console", "json")) == "console"
    assert env.host_ports("KAFKA_BROKERS") == ["k1:9092", "k2:9092"]


def test_config_file_applies_to_a_real_start(tmp_path):
    config = tmp_path / "chameleon.yaml"
    config.write_text("HTTP_PORT: 9191\nSERVICE_NAME: edge\n")
    result = run_manage(
        {"CONFIG_PATH": str(config), "CHAMELEON_DATA_DIR": str(tmp_path)},
        "shell", "-c", "from django.conf import settings; print(settings.HTTP_PORT, settings.SERVICE_NAME)",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("9191 edge")


def test_broken_config_file_is_named_with_its_line(tmp_path):
    config = tmp_path / "broken.yaml"
    config.write_text("HTTP_PORT: 1\n  nested: [\n")
    with pytest.raises(ConfigError, match=r"^CONFIG_PATH: .*not valid YAML at line"):
        Env({"CONFIG_PATH": str(config)})


def test_missing_config_file_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="^CONFIG_PATH: cannot read"):
        Env({"CONFIG_PATH": str(tmp_path / "absent.yaml")})


def test_seed_redis_addr_is_accepted():
    assert Env({"REDIS_ADDR": "cache:6380"}).redis_url() == "redis://cache:6380/0"
    assert Env({"REDIS_URL": "redis://a:1/2", "REDIS_ADDR": "b:3"}).redis_url() == "redis://a:1/2"


@pytest.mark.parametrize(("raw", "expected"), [("true", True), ("0", False), ("On", True), ("no", False)])
def test_booleans(raw, expected):
    assert Env({"DEBUG": raw}).bool("DEBUG", not expected) is expected


def test_a_bad_boolean_names_the_variable():
    with pytest.raises(ConfigError, match="^DEBUG: expected true or false"):
        Env({"DEBUG": "maybe"}).bool("DEBUG", False)
