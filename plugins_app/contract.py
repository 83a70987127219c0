"""The plugin contract: the `Plugin` base class, health status and the builder API (SPEC §3)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

if TYPE_CHECKING:
    from plugins_app.context import PluginContext

NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
PERMISSION_RE = re.compile(r"^(events:publish|events:subscribe(:[\w.*#-]+)?|services:register|services:get"
                           r"|tasks:register|config:read|data:write|http:endpoints)$")


class PluginKind(StrEnum):
    PLAIN = "plain"
    SERVICE = "service"
    MIDDLEWARE = "middleware"


class PluginDefinitionError(Exception):
    """A plugin class does not satisfy the contract (bad name, version, schema, ...)."""


@dataclass(frozen=True)
class HealthStatus:
    """What `health()` returns: healthy or not, with a short message and details."""

    healthy: bool = True
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"healthy": self.healthy, "message": self.message, "details": self.details}


class Plugin:
    """Base class of every plugin.

    Declare the plugin with class attributes; the host validates them (`validate()`) when it
    loads the class. Hooks, each called by the host only, in this order:

    - `initialize(ctx, config)` once per instance, config already validated against
      `config_schema`; may be called again after `stop()` (a restart).
    - `start(ctx)` after initialize; the plugin is `running` when it returns.
    - `stop(ctx)` when stopping; release what `start` acquired.
    - `health()` on the health-check interval while running; return `HealthStatus`.
    - `on_config_change(new_config)` (optional) applies a new config without a restart.

    A hook that raises puts the plugin in `failed`. Public methods (no leading underscore,
    not a hook) are callable through `PluginManager.call`.
    """

    name: ClassVar[str] = ""
    version: ClassVar[str] = "0.0.0"
    description: ClassVar[str] = ""
    #: Names with optional PEP 440 specifiers: "logger>=1.0,<2".
    dependencies: ClassVar[tuple[str, ...]] = ()
    #: Names (optionally with specifiers) this plugin cannot run alongside.
    conflicts: ClassVar[tuple[str, ...]] = ()
    config_schema: ClassVar[dict[str, Any]] = {"type": "object"}
    #: e.g. "events:publish", "events:subscribe:user.*", "services:register", "tasks:register".
    permissions: ClassVar[tuple[str, ...]] = ()
    kind: ClassVar[PluginKind] = PluginKind.PLAIN
    #: Middleware plugins run in ascending priority; lower numbers first.
    priority: ClassVar[int] = 100
    #: Default timeout (seconds) of `manager.call`; None calls in the caller's thread.
    call_timeout: ClassVar[float | None] = None
    #: Seconds an event handler of this plugin may run before the bus counts it as timed out
    #: (None: the bus default, EVENT_HANDLER_TIMEOUT).
    event_handler_timeout: ClassVar[float | None] = None
    #: Restart automatically (with backoff) when failed or unhealthy; None: PLUGIN_AUTO_RESTART.
    auto_restart: ClassVar[bool | None] = None
    #: Concurrent `manager.call`s allowed; further calls are refused with PluginBusy.
    max_concurrency: ClassVar[int] = 64
    #: Circuit breaker: consecutive failures that open it, seconds before a probe.
    max_failures: ClassVar[int] = 5
    reset_interval: ClassVar[float] = 30.0
    half_open_probes: ClassVar[int] = 1

    HOOKS: ClassVar[frozenset[str]] = frozenset(
        {"initialize", "start", "stop", "health", "on_config_change", "validate", "endpoints",
         "process_request", "process_response"}
    )

    def initialize(self, ctx: PluginContext, config: dict[str, Any]) -> None:
        self.ctx = ctx
        self.config = config

    def start(self, ctx: PluginContext) -> None:
        """Begin work (subscribe, register services...)."""

    def stop(self, ctx: PluginContext) -> None:
        """Stop work and release resources."""

    def health(self) -> HealthStatus:
        return HealthStatus(True)

    def endpoints(self) -> dict[str, Callable[..., Any]]:
        """Service plugins: {"sub/path/": view(request)} served under /p/<name>/."""
        return {}

    @classmethod
    def requirements(cls) -> list[Requirement]:
        return [Requirement(spec) for spec in cls.dependencies]

    @classmethod
    def conflict_requirements(cls) -> list[Requirement]:
        return [Requirement(spec) for spec in cls.conflicts]

    @classmethod
    def parsed_version(cls) -> Version:
        return Version(cls.version)

    @classmethod
    def validate(cls) -> None:
        """Raise PluginDefinitionError naming the first thing wrong with this class."""
        label = f"Plugin {cls.__module__}.{cls.__qualname__}"
        if not isinstance(cls.name, str) or not NAME_RE.match(cls.name):
            raise PluginDefinitionError(f"{label}: name {cls.name!r} must match {NAME_RE.pattern}")
        label = f"Plugin {cls.name!r}"
        try:
            Version(str(cls.version))
        except InvalidVersion:
            raise PluginDefinitionError(f"{label}: version {cls.version!r} is not a PEP 440 version") from None
        for attr in ("dependencies", "conflicts"):
            for spec in getattr(cls, attr):
                try:
                    requirement = Requirement(spec)
                except InvalidRequirement as exc:
                    raise PluginDefinitionError(f"{label}: {attr} entry {spec!r} is invalid: {exc}") from None
                if requirement.name == cls.name:
                    raise PluginDefinitionError(f"{label}: cannot list itself in {attr}")
        try:
            Draft202012Validator.check_schema(cls.config_schema)
        except SchemaError as exc:
            raise PluginDefinitionError(f"{label}: config_schema is not valid JSON Schema: {exc.message}") from None
        for permission in cls.permissions:
            if not PERMISSION_RE.match(permission):
                raise PluginDefinitionError(f"{label}: unknown permission {permission!r}")
        if PluginKind(cls.kind) is PluginKind.SERVICE and "http:endpoints" not in cls.permissions:
            raise PluginDefinitionError(f"{label}: a service plugin needs the 'http:endpoints' permission")
        if cls.max_failures < 1 or cls.max_concurrency < 1 or cls.half_open_probes < 1:
            raise PluginDefinitionError(f"{label}: max_failures, max_concurrency and half_open_probes must be >= 1")

    @classmethod
    def public_methods(cls) -> list[str]:
        return sorted(
            attr for attr in dir(cls)
            if not attr.startswith("_") and attr not in cls.HOOKS and callable(getattr(cls, attr))
            and not isinstance(getattr(cls, attr), type) and attr not in _BASE_CLASSMETHODS
        )


_BASE_CLASSMETHODS = {"requirements", "conflict_requirements", "parsed_version", "public_methods", "validate"}


class PluginBuilder:
    """Builds a small plugin class in a few lines (the seed's `NewServicePluginBuilder`).

        plugin = (PluginBuilder("greeter", "1.0").describe("Says hi")
                  .depends_on("logger>=1.0").permissions("events:publish")
                  .on_start(lambda self, ctx: ...).method("greet", lambda self, who: f"hi {who}")
                  .build())
    """

    def __init__(self, name: str, version: str = "0.1.0", *, kind: PluginKind | str = PluginKind.PLAIN) -> None:
        self._attrs: dict[str, Any] = {"name": name, "version": version, "kind": PluginKind(kind)}

    def describe(self, description: str) -> PluginBuilder:
        self._attrs["description"] = description
        return self

    def depends_on(self, *specs: str) -> PluginBuilder:
        self._attrs["dependencies"] = tuple(self._attrs.get("dependencies", ())) + specs
        return self

    def conflicts_with(self, *specs: str) -> PluginBuilder:
        self._attrs["conflicts"] = tuple(self._attrs.get("conflicts", ())) + specs
        return self

    def permissions(self, *permissions: str) -> PluginBuilder:
        self._attrs["permissions"] = tuple(self._attrs.get("permissions", ())) + permissions
        return self

    def config(self, schema: dict[str, Any]) -> PluginBuilder:
        self._attrs["config_schema"] = schema
        return self

    def priority(self, priority: int) -> PluginBuilder:
        self._attrs["priority"] = priority
        return self

    def _hook(self, hook: str, func: Callable[..., Any], chain_base: bool = False) -> PluginBuilder:
        if chain_base:
            def wrapper(self_: Plugin, ctx: Any, config: dict[str, Any]) -> Any:
                Plugin.initialize(self_, ctx, config)
                return func(self_, ctx, config)
            self._attrs[hook] = wrapper
        else:
            self._attrs[hook] = func
        return self

    def on_initialize(self, func: Callable[..., Any]) -> PluginBuilder:
        return self._hook("initialize", func, chain_base=True)

    def on_start(self, func: Callable[..., Any]) -> PluginBuilder:
        return self._hook("start", func)

    def on_stop(self, func: Callable[..., Any]) -> PluginBuilder:
        return self._hook("stop", func)

    def on_health(self, func: Callable[..., Any]) -> PluginBuilder:
        return self._hook("health", func)

    def on_config_change(self, func: Callable[..., Any]) -> PluginBuilder:
        return self._hook("on_config_change", func)

    def method(self, name: str, func: Callable[..., Any]) -> PluginBuilder:
        self._attrs[name] = func
        return self

    def endpoint(self, path: str, view: Callable[..., Any]) -> PluginBuilder:
        routes = dict(self._attrs.get("_routes", {}))
        routes[path] = view
        self._attrs["_routes"] = routes
        self._attrs["endpoints"] = lambda self_: {p: v.__get__(self_) for p, v in self_._routes.items()}
        if "http:endpoints" not in self._attrs.get("permissions", ()):
            self.permissions("http:endpoints")
        self._attrs["kind"] = PluginKind.SERVICE
        return self

    def build(self) -> type[Plugin]:
        cls = type(f"{self._attrs['name'].title().replace('-', '').replace('_', '')}Plugin", (Plugin,),
                   dict(self._attrs))
        cls.__module__ = _caller_module()
        cls.validate()
        return cls


def _caller_module() -> str:
    import sys

    frame = sys._getframe(2)
    return frame.f_globals.get("__name__", __name__)


def plugin(name: str, version: str = "0.1.0", **attrs: Any) -> Callable[[type], type[Plugin]]:
    """Class decorator: `@plugin("hello", "1.0", permissions=("events:publish",))`."""

    def decorate(cls: type) -> type[Plugin]:
        bases = (cls,) if issubclass(cls, Plugin) else (cls, Plugin)
        built = type(cls.__name__, bases, {"name": name, "version": version, **attrs,
                                           "__module__": cls.__module__, "__qualname__": cls.__qualname__})
        built.validate()
        return built

    return decorate
