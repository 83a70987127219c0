"""How a plugin host persists what happens on its node (instances, state history) -- or not."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from django.db import close_old_connections
from django.utils import timezone

if TYPE_CHECKING:
    from plugins_app.contract import Plugin
    from plugins_app.registry import PluginSource

logger = logging.getLogger("chameleon.plugins")


class NullStore:
    """Keeps nothing: a manager without a database (benchmarks, scripts)."""

    def ensure_plugin(self, cls: type[Plugin], source: PluginSource | None) -> None:
        pass

    def desired(self) -> dict[str, tuple[bool, int]]:
        return {}

    def config(self, name: str) -> tuple[int, dict[str, Any]] | None:
        return None

    def transition(self, node: str, name: str, from_state: str, to_state: str, **fields: Any) -> None:
        pass

    def update_instance(self, node: str, name: str, **fields: Any) -> None:
        pass

    def heartbeat(self, node: str) -> None:
        pass


class DatabaseStore(NullStore):
    """Writes Plugin, PluginInstance and PluginStateChange rows; a failed write never stops the host."""

    def _safely(self, what: str, func: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except Exception:
            logger.exception("Could not persist %s", what)
            close_old_connections()
            return None

    def ensure_plugin(self, cls: type[Plugin], source: PluginSource | None) -> None:
        from plugins_app.models import Plugin as PluginRow

        def write() -> None:
            PluginRow.objects.update_or_create(name=cls.name, defaults={
                "description": cls.description, "version": cls.version, "kind": str(getattr(cls.kind, "value", cls.kind)),
                "dependencies": list(cls.dependencies), "conflicts": list(cls.conflicts),
                "permissions": list(cls.permissions), "config_schema": cls.config_schema,
                "source": source.as_dict() if source else {},
            })
            from plugins_app.config_center import seed_plugin_config

            seed_plugin_config(cls.name)

        self._safely(f"plugin {cls.name}", write)

    def desired(self) -> dict[str, tuple[bool, int]]:
        from plugins_app.models import Plugin as PluginRow

        rows = self._safely("desired state", lambda: list(
            PluginRow.objects.values_list("name", "enabled", "config_version")))
        return {name: (enabled, version) for name, enabled, version in rows or []}

    def config(self, name: str) -> tuple[int, dict[str, Any]] | None:
        from plugins_app.config_center import current_config

        return self._safely(f"config of {name}", current_config, name)

    def transition(self, node: str, name: str, from_state: str, to_state: str, **fields: Any) -> None:
        from plugins_app.models import Plugin as PluginRow
        from plugins_app.models import PluginInstance, PluginStateChange

        history = {key: fields[key] for key in ("version", "reason", "error", "traceback") if key in fields}

        def write() -> None:
            plugin = PluginRow.objects.only("id").get(name=name)
            PluginStateChange.objects.create(plugin=plugin, node=node, from_state=from_state, to_state=to_state,
                                             **{k: (v or "")[:255] if k == "reason" else (v or "")
                                                for k, v in history.items()})
            instance_fields = {k: v for k, v in fields.items() if k != "reason"}
            PluginInstance.objects.update_or_create(
                plugin=plugin, node=node,
                defaults={"state": to_state, "last_heartbeat": timezone.now(), **instance_fields},
            )

        self._safely(f"transition of {name}", write)

    def update_instance(self, node: str, name: str, **fields: Any) -> None:
        from plugins_app.models import PluginInstance

        self._safely(f"instance {name}", lambda: PluginInstance.objects.filter(
            plugin__name=name, node=node).update(**fields))

    def heartbeat(self, node: str) -> None:
        from plugins_app.models import PluginInstance

        self._safely("instance heartbeat", lambda: PluginInstance.objects.filter(node=node).update(
            last_heartbeat=timezone.now()))


class ReadOnlyStore(DatabaseStore):
    """Reads desired state and configs, writes nothing: a private host that is not a node."""

    def ensure_plugin(self, cls: type[Plugin], source: PluginSource | None) -> None:
        pass

    def transition(self, node: str, name: str, from_state: str, to_state: str, **fields: Any) -> None:
        pass

    def update_instance(self, node: str, name: str, **fields: Any) -> None:
        pass

    def heartbeat(self, node: str) -> None:
        pass
