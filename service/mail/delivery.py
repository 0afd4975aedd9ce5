"""Delivering outbox rows: claim them, skip those that must not go (demo addresses,
suppressed prospects, stopped enrollments), compose each (its context from mail.emails,
rendered, headers built by mail.transport), send the batch over mail.connections SMTP
connections and mark the sent ones every MARK_EVERY messages. Everything the batch reads
(suppression, enrollments, template versions, owners) is read once for the batch.

Delivery is at least once: a worker killed after the server accepted an email and before
its row was marked sends it again once its claim lapses (outbox.claim_seconds), so at most
MARK_EVERY emails, plus transport.IN_FLIGHT per connection, go twice."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

import peewee
from markupsafe import Markup
from peewee import JOIN
from rq.timeouts import JobTimeoutException

from service.content.emails import stored_versions
from service.core import metrics, outbox
from service.core.models import Enrollment, Lead, OutboxEmail
from service.core.settings import Settings
from service.lifecycle import EnrollmentStatus
from service.mail import transport as mail
from service.mail.emails import (
    CONTEXTS,
    UNKEPT,
    owners_of,
    prospect,
    reply_to,
    unsubscribe_headers,
)
from service.nurture.suppression import suppressed_among

log = logging.getLogger(__name__)


MARK_EVERY = 10  # sent rows marked per transaction (the most a killed worker sends twice)


@dataclass(frozen=True)
class Known:
    """What a batch's emails read, read once for the batch: the template versions prospect
    mail renders, by (name, version), and the owners of their leads."""

    stored: dict[tuple[str, int], dict]
    owners: dict[int, tuple[str, str]]

    @classmethod
    def of(cls, rows: list[OutboxEmail]) -> Known:
        prospects = [row for row in rows if row.to_prospect]
        return cls(stored_versions({key for row in prospects if (key := _version(row))}),
                   owners_of([row.lead_id for row in prospects if row.lead_id is not None]))


def _version(row: OutboxEmail) -> tuple[str, int] | None:
    number = row.context.get("template_version") if isinstance(row.context, dict) else None
    if type(number) is not int:
        return None
    return row.template.removeprefix("nurture/"), number


def compose(row: OutboxEmail, settings: Settings, secret: str, known: Known | None = None):
    build = prospect if row.to_prospect else CONTEXTS[row.template]
    context = {**row.context, **build(row, settings, secret)}
    stored = known.stored.get(_version(row)) if known and row.to_prospect else None
    subject, text, html = mail.render(row.template, context, stored=stored)
    headers = unsubscribe_headers(row, settings, secret) if row.to_prospect else {}
    if answer_to := reply_to(row, settings, secret, known.owners if known else None):
        headers["Reply-To"] = mail.address(*answer_to)
    message = mail.build_message(
        sender=settings.mail.from_address, sender_name=settings.mail.from_name,
        to_address=row.to_address, to_name=row.to_name, message_id=row.message_id,
        subject=subject, text=text, html=html, headers=headers)
    return message, subject, text, html


def preview_html(row: OutboxEmail, settings: Settings, secret: str) -> str:
    """What the panel shows of an email: the copy sent, else the email as it would go now; a
    row that cannot be composed shows why instead."""
    if row.sent_at:
        return row.body_html
    parts = compose_or_why(row, settings, secret)
    if isinstance(parts, str):
        return str(Markup("<p>This email cannot be shown: {}</p>").format(
            row.last_error or parts))
    return parts[3]


def skip_reasons(rows: list[OutboxEmail]) -> dict[int, str]:
    """Why emails must not go out now, whatever queued them: the address is a demo one; or,
    for prospect mail, it is suppressed, or the enrollment that queued it was stopped."""
    reasons = {row.id: outbox.DEMO_SKIP for row in rows
               if outbox.reserved_for_demo(row.to_address)}
    prospects = [row for row in rows if row.to_prospect and row.id not in reasons]
    if prospects:
        reasons.update(prospect_skips(prospects))
    return reasons


def prospect_skips(prospects: list[OutboxEmail]) -> dict[int, str]:
    blocked = suppressed_among([row.to_address for row in prospects])
    live = {row.id for row in Enrollment.select(Enrollment.id).where(
        Enrollment.id.in_([r.enrollment for r in prospects if r.enrollment is not None]),
        Enrollment.status != EnrollmentStatus.STOPPED)}
    reasons = {}
    for row in prospects:
        if row.to_address.lower() in blocked:
            reasons[row.id] = "suppressed"
        elif row.enrollment is not None and row.enrollment not in live:
            reasons[row.id] = "enrollment stopped"
    return reasons


# Errors of the moment (the database, the disk, the job's time limit): the row is tried
# again. Any other error composing a row means it can never be sent as it stands.
TRANSIENT = (peewee.DatabaseError, peewee.InterfaceError, OSError, JobTimeoutException)


def compose_or_why(row: OutboxEmail, settings: Settings, secret: str,
                   known: Known | None = None):
    """compose(), or why the row can never be composed as it stands (a str); an error of the
    moment (TRANSIENT) raises, so the row is tried again."""
    try:
        return compose(row, settings, secret, known)
    except TRANSIENT:
        raise
    except Exception as exc:
        return f"cannot be composed: {type(exc).__name__}: {exc}"


def composed(row: OutboxEmail, settings: Settings, secret: str, now: datetime, known: Known):
    """compose() for a row of a batch; a row that cannot be composed fails for good (its
    reason shown in the panel's outbox) and None is returned, so the rest of the batch goes."""
    parts = compose_or_why(row, settings, secret, known)
    if isinstance(parts, str):
        log.warning("outbox %d %s", row.id, parts)
        outbox.mark_failed(row.id, error=parts, now=now)
        return None
    return parts


def deliver(outbox_ids: list[int], *, settings: Settings, secret: str, now: datetime) -> int:
    """Send the rows this call can claim; return how many were sent."""
    claimed = outbox.claim(outbox_ids, now=now, claim_seconds=settings.outbox.claim_seconds)
    rows = list(OutboxEmail.select(OutboxEmail, Lead).join(Lead, JOIN.LEFT_OUTER)
                .where(OutboxEmail.id.in_(claimed)).order_by(OutboxEmail.id))
    skips = skip_reasons(rows)
    outbox.mark_skipped(skips, now=now)
    sending = [row for row in rows if row.id not in skips]
    outcomes = Counter()
    batch = _Composing(sending, Known.of(sending), outcomes, settings=settings, secret=secret,
                       now=now)
    try:
        return _send(batch, outcomes, settings=settings, now=now)
    finally:
        for (outcome, template), count in outcomes.items():
            metrics.add(f"leadbridge_emails_{outcome}_total", count, template=template)


class _Composing:
    """The rows of a batch, each composed as the transport takes it, so composing one
    overlaps sending those before it; a row that cannot be composed fails alone
    (composed()) and is left out."""

    def __init__(self, rows: list[OutboxEmail], known: Known, outcomes: Counter, *,
                 settings: Settings, secret: str, now: datetime):
        self.rows, self.known, self.outcomes = rows, known, outcomes
        self.settings, self.secret, self.now = settings, secret, now
        self.templates = {row.id: row.template for row in rows}
        self.parts: dict[int, tuple] = {}  # id → (message, subject, text, html)
        self.failed: set[int] = set()

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        for row in self.rows:
            parts = composed(row, self.settings, self.secret, self.now, self.known)
            if parts is None:
                self.failed.add(row.id)
                self.outcomes["failed", row.template] += 1
                continue
            self.parts[row.id] = parts
            yield row.id, parts[0]


class _Marks:
    """Rows the server accepted, marked sent every MARK_EVERY and when the batch ends."""

    def __init__(self, now: datetime):
        self.now, self.waiting, self.marked = now, {}, 0

    def add(self, outbox_id: int, kept: tuple[str, str, str]) -> None:
        self.waiting[outbox_id] = kept
        if len(self.waiting) >= MARK_EVERY:
            self.flush()

    def flush(self) -> None:
        waiting, self.waiting = self.waiting, {}
        outbox.mark_sent(waiting, now=self.now)
        self.marked += len(waiting)


def _send(batch: _Composing, outcomes: Counter, *, settings: Settings, now: datetime) -> int:
    if not len(batch):
        return 0
    templates, answered, marks = batch.templates, set(), _Marks(now)

    def report(outbox_id: int, refusal: str | None) -> None:
        answered.add(outbox_id)
        if refusal:
            log.warning("outbox %d refused for good: %s", outbox_id, refusal)
            outbox.mark_failed(outbox_id, error=refusal, now=now)
            outcomes["failed", templates[outbox_id]] += 1
            return
        _, subject, text, html = batch.parts[outbox_id]
        if templates[outbox_id] in UNKEPT:
            text = html = "(not kept: it held a one-time link)"
        marks.add(outbox_id, (subject, text, html))
        outcomes["sent", templates[outbox_id]] += 1

    try:
        mail.transport(settings).send(batch, report)
    except mail.TransientError as exc:
        marks.flush()
        unanswered = [i for i in templates if i not in answered and i not in batch.failed]
        failed = outbox.release(unanswered, error=str(exc), now=now,
                                backoff=settings.outbox.retry_seconds)
        for outbox_id in unanswered:
            outcomes["failed" if outbox_id in failed else "retried", templates[outbox_id]] += 1
        raise
    finally:
        marks.flush()
    return marks.marked
