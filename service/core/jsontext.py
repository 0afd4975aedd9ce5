"""JSON text written by orjson, several times faster than the standard library on the intake
path (every accepted event is encoded before it is stored, and its activity again when
recorded). What orjson refuses (an integer over 64 bits, a lone surrogate) is written by the
standard library instead. Reading stays with the standard library, which keeps such integers
exact where orjson would turn them into floats.

What comes from outside is read by parse(): strict UTF-8, at most MAX_DEPTH levels of
nesting, finite numbers, and text we can store (no NUL, no lone UTF-16 surrogate)."""

from __future__ import annotations

import json
import math
import re

import orjson

# Dates and dataclasses go through default=str, as the standard library writes them.
_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
MAX_DEPTH = 64
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
loads = json.loads


class Unreadable(ValueError):
    """JSON from outside that is not valid, or not text we can store; the message says why."""


def dumps(value, *, sort_keys: bool = False) -> str:
    option = _OPTIONS | (orjson.OPT_SORT_KEYS if sort_keys else 0)
    try:
        return orjson.dumps(value, default=str, option=option).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value, sort_keys=sort_keys, default=str)


def parse(body: bytes | str):
    """The value of a JSON document from outside, or Unreadable with a clear reason."""
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
    except UnicodeDecodeError:
        raise Unreadable("body is not valid UTF-8") from None
    try:
        value = json.loads(text, parse_float=_finite, parse_constant=_constant)
    except RecursionError:
        raise Unreadable(f"JSON is nested deeper than {MAX_DEPTH} levels") from None
    except Unreadable:
        raise
    except ValueError as exc:  # JSONDecodeError, or an integer of over 4,300 digits
        raise Unreadable(f"body is not valid JSON: {exc}") from None
    if not _within_depth(value):
        raise Unreadable(f"JSON is nested deeper than {MAX_DEPTH} levels")
    if isinstance(body, str) or "\x00" in text or _RISKY_ESCAPE.search(text):
        _check_strings(value)
    return value


# Strict UTF-8 holds no surrogate: in a body of bytes, NUL or a lone surrogate can only come
# from a raw NUL or one of these escapes, so most bodies skip the look at every string (which
# took most of the parse of a batch of events).
_RISKY_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")


def _within_depth(value) -> bool:
    """At most MAX_DEPTH levels, read level by level over the containers only."""
    level = [value] if isinstance(value, _CONTAINERS) else []
    for _ in range(MAX_DEPTH):
        if not level:
            return True
        level = [child for item in level
                 for child in (item.values() if isinstance(item, dict) else item)
                 if isinstance(child, _CONTAINERS)]
    return not level


_CONTAINERS = (dict, list)  # a tuple: isinstance with `dict | list` took twice the time


def unstorable(text: str) -> str | None:
    """Why text from outside cannot be stored (NUL or a lone surrogate), or None."""
    found = UNSTORABLE.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return "text may not contain NUL (\\u0000) characters"
    return "text may not contain a lone UTF-16 surrogate (such as \\ud800)"


def _finite(literal: str) -> float:
    number = float(literal)
    if not math.isfinite(number):
        raise Unreadable(f"number {literal[:20]} is out of range")
    return number


def _constant(literal: str):
    raise Unreadable(f"{literal} is not a JSON number")


def _check_strings(value) -> None:
    """Every key and string storable; without recursion, whatever the depth."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            reason = unstorable(item)
            if reason:
                raise Unreadable(reason)
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
