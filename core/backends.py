"""Authentication backend: Django's model permissions, kept in the shared cache between requests.

`ModelBackend` loads a user's permissions with two queries per request (it caches them on
the user object, which lives for one request). `CachedModelBackend` keeps them in the
default cache (Redis with `REDIS_URL`, files under the data dir on the embedded defaults:
both shared by every process of the machine or cluster), so an API request costs no
permission query.

Correctness rests on one generation token: every change that can alter anyone's
permissions (a user's groups or own permissions, a group's permissions, a user's
superuser/active flags, a group, permission or user deleted, a migration) replaces it
(`invalidate_permissions()`, connected in `core.signals`), and a cached entry counts only
while it carries the current token. The token is replaced when the change is made and
again when its transaction commits: a request that read the old rows in between cached
them under a token that is then already stale. Changes that bypass model signals
(`QuerySet.update()` on users, raw SQL) are caught by the entries' expiry.
"""

from __future__ import annotations

import logging
import secrets
import threading
from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.core.cache import BaseCache, caches
from django.db import connection, transaction

logger = logging.getLogger("chameleon.auth")
_shared: BaseCache | None = None
_shared_lock = threading.Lock()

GENERATION_KEY = "chameleon:perms:generation"
#: Upper bound on how long a change that no signal reports can go unnoticed.
ENTRY_TIMEOUT = 60.0


def permission_cache() -> BaseCache:
    """One instance of the default cache for the whole process.

    `django.core.cache.cache` is an instance per thread, and under ASGI every request has
    a thread of its own: each request would build a new backend (a new Redis connection
    pool, so a new connection; `makedirs` for the file cache). The Redis, file and
    local-memory backends are safe to share between threads.
    """
    global _shared
    if _shared is None:
        with _shared_lock:
            if _shared is None:
                _shared = caches.create_connection("default")
    return _shared


def _user_key(user_pk: Any) -> str:
    return f"chameleon:perms:user:{user_pk}"


def _replace_generation() -> None:
    try:
        permission_cache().set(GENERATION_KEY, secrets.token_hex(8), None)
    except Exception:  # a cache outage must not fail the change; entries expire anyway
        logger.exception("Could not invalidate the permission cache")


def invalidate_permissions() -> None:
    """Make every cached permission set stale, now and again when the transaction commits."""
    _replace_generation()
    if connection.in_atomic_block:
        transaction.on_commit(_replace_generation)


class CachedModelBackend(ModelBackend):
    """`ModelBackend` whose per-user permission sets are served from the shared cache.

    Same answers as `ModelBackend` (it computes them the same way on a miss); inactive and
    anonymous users and object permissions never touch the cache. If the cache is
    unreachable, permissions come from the database as without it.
    """

    def get_user_permissions(self, user_obj, obj=None) -> set[str]:
        if not self._applies(user_obj, obj):
            return set()
        return self._cached(user_obj)["user"]

    def get_group_permissions(self, user_obj, obj=None) -> set[str]:
        if not self._applies(user_obj, obj):
            return set()
        return self._cached(user_obj)["group"]

    def get_all_permissions(self, user_obj, obj=None) -> set[str]:
        if not self._applies(user_obj, obj):
            return set()
        if not hasattr(user_obj, "_perm_cache"):
            cached = self._cached(user_obj)
            user_obj._perm_cache = cached["user"] | cached["group"]
        return user_obj._perm_cache

    @staticmethod
    def _applies(user_obj, obj) -> bool:
        return user_obj.is_active and not user_obj.is_anonymous and obj is None

    def _cached(self, user_obj) -> dict[str, set[str]]:
        found = getattr(user_obj, "_chameleon_perms", None)
        if found is not None:
            return found
        key = _user_key(user_obj.pk)
        cache = permission_cache()
        try:
            entries = cache.get_many([GENERATION_KEY, key])
            generation = entries.get(GENERATION_KEY)
            if generation is None:
                cache.add(GENERATION_KEY, secrets.token_hex(8), None)
                generation = cache.get(GENERATION_KEY)
        except Exception:
            logger.warning("Permission cache unavailable; reading permissions from the database", exc_info=True)
            entries, generation = {}, None
        entry = entries.get(key)
        if generation is not None and entry is not None and entry[0] == generation:
            found = entry[1]
        else:
            # Read after taking the generation: an invalidation in between leaves this
            # entry under a stale token instead of caching rows it did not see.
            found = {
                "user": super().get_user_permissions(user_obj),
                "group": super().get_group_permissions(user_obj),
            }
            if generation is not None:
                try:
                    cache.set(key, (generation, found), ENTRY_TIMEOUT)
                except Exception:
                    logger.warning("Could not cache the permissions of user %s", user_obj.pk, exc_info=True)
        user_obj._chameleon_perms = found
        return found
