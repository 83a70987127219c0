"""Structured logs: console or JSON lines with the context fields."""

from __future__ import annotations

import io
import json
import logging

from core.logging import (
    ConsoleFormatter,
    ContextFilter,
    JsonFormatter,
    plugin_var,
    request_id_var,
    task_id_var,
)


def capture(formatter: logging.Formatter) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(ContextFilter())
    logger = logging.getLogger(f"test.{id(stream)}")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, stream


def test_json_lines_carry_every_context_field():
    logger, stream = capture(JsonFormatter())
    tokens = request_id_var.set("req-1"), task_id_var.set("task-9"), plugin_var.set("hello")
    try:
        logger.info("greeted %s", "ada")
    finally:
        request_id_var.reset(tokens[0])
        task_id_var.reset(tokens[1])
        plugin_var.reset(tokens[2])
    record = json.loads(stream.getvalue())
    assert record["message"] == "greeted ada"
    assert record["level"] == "info"
    assert record["service"] == "chameleon"
    assert (record["request_id"], record["task_id"], record["plugin"]) == ("req-1", "task-9", "hello")
    assert record["timestamp"].endswith("+00:00")
    assert "node" in record


def test_json_lines_include_the_traceback():
    logger, stream = capture(JsonFormatter())
    try:
        raise ValueError("bad")
    except ValueError:
        logger.exception("failed")
    record = json.loads(stream.getvalue())
    assert "ValueError: bad" in record["exc_info"]


def test_console_lines_show_context_when_present():
    logger, stream = capture(ConsoleFormatter())
    token = request_id_var.set("abc")
    try:
        logger.warning("slow")
    finally:
        request_id_var.reset(token)
    line = stream.getvalue().strip()
    assert "WARNING" in line and "slow" in line and "[request_id=abc]" in line
