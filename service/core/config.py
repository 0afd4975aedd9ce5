"""One config pipeline: code defaults, then the TOML file, then LEADBRIDGE_* variables,
then a mapping (tests). Every key is declared in SCHEMA; an unknown, mistyped or missing
key fails at start with a message naming it."""

from __future__ import annotations

import json
import os
import secrets
import stat
import tomllib
from contextlib import suppress
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

ENV_PREFIX = "LEADBRIDGE_"
REQUIRED = object()


class ConfigError(Exception):
    """A configuration problem, with the key it concerns in the message."""


@dataclass(frozen=True)
class Key:
    type: type
    default: Any = REQUIRED
    secret: bool = False
    choices: tuple = ()


SCHEMA: dict[str, Key] = {
    "data_dir": Key(str, "./var"),
    "web.host": Key(str, "127.0.0.1"),
    "web.port": Key(int, 5000),
    "web.base_url": Key(str, ""),
    "web.workers": Key(int, 2),
    "web.threads": Key(int, 4),
    "web.secret_key": Key(str, "", secret=True),
    "database.url": Key(str, ""),
    "redis.url": Key(str, ""),
    "redis.queue": Key(str, "leadbridge"),
    "mail.transport": Key(str, "capture", choices=("capture", "smtp")),
    "mail.from_address": Key(str),
    "mail.from_name": Key(str, "Leadbridge"),
    "mail.smtp_host": Key(str, "localhost"),
    "mail.smtp_port": Key(int, 587),
    "mail.smtp_security": Key(str, "starttls", choices=("starttls", "ssl", "none")),
    "mail.smtp_username": Key(str, ""),
    "mail.smtp_password": Key(str, "", secret=True),
    "mail.smtp_timeout": Key(float, 30.0),
    "mail.postal_address": Key(str),
    "mail.unsubscribe_mailto": Key(str, ""),
    "mail.reply_to": Key(str, ""),
    "outbox.requeue_after_seconds": Key(int, 60),
    "outbox.claim_seconds": Key(int, 90),
    "outbox.retry_seconds": Key(list, [60, 300, 900, 1800, 3600, 7200, 14400, 28800]),
    "sla.decision_hours": Key(float, 8.0),
    "sla.remind_at": Key(float, 0.5),
    "sla.escalate_at": Key(float, 1.0),
    "sla.reassign_at": Key(float, 0.0),
    "sla.calendar": Key(str, "business", choices=("business", "24x7")),
    "sla.time_zone": Key(str, "UTC"),
    "sla.working_days": Key(list, ["mon", "tue", "wed", "thu", "fri"]),
    "sla.working_hours": Key(str, "09:00-17:00"),
    "sla.holidays_country": Key(str, ""),
    "sla.holidays_subdivision": Key(str, ""),
    "sla.closed_dates": Key(list, []),
    "sla.teams": Key(dict, {}),
    "sla.max_reassignments": Key(int, 2),
    "handoff.link_ttl_hours": Key(float, 168.0),
    "assignment.rules": Key(list, []),
    "assignment.default_team": Key(str, ""),
    "handoff.accept_requires": Key(list, ["need"]),
    "handoff.auto_promoter": Key(str, ""),
    "handoff.reject_reasons": Key(dict, {}),
    "forms": Key(dict, {}),
    "intake.activity_types": Key(list, [
        "page_view", "pricing_page_view", "content_download", "webinar_registered",
        "webinar_attended", "demo_video_watched", "form_submit", "email_click",
        "trial_signup", "contact_sales"]),
    "intake.form_rate_per_minute": Key(int, 20),
    "intake.max_body_kib": Key(int, 256),
    "intake.trust_proxy": Key(bool, False),
    "webhooks.sources": Key(dict, {}),
    "tracking.sources": Key(list, []),
    "tracking.events": Key(dict, {}),
    "tracking.pages": Key(dict, {}),
    "tracking.page_default": Key(str, "page_view"),
    "tracking.track_default": Key(str, ""),
    "scoring.points": Key(dict, {}),
    "scoring.half_life_days": Key(float, 30.0),
    "scoring.suggest_threshold": Key(float, 50.0),
    "scoring.auto_promote": Key(bool, False),
    "nurture.sequences": Key(dict, {}),
    "nurture.default_sequence": Key(str, "default"),
    "nurture.time_zone": Key(str, "UTC"),
    "nurture.send_days": Key(list, ["mon", "tue", "wed", "thu", "fri"]),
    "nurture.send_hours": Key(str, "09:00-17:00"),
    "nurture.high_intent_types": Key(list, ["pricing_page_view", "contact_sales",
                                            "trial_signup", "demo_video_watched"]),
    "nurture.auto_repromote": Key(bool, False),
    "nurture.notify": Key(list, []),
    "email_events.soft_bounce_limit": Key(int, 3),
    "email_events.soft_bounce_days": Key(int, 14),
    "email_events.postmark_token": Key(str, "", secret=True),
    "email_events.mailgun_signing_key": Key(str, "", secret=True),
    "email_events.sendgrid_public_key": Key(str, ""),
    "email_events.ses_topic_arns": Key(list, []),
    "email_events.ses_certificate_file": Key(str, ""),
    "reports.benchmark_months": Key(int, 6),
    "reports.conversion_low": Key(float, 0.2),
    "reports.conversion_high": Key(float, 0.6),
    "reports.volume_tolerance": Key(float, 0.3),
    "reports.time_zone": Key(str, "UTC"),
    "reports.digest_day": Key(str, "mon", choices=("mon", "tue", "wed", "thu", "fri", "sat",
                                                   "sun")),
    "reports.digest_time": Key(str, "08:00"),
    "reports.digest_recipients": Key(list, []),
    "logging.level": Key(str, "INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR")),
    "logging.format": Key(str, "text", choices=("text", "json")),
    "metrics.key": Key(str, "", secret=True),
}
TABLES = {"handoff.reject_reasons", "forms", "nurture.sequences", "webhooks.sources",
          "tracking.events", "tracking.pages", "scoring.points", "sla.teams"}


def load(path: str | os.PathLike | None = None, overrides: dict | None = None,
         environ: dict | None = None) -> dict[str, Any]:
    """Return the settings as a flat mapping of dotted keys to checked values."""
    environ = os.environ if environ is None else environ
    explicit = path or environ.get(ENV_PREFIX + "CONFIG")
    file = Path(explicit or "config.toml")
    values = {k: key.default for k, key in SCHEMA.items()}
    if file.exists():
        values.update(_from_file(file))
    elif explicit:
        raise ConfigError(f"config file not found: {file}")
    elsewhere = {**_from_env(environ), **{name: _check(name, value, "overrides")
                                          for name, value in (overrides or {}).items()}}
    if file.exists() and "data_dir" not in elsewhere:
        # the file's ./var is the one beside it, wherever the command runs
        values["data_dir"] = os.path.normpath(file.resolve().parent / values["data_dir"])
    values.update(elsewhere)
    for name, value in values.items():
        if value is REQUIRED and not file.exists():
            raise ConfigError(f"no config file at {file.resolve()} (run in the folder with "
                              "config.toml, or pass --config FILE / set LEADBRIDGE_CONFIG)")
        if value is REQUIRED:
            raise ConfigError(f"missing config key {name} (set it in {file})")
    values["config_file"] = str(file.resolve()) if file.exists() else ""
    _check_references(values)
    return values


def _from_file(file: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(file.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from exc
    found = {}
    for name, value in _flatten(data):
        if name not in SCHEMA:
            raise ConfigError(f"unknown config key {name} in {file}")
        if SCHEMA[name].secret and value:
            env = ENV_PREFIX + name.upper().replace(".", "__")
            raise ConfigError(f"{name} is a secret: set {env} in the environment, not in {file}")
        found[name] = _check(name, value, str(file))
    return found


def _flatten(data: dict, prefix: str = ""):
    for name, value in data.items():
        dotted = prefix + name
        if isinstance(value, dict) and dotted not in TABLES:
            yield from _flatten(value, dotted + ".")
        else:
            yield dotted, value


def _from_env(environ) -> dict[str, Any]:
    found = {}
    for var, raw in environ.items():
        if not var.startswith(ENV_PREFIX) or var == ENV_PREFIX + "CONFIG":
            continue
        name = var[len(ENV_PREFIX):].lower().replace("__", ".")
        if name not in SCHEMA:
            raise ConfigError(f"unknown config key {name} (from {var})")
        found[name] = _check(name, _parse_env(SCHEMA[name].type, raw, var), var)
    return found


def _parse_env(kind: type, raw: str, var: str) -> Any:
    if kind is str:
        return raw
    if kind is bool:
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError(f"{var} must be true or false, got {raw!r}")
    if kind in (list, dict) and raw.strip()[:1] in "[{":
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{var} is not valid JSON: {exc}") from exc
    if kind is list:
        return [part.strip() for part in raw.split(",") if part.strip()]
    try:
        return kind(raw)
    except ValueError:
        raise ConfigError(f"{var} must be {kind.__name__}, got {raw!r}") from None


def _check(name: str, value: Any, origin: str) -> Any:
    key = SCHEMA.get(name)
    if key is None:
        raise ConfigError(f"unknown config key {name} (from {origin})")
    if key.type is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, key.type) or (key.type is int and isinstance(value, bool)):
        raise ConfigError(
            f"config key {name} must be {key.type.__name__}, got {value!r} (from {origin})")
    if key.choices and value not in key.choices:
        choices = ", ".join(key.choices)
        raise ConfigError(f"config key {name} must be one of {choices}, got {value!r}")
    return value


def _check_references(values: dict) -> None:
    sequences = values["nurture.sequences"]
    for code, reason in values["handoff.reject_reasons"].items():
        where = f"handoff.reject_reasons.{code}"
        if not isinstance(reason, dict) or not reason.get("label"):
            raise ConfigError(f"{where} needs a label")
        outcome = reason.get("outcome", "")
        if outcome == "disqualify":
            continue
        if not outcome.startswith("nurture:") or outcome[8:] not in sequences:
            raise ConfigError(f"{where}.outcome must be 'disqualify' or 'nurture:<sequence>' "
                              f"naming a sequence in nurture.sequences, got {outcome!r}")
    for slug, form in values["forms"].items():
        if not isinstance(form, dict) or not isinstance(form.get("fields", {}), dict):
            raise ConfigError(f"forms.{slug}.fields must be a table of form field = lead field")
    _check_assignment(values["assignment.rules"])
    _check_sla(values)
    _check_send_hours(values)
    _check_sequences(values)
    if not 6 <= values["reports.benchmark_months"] <= 12:
        raise ConfigError("reports.benchmark_months must be from 6 to 12")
    if not 0 <= values["reports.conversion_low"] < values["reports.conversion_high"] <= 1:
        raise ConfigError("reports.conversion_low and conversion_high must satisfy "
                          "0 <= low < high <= 1")
    types = set(values["intake.activity_types"])
    mapped = [("tracking.events", t) for t in values["tracking.events"].values()]
    mapped += [("tracking.pages", t) for t in values["tracking.pages"].values()]
    mapped += [("scoring.points", t) for t in values["scoring.points"]]
    for key in ("tracking.page_default", "tracking.track_default"):
        if values[key]:
            mapped.append((key, values[key]))
    for where, kind in mapped:
        if kind not in types:
            raise ConfigError(f"{where}: activity type {kind!r} is not in intake.activity_types")
    for kind, points in values["scoring.points"].items():
        if not isinstance(points, int | float) or isinstance(points, bool):
            raise ConfigError(f"scoring.points.{kind} must be a number, got {points!r}")
    if values["scoring.half_life_days"] <= 0:
        raise ConfigError("scoring.half_life_days must be above 0")
    automatic = values["scoring.auto_promote"] or values["nurture.auto_repromote"]
    if automatic and "@" not in values["handoff.auto_promoter"]:
        raise ConfigError("handoff.auto_promoter must be an email while scoring.auto_promote or "
                          "nurture.auto_repromote is on: the person who hears sales' decisions "
                          "on automatic promotions")
    _check_mail_addresses(values)
    retries = values["outbox.retry_seconds"]
    if not retries or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0
                              for n in retries):
        raise ConfigError("outbox.retry_seconds must list whole seconds above 0, one per retry")
    if values["outbox.claim_seconds"] <= values["mail.smtp_timeout"] * 2:
        raise ConfigError("outbox.claim_seconds must be more than twice mail.smtp_timeout")


def _check_mail_addresses(values: dict) -> None:
    """Addresses every email carries: one that cannot be written would fail them all."""
    from service.core.addresses import mailbox

    for name in ("mail.from_address", "mail.reply_to"):
        if values[name] or name == "mail.from_address":
            try:
                mailbox(values[name])
            except ValueError as exc:
                raise ConfigError(f"{name}: {exc}") from None


ASSIGNABLE = ("first_name", "last_name", "company", "title", "phone", "country",
              "company_size", "industry", "utm_source", "source")


def _check_assignment(rules: list) -> None:
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


def _check_sla(values: dict) -> None:
    from service.core import calendar
    from service.handoffs import sla

    for team, overrides in values["sla.teams"].items():
        unknown = set(overrides) - set(sla.KEYS) if isinstance(overrides, dict) else {"?"}
        if unknown:
            raise ConfigError(f"sla.teams.{team}: unknown keys {', '.join(sorted(unknown))}")
    for team in ["", *values["sla.teams"]]:
        where = f"sla.teams.{team}" if team else "sla"
        try:
            policy = sla.policy_for(values, team)
            policy.calendar.is_open_day(date(2026, 1, 1))
            policy.calendar.window(date(2026, 1, 1))
        except (ValueError, KeyError, TypeError, NotImplementedError,
                ZoneInfoNotFoundError) as exc:
            raise ConfigError(f"{where}: {exc}") from None
        unknown_days = set(policy.calendar.days) - set(calendar.DAYS)
        if unknown_days or not policy.calendar.days:
            days = ', '.join(calendar.DAYS)
            raise ConfigError(f"{where}.working_days must name days from {days}")
        if policy.decision_hours <= 0:
            raise ConfigError(f"{where}.decision_hours must be above 0")


def _check_send_hours(values: dict) -> None:
    from service.core import calendar

    try:
        calendar.hours_from(values["nurture.send_hours"], "nurture.send_hours")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    try:
        ZoneInfo(values["nurture.time_zone"])
    except (ValueError, ZoneInfoNotFoundError) as exc:
        raise ConfigError(f"nurture.time_zone: {exc}") from None
    if not values["nurture.send_days"] or set(values["nurture.send_days"]) - set(calendar.DAYS):
        raise ConfigError(f"nurture.send_days must name days from {', '.join(calendar.DAYS)}")


def _check_sequences(values: dict) -> None:
    import email_templates

    root = Path(email_templates.__path__[0]) / "nurture"
    sequences = values["nurture.sequences"]
    if sequences and values["nurture.default_sequence"] not in sequences:
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


def data_dir(settings: dict) -> Path:
    """The data folder: private to the user running Leadbridge (it holds the database, the
    secret key and captured mail with live decision links)."""
    path = Path(settings["data_dir"])
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    _make_private(path.resolve())
    return path


# What Leadbridge keeps in its data folder; only these are tightened, so a data_dir that
# points at a shared folder never has anything else of its owner's changed.
OWN = ("leadbridge.db", "leadbridge.db-wal", "leadbridge.db-shm", "secret_key",
       "first-admin.txt", "valkey_password", "mail", "valkey")


@cache
def _make_private(folder: Path) -> None:
    """Once per process: take group and others' access away from the folder and what
    Leadbridge keeps in it (folders 0700, files 0600 as written since; older versions wrote
    0755 and 0644)."""
    _owner_only(str(folder))
    for name in OWN:
        top = folder / name
        _owner_only(str(top))
        if top.is_dir() and not top.is_symlink():
            for parent, folders, files in os.walk(top):
                for entry in (*folders, *files):
                    _owner_only(os.path.join(parent, entry))


def _owner_only(path: str) -> None:
    with suppress(FileNotFoundError):  # gone meanwhile (SQLite removes its -wal and -shm)
        mode = os.lstat(path).st_mode
        if not stat.S_ISLNK(mode) and stat.S_IMODE(mode) & 0o077:
            os.chmod(path, stat.S_IMODE(mode) & 0o700)


def write_private(path: Path, data: bytes) -> None:
    """Write a file only its owner can read (0600 whatever the umask, made so at creation)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        os.fchmod(fd, 0o600)
        out.write(data)


MIN_SECRET_BYTES = 32


def secret_key(settings: dict) -> str:
    """The configured secret, else one generated once and kept in the data folder; one
    shorter than MIN_SECRET_BYTES is refused (it signs sessions and email links)."""
    if settings["web.secret_key"]:
        return _long_enough(settings["web.secret_key"], "LEADBRIDGE_WEB__SECRET_KEY")
    file = data_dir(settings) / "secret_key"
    try:
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _long_enough(file.read_text().strip(), str(file))
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_urlsafe(48))  # 64 bytes
    return file.read_text().strip()


def _long_enough(secret: str, origin: str) -> str:
    size = len(secret.strip().encode())  # spaces around a key are no secret
    if size < MIN_SECRET_BYTES:
        raise ConfigError(
            f"the secret key from {origin} has {size} bytes; it needs at least "
            f"{MIN_SECRET_BYTES} (make one with: python -c 'import secrets; "
            "print(secrets.token_urlsafe(48))')")
    return secret


def base_url(settings: dict) -> str:
    if settings["web.base_url"]:
        return settings["web.base_url"].rstrip("/")
    return f"http://{settings['web.host']}:{settings['web.port']}"
