"""JSON text written by orjson, several times faster than the standard library on the intake
path (every accepted event is encoded before it is stored, and its activity again when
recorded). What orjson refuses (an integer over 64 bits, a lone surrogate) is written by the
standard library instead. Reading a body from outside is orjson's too when the body holds
no run of 19 digits (an integer past 64 bits, which orjson would turn into a float); for
other bodies, and whenever orjson refuses one (as it does a number too large for a float),
the standard library reads it and says what is wrong.

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
    if isinstance(body, bytes) and not _may_hold_a_long_integer(body):
        try:
            value = orjson.loads(body)
        except orjson.JSONDecodeError:
            pass  # the standard library says what is wrong
        else:
            return _storable(value, b"\x00" in body or _RISKY_ESCAPE_BYTES.search(body))
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
    return _storable(value, isinstance(body, str) or "\x00" in text
                     or _RISKY_ESCAPE.search(text))


def _storable(value, risky: object):
    """value, or Unreadable: too deep, or (when the body was risky) holding a string we
    cannot store."""
    if not _within_depth(value):
        raise Unreadable(f"JSON is nested deeper than {MAX_DEPTH} levels")
    if risky:
        _check_strings(value)
    return value


# Strict UTF-8 holds no surrogate: in a body of bytes, NUL or a lone surrogate can only come
# from a raw NUL or one of these escapes, so most bodies skip the look at every string (which
# took most of the parse of a batch of events).
_RISKY_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")
_RISKY_ESCAPE_BYTES = re.compile(_RISKY_ESCAPE.pattern.encode())
# Every digit as 0, then one search: a regular expression for 19 digits took five times
# as long as orjson's reading of the whole body.
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")


def _may_hold_a_long_integer(body: bytes) -> bool:
    """A run of 19 digits: an integer past 64 bits, which orjson would read as a float."""
    return b"0" * 19 in body.translate(_DIGITS_AS_ZERO)


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
