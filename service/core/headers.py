"""The security headers every answer carries, for the Flask hook (service.security_headers)
and the intake lane (service.web.intake_lane) alike."""

from __future__ import annotations

from service.core import csp

SECURITY = (("X-Content-Type-Options", "nosniff"), ("X-Frame-Options", "SAMEORIGIN"),
            ("Referrer-Policy", "same-origin"))
HSTS = ("Strict-Transport-Security", "max-age=31536000")


def security_headers(present: set[str], *, secure: bool) -> list[tuple[str, str]]:
    """The defaults an answer lacks, given the (lower-case) names it has: a view that set its
    own (the sandboxed previews) keeps it. HSTS only over HTTPS."""
    missing = [(name, value) for name, value in SECURITY if name.lower() not in present]
    if "content-security-policy" not in present:
        missing.append(("Content-Security-Policy", csp.policy()))
    if secure and "strict-transport-security" not in present:
        missing.append(HSTS)
    return missing
