"""Fields and id makers shared by the tables."""

from __future__ import annotations

import secrets

import peewee as pw

from service.core import jsontext


class JSONField(pw.TextField):
    def db_value(self, value):
        return None if value is None else jsontext.dumps(value, sort_keys=True)


    def python_value(self, value):
        return None if value is None else jsontext.loads(value)


def new_public_id() -> str:
    return secrets.token_urlsafe(12)


def new_session_token() -> str:
    return secrets.token_hex(16)
