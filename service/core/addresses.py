"""Email addresses from outside: normalise_email() for what we store (syntax-checked,
lower-cased), mailbox() for what we send to (exactly one addr-spec, IDNA domain)."""

from __future__ import annotations

import re
from functools import lru_cache

import idna
from email_validator import EmailNotValidError, validate_email

from service.core.errors import InvalidInput

ATOM_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*\Z")


@lru_cache(maxsize=16384)
def _checked_domain(domain: str) -> str | None:
    try:
        return validate_email(f"x@{domain}", check_deliverability=False).domain
    except EmailNotValidError:
        return None


def normalise_email(raw: object) -> str:
    """Trimmed, syntax-checked, lower-cased. Plain ASCII addresses take a fast path that
    checks each domain once (imports see the same few domains again and again)."""
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidInput("email is required")
    text = raw.strip()
    local, _, domain = text.rpartition("@")
    if len(text) <= 254 and len(local) <= 64 and ATOM_LOCAL.match(local):
        checked = _checked_domain(domain)
        if checked:
            return f"{local}@{checked}".lower()
    try:
        return validate_email(text, check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise InvalidInput(f"email is not valid: {exc}") from None


_ADDR_SPEC = re.compile(r'[^\s@,;:<>()\[\]"\\]+@[^\s@,;:<>()\[\]"\\]+')


def mailbox(email: object) -> str:
    """email as one sendable addr-spec: `local@domain`, a non-ASCII domain IDNA-encoded.
    ValueError for anything else (a list, a name, a line break, a second @, …), so a row
    holding such an address fails alone instead of reaching someone it should not."""
    if (not isinstance(email, str) or len(email) > 254 or not email.isprintable()
            or not _ADDR_SPEC.fullmatch(email)):
        raise ValueError(f"not one email address: {email!r}")
    local, _, domain = email.partition("@")
    if not local.isascii():
        raise ValueError(f"{email!r}: a non-ASCII local part needs SMTPUTF8, not supported")
    if not domain.isascii():
        domain = idna.encode(domain).decode("ascii")  # IDNAError is a ValueError
    return f"{local}@{domain}"
