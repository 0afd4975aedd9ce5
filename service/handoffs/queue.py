"""The rep's queue: the handoffs waiting for one rep's decision, shown on the page their
emails link to (service/web/queue.py), and the revocation of the rep's links: the queue
links and the Accept/Reject links alike carry the rep's link_version, and none of them
stands once it has moved or while the rep is inactive."""

from __future__ import annotations

from datetime import datetime

from service.core.db import transaction
from service.core.links import QueueLink
from service.core.models import Handoff, Lead, Rep
from service.core.statuses import HandoffStatus
from service.lifecycle import audit


def pending(rep_id: int) -> list[Handoff]:
    """The rep's pending handoffs with their leads, the nearest deadline first."""
    return list(Handoff.select(Handoff, Lead).join(Lead)
                .where(Handoff.rep == rep_id, Handoff.status == HandoffStatus.PENDING)
                .order_by(Handoff.due_at, Handoff.id))


def linked_rep(link: QueueLink) -> Rep | None:
    """The rep a queue link names while it stands: None once the rep is gone, inactive, or
    their links were revoked since it was signed."""
    rep = Rep.get_or_none(Rep.id == link.rep_id)
    return rep if rep is not None and link_stands(rep, link.link_version) else None


def link_stands(rep: Rep, link_version: int | None) -> bool:
    """A link signed for this rep still stands: the rep is active and their links were not
    revoked since it was signed. A decision link made before decision links carried a
    version (None) is ended by its expiry only."""
    return rep.active and link_version in (None, rep.link_version)


def revoke_links(rep_ids: list[int], *, actor: str, now: datetime) -> int:
    """End every queue link and every Accept/Reject link sent to these reps so far (the
    next email brings new ones); returns how many reps. Each revocation is audited."""
    revoked = 0
    with transaction():
        for rep_id in rep_ids:
            if Rep.update(link_version=Rep.link_version + 1).where(Rep.id == rep_id).execute():
                audit(actor, "revoke_queue_links", f"rep:{rep_id}", {}, now)
                revoked += 1
    return revoked
