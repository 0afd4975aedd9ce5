"""What a process binds once at start: settings and the job queue. create_app() binds it;
jobs and the outbox read it. Domain functions take their inputs as arguments instead."""

from __future__ import annotations

from dataclasses import dataclass

from redis import Redis
from rq import Queue
from rq.serializers import JSONSerializer

from service.core.settings import Settings


@dataclass
class Runtime:
    settings: Settings | None = None
    secret_key: str = ""
    redis: Redis | None = None
    queue: Queue | None = None

    def bind(self, settings: Settings, secret_key: str, redis_url: str) -> None:
        self.settings = settings
        self.secret_key = secret_key
        if not redis_url:
            self.redis = self.queue = None
            return
        self.redis = Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=5)
        self.queue = Queue(settings.redis.queue, connection=self.redis,
                           serializer=JSONSerializer)


runtime = Runtime()
