"""Plain Django views: /health, /metrics and the console home page."""

from __future__ import annotations

import prometheus_client
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed

from core.conf import chameleon_settings
from core.health import health_report
from core.metrics import CLUSTER_REGISTRY
from core.models import Node


@never_cache
@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """SPEC §7: overall status, service, version, timestamp and each component's state."""
    report, status = health_report()
    return JsonResponse(report, status=status)


def _metrics_caller_allowed(request: HttpRequest) -> bool:
    if chameleon_settings.METRICS_PUBLIC or request.user.is_authenticated:
        return True
    try:
        # The same API token works here, so a Prometheus scraper can authenticate.
        return TokenAuthentication().authenticate(request) is not None
    except AuthenticationFailed:
        return False


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition: this process's Django metrics plus every node's Chameleon ones."""
    if not _metrics_caller_allowed(request):
        response = JsonResponse(
            {"error": {"status": 401, "code": "not_authenticated",
                       "message": "Authentication credentials were not provided or are invalid."}},
            status=401,
        )
        response["WWW-Authenticate"] = "Token"
        return response
    body = prometheus_client.generate_latest(prometheus_client.REGISTRY) + prometheus_client.generate_latest(
        CLUSTER_REGISTRY
    )
    return HttpResponse(body, content_type=prometheus_client.CONTENT_TYPE_LATEST)


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """The console's landing page: where things are, and the nodes that are up."""
    nodes = list(Node.objects.alive())
    return render(request, "core/home.html", {"nodes": nodes})
