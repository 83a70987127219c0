"""The live dashboard page (/dashboard/) and its overview figures (JSON)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from core.conf import chameleon_settings
from plugins_app.events.overview import overview


@login_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    """Events streaming live over /ws/events/, overview cards and events per minute."""
    return render(request, "events/dashboard.html", {
        "can_publish": request.user.has_perm("events.add_event"),
        "backlog": chameleon_settings.EVENT_BACKLOG,
    })


@never_cache
@login_required
@require_GET
def overview_json(request: HttpRequest) -> JsonResponse:
    if not request.user.has_perm("events.view_event"):
        return JsonResponse({"error": {"status": 403, "code": "permission_denied",
                                       "message": "You do not have permission to do this."}}, status=403)
    return JsonResponse(overview())
