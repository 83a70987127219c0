"""Alert rules: validation, evaluation on an interval, firing and resolving, notification channels.

A rule compares a metric (a sample name of Chameleon's metrics on /metrics, summed over
the samples whose labels match `labels`, across all live nodes) with `threshold`. When
the condition has held for `duration` seconds the rule fires: an `Alert` row opens,
`alert.fired` is published and each channel is notified (`log`, `webhook` -- a JSON POST
to `url` -- or `email` to `to`). When the condition stops holding, the alert resolves
(`alert.resolved`, channels again). A metric with no samples counts as not breaching.
"""

from __future__ import annotations

import json
import logging
import operator
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone

from core.metrics import CLUSTER_REGISTRY, gauge
from core.models import AuditEntry
from core.services import record_audit
from plugins_app import events
from plugins_app.discovery.models import Alert, AlertRule, Comparison

logger = logging.getLogger("chameleon.alerts")

alerts_firing = gauge("chameleon_alerts_firing", "Alerts currently firing, by severity.", ["severity"])

COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    Comparison.GT: operator.gt,
    Comparison.GTE: operator.ge,
    Comparison.LT: operator.lt,
    Comparison.LTE: operator.le,
    Comparison.EQ: operator.eq,
    Comparison.NE: operator.ne,
}
CHANNEL_TYPES = ("log", "webhook", "email")


def validate_channels(channels: Any) -> list[dict[str, Any]]:
    """The channels as stored; raises ValueError naming the bad entry."""
    if not isinstance(channels, list):
        raise ValueError("must be a list of channels")
    cleaned = []
    for index, channel in enumerate(channels):
        if isinstance(channel, str):
            channel = {"type": channel}
        if not isinstance(channel, dict) or channel.get("type") not in CHANNEL_TYPES:
            raise ValueError(f"channel {index}: type must be one of {', '.join(CHANNEL_TYPES)}")
        if channel["type"] == "webhook":
            url = channel.get("url")
            if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
                raise ValueError(f"channel {index}: a webhook needs an http:// or https:// url")
        if channel["type"] == "email":
            to = channel.get("to")
            to = [to] if isinstance(to, str) else to
            if not to or not all(isinstance(address, str) and "@" in address for address in to):
                raise ValueError(f"channel {index}: an email channel needs `to` addresses")
            channel = {**channel, "to": to}
        cleaned.append(channel)
    return cleaned


def read_metric(name: str, labels: dict[str, Any] | None = None) -> float | None:
    """Sum of the samples named `name` whose labels match; None when there is none."""
    wanted = {key: str(value) for key, value in (labels or {}).items()}
    total, found = 0.0, False
    for family in CLUSTER_REGISTRY.collect():
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(key) == value for key, value in wanted.items()):
                total += sample.value
                found = True
    return total if found else None


# --- CRUD (audited) -----------------------------------------------------------------------
def _audit(action: str, rule: AlertRule | str, *, user: AbstractBaseUser | AnonymousUser | None,
           request: HttpRequest | None, source: str, detail: dict[str, Any] | None = None) -> None:
    record_audit(action=action, target_type="alert_rule", target=str(rule), user=user, request=request,
                 source=source, detail=detail)


def create_rule(data: dict[str, Any], *, user=None, request: HttpRequest | None = None,
                source: str = AuditEntry.Source.API) -> AlertRule:
    rule = AlertRule.objects.create(**data)
    _audit("alert_rule.create", rule, user=user, request=request, source=source, detail={"id": rule.pk})
    return rule


def update_rule(rule: AlertRule, data: dict[str, Any], *, user=None, request: HttpRequest | None = None,
                source: str = AuditEntry.Source.API) -> AlertRule:
    for key, value in data.items():
        setattr(rule, key, value)
    if not rule.enabled:
        rule.pending_since = None
    rule.save()
    _audit("alert_rule.update", rule, user=user, request=request, source=source, detail={"fields": sorted(data)})
    return rule


def delete_rule(rule: AlertRule, *, user=None, request: HttpRequest | None = None,
                source: str = AuditEntry.Source.API) -> None:
    name = rule.name
    rule.delete()
    _audit("alert_rule.delete", name, user=user, request=request, source=source)


# --- evaluation ---------------------------------------------------------------------------
def evaluate_rules() -> list[Alert]:
    """Evaluate every enabled rule once; returns the alerts that fired or resolved now."""
    changed = []
    for rule in AlertRule.objects.all():
        try:
            alert = evaluate_rule(rule)
        except Exception:
            logger.exception("Evaluating alert rule %s failed", rule.name)
            continue
        if alert is not None:
            changed.append(alert)
    _export_firing()
    return changed


def evaluate_rule(rule: AlertRule) -> Alert | None:
    """Move one rule along ok -> pending -> firing -> ok; returns an alert that fired or resolved."""
    now = timezone.now()
    open_alert = rule.alerts.filter(resolved_at__isnull=True).first()
    value = read_metric(rule.metric, rule.labels) if rule.enabled else None
    breached = value is not None and COMPARISONS[rule.condition](value, rule.threshold)
    rule.last_value, rule.last_evaluated_at = value, now
    result = None
    if breached:
        rule.pending_since = rule.pending_since or now
        held = (now - rule.pending_since).total_seconds()
        if open_alert is None and held >= rule.duration:
            result = _fire(rule, value)
        rule.state = AlertRule.State.FIRING if (open_alert or result) else AlertRule.State.PENDING
    else:
        rule.pending_since = None
        rule.state = AlertRule.State.OK
        if open_alert is not None:
            result = _resolve(rule, open_alert, value)
    rule.save(update_fields=["state", "pending_since", "last_value", "last_evaluated_at"])
    return result


def _describe(rule: AlertRule, value: float | None) -> str:
    shown = "no data" if value is None else f"{value:g}"
    return f"{rule.metric} = {shown} ({rule.get_condition_display()} {rule.threshold:g} for {rule.duration:g}s)"


def _fire(rule: AlertRule, value: float) -> Alert | None:
    try:
        with transaction.atomic():
            alert = Alert.objects.create(
                rule=rule, severity=rule.severity, value=value, message=f"{rule.name}: {_describe(rule, value)}"
            )
    except IntegrityError:
        return None  # another evaluator opened it first
    logger.warning("Alert %s fired: %s", rule.name, alert.message)
    _announce("alert.fired", rule, alert)
    return alert


def _resolve(rule: AlertRule, alert: Alert, value: float | None) -> Alert | None:
    updated = Alert.objects.filter(pk=alert.pk, resolved_at__isnull=True).update(
        state=Alert.State.RESOLVED, resolved_at=timezone.now(), resolved_value=value
    )
    if not updated:
        return None
    alert.refresh_from_db()
    logger.info("Alert %s resolved: %s", rule.name, _describe(rule, value))
    _announce("alert.resolved", rule, alert)
    return alert


def alert_payload(topic: str, rule: AlertRule, alert: Alert) -> dict[str, Any]:
    return {
        "status": "firing" if topic == "alert.fired" else "resolved",
        "alert_id": alert.pk,
        "rule": rule.name,
        "severity": alert.severity,
        "metric": rule.metric,
        "labels": rule.labels,
        "condition": rule.condition,
        "threshold": rule.threshold,
        "value": alert.value if topic == "alert.fired" else alert.resolved_value,
        "message": alert.message,
        "fired_at": alert.fired_at.isoformat(),
        "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
    }


def _announce(topic: str, rule: AlertRule, alert: Alert) -> None:
    payload = alert_payload(topic, rule, alert)
    try:
        events.publish(topic, payload, source="system")
    except Exception:
        logger.exception("Could not publish %s for %s", topic, rule.name)
    results = [notify(channel, payload) for channel in rule.channels or [{"type": "log"}]]
    Alert.objects.filter(pk=alert.pk).update(notifications=(alert.notifications or []) + results)
    alert.notifications = (alert.notifications or []) + results


def notify(channel: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    """Send one notification; returns what happened (a failure is recorded, never raised)."""
    kind = channel.get("type", "log")
    result: dict[str, Any] = {"channel": kind, "status": payload["status"], "at": timezone.now().isoformat()}
    try:
        if kind == "webhook":
            body = json.dumps(payload).encode()
            request = urllib.request.Request(
                channel["url"], data=body, method="POST", headers={"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=float(channel.get("timeout", 5))) as response:
                result.update(ok=200 <= response.status < 300, detail=f"HTTP {response.status}")
        elif kind == "email":
            subject = f"[{payload['severity']}] {payload['rule']} {payload['status']}"
            sent = send_mail(subject, json.dumps(payload, indent=2), None, list(channel["to"]))
            result.update(ok=bool(sent), detail=f"sent to {', '.join(channel['to'])}")
        else:
            level = logging.WARNING if payload["status"] == "firing" else logging.INFO
            logger.log(level, "ALERT %s %s: %s", payload["rule"], payload["status"], payload["message"])
            result.update(ok=True, detail="logged")
    except urllib.error.HTTPError as exc:
        result.update(ok=False, detail=f"HTTP {exc.code}")
    except Exception as exc:
        result.update(ok=False, detail=f"{type(exc).__name__}: {exc}"[:300])
    if not result["ok"]:
        logger.warning("Alert notification via %s failed: %s", kind, result["detail"])
    return result


def _export_firing() -> None:
    counts = {severity: 0 for severity in ("info", "warning", "critical")}
    for severity in Alert.objects.filter(resolved_at__isnull=True).values_list("severity", flat=True):
        counts[severity] = counts.get(severity, 0) + 1
    for severity, count in counts.items():
        alerts_firing.labels(severity=severity).set(count)
