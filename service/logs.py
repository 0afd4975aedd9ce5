"""Logs that can be followed across processes: every line carries the id of the request
(also sent back as X-Request-ID) or of the RQ job it belongs to; `logging.format = "json"`
writes one JSON object per line for a log collector."""

from __future__ import annotations

import json
import logging
import re
import uuid
from contextvars import ContextVar

from flask import g, has_request_context, request

job_id: ContextVar[str] = ContextVar("job_id", default="")
INCOMING_ID = re.compile(r"[A-Za-z0-9._-]{1,64}\Z")
TEXT = "%(asctime)s %(levelname)s %(name)s [%(trace)s]: %(message)s"
EMAIL = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@(?=[\w-]+\.)")


class ContextFilter(logging.Filter):
    """Adds the request or job id and, from INFO up, masks email addresses (an SMTP refusal
    or a library's message may quote one): people's addresses stay out of the logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.INFO:
            message = record.getMessage()
            if "@" in message:
                record.msg, record.args = EMAIL.sub("…@", message), None
        record.request_id = g.get("request_id", "") if has_request_context() else ""
        record.job_id = job_id.get()
        record.trace = (f"request={record.request_id}" if record.request_id else
                        f"job={record.job_id}" if record.job_id else "-")
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": self.formatTime(record), "level": record.levelname,
                 "logger": record.name, "message": record.getMessage()}
        for name in ("request_id", "job_id"):
            if getattr(record, name, ""):
                entry[name] = getattr(record, name)
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure(level: str, style: str) -> None:
    """Set up the root logger once per process (again only when the settings change)."""
    root = logging.getLogger()
    root.setLevel(level)
    handler = next((h for h in root.handlers if getattr(h, "leadbridge", False)), None)
    if handler is None:
        handler = logging.StreamHandler()
        handler.leadbridge = True
        handler.addFilter(ContextFilter())
        root.addHandler(handler)
    handler.setFormatter(JsonFormatter() if style == "json" else logging.Formatter(TEXT))


def start_request() -> None:
    incoming = request.headers.get("X-Request-ID", "")
    g.request_id = incoming if INCOMING_ID.match(incoming) else uuid.uuid4().hex


def tag_response(response):
    if "request_id" in g:
        response.headers["X-Request-ID"] = g.request_id
    return response
