"""Error pages: JSON under /api/ and for JSON clients, a console page otherwise."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template import loader

from core.api.exceptions import error_body
from core.logging import request_id_var


def _wants_json(request: HttpRequest) -> bool:
    return request.path.startswith(("/api/", "/plugins/", "/scheduler/")) or "application/json" in request.headers.get(
        "Accept", ""
    )


def _error(request: HttpRequest, status: int, code: str, message: str) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse(error_body(status, code, message), status=status)
    template = loader.get_template("error.html")
    context = {"status": status, "message": message, "request_id": request_id_var.get()}
    return HttpResponse(template.render(context), status=status)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _error(request, 400, "bad_request", "The request could not be understood.")


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _error(request, 403, "permission_denied", "You do not have permission to do this.")


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _error(request, 404, "not_found", f"Nothing is at {request.path}.")


def server_error(request: HttpRequest) -> HttpResponse:
    return _error(request, 500, "server_error", "Something went wrong on our side; it has been logged.")
