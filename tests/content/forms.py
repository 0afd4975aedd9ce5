"""What a browser sends with a content form: its hidden fields (the version the form was
opened with, each step's id), as the page holds them."""

from __future__ import annotations

import html
import re

HIDDEN = re.compile(r"<input[^>]*\btype=\"hidden\"[^>]*>")
ATTRIBUTE = re.compile(r'\b(name|value)="([^"]*)"')


def hidden_fields(page: str) -> dict[str, str]:
    fields = {}
    for tag in HIDDEN.findall(page):
        attributes = dict(ATTRIBUTE.findall(tag))
        if "name" in attributes:
            fields[attributes["name"]] = html.unescape(attributes.get("value", ""))
    return fields
