"""Finding plugin classes (entry points, settings modules, plugin dirs) and ordering them by dependencies."""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import importlib.util
import logging
import sys
import traceback
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

from packaging.requirements import Requirement

from core.conf import chameleon_settings
from plugins_app.contract import Plugin, PluginDefinitionError

logger = logging.getLogger("chameleon.plugins")

ENTRY_POINT_GROUP = "chameleon.plugins"
#: The plugins that ship with Chameleon (SPEC §3). `redis`, `kafka` and `etcd` run idle
#: (and say so in their health) until a URL is configured; `grpc` listens on a free port
#: unless its config names one.
BUILTIN_MODULES = (
    "plugins_app.builtin.logger",
    "plugins_app.builtin.hello",
    "plugins_app.builtin.notification",
    "plugins_app.builtin.redis_plugin",
    "plugins_app.builtin.kafka_plugin",
    "plugins_app.builtin.metrics_plugin",
    "plugins_app.discovery.plugins.etcd",
    "plugins_app.discovery.plugins.grpc",
)
DIR_MODULE_PREFIX = "chameleon_plugin_dirs"


class DependencyError(Exception):
    """Plugins refused because of their dependencies; `plugins` names every plugin involved."""

    def __init__(self, problems: dict[str, str]) -> None:
        self.problems = problems
        self.plugins = sorted(problems)
        super().__init__("; ".join(problems[name] for name in self.plugins))


@dataclass
class PluginSource:
    """Where a plugin class came from, so that it can be imported again (hot reload)."""

    kind: str  # "entry_point" | "module" | "directory"
    ref: str  # entry point "name = value", module name, or file path
    module: str = ""
    path: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "ref": self.ref, "module": self.module, "path": self.path}


@dataclass
class Discovery:
    plugins: dict[str, tuple[type[Plugin], PluginSource]] = field(default_factory=dict)
    #: Sources that failed to import or declared an invalid plugin: ref -> error text.
    errors: dict[str, str] = field(default_factory=dict)


def _exported(module: ModuleType | Any) -> list[type[Plugin]]:
    exported = getattr(module, "plugin", module) if isinstance(module, ModuleType) else module
    items = exported if isinstance(exported, (list, tuple)) else [exported]
    classes = [item for item in items if isinstance(item, type) and issubclass(item, Plugin) and item is not Plugin]
    if not classes:
        raise PluginDefinitionError(f"{getattr(module, '__name__', module)!r} exports no Plugin subclass as `plugin`")
    return classes


def _add(discovery: Discovery, classes: list[type[Plugin]], source: PluginSource) -> None:
    for cls in classes:
        cls.validate()
        if cls.name in discovery.plugins:
            other = discovery.plugins[cls.name][1]
            raise PluginDefinitionError(
                f"Plugin {cls.name!r} from {source.ref} is also provided by {other.ref}; names must be unique"
            )
        discovery.plugins[cls.name] = (cls, source)


class SourceOnlyLoader(importlib.machinery.SourceFileLoader):
    """Compiles the source every time, never a cached `.pyc`.

    The bytecode cache is keyed by the file's mtime (whole seconds) and size, so a new
    version written within the same second with the same length would otherwise run the
    old bytecode -- while its digest says it is the new code.
    """

    def get_code(self, fullname: str) -> Any:
        path = self.get_filename(fullname)
        return self.source_to_code(self.get_data(path), path)


def load_module_file(path: Path, *, fresh: bool = False) -> ModuleType:
    """Import a plugin file or package directory from a plugin dir under a private module name."""
    target = path / "__init__.py" if path.is_dir() else path
    module_name = f"{DIR_MODULE_PREFIX}.{path.stem if path.is_file() else path.name}"
    if DIR_MODULE_PREFIX not in sys.modules:
        sys.modules[DIR_MODULE_PREFIX] = ModuleType(DIR_MODULE_PREFIX)
    spec = importlib.util.spec_from_file_location(
        module_name, target, loader=SourceOnlyLoader(module_name, str(target)),
        submodule_search_locations=[str(path)] if path.is_dir() else None
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {target}")
    module = _execute(module_name, spec)
    return module


def plugin_dir_entries(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(
        entry for entry in directory.iterdir()
        if not entry.name.startswith(("_", "."))
        and ((entry.is_file() and entry.suffix == ".py") or (entry.is_dir() and (entry / "__init__.py").exists()))
    )


def configured_modules() -> list[str]:
    return [*BUILTIN_MODULES, *chameleon_settings.PLUGIN_MODULES]


def discover() -> Discovery:
    """Every plugin class from the three configured sources, and the errors of broken sources.

    The sources are fixed by deployment (entry points of installed packages, settings,
    CHAMELEON_PLUGIN_DIRS); nothing a request supplies is ever imported.
    """
    discovery = Discovery()

    def attempt(ref: str, load: Any) -> None:
        try:
            load()
        except Exception as exc:
            discovery.errors[ref] = f"{type(exc).__name__}: {exc}"
            logger.error("Could not load plugins from %s: %s\n%s", ref, exc, traceback.format_exc())

    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        source = PluginSource("entry_point", f"{entry_point.name} = {entry_point.value}", module=entry_point.module)
        attempt(source.ref, lambda ep=entry_point, src=source: _add(discovery, _exported(ep.load()), src))
    for module_name in configured_modules():
        source = PluginSource("module", module_name, module=module_name)
        attempt(module_name, lambda m=module_name, src=source: _add(
            discovery, _exported(importlib.import_module(m)), src))
    for directory in chameleon_settings.PLUGIN_DIRS:
        for entry in plugin_dir_entries(Path(directory)):
            source = PluginSource("directory", str(entry), path=str(entry))

            def load(entry: Path = entry, src: PluginSource = source) -> None:
                module = load_module_file(entry)
                src.module = module.__name__
                _add(discovery, _exported(module), src)

            attempt(str(entry), load)
    return discovery


def _fresh_module(module_name: str) -> ModuleType:
    """Execute a module's code into a NEW module object that replaces it in `sys.modules`.

    Unlike `importlib.reload` (which re-runs the code inside the old module's namespace),
    the classes of the previous version keep their own globals: a host can keep one and
    start it again later (a canary rollback) without the new code leaking into it.
    """
    spec = importlib.util.find_spec(module_name)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {module_name}")
    if isinstance(spec.loader, importlib.machinery.SourceFileLoader) and spec.origin:
        spec = importlib.util.spec_from_file_location(
            module_name, spec.origin, loader=SourceOnlyLoader(module_name, spec.origin),
            submodule_search_locations=spec.submodule_search_locations)
    module = _execute(module_name, spec)
    parent, _, child = module_name.rpartition(".")
    if parent and parent in sys.modules:
        setattr(sys.modules[parent], child, module)
    return module


def _source_files(source: PluginSource) -> tuple[Path, list[Path]]:
    """The folder names are taken relative to, and the source's Python files."""
    if source.kind == "directory":
        root = Path(source.path)
    else:
        spec = importlib.util.find_spec(source.module) if source.module else None
        if spec is None or not spec.origin or not spec.has_location:
            return Path(), []
        root = Path(spec.origin).parent if spec.submodule_search_locations else Path(spec.origin)
    if root.is_dir():
        return root, sorted(root.rglob("*.py"))
    return root.parent, [root] if root.is_file() else []


def source_digest(source: PluginSource | None) -> str:
    """A fingerprint of the source's code as it is on disk now ('' when it cannot be read).

    The SHA-256 of its Python files (names and bytes), shortened: two nodes with the same
    files get the same digest, and a version string that did not change still shows new
    code. Nothing is imported or executed.
    """
    if source is None:
        return ""
    try:
        base, files = _source_files(source)
        if not files:
            return ""
        digest = hashlib.sha256()
        for path in files:
            digest.update(path.relative_to(base).as_posix().encode())
            digest.update(b"\0")
            digest.update(path.read_bytes())
            digest.update(b"\0")
    except (OSError, ImportError, ValueError):
        return ""
    return digest.hexdigest()[:16]


def reimport(source: PluginSource, name: str) -> type[Plugin]:
    """Import the source's code afresh (a new module object) and return its plugin class called `name`."""
    if source.kind == "directory":
        module = load_module_file(Path(source.path), fresh=True)
    else:
        module = _fresh_module(source.module)
        if source.kind == "entry_point":
            for entry_point in entry_points(group=ENTRY_POINT_GROUP):
                if f"{entry_point.name} = {entry_point.value}" == source.ref:
                    module = entry_point.load()
    for cls in _exported(module):
        if cls.name == name:
            cls.validate()
            return cls
    raise PluginDefinitionError(f"{source.ref} no longer exports a plugin named {name!r}")


# -- dependency resolution -------------------------------------------------------------
def _satisfied(requirement: Requirement, cls: type[Plugin]) -> bool:
    return not requirement.specifier or requirement.specifier.contains(cls.parsed_version(), prereleases=True)


def _find_cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    cycles: list[list[str]] = []
    seen_cycle_sets: set[frozenset[str]] = set()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in graph.get(node, []):
            if dep not in graph:
                continue
            if state.get(dep) == 1:
                cycle = stack[stack.index(dep):] + [dep]
                key = frozenset(cycle)
                if key not in seen_cycle_sets:
                    seen_cycle_sets.add(key)
                    cycles.append(cycle)
            elif state.get(dep) is None:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if state.get(node) is None:
            visit(node)
    return cycles


def check_dependencies(classes: dict[str, type[Plugin]]) -> dict[str, str]:
    """Every dependency problem, by plugin name: missing, unsatisfied, conflict or cycle."""
    problems: dict[str, list[str]] = {}

    def add(name: str, message: str) -> None:
        problems.setdefault(name, [])
        if message not in problems[name]:
            problems[name].append(message)

    graph: dict[str, list[str]] = {}
    for name, cls in sorted(classes.items()):
        graph[name] = []
        for requirement in cls.requirements():
            graph[name].append(requirement.name)
            dep = classes.get(requirement.name)
            if dep is None:
                add(name, f"plugin {name!r} depends on {str(requirement)!r}, which is missing")
            elif not _satisfied(requirement, dep):
                message = (f"plugin {name!r} requires {str(requirement)!r} but {dep.name!r} "
                           f"is version {dep.version}")
                add(name, message)
                add(dep.name, message)
        for requirement in cls.conflict_requirements():
            other = classes.get(requirement.name)
            if other is not None and _satisfied(requirement, other):
                message = f"plugin {name!r} conflicts with {other.name!r} {other.version}"
                add(name, message)
                add(other.name, message)
    for cycle in _find_cycles(graph):
        message = "dependency cycle: " + " -> ".join(cycle)
        for name in cycle[:-1]:
            add(name, message)
    # Whatever depends on a refused plugin cannot start either.
    changed = True
    while changed:
        changed = False
        for name, deps in graph.items():
            if name in problems:
                continue
            blocked = [dep for dep in deps if dep in problems]
            if blocked:
                add(name, f"plugin {name!r} depends on refused plugin(s) {', '.join(repr(b) for b in blocked)}")
                changed = True
    return {name: "; ".join(messages) for name, messages in problems.items()}


def start_order(classes: dict[str, type[Plugin]]) -> list[str]:
    """A topological order (dependencies first); raises DependencyError when any is refused."""
    problems = check_dependencies(classes)
    if problems:
        raise DependencyError(problems)
    return topological(classes)


def topological(classes: dict[str, type[Plugin]]) -> list[str]:
    remaining = {name: {r.name for r in cls.requirements() if r.name in classes} for name, cls in classes.items()}
    order: list[str] = []
    while remaining:
        ready = sorted(name for name, deps in remaining.items() if not deps)
        if not ready:
            raise DependencyError({name: "dependency cycle" for name in remaining})
        for name in ready:
            order.append(name)
            del remaining[name]
        for deps in remaining.values():
            deps.difference_update(ready)
    return order


def dependents_of(name: str, classes: dict[str, type[Plugin]]) -> list[str]:
    """Plugins that depend on `name`, directly or not."""
    found: list[str] = []
    frontier = [name]
    while frontier:
        current = frontier.pop()
        for other, cls in sorted(classes.items()):
            if other not in found and any(r.name == current for r in cls.requirements()):
                found.append(other)
                frontier.append(other)
    return found


def _execute(module_name: str, spec: Any) -> ModuleType:
    """Run a fresh module from `spec` under `module_name`; on failure the name maps back to
    what it was before (or to nothing)."""
    module = importlib.util.module_from_spec(spec)
    previous = sys.modules.get(module_name)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        if previous is not None:
            sys.modules[module_name] = previous
        else:
            sys.modules.pop(module_name, None)
        raise
    return module
