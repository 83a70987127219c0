"""Typed errors of the plugin runtime, raised by the manager to its callers."""

from __future__ import annotations


class PluginError(Exception):
    """Base of every plugin runtime error; `plugin` names the plugin."""

    code = "plugin_error"

    def __init__(self, plugin: str, message: str) -> None:
        self.plugin = plugin
        super().__init__(message)


class PluginNotFound(PluginError):
    code = "plugin_not_found"

    def __init__(self, plugin: str) -> None:
        super().__init__(plugin, f"No plugin named {plugin!r} is loaded")


class PluginNotRunning(PluginError):
    code = "plugin_not_running"

    def __init__(self, plugin: str, state: str) -> None:
        self.state = state
        super().__init__(plugin, f"Plugin {plugin!r} is {state}, not running")


class MethodNotFound(PluginError):
    code = "method_not_found"

    def __init__(self, plugin: str, method: str) -> None:
        self.method = method
        super().__init__(plugin, f"Plugin {plugin!r} has no public method {method!r}")


class CircuitOpen(PluginError):
    code = "circuit_open"

    def __init__(self, plugin: str, retry_in: float) -> None:
        self.retry_in = retry_in
        super().__init__(plugin, f"Circuit of plugin {plugin!r} is open; retry in {retry_in:.1f}s")


class PluginBusy(PluginError):
    code = "plugin_busy"

    def __init__(self, plugin: str, limit: int) -> None:
        super().__init__(plugin, f"Plugin {plugin!r} already runs {limit} concurrent calls")


class PluginCallTimeout(PluginError):
    code = "call_timeout"

    def __init__(self, plugin: str, method: str, timeout: float) -> None:
        self.method = method
        self.timeout = timeout
        super().__init__(plugin, f"Call {plugin}.{method} did not finish within {timeout:g}s")


class PluginCallError(PluginError):
    """The plugin's method raised; the original exception is `original` (and `__cause__`)."""

    code = "call_failed"

    def __init__(self, plugin: str, method: str, original: BaseException) -> None:
        self.method = method
        self.original = original
        self.error_type = type(original).__name__
        super().__init__(plugin, f"{plugin}.{method} raised {self.error_type}: {original}")


class LifecycleError(PluginError):
    """A lifecycle operation is refused (dependencies, dependents, bad state)."""

    code = "lifecycle_refused"

    def __init__(self, plugin: str, message: str, plugins: list[str] | None = None) -> None:
        self.plugins = plugins or [plugin]
        super().__init__(plugin, message)


class InvalidTransition(LifecycleError):
    code = "invalid_transition"


class ConfigInvalid(PluginError):
    """A config does not validate against the plugin's schema; `fields` maps paths to messages."""

    code = "config_invalid"

    def __init__(self, plugin: str, fields: dict[str, list[str]]) -> None:
        self.fields = fields
        first = next(iter(fields.items()))
        super().__init__(plugin, f"Config of {plugin!r} is invalid: {first[0]}: {first[1][0]}")


class RolloutInvalid(PluginError):
    """A canary asked for wrongly (no selector, no node matches, no new code): the request is at fault."""

    code = "rollout_invalid"


class RolloutConflict(LifecycleError):
    """A rollout operation that the rollout's state does not allow (none active, one already active, failed)."""

    code = "rollout_conflict"
