"""Discovery: entry points, settings modules and plugin dirs -- and nothing else."""

from __future__ import annotations

import textwrap

from plugins_app.registry import discover

PLUGIN_SOURCE = textwrap.dedent('''
    from plugins_app.contract import Plugin

    class {cls}(Plugin):
        name = "{name}"
        version = "{version}"

    plugin = {cls}
''')


def test_builtins_are_always_found():
    found = discover()
    assert {"logger", "hello", "notification"} <= set(found.plugins)
    assert found.plugins["hello"][1].kind == "module"


def test_entry_point_group_is_a_source(tmp_path, monkeypatch):
    (tmp_path / "ep_plugin_mod.py").write_text(PLUGIN_SOURCE.format(cls="EP", name="from-ep", version="3.1"))
    dist = tmp_path / "ep_plugin-3.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-plugin\nVersion: 3.1\n")
    (dist / "entry_points.txt").write_text("[chameleon.plugins]\nfrom-ep = ep_plugin_mod:plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    found = discover()
    cls, source = found.plugins["from-ep"]
    assert cls.version == "3.1" and source.kind == "entry_point"


def test_settings_modules_and_plugin_dirs_are_sources(tmp_path, settings):
    (tmp_path / "single.py").write_text(PLUGIN_SOURCE.format(cls="Single", name="from-dir", version="1.0"))
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text(PLUGIN_SOURCE.format(cls="Pkg", name="from-pkg", version="2.0"))
    (tmp_path / "broken.py").write_text("raise ImportError('nope')\n")
    settings.CHAMELEON = {**settings.CHAMELEON, "PLUGIN_DIRS": [str(tmp_path)],
                          "PLUGIN_MODULES": ["tests.dummy_plugin"]}
    found = discover()
    assert found.plugins["from-dir"][1].kind == "directory"
    assert found.plugins["from-pkg"][0].version == "2.0"
    assert found.plugins["dummy"][1].ref == "tests.dummy_plugin"
    assert "nope" in found.errors[str(tmp_path / "broken.py")], "a broken file is reported, not fatal"


def test_a_module_that_exports_no_plugin_is_reported(settings):
    settings.CHAMELEON = {**settings.CHAMELEON, "PLUGIN_MODULES": ["json"]}
    assert "exports no Plugin" in discover().errors["json"]
