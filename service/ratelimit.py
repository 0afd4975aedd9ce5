"""Fixed-window rate limits counted in Redis, shared by every web process. Without Redis
the limit is not enforced: losing a lead is worse than letting a burst through."""

from __future__ import annotations

import logging
import time

from redis.exceptions import RedisError

from .runtime import runtime

log = logging.getLogger(__name__)


def allow(bucket: str, *, limit: int, window_seconds: int = 60,
          count_only: bool = False) -> bool:
    """Count one use; True while the window's uses stay within limit (or when counting
    only, as for failed logins)."""
    if runtime.redis is None or (limit <= 0 and not count_only):
        return True
    window = int(time.time() // window_seconds)
    key = f"leadbridge:rate:{bucket}:{window}"
    try:
        with runtime.redis.pipeline() as pipe:
            pipe.incr(key)
            pipe.expire(key, window_seconds * 2)
            used = pipe.execute()[0]
    except RedisError as exc:
        log.warning("rate limit not checked, Redis unavailable: %s", exc)
        return True
    return count_only or used <= limit


def used(bucket: str, *, window_seconds: int) -> int:
    """Uses counted in the current window (0 without Redis)."""
    if runtime.redis is None:
        return 0
    window = int(time.time() // window_seconds)
    try:
        return int(runtime.redis.get(f"leadbridge:rate:{bucket}:{window}") or 0)
    except RedisError:
        return 0
