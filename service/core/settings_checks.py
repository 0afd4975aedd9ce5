"""The settings' cross-checks, run as validators of the model in settings.py: each
refusal is one line naming the key. They borrow the parsers the settings feed (the SLA
calendar, the mail address writer) so a value is refused at start, not at first use. Each
takes the model (or one of its sections) being validated; settings.py, which imports this
module, defines their types."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import email_templates
from service.core.addresses import mailbox
from service.core.calendar import DAYS, calendar_from, hours_from


class ConfigError(Exception):
    """A configuration problem, with the key it concerns in the message."""


ASSIGNABLE = ("first_name", "last_name", "company", "title", "phone", "country",
              "company_size", "industry", "utm_source", "utm_campaign", "source")


def check_references(settings) -> None:
    """The checks across sections: names one section uses must exist in another."""
    sequences = settings.nurture.sequences
    for code, reason in settings.handoff.reject_reasons.items():
        where = f"handoff.reject_reasons.{code}"
        if not isinstance(reason, dict) or not reason.get("label"):
            raise ConfigError(f"{where} needs a label")
        outcome = reason.get("outcome", "")
        if outcome == "disqualify":
            continue
        if not outcome.startswith("nurture:") or outcome[8:] not in sequences:
            raise ConfigError(f"{where}.outcome must be 'disqualify' or 'nurture:<sequence>' "
                              f"naming a sequence in nurture.sequences, got {outcome!r}")
    check_sla(settings)
    check_activity_types(settings)
    automatic = settings.scoring.auto_promote or settings.nurture.auto_repromote
    if automatic and "@" not in settings.handoff.auto_promoter:
        raise ConfigError("handoff.auto_promoter must be an email while scoring.auto_promote or "
                          "nurture.auto_repromote is on: the person who hears sales' decisions "
                          "on automatic promotions")
    if settings.outbox.claim_seconds <= settings.mail.smtp_timeout * 2:
        raise ConfigError("outbox.claim_seconds must be more than twice mail.smtp_timeout")
    if settings.outbound.claim_seconds <= settings.outbound.timeout_seconds * 2:
        raise ConfigError("outbound.claim_seconds must be more than twice "
                          "outbound.timeout_seconds: a webhook send job starts no attempt "
                          "that could end after half the claim")


def check_activity_types(settings) -> None:
    types = set(settings.intake.activity_types)
    tracking = settings.tracking
    mapped = [("tracking.events", t) for t in tracking.events.values()]
    mapped += [("tracking.pages", t) for t in tracking.pages.values()]
    mapped += [("scoring.points", t) for t in settings.scoring.points]
    for key in ("page_default", "track_default"):
        if getattr(tracking, key):
            mapped.append((f"tracking.{key}", getattr(tracking, key)))
    for where, kind in mapped:
        if kind not in types:
            raise ConfigError(f"{where}: activity type {kind!r} is not in intake.activity_types")


def check_mail_addresses(mail) -> None:
    """Addresses every email carries: one that cannot be written would fail them all."""
    for name in ("from_address", "reply_to"):
        if getattr(mail, name) or name == "from_address":
            try:
                mailbox(getattr(mail, name))
            except ValueError as exc:
                raise ConfigError(f"mail.{name}: {exc}") from None


def check_inbound(inbound) -> None:
    """A reply address takes +tokens after its local part; an IMAP URL names a user and a
    host, never a password (that is inbound.imap_password, from the environment)."""
    if inbound.reply_address:
        try:
            address = mailbox(inbound.reply_address)
        except ValueError as exc:
            raise ConfigError(f"inbound.reply_address: {exc}") from None
        if "+" in address.partition("@")[0] or len(address.partition("@")[0]) > 30:
            raise ConfigError("inbound.reply_address: the part before @ must be at most 30 "
                              "characters without '+' (replies come to <it>+<token>@…)")
    if inbound.imap_url:
        url = urlsplit(inbound.imap_url)
        if url.scheme not in ("imap", "imaps") or not url.hostname or not url.username:
            raise ConfigError("inbound.imap_url must look like imaps://user@host:993/INBOX")
        if url.password is not None:
            raise ConfigError("inbound.imap_url: leave the password out; set "
                              "LEADBRIDGE_INBOUND__IMAP_PASSWORD in the environment")
    for name in ("reply_days", "max_message_kib", "imap_poll_seconds"):
        if getattr(inbound, name) < 1:
            raise ConfigError(f"inbound.{name} must be at least 1")


def check_assignment(rules: list) -> None:
    for i, rule in enumerate(rules):
        where = f"assignment.rules[{i}]"
        if not isinstance(rule, dict) or not isinstance(rule.get("team"), str):
            raise ConfigError(f"{where} needs a team name")
        for name, wanted in rule.items():
            if name != "team" and name not in ASSIGNABLE:
                raise ConfigError(f"{where}: {name!r} is not a lead field "
                                  f"({', '.join(ASSIGNABLE)})")
            if name != "team" and not isinstance(wanted, str | list):
                raise ConfigError(f"{where}.{name} must be a value or a list of values")


# What [sla.teams.<name>] may override.
TEAM_KEYS = ("decision_hours", "remind_at", "escalate_at", "reassign_at", "calendar",
             "time_zone", "working_days", "working_hours", "holidays_country",
             "holidays_subdivision", "closed_dates")


def check_sla(settings) -> None:
    for team, overrides in settings.sla.teams.items():
        unknown = set(overrides) - set(TEAM_KEYS) if isinstance(overrides, dict) else {"?"}
        if unknown:
            raise ConfigError(f"sla.teams.{team}: unknown keys {', '.join(sorted(unknown))}")
    for team in ["", *settings.sla.teams]:
        where = f"sla.teams.{team}" if team else "sla"
        try:
            values = settings.sla.for_team(team)
            calendar = calendar_from(values)
            calendar.is_open_day(date(2026, 1, 1))
            calendar.window(date(2026, 1, 1))
        except (ValueError, KeyError, TypeError, NotImplementedError,
                ZoneInfoNotFoundError) as exc:
            raise ConfigError(f"{where}: {exc}") from None
        unknown_days = set(calendar.days) - set(DAYS)
        if unknown_days or not calendar.days:
            raise ConfigError(f"{where}.working_days must name days from {', '.join(DAYS)}")
        if values["decision_hours"] <= 0:
            raise ConfigError(f"{where}.decision_hours must be above 0")


def check_send_hours(nurture) -> None:
    try:
        hours_from(nurture.send_hours, "nurture.send_hours")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    try:
        ZoneInfo(nurture.time_zone)
    except (ValueError, ZoneInfoNotFoundError) as exc:
        raise ConfigError(f"nurture.time_zone: {exc}") from None
    if not nurture.send_days or set(nurture.send_days) - set(DAYS):
        raise ConfigError(f"nurture.send_days must name days from {', '.join(DAYS)}")


def check_sequences(nurture) -> None:
    root = Path(email_templates.__path__[0]) / "nurture"
    sequences = nurture.sequences
    if sequences and nurture.default_sequence not in sequences:
        raise ConfigError("nurture.default_sequence must name a sequence in nurture.sequences")
    for name, sequence in sequences.items():
        steps = sequence.get("steps") if isinstance(sequence, dict) else None
        if not isinstance(steps, list) or not steps:
            raise ConfigError(f"nurture.sequences.{name} needs a list of steps")
        for i, step in enumerate(steps):
            where = f"nurture.sequences.{name}.steps[{i}]"
            if not isinstance(step, dict) or not isinstance(step.get("subject"), str):
                raise ConfigError(f"{where} needs a subject")
            delay = step.get("delay_days")
            if not isinstance(delay, int) or isinstance(delay, bool) or delay < 0:
                raise ConfigError(f"{where}.delay_days must be a whole number of days, 0 or more")
            if not (root / str(step.get("template", "")) / "body.html").exists():
                raise ConfigError(f"{where}.template must name a folder in "
                                  f"email_templates/nurture/ with body.html and body.txt")
