"""The config pipeline: file, environment, overrides; clear errors naming the key."""

from __future__ import annotations

import re
import tomllib
from operator import attrgetter

import pytest

from service.core import config
from service.core.config import ConfigError
from tests.conftest import ROOT

SHIPPED = ROOT / "config.toml"


def load(env=None, overrides=None, path=SHIPPED):
    return config.load(path, overrides, environ=env or {})


HEADER = re.compile(r"^#? ?\[([^\]]+)\]$")  # [section], or # [section] for one left out
DEFAULT = re.compile(r"^# ([a-z_]+) = (.+)$")  # a default quoted: one space after the #
NAMED = re.compile(r"^# ([a-z_]+): ")  # a key named at the start of a comment
MENTION = re.compile(r"\b([a-z_]+\.[a-z_]+)\b|\b(LEADBRIDGE_[A-Z_]+)\b")


def quoted_defaults(lines: list[str]):
    """(key, value) for each `# key = value` line, a value running on over the following
    comment lines until it is one TOML value; then the mentioned keys, each as (key, None)."""
    section, rest = "", iter(lines)
    for line in rest:
        header = HEADER.match(line)
        if header:
            section = header.group(1) + "."
        elif match := DEFAULT.match(line):
            text = match.group(2)
            while (value := toml_value(text)) is None:
                text += next(rest).lstrip("#")
            yield section + match.group(1), value
        elif match := NAMED.match(line):
            yield section + match.group(1), None
        if line.startswith("#"):
            for dotted, variable in MENTION.findall(line):
                if dotted.split(".")[0] in config.SECTIONS:
                    yield dotted, None
                elif variable not in ("", "LEADBRIDGE_CONFIG", "LEADBRIDGE_SECTION__KEY"):
                    yield variable.removeprefix("LEADBRIDGE_").lower().replace("__", "."), None


def toml_value(text: str):
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return None


def test_shipped_config_sets_and_quotes_only_model_keys_and_defaults():
    listed = [name for name, _ in config._flatten(tomllib.loads(SHIPPED.read_text()))]
    assert set(listed) <= set(config.KEYS), "config.toml sets a key the model lacks"
    quoted = list(quoted_defaults(SHIPPED.read_text().splitlines()))
    assert len(quoted) > 60, "the defaults are quoted as `# key = value`"
    for name, value in quoted:
        assert name in config.KEYS, f"config.toml mentions {name}, which the model lacks"
        default = config.KEYS[name].default
        if value is not None:
            assert type(value) is type(default) and value == default, (
                f"config.toml quotes {name} = {value!r}; the model's default is {default!r}")
    assert set(config.KEYS) <= set(listed) | {name for name, _ in quoted}, (
        "config.toml leaves a key unmentioned")


def test_environment_overrides_file():
    settings = load({"LEADBRIDGE_MAIL__SMTP_PORT": "2525", "LEADBRIDGE_DATA_DIR": "/tmp/x",
                     "LEADBRIDGE_HANDOFF__ACCEPT_REQUIRES": "need,budget"})
    assert settings.mail.smtp_port == 2525
    assert settings.data_dir == "/tmp/x"
    assert settings.handoff.accept_requires == ["need", "budget"]
    assert settings.forms["contact"]["honeypot"] == "website"


@pytest.mark.parametrize("env, message", [
    ({"LEADBRIDGE_MAIL__SMTP_PORT": "abc"}, "LEADBRIDGE_MAIL__SMTP_PORT must be int"),
    ({"LEADBRIDGE_MAIL__SMTP_PROT": "1"}, "unknown config key mail.smtp_prot"),
    ({"LEADBRIDGE_MAIL__TRANSPORT": "pigeon"}, "mail.transport must be one of capture, smtp"),
])
def test_bad_environment_names_the_key(env, message):
    with pytest.raises(ConfigError, match=message):
        load(env)


def test_file_errors_name_the_key(tmp_path):
    file = tmp_path / "c.toml"
    mail = '[mail]\nfrom_address = "a@b.example"\npostal_address = "1 Road"\n'
    file.write_text(mail + 'smtp_prot = 1\n')
    with pytest.raises(ConfigError, match="unknown config key mail.smtp_prot"):
        load(path=file)
    file.write_text('[mail]\npostal_address = "1 Road"\n')
    with pytest.raises(ConfigError, match="missing config key mail.from_address"):
        load(path=file)
    file.write_text(mail + 'smtp_password = "hunter2"\n')
    with pytest.raises(ConfigError, match="LEADBRIDGE_MAIL__SMTP_PASSWORD"):
        load(path=file)
    file.write_text('[handoff.reject_reasons.x]\nlabel = "X"\noutcome = "nurture:nope"\n' + mail)
    with pytest.raises(ConfigError, match="handoff.reject_reasons.x.outcome"):
        load(path=file)
    with pytest.raises(ConfigError, match="config file not found"):
        load(path=tmp_path / "missing.toml")


def test_secret_generated_once_and_kept(tmp_path):
    settings = load(overrides={"data_dir": str(tmp_path)})
    first = config.secret_key(settings)
    assert len(first) > 40 and config.secret_key(settings) == first
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600
    from_env = load({"LEADBRIDGE_WEB__SECRET_KEY": "s3cret" * 6}, {"data_dir": str(tmp_path)})
    assert config.secret_key(from_env) == "s3cret" * 6


@pytest.mark.parametrize("switch", ["scoring.auto_promote", "nurture.auto_repromote"])
def test_automatic_promotion_names_who_it_acts_for(switch):
    with pytest.raises(ConfigError, match="handoff.auto_promoter must be an email"):
        load(overrides={switch: True})
    settings = load(overrides={switch: True, "handoff.auto_promoter": "mia@example.com"})
    assert settings.handoff.auto_promoter == "mia@example.com"


@pytest.mark.parametrize("name, value", [
    ("mail.from_address", "leadbridge@example.com, thief@evil.example"),
    ("mail.from_address", ""), ("mail.reply_to", "sales@example.com\r\nBcc: thief@evil.example")])
def test_addresses_every_email_carries_are_one_address_each(name, value):
    with pytest.raises(ConfigError, match=f"{name}: not one email address"):
        load(overrides={name: value})
    assert attrgetter(name)(load(overrides={name: "sales@example.com"})) == "sales@example.com"


def test_a_webhook_send_job_has_time_for_a_whole_attempt():
    with pytest.raises(ConfigError, match="outbound.claim_seconds must be more than twice "
                                          "outbound.timeout_seconds"):
        load(overrides={"outbound.timeout_seconds": 30.0})
    assert load(overrides={"outbound.timeout_seconds": 29.0}).outbound.timeout_seconds == 29.0
