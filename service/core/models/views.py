"""The panel's saved views: a user's named filters and sort on one list."""

from __future__ import annotations

import peewee as pw

from service.core.db import BaseModel, UTCDateTimeField, utcnow
from service.core.models.system import User


class SavedView(BaseModel):
    user = pw.ForeignKeyField(User, backref="saved_views", on_delete="CASCADE")
    endpoint = pw.CharField(max_length=64)  # the list's panel endpoint: lead, pending…
    name = pw.CharField(max_length=80)
    query = pw.TextField(default="")  # the list's own arguments only, urlencoded
    created_at = UTCDateTimeField(default=utcnow)


    class Meta:
        indexes = ((("user", "endpoint", "name"), True),)
