"""The config center: versions, history, diff, rollback, drafts, validation, live apply, YAML seeds."""

from __future__ import annotations

import pytest

from plugins_app import config_center
from plugins_app.builtin.logger import LoggerPlugin
from plugins_app.errors import ConfigInvalid
from plugins_app.models import ConfigVersion, Plugin, PluginInstance
from tests.dummy_plugin import CALLS, DummyPlugin
from tests.plugins.conftest import make_plugin

SCHEMA = {"type": "object", "properties": {"size": {"type": "integer", "minimum": 1},
                                           "mode": {"type": "string", "enum": ["a", "b"]}},
          "required": ["size"], "additionalProperties": False}


@pytest.fixture
def configured(db) -> Plugin:
    return Plugin.objects.create(name="cfg", config_schema=SCHEMA)


def test_every_change_is_a_version_with_author_comment_and_time(configured, operator):
    config_center.update_config("cfg", {"size": 1}, user=operator, comment="first")
    config_center.update_config("cfg", {"size": 2, "mode": "a"}, user=operator, comment="bigger")
    versions = config_center.config_versions("cfg")
    assert [(v.number, v.author_name, v.comment) for v in versions] == [
        (2, "operator-user", "bigger"), (1, "operator-user", "first")]
    assert versions[0].created_at is not None
    assert config_center.get_config("cfg")["data"] == {"size": 2, "mode": "a"}
    assert Plugin.objects.get(name="cfg").config_version == 2


def test_invalid_config_is_refused_with_field_level_errors(configured):
    with pytest.raises(ConfigInvalid) as invalid:
        config_center.update_config("cfg", {"size": 0, "mode": "z", "extra": 1})
    assert set(invalid.value.fields) == {"size", "mode", "extra"}
    assert "minimum" in invalid.value.fields["size"][0] or "less than" in invalid.value.fields["size"][0]
    with pytest.raises(ConfigInvalid) as missing:
        config_center.update_config("cfg", {})
    assert "size" in missing.value.fields
    assert not ConfigVersion.objects.filter(document__key="cfg").exists()


def test_diff_between_two_versions(configured):
    config_center.update_config("cfg", {"size": 1, "mode": "a"})
    config_center.update_config("cfg", {"size": 5})
    diff = config_center.diff_config("cfg", 1, 2)
    assert diff["changes"] == [{"path": "mode", "op": "removed", "old": "a"},
                               {"path": "size", "op": "changed", "old": 1, "new": 5}]
    assert '-  "size": 1' in diff["unified"] and '+  "size": 5' in diff["unified"]


def test_rollback_creates_a_new_version_and_deletes_nothing(configured, operator):
    config_center.update_config("cfg", {"size": 1})
    config_center.update_config("cfg", {"size": 2})
    rolled = config_center.rollback_config("cfg", 1, user=operator)
    assert rolled.number == 3 and rolled.rolled_back_from == 1 and rolled.data == {"size": 1}
    assert [v.number for v in config_center.config_versions("cfg")] == [3, 2, 1]
    assert config_center.current_config("cfg") == (3, {"size": 1})


def test_a_draft_is_not_current_until_published(configured):
    config_center.update_config("cfg", {"size": 1})
    draft = config_center.update_config("cfg", {"size": 9}, draft=True, comment="later")
    assert config_center.current_config("cfg") == (1, {"size": 1})
    assert config_center.get_config("cfg")["drafts"] == [draft.number]
    config_center.publish_config("cfg", draft.number)
    assert config_center.current_config("cfg") == (2, {"size": 9})


def test_yaml_file_seeds_the_first_version(db, settings, tmp_path):
    (tmp_path / "seeded.yaml").write_text("greeting: Bonjour\nlimit: 2\n")
    settings.CHAMELEON = {**settings.CHAMELEON, "PLUGIN_CONFIG_DIR": str(tmp_path)}
    Plugin.objects.create(name="seeded")
    config_center.seed_plugin_config("seeded")
    assert config_center.current_config("seeded") == (1, {"greeting": "Bonjour", "limit": 2})
    assert config_center.config_versions("seeded")[0].author_name == "seed"


def test_a_new_config_is_applied_live_when_the_plugin_can(db_manager, django_capture_on_commit_callbacks):
    db_manager.register(LoggerPlugin)
    db_manager.register(DummyPlugin)
    db_manager.start_all()
    assert db_manager.entries["dummy"].state == "running"
    CALLS.clear()
    config_center.update_config("dummy", {"greeting": "salut"})
    assert db_manager.apply_config("dummy") == "applied"
    assert CALLS == [("on_config_change", "salut")]
    assert db_manager.call("dummy", "greet", "ann") == "salut, ann"
    assert PluginInstance.objects.get(plugin__name="dummy").config_version == 2


def test_a_plugin_without_on_config_change_is_restarted(db_manager):
    db_manager.register(make_plugin("plain-cfg", config_schema={"type": "object"}))
    db_manager.start_all()
    config_center.update_config("plain-cfg", {"x": 1})
    assert db_manager.apply_config("plain-cfg") == "restarted"
    assert db_manager.entries["plain-cfg"].restart_count == 1
    assert db_manager.entries["plain-cfg"].config == {"x": 1}


@pytest.mark.django_db(transaction=True)
def test_updates_and_rollbacks_are_evented(configured):
    from plugins_app import events
    from tests.fixtures.services import wait_for

    seen: list[tuple[str, dict]] = []
    subscription = events.subscribe("config.*", lambda event: seen.append((event.topic, event.data)))
    try:
        config_center.update_config("cfg", {"size": 1})
        config_center.update_config("cfg", {"size": 2})
        config_center.rollback_config("cfg", 1)
        wait_for(lambda: [t for t, _ in seen] == ["config.updated", "config.updated", "config.rolled_back"], 10,
                 f"config events (saw {seen})")
    finally:
        events.unsubscribe(subscription)
    assert seen[-1][1]["to_version"] == 1 and seen[-1][1]["version"] == 3


def test_diff_from_an_empty_config_lists_only_real_changes(db):
    config_center.update_config("free", {})
    config_center.update_config("free", {"a": {"b": 1}, "c": {}})
    assert config_center.diff_config("free", 1, 2)["changes"] == [
        {"path": "a.b", "op": "added", "new": 1}, {"path": "c", "op": "added", "new": {}}]
