"""Where other apps reach the plugin manager of this process: `manager()` (see plugins_app.node)."""

from plugins_app.host import PluginManager
from plugins_app.node import get_manager


def manager() -> PluginManager:
    """This process's PluginManager; `manager().call(plugin, method, *args, timeout=None, **kwargs)`."""
    return get_manager()
