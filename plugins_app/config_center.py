"""The config center: versioned config documents with history, diff, rollback, drafts and publishing."""

from __future__ import annotations

import difflib
import json
import logging
from pathlib import Path
from typing import Any

import yaml
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone

from core.conf import chameleon_settings
from core.models import AuditEntry
from core.services import record_audit
from plugins_app.config_schema import apply_defaults, validate_config
from plugins_app.errors import ConfigInvalid, PluginError
from plugins_app.models import ConfigDocument, ConfigVersion, Plugin

logger = logging.getLogger("chameleon.plugins.config")

User = AbstractBaseUser | AnonymousUser | None


class ConfigNotFound(PluginError):
    code = "config_not_found"

    def __init__(self, key: str, version: int | None = None) -> None:
        what = f"version {version} of config {key!r}" if version else f"config {key!r}"
        super().__init__(key, f"No {what}")


def _author(user: User) -> tuple[Any, str]:
    if user is not None and user.is_authenticated:
        return user, user.get_username()
    return None, "system"


def _publish_event(topic: str, data: dict[str, Any], user: User) -> None:
    from plugins_app import events

    source = f"api:{user.get_username()}" if user is not None and user.is_authenticated else "system"
    transaction.on_commit(lambda: events.publish(topic, data, source=source))


def seed_plugin_config(name: str) -> ConfigDocument:
    """Create the first version of a plugin's config from config/plugins/<name>.yaml (or {})."""
    document, created = ConfigDocument.objects.get_or_create(key=name)
    if not created and document.versions.exists():
        return document
    path = Path(chameleon_settings.PLUGIN_CONFIG_DIR) / f"{name}.yaml"
    data: dict[str, Any] = {}
    comment = "initial (empty)"
    if path.is_file():
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
            if isinstance(loaded, dict):
                data, comment = loaded, f"seeded from {path.name}"
            else:
                logger.error("Config seed %s is not a mapping; ignored", path)
        except yaml.YAMLError as exc:
            logger.error("Config seed %s is not valid YAML: %s", path, exc)
    try:
        with transaction.atomic():
            ConfigVersion.objects.create(document=document, number=1, data=data, author_name="seed",
                                         comment=comment, published_at=timezone.now())
            ConfigDocument.objects.filter(pk=document.pk).update(current_version=1)
            Plugin.objects.filter(name=name, config_version=0).update(config_version=1)
    except IntegrityError:
        pass  # another node seeded it at the same moment
    document.refresh_from_db()
    return document


def _document(key: str) -> ConfigDocument:
    try:
        return ConfigDocument.objects.get(key=key)
    except ConfigDocument.DoesNotExist:
        raise ConfigNotFound(key) from None


def _version(document: ConfigDocument, number: int) -> ConfigVersion:
    try:
        return document.versions.get(number=number)
    except ConfigVersion.DoesNotExist:
        raise ConfigNotFound(document.key, number) from None


def current_config(key: str) -> tuple[int, dict[str, Any]] | None:
    """(version, data) of the published current version, or None when there is none."""
    document = ConfigDocument.objects.filter(key=key).first()
    if document is None or not document.current_version:
        return None
    data = document.versions.filter(number=document.current_version).values_list("data", flat=True).first()
    return document.current_version, data or {}


def get_config(key: str) -> dict[str, Any]:
    document = _document(key)
    current = document.versions.filter(number=document.current_version).first()
    return {"key": key, "version": document.current_version, "data": current.data if current else {},
            "drafts": list(document.versions.filter(status=ConfigVersion.Status.DRAFT).values_list("number", flat=True))}


def config_versions(key: str) -> list[ConfigVersion]:
    return list(_document(key).versions.all())


def validate_for(key: str, data: Any) -> None:
    """Check `data` against the schema of the plugin named `key` (if it is one)."""
    if not isinstance(data, dict):
        raise ConfigInvalid(key, {"data": ["Config must be a JSON object."]})
    schema = Plugin.objects.filter(name=key).values_list("config_schema", flat=True).first()
    if schema:
        fields = validate_config(schema, apply_defaults(schema, data))
        if fields:
            raise ConfigInvalid(key, fields)


def _make_current(document: ConfigDocument, number: int) -> None:
    ConfigDocument.objects.filter(pk=document.pk).update(current_version=number, updated_at=timezone.now())
    Plugin.objects.filter(name=document.key).update(config_version=number)
    document.current_version = number


def update_config(key: str, data: dict[str, Any], *, user: User = None, comment: str = "", draft: bool = False,
                  source: str = AuditEntry.Source.SYSTEM, request: HttpRequest | None = None) -> ConfigVersion:
    """Save a new version of `key` (validated); published at once unless `draft`."""
    author, author_name = _author(user)
    try:
        validate_for(key, data)
    except ConfigInvalid as exc:
        record_audit(action="config.update", target_type="config", target=key, outcome=AuditEntry.Outcome.FAILURE,
                     user=user, source=source, request=request, detail={"fields": exc.fields})
        raise
    with transaction.atomic():
        document, _ = ConfigDocument.objects.select_for_update().get_or_create(key=key)
        number = (document.versions.order_by("-number").values_list("number", flat=True).first() or 0) + 1
        version = ConfigVersion.objects.create(
            document=document, number=number, data=data, author=author, author_name=author_name, comment=comment,
            status=ConfigVersion.Status.DRAFT if draft else ConfigVersion.Status.PUBLISHED,
            published_at=None if draft else timezone.now(),
        )
        if not draft:
            _make_current(document, number)
            _publish_event("config.updated", {"key": key, "version": number, "author": author_name,
                                              "comment": comment}, user)
        record_audit(action="config.draft" if draft else "config.update", target_type="config", target=key,
                     user=user, source=source, request=request, detail={"version": number, "comment": comment})
    return version


def publish_config(key: str, number: int, *, user: User = None, source: str = AuditEntry.Source.SYSTEM,
                   request: HttpRequest | None = None) -> ConfigVersion:
    """Publish draft `number`: it becomes the current version."""
    with transaction.atomic():
        document = _document(key)
        version = _version(document, number)
        validate_for(key, version.data)
        version.status = ConfigVersion.Status.PUBLISHED
        version.published_at = timezone.now()
        version.save(update_fields=["status", "published_at"])
        _make_current(document, number)
        _publish_event("config.updated", {"key": key, "version": number, "published_draft": True}, user)
        record_audit(action="config.publish", target_type="config", target=key, user=user, source=source,
                     request=request, detail={"version": number})
    return version


def rollback_config(key: str, to_number: int, *, user: User = None, comment: str = "",
                    source: str = AuditEntry.Source.SYSTEM, request: HttpRequest | None = None) -> ConfigVersion:
    """Make the data of version `to_number` current again as a NEW version (nothing is deleted)."""
    author, author_name = _author(user)
    with transaction.atomic():
        document = ConfigDocument.objects.select_for_update().filter(key=key).first()
        if document is None:
            raise ConfigNotFound(key)
        target = _version(document, to_number)
        validate_for(key, target.data)
        number = document.versions.order_by("-number").values_list("number", flat=True).first() + 1
        version = ConfigVersion.objects.create(
            document=document, number=number, data=target.data, author=author, author_name=author_name,
            comment=comment or f"rollback to version {to_number}", rolled_back_from=to_number,
            published_at=timezone.now(),
        )
        previous = document.current_version
        _make_current(document, number)
        _publish_event("config.rolled_back", {"key": key, "version": number, "to_version": to_number,
                                              "previous_version": previous, "author": author_name}, user)
        record_audit(action="config.rollback", target_type="config", target=key, user=user, source=source,
                     request=request, detail={"version": number, "to_version": to_number})
    return version


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; an empty object inside stays a value, the empty root is {}."""
    if isinstance(value, dict) and (value or not prefix):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: value}


def diff_config(key: str, a: int, b: int) -> dict[str, Any]:
    """What changed from version `a` to `b`: per-path changes and a unified text diff."""
    document = _document(key)
    old, new = _version(document, a).data, _version(document, b).data
    flat_old, flat_new = _flatten(old), _flatten(new)
    changes = []
    for path in sorted(set(flat_old) | set(flat_new)):
        if path not in flat_new:
            changes.append({"path": path, "op": "removed", "old": flat_old[path]})
        elif path not in flat_old:
            changes.append({"path": path, "op": "added", "new": flat_new[path]})
        elif flat_old[path] != flat_new[path]:
            changes.append({"path": path, "op": "changed", "old": flat_old[path], "new": flat_new[path]})
    unified = "\n".join(difflib.unified_diff(
        json.dumps(old, indent=2, sort_keys=True).splitlines(),
        json.dumps(new, indent=2, sort_keys=True).splitlines(),
        fromfile=f"{key} v{a}", tofile=f"{key} v{b}", lineterm="",
    ))
    return {"key": key, "from_version": a, "to_version": b, "changes": changes, "unified": unified}
