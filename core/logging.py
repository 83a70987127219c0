"""One structured log format for every process: console lines or JSON lines (`LOG_FORMAT`).

Each record carries `service`, `node`, `request_id` (web requests), `task_id` (Celery
tasks) and `plugin` (plugin code), taken from context variables that the request
middleware, the Celery signal receivers and the plugin runtime set.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from datetime import UTC, datetime

from pythonjsonlogger.json import JsonFormatter as _BaseJsonFormatter

request_id_var: ContextVar[str] = ContextVar("request_id", default="")
task_id_var: ContextVar[str] = ContextVar("task_id", default="")
plugin_var: ContextVar[str] = ContextVar("plugin", default="")

CONTEXT_FIELDS = ("service", "node", "request_id", "task_id", "plugin")


class ContextFilter(logging.Filter):
    """Adds the context fields to every record (an explicit `extra=` value wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        from core.nodes import current_node_name, service_name

        defaults = {
            "service": service_name(),
            "node": current_node_name(),
            "request_id": request_id_var.get(),
            "task_id": task_id_var.get(),
            "plugin": plugin_var.get(),
        }
        for field, value in defaults.items():
            if not getattr(record, field, None):
                setattr(record, field, value)
        return True


class ConsoleFormatter(logging.Formatter):
    """`time LEVEL logger: message key=value …` for people reading a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        context = " ".join(
            f"{field}={getattr(record, field)}"
            for field in ("request_id", "task_id", "plugin")
            if getattr(record, field, "")
        )
        line = f"{stamp} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if context:
            line = f"{line} [{context}]"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


class JsonFormatter(_BaseJsonFormatter):
    """One JSON object a line: timestamp, level, message, logger and the context fields."""

    def __init__(self) -> None:
        super().__init__(timestamp=False)

    def add_fields(self, log_record: dict, record: logging.LogRecord, message_dict: dict) -> None:
        super().add_fields(log_record, record, message_dict)
        log_record["timestamp"] = datetime.fromtimestamp(record.created, UTC).isoformat()
        log_record["level"] = record.levelname.lower()
        log_record["logger"] = record.name
        for field in CONTEXT_FIELDS:
            log_record[field] = getattr(record, field, "") or None
