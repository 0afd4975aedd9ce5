"""Rate limits counted in Redis, shared by every web process. Each use is counted in its
fixed window; the limit is checked against that count plus the previous window's weighted by how
much of it still lies within the last window_seconds, so a burst that straddles a window's
edge is held to the limit as well as one that does not. Without Redis
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
    """Count this use first, then decide: True while the uses of the last window_seconds,
    this one included, stay within limit, so parallel requests cannot all pass one check.
    strict limits keep counting without Redis."""
    if limit <= 0:
        return True
    return _count(bucket, window_seconds, strict, +1) <= limit


def give_back(bucket: str, *, window_seconds: int, strict: bool = False) -> None:
    """Uncount a use that turned out fine (a successful login)."""
    _count(bucket, window_seconds, strict, -1)


def _count(bucket: str, window_seconds: int, strict: bool, step: int) -> float:
    now = time.time()
    window = int(now // window_seconds)
    if runtime.redis is not None:
        try:
            current, previous = _count_in_redis(bucket, window, window_seconds, step)
        except RedisError as exc:
            log.warning("rate limit counted %s, Redis unavailable: %s",
                        "in the database" if strict else "nowhere", exc)
        else:
            return _sliding(current, previous, now, window_seconds)
    if not strict:
        return 0
    # The database, not a counter in memory: every web process and thread shares it, so
    # the limit stays the limit however many processes serve, and a login reads it anyway.
    current, previous = _count_in_database(bucket, window * window_seconds, window_seconds,
                                           step)
    return _sliding(current, previous, now, window_seconds)


def _sliding(current: int, previous: int, now: float, window_seconds: int) -> float:
    still_inside = 1 - (now % window_seconds) / window_seconds
    return current + previous * still_inside


def _count_in_redis(bucket: str, window: int, window_seconds: int,
                    step: int) -> tuple[int, int]:
    this, last = (f"leadbridge:rate:{bucket}:{w}" for w in (window, window - 1))
    with runtime.redis.pipeline() as pipe:
        pipe.incrby(this, step)
        pipe.expire(this, window_seconds * 2)
        pipe.get(last)
        current, _, previous = pipe.execute()
    return current, int(previous or 0)


def _count_in_database(bucket: str, start: int, window_seconds: int,
                       step: int) -> tuple[int, int]:
    RateCount.delete().where(RateCount.window < start - 86400).execute()
    with transaction():
        (RateCount.insert(bucket=bucket, window=start, count=step)
         .on_conflict(conflict_target=[RateCount.bucket, RateCount.window],
                      update={RateCount.count: RateCount.count + step})
         .execute())
        counts = dict(RateCount
                      .select(RateCount.window, RateCount.count)
                      .where(RateCount.bucket == bucket,
                             RateCount.window.in_([start, start - window_seconds]))
                      .tuples())
    return counts[start], counts.get(start - window_seconds, 0)
