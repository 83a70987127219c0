"""/dashboard/: login required, overview figures, and the live stream in real Chromium."""

from __future__ import annotations

import json
import os
import urllib.request

import pytest
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token

from plugins_app.events import publish

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync",
]


@pytest.mark.django_db
def test_dashboard_needs_login(client):
    response = client.get("/dashboard/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert client.get("/dashboard/overview").status_code == 302


@pytest.mark.django_db
def test_dashboard_page_and_overview_figures(client, viewer, event_transport):
    event_transport("database")
    client.force_login(viewer)
    page = client.get("/dashboard/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-testid="event-list"' in html and "events/dashboard.js" in html and 'href="/dashboard/"' in html
    assert "publish-test" not in html  # a viewer cannot publish
    before = client.get("/dashboard/overview").json()["events"]
    for _ in range(3):
        publish("test.figures")
    figures = client.get("/dashboard/overview").json()
    assert len(figures["events"]["per_minute"]) == 30
    assert figures["events"]["stored"] == before["stored"] + 3
    assert figures["events"]["last_minute"] in (before["last_minute"] + 3, 3)  # 3 if a new minute began
    assert set(figures["nodes"]) == {"alive", "lost", "by_kind"}
    # Plugins and tasks appear when those apps' models exist (None otherwise), never an error.
    assert "plugins" in figures and "tasks" in figures


@pytest.mark.django_db
def test_overview_is_forbidden_without_view_permission(client):
    client.force_login(User.objects.create_user("nobody", password="x"))
    assert client.get("/dashboard/overview").status_code == 403


@pytest.fixture
def browser_admin(transactional_db) -> tuple[User, str]:
    # Created before Playwright starts (its sync API runs an event loop in this thread).
    user = User.objects.create_superuser("admin", password="Browser-Pass-1234")
    return user, Token.objects.create(user=user).key


def api_publish(base_url: str, token: str, topic: str, data: dict) -> dict:
    request = urllib.request.Request(
        f"{base_url}/api/v1/events/", data=json.dumps({"topic": topic, "data": data}).encode(), method="POST",
        headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201
        return json.loads(response.read())


@pytest.mark.browser
@pytest.mark.processes
def test_browser_sees_an_event_published_through_the_api_within_seconds(
    browser_admin, shared_stream, live_web, chromium_path
):
    from playwright.sync_api import expect, sync_playwright

    _user, token = browser_admin
    before = api_publish(live_web.url, token, "test.before_open", {"n": 0})
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.set_default_timeout(20_000)
        page.goto(f"{live_web.url}/dashboard/")
        page.fill("#id_username", "admin")
        page.fill("#id_password", "Browser-Pass-1234")
        page.click("input[type=submit]")
        expect(page.locator("[data-testid=connection-state]")).to_have_attribute("data-state", "live")
        # The backlog shows what happened before the page was opened.
        expect(page.locator(f"tr[data-id='{before['id']}']")).to_be_visible()

        event = api_publish(live_web.url, token, "test.browser", {"hello": "chromium"})
        row = page.locator(f"tr[data-id='{event['id']}']")
        expect(row).to_be_visible(timeout=5_000)
        assert "test.browser" in row.inner_text() and "chromium" in row.inner_text()
        # Newest first.
        assert page.locator("#event-list tr").first.get_attribute("data-id") == event["id"]

        # Pause holds new events, resume shows them; clear empties the list.
        page.click("[data-testid=pause]")
        held = api_publish(live_web.url, token, "test.held", {})
        expect(page.locator("#notice")).to_contain_text("1 new event")
        assert page.locator(f"tr[data-id='{held['id']}']").count() == 0
        page.click("[data-testid=pause]")
        expect(page.locator(f"tr[data-id='{held['id']}']")).to_be_visible()

        # A topic filter: only matching events are shown.
        page.fill("#filter-topic", "orders.*")
        page.click("#filters button[type=submit]")
        expect(page.locator("[data-testid=connection-state]")).to_have_attribute("data-state", "live")
        api_publish(live_web.url, token, "test.filtered_out", {})
        wanted = api_publish(live_web.url, token, "orders.created", {"id": 1})
        expect(page.locator(f"tr[data-id='{wanted['id']}']")).to_be_visible(timeout=5_000)
        assert page.locator("tr[data-topic='test.filtered_out']").count() == 0

        expect(page.locator("#events-stored")).not_to_have_text("–")  # overview cards filled
        if os.environ.get("CHAMELEON_SCREENSHOT"):
            page.screenshot(path=os.environ["CHAMELEON_SCREENSHOT"], full_page=True)
        page.click("[data-testid=clear]")
        assert page.locator("#event-list tr[data-id]").count() == 0
        browser.close()


def test_overview_shows_service_health(client, viewer, event_transport):
    from plugins_app.discovery import services as discovery
    from plugins_app.discovery.registry import DatabaseRegistry

    event_transport("database")
    previous = discovery.set_registry(DatabaseRegistry())
    try:
        discovery.register_instance(name="billing", endpoint="10.9.0.1:80", ttl=60)
        client.force_login(viewer)
        services = client.get("/dashboard/overview").json()["services"]
        assert services["services"] == 1
        assert services["instances"] == 1
        assert sum(services["by_health"].values()) == 1
    finally:
        discovery.set_registry(previous)
