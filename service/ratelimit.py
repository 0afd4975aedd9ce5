"""Fixed-window rate limits counted in Redis, shared by every web process. Without Redis
the limit is not enforced: losing a lead is worse than letting a burst through."""

from __future__ import annotations

import logging
import time

from redis.exceptions import RedisError

from .runtime import runtime

log = logging.getLogger(__name__)


def allow(bucket: str, *, limit: int, window_seconds: int = 60) -> bool:
    if runtime.redis is None or limit <= 0:
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
    return used <= limit
