"""Content the team edits in the panel (service.content): each change a new version."""

from __future__ import annotations

import peewee as pw

from service.core.db import BaseModel, UTCDateTimeField, utcnow
from service.core.models.fields import JSONField


class ContentVersion(BaseModel):
    """One version of a nurture sequence, a prospect email template or the reject reasons
    (kind), named by key; the highest version of a (kind, key) is the current one."""
    KINDS = ("sequence", "template", "reject_reasons")
    kind = pw.CharField(max_length=20)
    key = pw.CharField(max_length=80)
    version = pw.IntegerField()
    data = JSONField()
    author = pw.CharField(default="")
    created_at = UTCDateTimeField(default=utcnow)
    summary = pw.TextField(default="")


    class Meta:
        indexes = ((("kind", "key", "version"), True),)


    def __str__(self) -> str:
        return f"{self.kind} {self.key} v{self.version}"
