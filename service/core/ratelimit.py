"""Fixed-window rate limits counted in Redis, shared by every web process. Without Redis
intake is not limited (losing a lead is worse than letting a burst through), while login
attempts are counted in the database instead (strict=True)."""

from __future__ import annotations

import logging
import time

from redis.exceptions import RedisError

from service.core.db import transaction
from service.core.models import RateCount
from service.core.runtime import runtime

log = logging.getLogger(__name__)


def allow(bucket: str, *, limit: int, window_seconds: int = 60, strict: bool = False) -> bool:
    """Count this use first, then decide: True while the window's uses, this one included,
    stay within limit, so parallel requests cannot all pass one check. strict limits keep
    counting without Redis."""
    if limit <= 0:
        return True
    return _count(bucket, window_seconds, strict, +1) <= limit


def give_back(bucket: str, *, window_seconds: int, strict: bool = False) -> None:
    """Uncount a use that turned out fine (a successful login)."""
    _count(bucket, window_seconds, strict, -1)


def _count(bucket: str, window_seconds: int, strict: bool, step: int) -> int:
    start = int(time.time() // window_seconds) * window_seconds
    if runtime.redis is not None:
        key = f"leadbridge:rate:{bucket}:{start // window_seconds}"
        try:
            with runtime.redis.pipeline() as pipe:
                pipe.incrby(key, step)
                pipe.expire(key, window_seconds * 2)
                return pipe.execute()[0]
        except RedisError as exc:
            log.warning("rate limit counted %s, Redis unavailable: %s",
                        "in the database" if strict else "nowhere", exc)
    # The database, not a counter in memory: every web process and thread shares it, so
    # the limit stays the limit however many processes serve, and a login reads it anyway.
    return _count_in_database(bucket, start, step) if strict else 0


def _count_in_database(bucket: str, start: int, step: int) -> int:
    RateCount.delete().where(RateCount.window < start - 86400).execute()
    with transaction():
        (RateCount.insert(bucket=bucket, window=start, count=step)
         .on_conflict(conflict_target=[RateCount.bucket, RateCount.window],
                      update={RateCount.count: RateCount.count + step})
         .execute())
        return RateCount.get(RateCount.bucket == bucket, RateCount.window == start).count
