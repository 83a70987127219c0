"""Dependency resolution: refusals name every plugin involved; order is topological."""

from __future__ import annotations

import pytest

from plugins_app.errors import LifecycleError
from plugins_app.registry import DependencyError, check_dependencies, start_order
from tests.plugins.conftest import make_plugin


def classes(*plugins):
    return {cls.name: cls for cls in plugins}


def test_start_order_is_topological():
    found = start_order(classes(
        make_plugin("c", dependencies=("b",)), make_plugin("b", dependencies=("a>=1",)), make_plugin("a"),
    ))
    assert found == ["a", "b", "c"]


def test_missing_dependency_is_refused_naming_both():
    with pytest.raises(DependencyError) as refused:
        start_order(classes(make_plugin("web", dependencies=("cache>=2",))))
    assert refused.value.plugins == ["web"]
    assert "'web'" in str(refused.value) and "cache>=2" in str(refused.value) and "missing" in str(refused.value)


def test_unsatisfied_version_is_refused_naming_both():
    problems = check_dependencies(classes(make_plugin("a", "1.4"), make_plugin("b", dependencies=("a>=2,<3",))))
    assert set(problems) == {"a", "b"}
    assert "'b' requires 'a<3,>=2'" in problems["b"] or "'b' requires 'a>=2,<3'" in problems["b"]
    assert "1.4" in problems["b"]


def test_conflict_is_refused_naming_both():
    problems = check_dependencies(classes(make_plugin("a"), make_plugin("b", conflicts=("a<2",))))
    assert set(problems) == {"a", "b"}
    assert "conflicts with 'a'" in problems["a"]


def test_a_cycle_is_reported_as_the_whole_cycle():
    with pytest.raises(DependencyError) as refused:
        start_order(classes(make_plugin("a", dependencies=("b",)), make_plugin("b", dependencies=("c",)),
                            make_plugin("c", dependencies=("a",)), make_plugin("free")))
    assert "a -> b -> c -> a" in str(refused.value)
    assert refused.value.plugins == ["a", "b", "c"]


def test_refused_plugins_do_not_start_and_the_rest_do(bare_manager):
    for cls in (make_plugin("a", dependencies=("b",)), make_plugin("b", dependencies=("a",)),
                make_plugin("ok"), make_plugin("needs-a", dependencies=("a",))):
        bare_manager.register(cls)
    refused = bare_manager.start_all()
    assert set(refused) == {"a", "b", "needs-a"}
    assert "a -> b -> a" in refused["a"]
    assert bare_manager.entries["ok"].state == "running"
    assert {bare_manager.entries[n].state for n in ("a", "b", "needs-a")} == {"failed"}


def test_stop_order_is_reverse_and_dependents_block_stop_without_cascade(bare_manager):
    stopped: list[str] = []
    for cls in (make_plugin("base"), make_plugin("mid", dependencies=("base",)),
                make_plugin("top", dependencies=("mid",))):
        cls.stop = lambda self, ctx, name=cls.name: stopped.append(name)
        bare_manager.register(cls)
    assert bare_manager.start_all() == {}
    with pytest.raises(LifecycleError) as refused:
        bare_manager.stop("base")
    assert set(refused.value.plugins) == {"base", "mid", "top"}
    assert bare_manager.entries["base"].state == "running"
    assert bare_manager.stop("base", cascade=True) == ["top", "mid", "base"]
    assert stopped == ["top", "mid", "base"]


def test_a_plugin_cannot_start_before_its_dependency(bare_manager):
    bare_manager.register(make_plugin("base"))
    bare_manager.register(make_plugin("child", dependencies=("base",)))
    with pytest.raises(LifecycleError, match="needs 'base' running"):
        bare_manager.start("child")
