"""HTTP doors into running plugins: service plugins' endpoints under /p/<plugin>/ and middleware plugins."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import URLResolver, path
from django.urls.exceptions import Resolver404
from django.urls.resolvers import RegexPattern
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from core.api.exceptions import error_body
from plugins_app.contract import PluginKind
from plugins_app.models import PluginState

logger = logging.getLogger("chameleon.plugins.http")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse(error_body(status, code, message), status=status)


def _user(request: HttpRequest) -> Any:
    """Token first (as the API), then the session -- which must carry a CSRF token to write."""
    try:
        found = TokenAuthentication().authenticate(Request(request))
    except AuthenticationFailed:
        return None
    if found:
        return found[0]
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        if request.method not in SAFE_METHODS:
            try:
                SessionAuthentication().enforce_csrf(Request(request))
            except exceptions.PermissionDenied:
                return False
        return user
    return None


def _resolver(entry: Any) -> URLResolver:
    """The plugin instance's endpoints as a URL resolver, built once per instance."""
    instance = entry.instance
    cached = getattr(instance, "_chameleon_resolver", None)
    if cached is not None:
        return cached
    patterns = [path(route, view) for route, view in instance.endpoints().items()]
    resolver = URLResolver(RegexPattern(r"^"), patterns)
    instance._chameleon_resolver = resolver
    return resolver


@csrf_exempt
def plugin_endpoint(request: HttpRequest, plugin: str, rest: str = "") -> HttpResponse:
    """Serve /p/<plugin>/<rest>: 404 unknown plugin or route, 503 while the plugin is not running."""
    from plugins_app.node import get_manager

    user = _user(request)
    if user is None:
        return _error(401, "not_authenticated", "Authentication credentials were not provided.")
    if user is False:
        return _error(403, "csrf_failed", "CSRF check failed: a signed-in browser must send the CSRF token.")
    needed = "plugins_app.view_plugin" if request.method in SAFE_METHODS else "plugins_app.call_plugin"
    if not user.has_perm(needed):
        return _error(403, "permission_denied", "You do not have permission to do this.")
    entry = get_manager().entries.get(plugin)
    if entry is None or PluginKind(entry.cls.kind) is not PluginKind.SERVICE:
        return _error(404, "not_found", f"No service plugin named {plugin!r} on this node.")
    if entry.state != PluginState.RUNNING or entry.instance is None:
        response = _error(503, "plugin_unavailable", f"Plugin {plugin!r} is {entry.state}.")
        response["Retry-After"] = "5"
        return response
    try:
        match = _resolver(entry).resolve(rest)
    except Resolver404:
        return _error(404, "not_found", f"Plugin {plugin!r} has no endpoint {rest!r}.")
    request.user = user
    try:
        response = match.func(request, *match.args, **match.kwargs)
    except Exception:
        logger.exception("Endpoint %s of plugin %s failed", rest, plugin)
        return _error(502, "plugin_error", f"Plugin {plugin!r} failed to answer.")
    if isinstance(response, dict):
        response = JsonResponse(response)
    return response


class PluginMiddleware:
    """Runs running middleware plugins around each request, in ascending `priority`.

    A plugin's `process_request(request)` may return a response to answer at once;
    `process_response(request, response)` returns the (possibly new) response. A plugin
    that raises is logged and skipped; the request goes on.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def _chain(self) -> list[Any]:
        from plugins_app import node

        manager = node._manager
        if manager is None:
            return []
        return sorted(
            (e for e in list(manager.entries.values())
             if e.callable and e.instance is not None and PluginKind(e.cls.kind) is PluginKind.MIDDLEWARE),
            key=lambda e: (e.cls.priority, e.name),
        )

    def __call__(self, request: HttpRequest) -> HttpResponse:
        chain = self._chain()
        if not chain:
            return self.get_response(request)
        for entry in chain:
            hook = getattr(entry.instance, "process_request", None)
            if hook is None:
                continue
            try:
                early = hook(request)
            except Exception:
                logger.exception("Middleware plugin %s failed in process_request", entry.name)
                continue
            if early is not None:
                return early
        response = self.get_response(request)
        for entry in reversed(chain):
            hook = getattr(entry.instance, "process_response", None)
            if hook is None:
                continue
            try:
                response = hook(request, response) or response
            except Exception:
                logger.exception("Middleware plugin %s failed in process_response", entry.name)
        return response
