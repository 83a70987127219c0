"""Request middleware: a request id for every web request, in logs and the response."""

from __future__ import annotations

import logging
import random
import re
import time

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

from core.logging import request_id_var

logger = logging.getLogger("chameleon.request")
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestIdMiddleware:
    """Takes a well-formed `X-Request-ID` or makes one, sets it for logs, echoes it back."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(self.get_response):
            markcoroutinefunction(self)

    def _begin(self, request) -> tuple[object, float]:
        incoming = request.headers.get("X-Request-ID", "")
        # A correlation id, not a secret: no urandom system call on every request.
        request.request_id = incoming if _VALID_REQUEST_ID.match(incoming) else f"{random.getrandbits(128):032x}"
        return request_id_var.set(request.request_id), time.perf_counter()

    def _end(self, request, response, token, started: float):
        response["X-Request-ID"] = request.request_id
        logger.info(
            "%s %s %s %.1fms",
            request.method,
            request.get_full_path(),
            response.status_code,
            (time.perf_counter() - started) * 1000,
        )
        request_id_var.reset(token)
        return response

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        token, started = self._begin(request)
        return self._end(request, self.get_response(request), token, started)

    async def __acall__(self, request):
        token, started = self._begin(request)
        return self._end(request, await self.get_response(request), token, started)
