"""Task handlers for the scheduler's tests, loaded by worker processes through
CHAMELEON_SCHEDULER_HANDLER_MODULES=tests.scheduler_app.handlers."""

from __future__ import annotations

import os
import time

from scheduler_app.handlers import register_handler


def sleep(seconds: float = 1.0) -> dict:
    time.sleep(seconds)
    return {"slept": seconds, "pid": os.getpid()}


def fail(message: str = "boom") -> None:
    raise RuntimeError(message)


register_handler("test.sleep", sleep, description="Sleep (tests).", owner="module:tests", replace=True,
                 schema={"type": "object", "properties": {"seconds": {"type": "number", "minimum": 0}}})
register_handler("test.fail", fail, description="Raise (tests).", owner="module:tests", replace=True)
