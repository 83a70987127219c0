"""Alert rules firing, holding and resolving against a real metric; channels log, webhook, email."""

from __future__ import annotations

import http.server
import json
import threading

import pytest
from django.core import mail

from plugins_app import events
from plugins_app.discovery import alerts, monitor, services
from plugins_app.discovery.models import Alert, AlertRule
from tests.fixtures.services import wait_for


class WebhookHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append(json.loads(body))  # type: ignore[attr-defined]
        self.send_response(self.server.status)  # type: ignore[attr-defined]
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def webhook():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), WebhookHandler)
    server.received, server.status = [], 200
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def alert_events():
    captured: list[events.Event] = []
    subscription = events.subscribe("alert.#", captured.append)
    yield captured
    events.unsubscribe(subscription)


def evaluate() -> AlertRule:
    monitor.collect_services()
    alerts.evaluate_rules()
    return AlertRule.objects.get(name="crowded")


def test_rule_fires_holds_and_resolves_on_the_instance_count(registry, webhook, alert_events, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    AlertRule.objects.create(
        name="crowded", metric="chameleon_service_instances", labels={"service": "checkout", "health": "healthy"},
        condition="gte", threshold=2, duration=0.3, severity="critical",
        channels=[{"type": "log"}, {"type": "webhook", "url": f"http://127.0.0.1:{webhook.server_port}/hook"},
                  {"type": "email", "to": ["ops@example.com"]}],
    )
    first = services.register_instance(name="checkout", endpoint="10.0.0.1:80", ttl=60)
    assert evaluate().state == "ok"  # one instance: below the threshold

    second = services.register_instance(name="checkout", endpoint="10.0.0.2:80", ttl=60)
    rule = evaluate()
    assert (rule.state, rule.last_value) == ("pending", 2.0)  # breached, but not yet for `duration`
    assert not Alert.objects.exists()

    rule = wait_for(lambda: (r := evaluate()).state == "firing" and r, 5, "rule to fire after holding 0.3s")
    [alert] = Alert.objects.all()
    assert (alert.state, alert.severity, alert.value) == ("firing", "critical", 2.0)
    assert {n["channel"]: n["ok"] for n in alert.notifications} == {"log": True, "webhook": True, "email": True}
    wait_for(lambda: [p["status"] for p in webhook.received] == ["firing"], 5, "webhook got the firing")
    assert webhook.received[0]["rule"] == "crowded" and webhook.received[0]["value"] == 2.0
    assert mail.outbox[0].subject == "[critical] crowded firing" and mail.outbox[0].to == ["ops@example.com"]

    evaluate()
    assert Alert.objects.count() == 1  # holding: still one open alert, nothing sent again
    assert len(webhook.received) == 1

    services.deregister_instance(second.id)
    rule = evaluate()
    assert rule.state == "ok"
    alert.refresh_from_db()
    assert alert.state == "resolved" and alert.resolved_at is not None and alert.resolved_value == 1.0
    wait_for(lambda: [p["status"] for p in webhook.received] == ["firing", "resolved"], 5, "webhook got the resolve")
    assert [m.subject for m in mail.outbox] == ["[critical] crowded firing", "[critical] crowded resolved"]
    wait_for(lambda: [e.topic for e in alert_events] == ["alert.fired", "alert.resolved"], 5, "alert events")
    assert alert_events[0].data["rule"] == "crowded" and alert_events[1].data["alert_id"] == alert.pk
    assert alerts.read_metric("chameleon_alerts_firing", {"severity": "critical"}) == 0
    services.deregister_instance(first.id)


def test_failing_webhook_is_recorded_not_raised(db, webhook):
    webhook.status = 500
    AlertRule.objects.create(
        name="threads", metric="chameleon_process_threads", condition="gt", threshold=0, duration=0,
        channels=[{"type": "webhook", "url": f"http://127.0.0.1:{webhook.server_port}/hook"}],
    )
    monitor.collect_process()
    alerts.evaluate_rules()
    [alert] = Alert.objects.all()
    assert alert.notifications[0]["ok"] is False and alert.notifications[0]["detail"] == "HTTP 500"


def test_metric_without_samples_does_not_fire_and_disabled_rule_resolves(db):
    rule = AlertRule.objects.create(name="ghost", metric="no_such_metric_at_all", condition="lt", threshold=1)
    alerts.evaluate_rules()
    rule.refresh_from_db()
    assert rule.state == "ok" and rule.last_value is None and not Alert.objects.exists()

    firing = AlertRule.objects.create(name="always", metric="chameleon_process_threads", condition="gt", threshold=0)
    monitor.collect_process()
    alerts.evaluate_rules()
    assert Alert.objects.get(rule=firing).state == "firing"
    alerts.update_rule(firing, {"enabled": False})
    alerts.evaluate_rules()
    assert Alert.objects.get(rule=firing).state == "resolved"


def test_monitor_collectors_export_gauges(db):
    outcome = monitor.collect()
    assert outcome == {"process": "ok", "database": "ok", "task_queue": "ok", "services": "ok"}
    monitor.collect_process()
    assert alerts.read_metric("chameleon_process_memory_rss_bytes") > 10_000_000
    assert alerts.read_metric("chameleon_process_threads") >= 1
    assert alerts.read_metric("chameleon_process_cpu_percent") >= 0
    assert alerts.read_metric("chameleon_database_up") == 1
    assert alerts.read_metric("chameleon_task_queue_length") is not None


def test_task_queue_length_counts_waiting_messages(db, settings):
    from chameleon_site.celery import app
    from core.tasks import ping

    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    app.control.purge()
    monitor.collect_task_queue()
    before = alerts.read_metric("chameleon_task_queue_length", {"queue": queue})
    ping.delay("queued for the monitor")
    monitor.collect_task_queue()
    assert alerts.read_metric("chameleon_task_queue_length", {"queue": queue}) == before + 1
    app.control.purge()
