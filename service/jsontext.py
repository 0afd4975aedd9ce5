"""JSON text written by orjson, several times faster than the standard library on the intake
path (every accepted event is encoded before it is stored, and its activity again when
recorded). What orjson refuses (an integer over 64 bits, a lone surrogate) is written by the
standard library instead. Reading stays with the standard library, which keeps such integers
exact where orjson would turn them into floats."""

from __future__ import annotations

import json

import orjson

# Dates and dataclasses go through default=str, as the standard library writes them.
_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
loads = json.loads


def dumps(value, *, sort_keys: bool = False) -> str:
    option = _OPTIONS | (orjson.OPT_SORT_KEYS if sort_keys else 0)
    try:
        return orjson.dumps(value, default=str, option=option).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value, sort_keys=sort_keys, default=str)
