"""Benchmark: PluginManager.call overhead vs a direct call and a one-implementation pluggy hook;
plugin load time and memory per idle plugin (SPEC §10). Run: .venv/bin/python bench/bench_plugin_calls.py"""

from __future__ import annotations

import gc
import os
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chameleon_site.settings")
os.environ.setdefault("CHAMELEON_DATA_DIR", "/tmp/chameleon-bench")

import django  # noqa: E402

django.setup()

import pluggy  # noqa: E402

from plugins_app.contract import Plugin  # noqa: E402
from plugins_app.host import PluginManager  # noqa: E402

N = 200_000
ROUNDS = 7


class Echo(Plugin):
    name = "echo"
    version = "1.0.0"

    def echo(self, value: int) -> int:
        return value


hookspec = pluggy.HookspecMarker("bench")
hookimpl = pluggy.HookimplMarker("bench")


class Spec:
    @hookspec(firstresult=True)
    def echo(self, value: int) -> int:
        """The hook."""


class Impl:
    @hookimpl
    def echo(self, value: int) -> int:
        return value


def _time(func, n: int) -> float:
    gc.disable()
    try:
        started = time.perf_counter_ns()
        for i in range(n):
            func(i)
        return (time.perf_counter_ns() - started) / n
    finally:
        gc.enable()


def interleaved(funcs: dict[str, object], n: int = N, rounds: int = ROUNDS) -> dict[str, float]:
    """Median ns per call of each function; rounds alternate between them so load hits all alike."""
    samples: dict[str, list[float]] = {name: [] for name in funcs}
    for _ in range(rounds):
        for name, func in funcs.items():
            samples[name].append(_time(func, n))
    return {name: statistics.median(values) for name, values in samples.items()}


def bench_calls() -> dict[str, float]:
    manager = PluginManager(node="bench", persist=False, publish_events=False)
    manager.register(Echo)
    manager.start("echo")
    instance = manager.entries["echo"].instance
    pm = pluggy.PluginManager("bench")
    pm.add_hookspecs(Spec)
    pm.register(Impl())
    call = manager.call
    hook = pm.hook.echo
    echo = instance.echo
    # Each is called as f(i) from the same loop: a direct bound-method call, the manager, pluggy.
    t = interleaved({
        "direct": echo,
        "manager": lambda i: call("echo", "echo", i),
        "pluggy": lambda i: hook(value=i),
        "lambda": lambda i: echo(i),
    })
    # The manager and pluggy are reached through a lambda; subtract that extra frame.
    frame = t["lambda"] - t["direct"]
    direct = t["direct"]
    via_manager = t["manager"] - frame
    via_pluggy = t["pluggy"] - frame
    return {"direct_ns": direct, "manager_ns": via_manager, "pluggy_ns": via_pluggy,
            "overhead_ns": via_manager - direct, "pluggy_overhead_ns": via_pluggy - direct}


def make_class(i: int) -> type[Plugin]:
    return type(f"Idle{i}", (Plugin,), {"name": f"idle-{i}", "version": "1.0.0", "ping": lambda self: "pong"})


def bench_load(count: int = 500) -> dict[str, float]:
    timed = PluginManager(node="bench", persist=False, publish_events=False)
    load_times = []
    for cls in [make_class(i) for i in range(count)]:
        started = time.perf_counter()
        timed.register(cls)
        timed.start(cls.name)
        load_times.append(time.perf_counter() - started)
    # Memory is measured separately: tracemalloc slows everything it watches.
    manager = PluginManager(node="bench", persist=False, publish_events=False)
    classes = [make_class(i) for i in range(count)]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for cls in classes:
        manager.register(cls)
        manager.start(cls.name)
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    return {"load_ms_median": statistics.median(load_times) * 1000, "load_ms_max": max(load_times) * 1000,
            "memory_kb_per_plugin": grown / count / 1024, "plugins": count}


def bench_load_from_files(count: int = 50) -> dict[str, float]:
    """Import a plugin file from a plugin dir, register, initialize and start it."""
    import tempfile

    from plugins_app.registry import _exported, load_module_file

    manager = PluginManager(node="bench", persist=False, publish_events=False)
    times = []
    with tempfile.TemporaryDirectory() as directory:
        for i in range(count):
            path = Path(directory) / f"file_plugin_{i}.py"
            path.write_text(
                "from plugins_app.contract import Plugin\n"
                f"class P(Plugin):\n    name = 'file-{i}'\n    version = '1.0'\n"
                "    def ping(self):\n        return 'pong'\n"
                "plugin = P\n"
            )
            started = time.perf_counter()
            cls = _exported(load_module_file(path))[0]
            manager.register(cls)
            manager.start(cls.name)
            times.append(time.perf_counter() - started)
    return {"file_load_ms_median": statistics.median(times) * 1000, "file_load_ms_max": max(times) * 1000}


def main() -> None:
    calls = bench_calls()
    load = bench_load()
    files = bench_load_from_files()
    print(f"direct method call        {calls['direct_ns']:8.0f} ns")
    print(f"pluggy hook (1 impl)      {calls['pluggy_ns']:8.0f} ns  (overhead {calls['pluggy_overhead_ns']:.0f} ns)")
    print(f"manager.call              {calls['manager_ns']:8.0f} ns  (overhead {calls['overhead_ns']:.0f} ns, "
          f"target <= 2000 ns: {'OK' if calls['overhead_ns'] <= 2000 else 'MISSED'})")
    print(f"manager.call / pluggy     {calls['manager_ns'] / calls['pluggy_ns']:8.2f}x "
          f"({'no slower' if calls['manager_ns'] <= calls['pluggy_ns'] else 'SLOWER'} than pluggy)")
    print(f"plugin load (register+initialize+start), median {load['load_ms_median']:.3f} ms, "
          f"max {load['load_ms_max']:.3f} ms over {load['plugins']} plugins (target <= 100 ms)")
    print(f"plugin load from a plugin-dir file (import+register+initialize+start), median "
          f"{files['file_load_ms_median']:.3f} ms, max {files['file_load_ms_max']:.3f} ms")
    print(f"memory per idle running plugin {load['memory_kb_per_plugin']:.1f} KB (target <= 100 KB)")


if __name__ == "__main__":
    main()
