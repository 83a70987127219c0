"""Per-user permission sets cached between requests (core/backends.py): fast, never stale."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core import backends
from tests.fixtures.users import make_user, token_client

cache = backends.permission_cache()

pytestmark = pytest.mark.django_db


def permission_queries(client, path: str = "/api/v1/audit/") -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(path).status_code == 200
    return sum("auth_permission" in query["sql"] for query in queries.captured_queries)


def fresh(user: User) -> User:
    """The user as the next request loads it (no per-object permission cache)."""
    return User.objects.get(pk=user.pk)


def test_a_request_reads_no_permissions_once_they_are_cached(viewer_client):
    viewer_client.get("/api/v1/audit/")
    assert permission_queries(viewer_client) == 0


def test_a_viewer_removed_from_the_group_is_refused_on_the_next_request(viewer, viewer_client):
    assert viewer_client.get("/api/v1/audit/").status_code == 200
    viewer.groups.remove(Group.objects.get(name="viewer"))
    assert viewer_client.get("/api/v1/audit/").status_code == 403


def test_removing_the_user_from_the_group_side_is_seen_too(viewer, viewer_client):
    assert viewer_client.get("/api/v1/audit/").status_code == 200
    Group.objects.get(name="viewer").user_set.clear()
    assert viewer_client.get("/api/v1/audit/").status_code == 403


def test_a_user_added_to_a_group_gets_its_permissions_on_the_next_request(db):
    user = make_user("newcomer")
    client = token_client(user)
    assert client.get("/api/v1/audit/").status_code == 403
    Group.objects.get(name="viewer").user_set.add(user)
    assert client.get("/api/v1/audit/").status_code == 200


def test_a_permission_taken_from_the_group_is_gone_for_its_members(viewer, viewer_client):
    assert viewer_client.get("/api/v1/audit/").status_code == 200
    Group.objects.get(name="viewer").permissions.remove(Permission.objects.get(codename="view_auditentry"))
    assert viewer_client.get("/api/v1/audit/").status_code == 403
    assert viewer_client.get("/api/v1/nodes/").status_code == 200


def test_a_permission_given_to_the_user_directly_counts_at_once(db):
    user = make_user("direct")
    assert not fresh(user).has_perm("core.view_auditentry")
    user.user_permissions.add(Permission.objects.get(codename="view_auditentry"))
    assert fresh(user).has_perm("core.view_auditentry")
    assert fresh(user).get_user_permissions() == {"core.view_auditentry"}
    assert fresh(user).get_group_permissions() == set()


def test_deleting_the_group_takes_its_permissions_away(viewer, viewer_client):
    assert viewer_client.get("/api/v1/audit/").status_code == 200
    group = Group.objects.create(name="readers")
    group.permissions.add(Permission.objects.get(codename="view_auditentry"))
    viewer.groups.set([group])
    assert viewer_client.get("/api/v1/audit/").status_code == 200
    group.delete()  # cascades through the membership table without m2m_changed
    assert viewer_client.get("/api/v1/audit/").status_code == 403


def test_superuser_and_active_flags_are_seen_on_the_next_request(db):
    user = make_user("flags")
    client = token_client(user)
    assert client.get("/api/v1/audit/").status_code == 403
    user.is_superuser = True
    user.save()
    assert client.get("/api/v1/audit/").status_code == 200
    user.is_superuser = False
    user.save(update_fields=["is_superuser"])
    assert client.get("/api/v1/audit/").status_code == 403


def test_a_login_does_not_throw_the_cache_away(viewer, client):
    fresh(viewer).has_perm("core.view_auditentry")
    generation = cache.get(backends.GENERATION_KEY)
    assert client.login(username=viewer.username, password="viewer-user-password")  # saves last_login
    assert cache.get(backends.GENERATION_KEY) == generation


def test_answers_match_django_model_backend(viewer, operator, superuser):
    from django.contrib.auth.backends import ModelBackend

    for user in (viewer, operator, superuser):
        fresh(user).has_perm("core.view_node")  # cache them
        cached, plain = fresh(user), fresh(user)
        assert backends.CachedModelBackend().get_all_permissions(cached) == ModelBackend().get_all_permissions(plain)
        assert backends.CachedModelBackend().get_group_permissions(cached) == ModelBackend().get_group_permissions(plain)


def test_inactive_users_and_object_permissions_get_nothing(viewer):
    backend = backends.CachedModelBackend()
    assert backend.get_all_permissions(fresh(viewer), obj=object()) == set()
    viewer.is_active = False
    viewer.save()
    assert backend.get_all_permissions(fresh(viewer)) == set()
    assert not fresh(viewer).has_perm("core.view_auditentry")


def test_a_change_invalidates_again_when_its_transaction_commits(viewer, django_capture_on_commit_callbacks):
    fresh(viewer).has_perm("core.view_auditentry")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        viewer.groups.clear()
        during = cache.get(backends.GENERATION_KEY)
    # A request that read the old rows between the change and its commit cached them
    # under `during`; the commit replaces that generation as well.
    assert len(callbacks) == 1
    callbacks[0]()
    assert cache.get(backends.GENERATION_KEY) != during


def test_permissions_come_from_the_database_when_the_cache_is_down(viewer, viewer_client, monkeypatch):
    def broken(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr(cache, "get_many", broken)
    monkeypatch.setattr(cache, "set", broken)
    assert viewer_client.get("/api/v1/audit/").status_code == 200
    viewer.groups.clear()  # the invalidation fails too, and the change still counts
    assert viewer_client.get("/api/v1/audit/").status_code == 403


def test_one_cache_instance_serves_every_thread():
    import threading

    seen = []
    thread = threading.Thread(target=lambda: seen.append(backends.permission_cache()))
    thread.start()
    thread.join()
    assert seen == [backends.permission_cache()]


def test_an_entry_of_an_older_generation_is_not_used(viewer):
    fresh(viewer).has_perm("core.view_auditentry")
    # Someone else's process replaced the generation (as any permission change does).
    cache.set(backends.GENERATION_KEY, "another-generation", None)
    cache.set(backends._user_key(viewer.pk), (cache.get(backends.GENERATION_KEY) + "-old", {
        "user": set(), "group": {"core.view_everything"}}))
    assert fresh(viewer).has_perm("core.view_auditentry")
    assert not fresh(viewer).has_perm("core.view_everything")
