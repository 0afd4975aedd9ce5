"""The outbox: every email is a row written in the transaction that causes it; after the
commit its send job is queued. Sending claims the row first, so a re-queued or duplicated
job never sends twice."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from redis.exceptions import RedisError
from rq import Retry

from service.core.db import collect, transaction
from service.core.fastsql import insert_all_returning, update_row
from service.core.models import OutboxEmail
from service.core.runtime import runtime

log = logging.getLogger(__name__)
SEND_JOB = "workers.jobs.send_emails"
BATCH = 50  # emails per job, sent over one SMTP connection
DEMO_SKIP = "demo address (.example)"


def reserved_for_demo(address: str) -> bool:
    """Addresses under the .example top-level domain belong to nobody (RFC 2606, RFC 6761):
    the demo makes its people there, and no email to one ever leaves."""
    domain = address.rpartition("@")[2].strip().rstrip(".").lower()
    return domain == "example" or domain.endswith(".example")


def queue_email(template: str, *, to_address: str, now: datetime, to_name: str = "",
                lead_id: int | None = None, handoff_id: int | None = None,
                context: dict | None = None, to_prospect: bool = False,
                enrollment_id: int | None = None, step: int | None = None,
                step_id: str = "") -> OutboxEmail:
    """Write the email's row in the current transaction; its send job is queued after the
    commit. Prospect mail (to_prospect) is checked against suppression when it is sent. A
    demo address is skipped at once (and again when sent, for rows written before)."""
    row = OutboxEmail.create(**_row(Email(
        template, to_address, to_name=to_name, lead_id=lead_id, handoff_id=handoff_id,
        context=context or {}, to_prospect=to_prospect, enrollment_id=enrollment_id,
        step=step, step_id=step_id), now, _domain()))
    if not row.skipped_at:
        collect("outbox", row.id, enqueue_sends)
    return row


@dataclass(slots=True)
class Email:
    """One email for queue_emails: queue_email's arguments."""
    template: str
    to_address: str
    to_name: str = ""
    lead_id: int | None = None
    handoff_id: int | None = None
    context: dict = field(default_factory=dict)
    to_prospect: bool = False
    enrollment_id: int | None = None
    step: int | None = None
    step_id: str = ""


def queue_emails(emails: list[Email], *, now: datetime) -> list[int]:
    """queue_email for many: their rows in one INSERT (per 1,000; demo addresses, skipped at
    once, in another) in the current transaction, their send jobs queued in batches after
    the commit. Returns the ids of the rows written (in no particular order)."""
    if not emails:
        return []
    domain = _domain()
    rows = [_row(email, now, domain) for email in emails]
    ids = insert_all_returning(OutboxEmail, [r for r in rows if r["skipped_at"] is None], "id")
    for outbox_id in ids:
        collect("outbox", outbox_id, enqueue_sends)
    return ids + insert_all_returning(OutboxEmail, [r for r in rows if r["skipped_at"]], "id")


def _domain() -> str:
    sender = runtime.settings.mail.from_address if runtime.settings else "@localhost"
    return sender.rpartition("@")[2] or "localhost"


def _row(email: Email, now: datetime, domain: str) -> dict:
    """The outbox row's fields, every default named (a bulk insert writes them all)."""
    demo = reserved_for_demo(email.to_address)
    return {"template": email.template, "to_address": email.to_address,
            "to_name": email.to_name, "context": email.context, "lead": email.lead_id,
            "handoff": email.handoff_id, "created_at": now, "to_prospect": email.to_prospect,
            "enrollment": email.enrollment_id, "step": email.step, "step_id": email.step_id,
            "message_id": f"<{os.urandom(16).hex()}@{domain}>", "attempts": 0, "last_error": "",
            "subject": "", "body_text": "", "body_html": "",
            "skipped_at": now if demo else None, "skip_reason": DEMO_SKIP if demo else ""}


def enqueue_sends(outbox_ids: list[int]) -> int:
    """Queue send jobs of up to BATCH rows each (one SMTP connection per job), with job ids
    made from the rows so a re-queue replaces, not adds. With Redis down the rows stay
    unsent and the sweep queues them later."""
    if not outbox_ids:
        return 0
    queue = runtime.queue
    if queue is None:
        log.warning("redis.url is empty: %d email(s) wait for a worker", len(outbox_ids))
        return 0
    settings = runtime.settings
    backoff = settings.outbox.retry_seconds
    batches = [outbox_ids[i:i + BATCH] for i in range(0, len(outbox_ids), BATCH)]
    jobs = [queue.prepare_data(SEND_JOB, args=(ids,), job_id=job_id(ids), result_ttl=3600,
                               failure_ttl=7 * 86400, retry=Retry(max=len(backoff),
                                                                  interval=backoff),
                               timeout=settings.outbox.claim_seconds * 2 // 3)
            for ids in batches]
    try:
        queue.enqueue_many(jobs)
    except RedisError as exc:
        log.warning("could not queue %d email(s), the outbox sweep will retry: %s",
                    len(outbox_ids), exc)
        return 0
    return len(outbox_ids)


def job_id(ids: list[int]) -> str:
    return f"send-email-{ids[0]}" if len(ids) == 1 else f"send-emails-{ids[0]}-{len(ids)}"


def unsent_ids(*, now: datetime, older_than_seconds: int, claim_seconds: int,
               limit: int = 1000) -> list[int]:
    """Rows left unsent (never queued, or their job died) that are due for another try."""
    created_before = now - timedelta(seconds=older_than_seconds)
    claim_expired = now - timedelta(seconds=claim_seconds)
    query = (OutboxEmail.select(OutboxEmail.id)
             .where(OutboxEmail.sent_at.is_null(), OutboxEmail.skipped_at.is_null(),
                    OutboxEmail.failed_at.is_null(), OutboxEmail.created_at <= created_before,
                    OutboxEmail.retry_at.is_null() | (OutboxEmail.retry_at <= now),
                    OutboxEmail.claimed_at.is_null() | (OutboxEmail.claimed_at <= claim_expired))
             .order_by(OutboxEmail.created_at).limit(limit))
    return [row.id for row in query]


def claim(outbox_ids: list[int], *, now: datetime, claim_seconds: int) -> list[int]:
    """Take rows for sending; leaves out those sent, skipped, or held by another sender."""
    if not outbox_ids:
        return []
    claim_expired = now - timedelta(seconds=claim_seconds)
    lapsed = OutboxEmail.select(OutboxEmail.id).where(
        OutboxEmail.id.in_(outbox_ids), OutboxEmail.sent_at.is_null(),
        OutboxEmail.claimed_at <= claim_expired)
    for row in lapsed:
        log.warning("outbox %d: its sender stopped mid-send; sending again (if the server had "
                    "accepted it already, it arrives twice)", row.id)
    query = (OutboxEmail.update(claimed_at=now, attempts=OutboxEmail.attempts + 1)
             .where(OutboxEmail.id.in_(outbox_ids), OutboxEmail.sent_at.is_null(),
                    OutboxEmail.skipped_at.is_null(), OutboxEmail.failed_at.is_null(),
                    OutboxEmail.claimed_at.is_null() | (OutboxEmail.claimed_at <= claim_expired))
             .returning(OutboxEmail.id))
    return sorted(row.id for row in query.execute())


def mark_sent(sent: dict[int, tuple[str, str, str]], *, now: datetime) -> None:
    """Rows the server accepted, with the (subject, text, html) each went out with, marked in
    one transaction: a sender marks them every few messages, not one commit each."""
    if not sent:
        return
    with transaction():
        for outbox_id, (subject, body_text, body_html) in sent.items():
            update_row(OutboxEmail, outbox_id, {"sent_at": now, "subject": subject,
                                                "body_text": body_text,
                                                "body_html": body_html, "last_error": ""})


def mark_skipped(reasons: dict[int, str], *, now: datetime) -> None:
    """Rows that must not go (by id, why), in one transaction."""
    if not reasons:
        return
    with transaction():
        for outbox_id, reason in reasons.items():
            OutboxEmail.update(skipped_at=now, skip_reason=reason).where(
                OutboxEmail.id == outbox_id).execute()


def mark_failed(outbox_id: int, *, error: str, now: datetime) -> None:
    """Refused for good: never tried again, shown as failed in the panel."""
    OutboxEmail.update(failed_at=now, last_error=error[:2000]).where(
        OutboxEmail.id == outbox_id).execute()


def release(outbox_ids: list[int], *, error: str, now: datetime,
            backoff: list[int]) -> set[int]:
    """A transient failure: free the rows for the retry, not before their next try (by how
    many attempts each has had); rows whose tries are used up fail for good (returned)."""
    rows = OutboxEmail.select(OutboxEmail.id, OutboxEmail.attempts).where(
        OutboxEmail.id.in_(outbox_ids)).tuples()
    failed = set()
    for outbox_id, attempts in rows:
        if attempts > len(backoff):
            mark_failed(outbox_id, error=f"gave up after {attempts} attempts: {error}", now=now)
            failed.add(outbox_id)
            continue
        log.warning("outbox %d: attempt %d failed, next in %ds: %s", outbox_id, attempts,
                    backoff[attempts - 1], error)
        OutboxEmail.update(claimed_at=None, last_error=error[:2000],
                           retry_at=now + timedelta(seconds=backoff[attempts - 1])).where(
            OutboxEmail.id == outbox_id, OutboxEmail.sent_at.is_null()).execute()
    return failed
