"""The lease that makes one beat replica active: Redis `SET NX PX` with REDIS_URL, a database row otherwise.

Every replica calls `hold()` each tick; the holder renews, the others take over once the
lease has expired (the active one died). Dispatch itself claims each due slot with a
conditional UPDATE, so even two replicas briefly active at once cannot run a slot twice.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from scheduler_app.models import SchedulerLease

logger = logging.getLogger("chameleon.scheduler.lease")

LEASE_NAME = "beat"

# Renew only when the value is still ours; release likewise.
_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


class Lease:
    """A named, expiring lock held by `holder`; `hold()` acquires or renews it."""

    def __init__(self, holder: str, ttl: float) -> None:
        self.holder = holder
        self.ttl = ttl
        self.held = False
        self._checked = 0.0

    def hold(self) -> bool:
        """True while this replica is active. Talks to the backend at most every ttl/4."""
        now = time.monotonic()
        if now - self._checked < self.ttl / 4:
            return self.held
        try:
            held = self._renew() if self.held else self._acquire()
        except Exception:
            logger.exception("Scheduler lease check failed; standing by")
            held = False
        if held != self.held:
            logger.warning("Beat %s is now %s", self.holder, "ACTIVE" if held else "standing by")
        self.held, self._checked = held, now
        return held

    def release(self) -> None:
        if self.held:
            try:
                self._release()
            except Exception:
                logger.exception("Could not release the scheduler lease")
        self.held = False

    def current_holder(self) -> str:
        raise NotImplementedError

    def _acquire(self) -> bool:
        raise NotImplementedError

    def _renew(self) -> bool:
        raise NotImplementedError

    def _release(self) -> None:
        raise NotImplementedError


class RedisLease(Lease):
    def __init__(self, holder: str, ttl: float, url: str, key: str = "") -> None:
        super().__init__(holder, ttl)
        import redis
        from celery import current_app

        self.client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        # One lease per deployment: beats sharing a Redis but serving other queues do not compete.
        self.key = key or f"chameleon:scheduler:lease:{LEASE_NAME}:{current_app.conf.task_default_queue}"

    def _acquire(self) -> bool:
        return bool(self.client.set(self.key, self.holder, nx=True, px=int(self.ttl * 1000))) or self._renew()

    def _renew(self) -> bool:
        return bool(self.client.eval(_RENEW, 1, self.key, self.holder, int(self.ttl * 1000)))

    def _release(self) -> None:
        self.client.eval(_RELEASE, 1, self.key, self.holder)

    def current_holder(self) -> str:
        value = self.client.get(self.key)
        return value.decode() if value else ""


class DatabaseLease(Lease):
    def __init__(self, holder: str, ttl: float, name: str = LEASE_NAME) -> None:
        super().__init__(holder, ttl)
        self.name = name

    def _acquire(self) -> bool:
        now = timezone.now()
        expires = now + timedelta(seconds=self.ttl)
        taken = SchedulerLease.objects.filter(
            Q(holder=self.holder) | Q(expires_at__lt=now) | Q(expires_at__isnull=True), name=self.name
        ).update(holder=self.holder, expires_at=expires, acquired_at=now)
        if taken:
            return True
        try:
            with transaction.atomic():
                SchedulerLease.objects.create(name=self.name, holder=self.holder, expires_at=expires, acquired_at=now)
            return True
        except IntegrityError:
            return False

    def _renew(self) -> bool:
        expires = timezone.now() + timedelta(seconds=self.ttl)
        return bool(SchedulerLease.objects.filter(name=self.name, holder=self.holder).update(expires_at=expires))

    def _release(self) -> None:
        SchedulerLease.objects.filter(name=self.name, holder=self.holder).update(expires_at=None, holder="")

    def current_holder(self) -> str:
        row = SchedulerLease.objects.filter(name=self.name, expires_at__gte=timezone.now()).first()
        return row.holder if row else ""


def make_lease(holder: str) -> Lease:
    from core.conf import chameleon_settings

    ttl = float(chameleon_settings.SCHEDULER_LEASE_TTL)
    if chameleon_settings.REDIS_URL:
        return RedisLease(holder, ttl, chameleon_settings.REDIS_URL)
    return DatabaseLease(holder, ttl)


def active_holder() -> str:
    """Which beat replica is active now ('' when none), for the status endpoints."""
    try:
        return make_lease("status-reader").current_holder()
    except Exception:
        return ""
