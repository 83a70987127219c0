"""Admin pages: services with health badges from the active registry, alert rules with history, alerts."""

from __future__ import annotations

import pytest
from django.test import Client

from core.models import AuditEntry
from plugins_app.discovery import alerts, monitor, services
from plugins_app.discovery.models import Alert, AlertRule


@pytest.fixture
def admin_client_(superuser) -> Client:
    client = Client()
    client.force_login(superuser)
    return client


def test_services_page_shows_health_badges_and_deregisters(registry, admin_client_):
    good = services.register_instance(id="web-1", name="web", endpoint="10.0.0.1:80", ttl=60)
    bad = services.register_instance(id="web-2", name="web", endpoint="10.0.0.2:80", ttl=60, check={"type": "tcp"})
    registry.set_health(bad.id, "unhealthy", "connect refused", bad.registered_at)
    page = admin_client_.get("/admin/discovery/serviceinstance/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'class="badge badge-healthy badge-healthy">healthy<' in html
    assert 'class="badge badge-unhealthy badge-unhealthy">unhealthy<' in html
    assert "connect refused" in html and f"Registry back end: <strong>{registry.kind}</strong>" in html
    filtered = admin_client_.get("/admin/discovery/serviceinstance/", {"health": "unhealthy"}).content.decode()
    assert "web-2" in filtered and "web-1" not in filtered

    response = admin_client_.post("/admin/discovery/serviceinstance/", {"instance": good.id})
    assert response.status_code == 302
    assert [item.id for item in services.list_instances()] == ["web-2"]
    assert AuditEntry.objects.filter(action="service.deregister", source="admin", target="web-1").exists()


def test_alert_rule_pages_show_state_and_history(db, admin_client_):
    rule = AlertRule.objects.create(name="busy", metric="chameleon_process_threads", condition="gt", threshold=0)
    monitor.collect_process()
    alerts.evaluate_rules()
    assert Alert.objects.filter(rule=rule, state="firing").exists()
    listing = admin_client_.get("/admin/discovery/alertrule/").content.decode()
    assert "badge-firing" in listing and "busy" in listing
    detail = admin_client_.get(f"/admin/discovery/alertrule/{rule.pk}/change/").content.decode()
    assert "history" in detail.lower() and "badge-firing" in detail
    assert "busy" in admin_client_.get("/admin/discovery/alert/").content.decode()


def test_alert_rule_admin_validates_channels_and_audits(db, admin_client_):
    form = {"name": "r1", "metric": "chameleon_process_threads", "labels": "{}", "condition": "gt",
            "threshold": "1", "duration": "0", "severity": "warning", "channels": '[{"type": "pager"}]',
            "enabled": "on", "alerts-TOTAL_FORMS": "0", "alerts-INITIAL_FORMS": "0"}
    bad = admin_client_.post("/admin/discovery/alertrule/add/", form)
    assert bad.status_code == 200 and "type must be one of" in bad.content.decode()
    good = admin_client_.post("/admin/discovery/alertrule/add/", {**form, "channels": '["log"]'})
    assert good.status_code == 302
    assert AlertRule.objects.get(name="r1").channels == [{"type": "log"}]
    assert AuditEntry.objects.filter(action="alert_rule.create", source="admin").exists()
