"""Fixtures for the plugin runtime tests: small plugin classes and managers."""

from __future__ import annotations

from typing import Any

import pytest

from plugins_app.contract import Plugin
from plugins_app.host import PluginManager


def make_plugin(name: str, version: str = "1.0.0", **attrs: Any) -> type[Plugin]:
    cls = type(f"P_{name}", (Plugin,), {"name": name, "version": version, **attrs})
    cls.validate()
    return cls


@pytest.fixture
def bare_manager(tmp_path) -> PluginManager:
    """A manager with no database and no events: pure lifecycle and call behaviour."""
    return PluginManager(node="test-node", persist=False, publish_events=False, data_root=tmp_path)


@pytest.fixture
def db_manager(db, tmp_path):
    """A manager persisting to the test database, as a node does."""
    from plugins_app import node

    manager = PluginManager(node="test-node", data_root=tmp_path)
    node.set_manager(manager)
    yield manager
    manager.stop_all()
    node.set_manager(None)
