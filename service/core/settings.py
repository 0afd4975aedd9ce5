"""The settings model: every key, its type and its default, written once. Sections are
nested models (`settings.sla.decision_hours`); tables a deployment fills in (`forms`,
`nurture.sequences`, …) stay dicts. Secrets are SecretStr and come only from the
environment (config.load refuses them in the file). Cross-checks (settings_checks) are
validators that raise ConfigError with one line naming the key."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.core.settings_checks import (
    TEAM_KEYS,
    ConfigError,
    check_assignment,
    check_inbound,
    check_mail_addresses,
    check_references,
    check_send_hours,
    check_sequences,
)

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
NO_SECRET = SecretStr("")


class Section(BaseModel):
    # strict: a value of the wrong type is refused, never coerced ("5000" is not a port);
    # frozen: settings are built once at start and only read after.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Web(Section):
    host: str = "127.0.0.1"
    port: int = 5000
    base_url: str = ""
    workers: int = 2
    threads: int = 4
    secret_key: SecretStr = NO_SECRET
    # /api/v1/leads?changed_since pages only hand out changes at least this old: a change
    # stamped earlier may commit after a later one (see service/web/cursors.py).
    lead_poll_settle_seconds: float = Field(default=5.0, ge=0, le=3600)


class Database(Section):
    url: str = ""


class Redis(Section):
    url: str = ""
    queue: str = "leadbridge"


class Mail(Section):
    transport: Literal["capture", "smtp"] = "capture"
    from_address: str
    from_name: str = "Leadbridge"
    smtp_host: str = "localhost"
    smtp_port: int = 587
    smtp_security: Literal["starttls", "ssl", "none"] = "starttls"
    smtp_username: str = ""
    smtp_password: SecretStr = NO_SECRET
    smtp_timeout: float = 30.0
    connections: int = Field(default=4, ge=1, le=32)
    postal_address: str
    unsubscribe_mailto: str = ""
    reply_to: str = ""

    @model_validator(mode="after")
    def _addresses_are_one_each(self) -> Mail:
        check_mail_addresses(self)
        return self


class Outbox(Section):
    requeue_after_seconds: int = 60
    claim_seconds: int = 90
    retry_seconds: list[int] = [60, 300, 900, 1800, 3600, 7200, 14400, 28800]

    @field_validator("retry_seconds")
    @classmethod
    def _whole_seconds(cls, retries: list[int]) -> list[int]:
        if not retries or not all(n > 0 for n in retries):
            raise ConfigError("outbox.retry_seconds must list whole seconds above 0, "
                              "one per retry")
        return retries


class Sla(Section):
    decision_hours: float = 8.0
    remind_at: float = 0.5
    escalate_at: float = 1.0
    reassign_at: float = 0.0
    calendar: Literal["business", "24x7"] = "business"
    time_zone: str = "UTC"
    working_days: list[str] = ["mon", "tue", "wed", "thu", "fri"]
    working_hours: str = "09:00-17:00"
    holidays_country: str = ""
    holidays_subdivision: str = ""
    closed_dates: list[date | str] = []
    teams: dict[str, Any] = {}
    max_reassignments: int = 2

    def for_team(self, team_name: str | None) -> dict[str, Any]:
        """The [sla] values a team's handoffs run on: [sla.teams.<name>] over [sla]."""
        values = {key: getattr(self, key) for key in TEAM_KEYS}
        values.update(self.teams.get(team_name or "", {}))
        return values


class Handoff(Section):
    link_ttl_hours: float = 168.0
    queue_link_ttl_hours: float = 168.0
    morning_email_time: str = "08:00"
    accept_requires: list[str] = ["need"]
    auto_promoter: str = ""
    reject_reasons: dict[str, Any] = {}

    @field_validator("morning_email_time")
    @classmethod
    def _hour_and_minute(cls, value: str) -> str:
        if value and not re.fullmatch(r"([01][0-9]|2[0-3]):[0-5][0-9]", value):
            raise ConfigError("handoff.morning_email_time must be HH:MM (24 h), or empty "
                              "to send no morning email")
        return value

    @field_validator("queue_link_ttl_hours")
    @classmethod
    def _positive(cls, value: float) -> float:
        if not value > 0:
            raise ConfigError("handoff.queue_link_ttl_hours must be above 0")
        return value


class Assignment(Section):
    rules: list[Any] = []
    default_team: str = ""

    @field_validator("rules")
    @classmethod
    def _rules_name_lead_fields(cls, rules: list) -> list:
        check_assignment(rules)
        return rules


class Intake(Section):
    activity_types: list[str] = [
        "page_view", "pricing_page_view", "content_download", "webinar_registered",
        "webinar_attended", "demo_video_watched", "form_submit", "email_click",
        "trial_signup", "contact_sales", "email_reply"]
    form_rate_per_minute: int = 20
    max_body_kib: int = 256
    trust_proxy: bool = False
    dedupe_window_days: int = Field(default=7, ge=1)


class Webhooks(Section):
    sources: dict[str, Any] = {}


class Tracking(Section):
    sources: list[str] = []
    events: dict[str, Any] = {}
    pages: dict[str, Any] = {}
    page_default: str = "page_view"
    track_default: str = ""


class Scoring(Section):
    points: dict[str, Any] = {}
    half_life_days: float = 30.0
    suggest_threshold: float = 50.0
    auto_promote: bool = False

    @model_validator(mode="after")
    def _points_and_decay(self) -> Scoring:
        for kind, points in self.points.items():
            if not isinstance(points, int | float) or isinstance(points, bool):
                raise ConfigError(f"scoring.points.{kind} must be a number, got {points!r}")
        if self.half_life_days <= 0:
            raise ConfigError("scoring.half_life_days must be above 0")
        return self


class Nurture(Section):
    sequences: dict[str, Any] = {}
    default_sequence: str = "default"
    time_zone: str = "UTC"
    send_days: list[str] = ["mon", "tue", "wed", "thu", "fri"]
    send_hours: str = "09:00-17:00"
    high_intent_types: list[str] = ["pricing_page_view", "contact_sales", "trial_signup",
                                    "demo_video_watched", "email_reply"]
    auto_repromote: bool = False
    notify: list[str] = []

    @model_validator(mode="after")
    def _sending_window_and_sequences(self) -> Nurture:
        check_send_hours(self)
        check_sequences(self)
        return self


class EmailEvents(Section):
    soft_bounce_limit: int = 3
    soft_bounce_days: int = 14
    postmark_token: SecretStr = NO_SECRET
    mailgun_signing_key: SecretStr = NO_SECRET
    sendgrid_public_key: str = ""
    ses_topic_arns: list[str] = []
    ses_certificate_file: str = ""


class Inbound(Section):
    """Replies: the address they come back to, the IMAP mailbox to read, the providers'
    inbound webhooks. All empty: no reply address, nothing read (issue 9's Reply-To)."""
    reply_address: str = ""
    reply_days: int = 180
    max_message_kib: int = 10240
    imap_url: str = ""
    imap_password: SecretStr = NO_SECRET
    imap_processed_folder: str = "Leadbridge/Processed"
    imap_poll_seconds: int = 60
    imap_idle: bool = True
    authserv_id: str = ""
    postmark_password: SecretStr = NO_SECRET
    sendgrid_password: SecretStr = NO_SECRET
    ses_topic_arns: list[str] = []

    @model_validator(mode="after")
    def _addresses(self) -> Inbound:
        check_inbound(self)
        return self


class Outbound(Section):
    """Webhooks Leadbridge sends (issue: tell the rest of the stack)."""
    allow_private_urls: bool = False  # loopback and private networks (tests, on-premise CRMs)
    timeout_seconds: float = 15.0
    # Like Svix: at once, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h; then failed.
    retry_seconds: list[int] = [0, 5, 300, 1800, 7200, 18000, 36000, 36000]
    disable_after_days: float = 5.0
    secret_grace_hours: float = 24.0
    claim_seconds: int = 60
    response_excerpt_bytes: int = 1024

    @field_validator("retry_seconds")
    @classmethod
    def _schedule(cls, value: list[int]) -> list[int]:
        if not value or any(seconds < 0 for seconds in value):
            raise ConfigError("outbound.retry_seconds must be a non-empty list of seconds >= 0")
        return value


class Reports(Section):
    benchmark_months: int = 6
    conversion_low: float = 0.2
    conversion_high: float = 0.6
    volume_tolerance: float = 0.3
    time_zone: str = "UTC"
    digest_day: Day = "mon"
    digest_time: str = "08:00"
    digest_recipients: list[str] = []

    @model_validator(mode="after")
    def _benchmark_and_band(self) -> Reports:
        if not 6 <= self.benchmark_months <= 12:
            raise ConfigError("reports.benchmark_months must be from 6 to 12")
        if not 0 <= self.conversion_low < self.conversion_high <= 1:
            raise ConfigError("reports.conversion_low and conversion_high must satisfy "
                              "0 <= low < high <= 1")
        return self


class Logging(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"


class Metrics(Section):
    key: SecretStr = NO_SECRET


class Settings(BaseSettings):
    """All of Leadbridge's settings; config.load() builds one from the layers."""

    model_config = SettingsConfigDict(extra="forbid", strict=True, frozen=True,
                                      env_prefix="LEADBRIDGE_", env_nested_delimiter="__")

    data_dir: str = "./var"
    web: Web = Web()
    database: Database = Database()
    redis: Redis = Redis()
    mail: Mail
    outbox: Outbox = Outbox()
    sla: Sla = Sla()
    handoff: Handoff = Handoff()
    assignment: Assignment = Assignment()
    forms: dict[str, Any] = {}
    intake: Intake = Intake()
    webhooks: Webhooks = Webhooks()
    tracking: Tracking = Tracking()
    scoring: Scoring = Scoring()
    nurture: Nurture = Nurture()
    email_events: EmailEvents = EmailEvents()
    inbound: Inbound = Inbound()
    outbound: Outbound = Outbound()
    reports: Reports = Reports()
    logging: Logging = Logging()
    metrics: Metrics = Metrics()

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, **_other_sources):
        # config.load() layers the file, the environment and the overrides key by key (a
        # table given later replaces the earlier one whole) and passes the result in.
        return (init_settings,)

    @field_validator("forms")
    @classmethod
    def _form_fields_are_tables(cls, forms: dict) -> dict:
        for slug, form in forms.items():
            if not isinstance(form, dict) or not isinstance(form.get("fields", {}), dict):
                raise ConfigError(f"forms.{slug}.fields must be a table of form field = "
                                  "lead field")
        return forms

    @model_validator(mode="after")
    def _references_agree(self) -> Settings:
        check_references(self)
        return self


@dataclass(frozen=True)
class Key:
    """One dotted key as the file, the environment and the README name it."""
    name: str
    kind: type  # how an environment variable's text is read: str, int, float, bool, list, dict
    default: Any  # REQUIRED for a key without one
    secret: bool = False
    choices: tuple = ()


REQUIRED = object()


def _keys(model: type[BaseModel], prefix: str = "") -> dict[str, Key]:
    found = {}
    for field, info in model.model_fields.items():
        kind = info.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            found.update(_keys(kind, f"{prefix}{field}."))
            continue
        choices = get_args(kind) if get_origin(kind) is Literal else ()
        plain = str if choices or kind is SecretStr else get_origin(kind) or kind
        default = REQUIRED if info.is_required() else info.default
        found[prefix + field] = Key(prefix + field, plain, default, kind is SecretStr, choices)
    return found


KEYS: dict[str, Key] = _keys(Settings)
TABLES = {name for name, key in KEYS.items() if key.kind is dict}
SECRETS = {name for name, key in KEYS.items() if key.secret}
SECTIONS = {name.split(".")[0] for name in KEYS if "." in name}
