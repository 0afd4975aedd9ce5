"""The one shape every intake source produces, and the lead fields it may carry."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from service.core import jsontext
from service.core.models import Lead
from service.core.text import one_line

COMPACT = '{"type":"'  # how orjson begins Event.to_json(); the standard library adds a space


@dataclass
class Event:
    """One activity in the shape every intake adapter produces."""
    type: str
    occurred_at: datetime
    properties: dict = field(default_factory=dict)
    raw: Any = None
    email: str | None = None
    fields: dict = field(default_factory=dict)
    anonymous_id: str | None = None
    user_id: str | None = None
    identify_only: bool = False


    def to_json(self) -> str:
        return jsontext.dumps({**vars(self), "occurred_at": self.occurred_at.isoformat()})


    @classmethod
    def from_json(cls, text: str) -> Event:
        values = _read(text)
        return cls(**{**values, "occurred_at": datetime.fromisoformat(values["occurred_at"])})


def _read(text: str):
    """What to_json wrote: compact text is orjson's, read by orjson (several times faster on
    the recording path, and exact: orjson writes no integer it cannot read back); the rest
    the standard library wrote (for orjson refused the value: a 65-bit integer), and reads."""
    if text.startswith(COMPACT):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return jsontext.loads(text)


def lead_fields(values: dict) -> dict:
    """Keep only known lead fields with non-empty text, each one line (no line breaks, tabs,
    NUL or other control characters: a name reaches email headers), bounded."""
    texts = {name: one_line(values[name])[:255].rstrip()
             for name in Lead.EDITABLE if _is_text(values.get(name))}
    return {name: text for name, text in texts.items() if text}


def _is_text(value) -> bool:
    """A value a lead field can hold: text or a number, not empty, not a flag, an object or
    a list (whose Python repr would be stored as if someone had typed it)."""
    return isinstance(value, str | int | float) and not isinstance(value, bool) and value != ""
