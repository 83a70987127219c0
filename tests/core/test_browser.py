"""A person's first minutes, in real Chromium: log in to the admin, open the console and
the API docs (served without any CDN)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

pytestmark = [pytest.mark.browser, pytest.mark.processes, pytest.mark.django_db(transaction=True)]

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def page(chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.set_default_timeout(20_000)
        yield page
        browser.close()


@pytest.fixture
def browser_admin(transactional_db) -> User:
    # Created before Playwright starts: its sync API runs an event loop in this thread,
    # where Django refuses database calls.
    return User.objects.create_superuser("admin", password="Browser-Pass-1234")


def test_admin_login_then_console_and_api_docs(browser_admin, live_web, page):
    page.goto(f"{live_web.url}/admin/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "Browser-Pass-1234")
    page.click("input[type=submit]")
    page.wait_for_selector("text=Control plane")  # the admin index title
    assert "Chameleon" in page.inner_text("#site-name")

    page.goto(f"{live_web.url}/")
    page.wait_for_selector("[data-testid=nodes]")
    assert "web@" in page.inner_text("[data-testid=nodes]")  # the web node itself is up

    page.goto(f"{live_web.url}/api/docs/")
    page.wait_for_selector("text=/api/v1/nodes/", timeout=30_000)  # Swagger UI rendered the schema
    assert page.title()
