"""Config center values mirrored to a real etcd, and an external change there picked up as a new version."""

from __future__ import annotations

import json
import uuid

import pytest

from plugins_app import config_center
from plugins_app.discovery.config_mirror import EXTERNAL_COMMENT, ConfigMirror
from plugins_app.models import ConfigDocument
from tests.fixtures.services import wait_for


@pytest.fixture
def mirror(etcd_endpoints, transactional_db):
    prefix = f"/chameleon-test/{uuid.uuid4().hex}"
    mirror = ConfigMirror(etcd_endpoints, prefix=prefix)
    mirror.start()
    yield mirror
    mirror.client.delete_prefix(prefix + "/")
    mirror.stop()


def in_etcd(mirror: ConfigMirror, key: str):
    value, _ = mirror.client.get(mirror.key_for(key))
    try:
        return json.loads(value) if value is not None else None
    except ValueError:
        return "not json"


def test_current_versions_are_mirrored_to_etcd(mirror):
    config_center.update_config("demo.settings", {"greeting": "hello"}, comment="first")
    wait_for(lambda: in_etcd(mirror, "demo.settings") == {"version": 1, "data": {"greeting": "hello"}}, 5,
             "version 1 in etcd")
    config_center.update_config("demo.settings", {"greeting": "hi"}, comment="second")
    config_center.rollback_config("demo.settings", 1)
    wait_for(lambda: in_etcd(mirror, "demo.settings") == {"version": 3, "data": {"greeting": "hello"}}, 5,
             "the rollback (version 3) in etcd")


def test_external_change_in_etcd_becomes_a_new_version(mirror):
    config_center.update_config("demo.external", {"level": 1})
    wait_for(lambda: in_etcd(mirror, "demo.external") is not None, 5, "mirrored")
    # An operator edits the value with etcdctl: a plain JSON object.
    mirror.client.put(mirror.key_for("demo.external"), json.dumps({"level": 2, "extra": True}))
    wait_for(lambda: config_center.current_config("demo.external") == (2, {"level": 2, "extra": True}), 5,
             "the external change as version 2")
    version = ConfigDocument.objects.get(key="demo.external").versions.get(number=2)
    assert version.comment == EXTERNAL_COMMENT
    wait_for(lambda: in_etcd(mirror, "demo.external") == {"version": 2, "data": {"level": 2, "extra": True}}, 5,
             "etcd holds the new version's envelope")
    assert ConfigDocument.objects.get(key="demo.external").versions.count() == 2  # no echo loop


def test_invalid_external_value_is_refused_and_restored(mirror):
    config_center.update_config("demo.broken", {"ok": True})
    wait_for(lambda: in_etcd(mirror, "demo.broken") is not None, 5, "mirrored")
    mirror.client.put(mirror.key_for("demo.broken"), "not json {")
    wait_for(lambda: in_etcd(mirror, "demo.broken") == {"version": 1, "data": {"ok": True}}, 5,
             "etcd set back to the current version")
    assert config_center.current_config("demo.broken") == (1, {"ok": True})


def test_a_stale_mirror_write_is_not_taken_for_an_external_change(mirror):
    config_center.update_config("demo.order", {"n": 1})
    config_center.update_config("demo.order", {"n": 2})
    wait_for(lambda: in_etcd(mirror, "demo.order") == {"version": 2, "data": {"n": 2}}, 5, "version 2 mirrored")
    # An older mirror write landing late (events are handled concurrently).
    mirror.client.put(mirror.key_for("demo.order"), json.dumps({"version": 1, "data": {"n": 1}}))
    wait_for(lambda: in_etcd(mirror, "demo.order") == {"version": 2, "data": {"n": 2}}, 5, "current version put back")
    assert config_center.current_config("demo.order") == (2, {"n": 2})
    assert ConfigDocument.objects.get(key="demo.order").versions.count() == 2
