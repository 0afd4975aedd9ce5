"""Prospect email templates kept in the database: rendered in a sandbox (marketers write
them: no way into Python's internals), strict about names (an unknown one is an error,
never an empty string), each extending the file-based nurture/base.html or base.txt (the
unsubscribe footer). A template is checked when saved: syntax, names, a trial render."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from types import TracebackType

import jinja2
import peewee
from jinja2 import meta, nodes
from jinja2.sandbox import SandboxedEnvironment

import email_templates
from service.core.errors import InvalidInput
from service.core.models import Lead

TEMPLATES = Path(email_templates.__path__[0])
# What prospect mail hands a template (service.mail.emails.prospect, and the step's subject).
VARIABLES = ("lead", "sender", "track", "postal_address", "unsubscribe_url", "subject")
# What a template may read of a lead: no id, no method (lead.save() would write it).
LEAD_FIELDS = frozenset({"email", "first_name", "last_name", "name", "company", "title",
                         "phone", "country", "company_size", "industry", "source", "utm_source",
                         "utm_campaign", "time_zone", "stage"})
# part → (the file it must extend, how it is escaped)
PARTS = {"html": "nurture/base.html", "text": "nurture/base.txt"}
BASES = frozenset({"nurture/base.html", "nurture/base.txt", "base.html", "base.txt"})


class _BasesOnly(jinja2.FileSystemLoader):
    """The layouts a stored template may extend, and no other file."""

    def get_source(self, environment, template):
        if template not in BASES:
            raise jinja2.TemplateNotFound(template)
        return super().get_source(environment, template)


class _Sandbox(SandboxedEnvironment):
    """The sandbox (no underscore attributes, no internals) and, of a table row, only the
    lead's fields above."""

    def is_safe_attribute(self, obj, attr, value):
        if isinstance(obj, peewee.Model):
            return isinstance(obj, Lead) and attr in LEAD_FIELDS
        return super().is_safe_attribute(obj, attr, value)


def _environment(autoescape: bool) -> SandboxedEnvironment:
    return _Sandbox(loader=_BasesOnly(TEMPLATES), undefined=jinja2.StrictUndefined,
                                autoescape=autoescape, trim_blocks=True, lstrip_blocks=True)


ENVIRONMENTS = {"html": _environment(True), "text": _environment(False)}


@lru_cache(maxsize=256)
def _compiled(part: str, source: str) -> jinja2.Template:
    """Keyed by the source itself: a version never changes, and a new one is new text."""
    return ENVIRONMENTS[part].from_string(source)


def render_part(part: str, source: str, context: dict) -> str:
    return _compiled(part, source).render(context)


def render_subject(source: str, context: dict) -> str:
    return " ".join(render_part("text", source, context).split())


def sample_context(lead: Lead | None = None, *, sender: str = "Leadbridge",
                   postal_address: str = "", subject: str = "") -> dict:
    """What a preview and the trial render at save give a template: a sample lead (or the
    one chosen), links left as they are."""
    lead = lead or Lead(id=0, email="sam.sample@example.com", first_name="Sam",
                        last_name="Sample", company="Sample Co", title="Head of Sales")
    return {"lead": lead, "sender": sender, "track": lambda url: url,
            "postal_address": postal_address, "unsubscribe_url": "#unsubscribe",
            "subject": subject}


def check_template(html: str, text: str) -> None:
    """Refuse (InvalidInput, naming the part and the line) what could not be sent."""
    for part, source in (("html", html), ("text", text)):
        check_source(part, source, f"body.{'txt' if part == 'text' else 'html'}",
                     extends=PARTS[part])


def check_subject(source: str, where: str = "subject") -> None:
    check_source("text", source, where)


def check_source(part: str, source: str, where: str, *, extends: str = "") -> None:
    environment = ENVIRONMENTS[part]
    try:
        tree = environment.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        raise InvalidInput(f"{where} line {exc.lineno}: {exc.message}") from None
    if extends:
        _check_extends(tree, extends, where)
    _check_names(tree, environment, where)
    _check_lead_fields(tree, where)
    try:
        render_part(part, source, sample_context(subject="A subject"))
    except Exception as exc:  # whatever the trial render meets is a refusal, with its line
        raise InvalidInput(f"{where} line {_template_line(exc.__traceback__)}: "
                           f"{type(exc).__name__}: {exc}") from None


def _check_extends(tree: nodes.Template, extends: str, where: str) -> None:
    first = next((node for node in tree.body if not (
        isinstance(node, nodes.Output) and all(
            isinstance(n, nodes.TemplateData) and not n.data.strip() for n in node.nodes))),
        None)
    if not (isinstance(first, nodes.Extends) and isinstance(first.template, nodes.Const)
            and first.template.value == extends):
        line = first.lineno if first is not None else 1
        raise InvalidInput(f'{where} line {line}: the template must begin with '
                           f'{{% extends "{extends}" %}} (it adds the unsubscribe footer)')


def _check_names(tree: nodes.Template, environment: jinja2.Environment, where: str) -> None:
    unknown = meta.find_undeclared_variables(tree) - set(VARIABLES) - set(environment.globals)
    if unknown:
        first = min((node for node in tree.find_all(nodes.Name) if node.name in unknown),
                    key=lambda node: node.lineno)
        raise InvalidInput(f"{where} line {first.lineno}: unknown variable {first.name!r} "
                           f"(prospect mail has {', '.join(VARIABLES)})")


def _check_lead_fields(tree: nodes.Template, where: str) -> None:
    for node in tree.find_all(nodes.Getattr):
        if (isinstance(node.node, nodes.Name) and node.node.name == "lead"
                and node.attr not in LEAD_FIELDS):
            raise InvalidInput(f"{where} line {node.lineno}: a lead has no {node.attr!r} "
                               f"(it has {', '.join(sorted(LEAD_FIELDS))})")


def _template_line(trace: TracebackType | None) -> int:
    """The line of the template the error came from (jinja2 rewrites the traceback so the
    template's frames carry its lines)."""
    line = 1
    while trace is not None:
        if trace.tb_frame.f_code.co_filename == "<template>":
            line = trace.tb_lineno
        trace = trace.tb_next
    return line
