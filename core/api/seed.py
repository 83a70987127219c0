"""The seed-compatible management API's envelope (SPEC §8).

Routes written for clients of the Go service answer
`{"code": 200, "message": "success", "data": {...}}`; an error carries its HTTP status
in both the response and `code`, with a readable `message` and `"data": null`. Views
subclass `SeedAPIView` and return `seed_response(...)`.
"""

from __future__ import annotations

from typing import Any

from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.exceptions import exception_handler as api_exception_handler
from core.api.permissions import OperationPermissionMixin


def seed_response(data: dict[str, Any], *, status: int = 200, message: str = "success") -> Response:
    return Response({"code": status, "message": message, "data": data}, status=status)


def seed_exception_handler(exc: Exception, context: dict) -> Response:
    response = api_exception_handler(exc, context)
    error = response.data["error"]
    response.data = {"code": response.status_code, "message": error["message"], "data": None}
    if "fields" in error:
        response.data["errors"] = error["fields"]
    return response


class SeedAPIView(OperationPermissionMixin, APIView):
    """A seed route: same auth and permissions as the REST API, the seed's envelope.

    Set `required_permission` (e.g. "plugins_app.change_plugin") on views that operate.
    """

    def get_exception_handler(self):
        return seed_exception_handler
