"""Single-use claims for what a provider signs: its token (Mailgun) or message id (SNS) is
claimed in the Delivery table, whose unique index decides even between concurrent requests.
The same delivery again (a provider's retry) is not claimed; the key again with other data
(a replayed signature) is refused. Claimed inside the caller's transaction, so that a
delivery that fails to be stored is not claimed either."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from service.core.errors import DomainError
from service.core.fastsql import insert_returning
from service.core.models import Delivery

CLAIMS_KEPT = timedelta(days=1)  # well past every provider's freshness window


class Replayed(DomainError):
    status = 409
    code = "replayed"


@dataclass(frozen=True)
class Signed:
    """What a provider signed for one delivery: a single-use key and a digest of the data."""
    key: str
    digest: str


def first_use(provider: str, signed: Signed, now: datetime) -> bool:
    """Claim the key and the digest: True the first time, False for the same delivery again;
    Replayed for a used key with other data (the caller's transaction then stores nothing).
    One provider's keys are claimed once across all its routes."""
    source = f"email:{provider}"
    (Delivery.delete()
     .where(Delivery.source == source, Delivery.received_at < now - CLAIMS_KEPT).execute())
    key, digest = Delivery.stored_id(f"key:{signed.key}"), f"sha256:{signed.digest}"
    claimed = set(insert_returning(
        Delivery, [{"source": source, "delivery_id": value, "received_at": now}
                for value in (key, digest)], "delivery_id", ignore_conflicts=True))
    if key in claimed:
        return True
    if digest in claimed:
        raise Replayed(f"this {provider} signature was used already, for other data; "
                       "each signed event is accepted once")
    return False
