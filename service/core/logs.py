"""Logs that can be followed across processes: every line carries the id of the request
(also sent back as X-Request-ID) or of the RQ job it belongs to; `logging.format = "json"`
writes one JSON object per line for a log collector. Every log record of the process, from
any logger (ours, RQ's, gunicorn's, werkzeug's), passes through scrub() as it is made."""

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

# What may not reach a log line: the part of an email address before its @ (also written
# %40 in a URL), the token of an email link (/h/ decision, /r/ rep's queue, /u/ unsubscribe,
# /c/ click, /reset/ password reset) or of a token= parameter, and any long opaque path segment.
_DELIMITER = r"\s@<>()\[\]\\,;:\""
# An address's local part: a run of non-delimiters (% only when not %40) that starts after a
# delimiter, possessive so that a long run without an @ is read once.
_ADDRESS = re.compile(rf"(?:(?<![^{_DELIMITER}])|(?<=%40))(?:[^{_DELIMITER}%]|%(?!40))++(?=@|%40)")
_LINK_TOKEN = re.compile(r"(/(?:h|r|u|c|reset)/)[^?#\s\"'<>&;]+")
_TOKEN_PARAMETER = re.compile(r"(token=)[^&#\s\"'<>;]+", re.IGNORECASE)
_LONG_SEGMENT = re.compile(r"(?<=/)[A-Za-z0-9._~-]{32,}")
MASKED_TOKEN = "[token]"


def scrub(text: str) -> str:
    """The one way text reaches a log line: email addresses and link tokens masked."""
    text = _ADDRESS.sub("…", text)
    text = _LINK_TOKEN.sub(rf"\g<1>{MASKED_TOKEN}", text)
    text = _TOKEN_PARAMETER.sub(rf"\g<1>{MASKED_TOKEN}", text)
    return _LONG_SEGMENT.sub(MASKED_TOKEN, text)


_TRACEBACKS = logging.Formatter()


def scrub_record(record: logging.LogRecord) -> logging.LogRecord:
    """Replace a record's message, traceback and stack with their scrubbed text."""
    try:
        message = record.getMessage()
    except Exception:  # a malformed call: keep what it said, without its arguments
        message = f"{record.msg} {record.args!r}"
    record.msg, record.args = scrub(message), None
    if record.exc_info and not record.exc_text:
        record.exc_text = _TRACEBACKS.formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = scrub(record.exc_text)
    if record.stack_info:
        record.stack_info = scrub(record.stack_info)
    return record


def scrub_every_record() -> None:
    """Make every log record of this process through scrub_record (once per process)."""
    make = logging.getLogRecordFactory()
    if getattr(make, "scrubs", False):
        return

    def scrubbed(*args, **kwargs) -> logging.LogRecord:
        return scrub_record(make(*args, **kwargs))

    scrubbed.scrubs = True
    logging.setLogRecordFactory(scrubbed)


class ContextFilter(logging.Filter):
    """Adds the request or job id (and scrubs the record, for a handler in a process that
    did not scrub every record)."""

    def filter(self, record: logging.LogRecord) -> bool:
        scrub_record(record)
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
        if record.exc_info or record.exc_text:
            entry["error"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure(level: str, style: str) -> None:
    """Set up the root logger once per process (again only when the settings change)."""
    scrub_every_record()
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
    g.request_id = request_id(request.headers.get("X-Request-ID", ""))


def request_id(incoming: str) -> str:
    """The caller's X-Request-ID when it is a plain token, else a new one."""
    return incoming if INCOMING_ID.match(incoming) else uuid.uuid4().hex


def tag_response(response):
    if "request_id" in g:
        response.headers["X-Request-ID"] = g.request_id
    return response
