"""Service plugins' endpoints under /p/<plugin>/ and middleware plugins in priority order."""

from __future__ import annotations

import pytest
from django.http import HttpResponse

from plugins_app.builtin.logger import LoggerPlugin
from plugins_app.contract import PluginBuilder, PluginKind
from tests.dummy_plugin import DummyPlugin
from tests.plugins.conftest import make_plugin


@pytest.fixture
def service(db_manager):
    db_manager.register(LoggerPlugin)
    db_manager.register(DummyPlugin)
    assert db_manager.start_all() == {}
    return db_manager


def test_endpoints_are_served_while_running(service, viewer_client):
    assert viewer_client.get("/p/dummy/").json() == {"plugin": "dummy", "greeting": "hi"}
    assert viewer_client.get("/p/dummy/echo/bird/").json() == {"echo": "bird"}
    assert viewer_client.get("/p/dummy/nowhere/").status_code == 404


def test_a_stopped_service_plugin_answers_503(service, viewer_client):
    service.stop("dummy")
    response = viewer_client.get("/p/dummy/echo/bird/")
    assert response.status_code == 503 and response.json()["error"]["code"] == "plugin_unavailable"


def test_unknown_plugin_is_404_and_anonymous_401(service, viewer_client, anonymous_client):
    assert viewer_client.get("/p/nope/").status_code == 404
    assert viewer_client.get("/p/logger/").status_code == 404, "not a service plugin"
    assert anonymous_client.get("/p/dummy/").status_code == 401


def test_builder_endpoints(db_manager, viewer_client):
    built = PluginBuilder("svc", "1.0").endpoint("ping/", lambda self, request: {"pong": True}).build()
    assert built.kind == PluginKind.SERVICE
    db_manager.register(built)
    db_manager.start_all()
    assert viewer_client.get("/p/svc/ping/").json() == {"pong": True}


def test_middleware_plugins_run_in_priority_order(db_manager, viewer_client):
    order: list[str] = []

    def tagger(tag: str, priority: int):
        def process_response(self, request, response):
            order.append(tag)
            response[f"X-{tag}"] = str(priority)
            return response

        def process_request(self, request):
            order.append(f"req-{tag}")
            if request.path == "/health" and tag == "first" and request.GET.get("block"):
                return HttpResponse("blocked", status=418)
            return None

        return make_plugin(f"mw-{tag}", kind=PluginKind.MIDDLEWARE, priority=priority,
                           process_request=process_request, process_response=process_response)

    db_manager.register(tagger("second", 20))
    db_manager.register(tagger("first", 10))
    db_manager.start_all()
    response = viewer_client.get("/health")
    assert response["X-first"] == "10" and response["X-second"] == "20"
    assert order == ["req-first", "req-second", "second", "first"]
    assert viewer_client.get("/health?block=1").status_code == 418
    db_manager.stop("mw-first")
    order.clear()
    viewer_client.get("/health")
    assert order == ["req-second", "second"]


def test_a_session_write_needs_the_csrf_token(service, operator):
    from django.test import Client

    browser = Client(enforce_csrf_checks=True)
    browser.force_login(operator)
    assert browser.post("/p/dummy/echo/bird/").status_code == 403
    assert browser.get("/p/dummy/echo/bird/").status_code == 200
