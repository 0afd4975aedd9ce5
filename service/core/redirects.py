"""The one gate for every redirect Leadbridge answers: a target is used only when it is a
same-origin relative path under a known prefix (the panel), exactly one of the absolute URLs
the operator configured, or an absolute URL Leadbridge signed itself (tracked links)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit

LONGEST = 2048
# Control characters, any whitespace and backslashes: browsers drop or rewrite them (a tab
# inside "/\t/evil" makes "//evil", "\" counts as "/"), so no target may hold them.
UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\\]|\s")


def redirect_target(target: object, *, under: str | None = None, allowed: Iterable[str] = (),
                    signed: bool = False, default: str | None = None) -> str | None:
    """target when it is safe to send a browser to, else default.

    under: accept a relative path starting with this prefix ("/admin"), nothing absolute;
    allowed: accept exactly these absolute URLs (the configuration's);
    signed: accept any absolute http(s) URL (the caller checked our signature on it)."""
    if not isinstance(target, str) or not target or len(target) > LONGEST:
        return default
    if UNSAFE.search(target):
        return default
    if under is not None and _local(target, under):
        return target
    if (signed or target in allowed) and _absolute(target):
        return target
    return default


def _decoded(text: str) -> str:
    """text with percent-escapes undone until nothing changes (encoded variants of the same
    tricks: %5C, %09, %252F…)."""
    for _ in range(5):
        decoded = unquote(text)
        if decoded == text:
            break
        text = decoded
    return text


def _local(target: str, under: str) -> bool:
    """A path under the prefix on this site: no scheme, no host, no "//", no dot segments,
    whatever the encoding."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or target.startswith("//"):
        return False
    prefix = under.rstrip("/")
    for path in (parts.path, _decoded(parts.path)):
        if path != prefix and not path.startswith(prefix + "/"):
            return False
        if UNSAFE.search(path) or "//" in path or any(
                segment in (".", "..") for segment in path.split("/")):
            return False
    return True


def _absolute(target: str) -> bool:
    parts = urlsplit(target)
    return parts.scheme in ("http", "https") and bool(parts.hostname) and target.startswith(
        f"{parts.scheme}://")
