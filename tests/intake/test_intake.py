"""Identity normalisation: the fast path agrees with email-validator."""

from __future__ import annotations

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import given
from hypothesis import strategies as st

from service.core.addresses import normalise_email
from service.core.errors import InvalidInput


def reference(raw: str) -> str | None:
    try:
        return validate_email(raw.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        return None


def ours(raw: str) -> str | None:
    try:
        return normalise_email(raw)
    except InvalidInput:
        return None


@pytest.mark.parametrize("raw", [
    " Ada.Lovelace@Example.COM ", "a+tag@sub.example.co.uk", "x@localhost", "x@foo.test",
    "a..b@example.com", ".a@example.com", "a@-example.com", "a@example", "Ü@example.com",
    "a@bücher.de", '"quoted"@example.com', "a@[127.0.0.1]", "a" * 65 + "@example.com",
    "a@" + "b" * 64 + ".com", "no-at-sign", "@example.com", "a@", "a@b@example.com",
])
def test_known_cases_agree(raw):
    assert ours(raw) == reference(raw)


local = st.text(alphabet="abcXYZ019.+_-!#Ü\"@ ", min_size=0, max_size=70)
domain = st.text(alphabet="abcXYZ09.-ü_", min_size=0, max_size=70)


@given(local, domain)
def test_fast_path_agrees_with_email_validator(left, right):
    raw = f"{left}@{right}"
    assert ours(raw) == reference(raw)
