"""Prospect email templates kept in the database: rendered in a sandbox (marketers write
them: no way into Python's internals, and bounded work), strict about names (an unknown one
is an error, never an empty string), each extending the file-based nurture/base.html or
base.txt (the unsubscribe footer and the postal address). A template is checked when
saved: syntax, what it may contain, names, and a trial render for several sample leads.

What a template may contain (README "Content the team owns"):
- a body: {% extends "nurture/base.html" %} (or base.txt) and one {% block content %};
  no other block (the footer stays), no macro, include, import, {% call %}, {% filter %}
  or {% set %}…{% endset %} block;
- the names in VARIABLES; of a lead only LEAD_FIELDS, each text ("" when empty);
- calls: track(url) and range(n) only (no methods: a filter such as |title instead);
- the filters in FILTERS;
- bounded work: ranges of at most MAX_RANGE, at most MAX_LOOP_ITEMS loop rounds in all,
  no value (text or list) past MAX_VALUE, no number past MAX_BITS bits, an email of at most
  MAX_OUTPUT characters per part. Past a bound the render stops: refused at save, the
  email failed (never sent half) at send."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from functools import lru_cache
from pathlib import Path
from types import TracebackType

import jinja2
from jinja2 import meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.filters import do_join, do_replace
from jinja2.runtime import markup_join, str_join
from jinja2.sandbox import SandboxedEnvironment
from jinja2.visitor import NodeTransformer

import email_templates
from service.core.errors import InvalidInput

TEMPLATES = Path(email_templates.__path__[0])
# What prospect mail hands a template (service.mail.emails.prospect, and the step's subject).
VARIABLES = ("lead", "sender", "track", "postal_address", "unsubscribe_url", "subject")
# What a template may read of a lead: no id, no method.
LEAD_FIELDS = ("email", "first_name", "last_name", "name", "company", "title", "phone",
               "country", "company_size", "industry", "source", "utm_source", "utm_campaign",
               "time_zone", "stage")
CALLABLE = frozenset({"track", "range"})
FILTERS = frozenset({"abs", "capitalize", "count", "d", "default", "e", "escape", "first",
                     "float", "int", "join", "last", "length", "lower", "replace", "round",
                     "string", "striptags", "title", "trim", "truncate", "upper",
                     "urlencode", "wordcount"})
LIST_FILTERS = frozenset({"count", "d", "default", "first", "join", "last", "length"})
REFUSED = {nodes.Macro: "a macro", nodes.CallBlock: "{% call %}", nodes.Include: "an include",
           nodes.Import: "an import", nodes.FromImport: "an import",
           nodes.AssignBlock: "{% set %}…{% endset %}", nodes.FilterBlock: "{% filter %}"}
# part → the file it must extend
PARTS = {"html": "nurture/base.html", "text": "nurture/base.txt"}
BASES = frozenset({"nurture/base.html", "nurture/base.txt", "base.html", "base.txt"})
MAX_OUTPUT = 256 * 1024  # characters of one rendered part
MAX_VALUE = MAX_OUTPUT  # characters of a text, items of a list, made while rendering
MAX_BITS = 4096  # of a whole number made while rendering
MAX_RANGE = 1000
MAX_LOOP_ITEMS = 10_000  # loop rounds in one render, all loops together
_LOOPED: ContextVar[list[int]] = ContextVar("loop_rounds")


class _BasesOnly(jinja2.FileSystemLoader):
    """The layouts a stored template may extend, and no other file."""

    def get_source(self, environment, template):
        if template not in BASES:
            raise jinja2.TemplateNotFound(template)
        return super().get_source(environment, template)


class _Bounded(NodeTransformer):
    """Every loop counts its rounds; every ~ counts the characters it joins."""

    def visit_For(self, node: nodes.For) -> nodes.For:
        self.generic_visit(node)
        node.iter = nodes.Filter(node.iter, "_counted", [], [], None, None,
                                 lineno=node.iter.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Filter:
        self.generic_visit(node)
        return nodes.Filter(nodes.List(node.nodes, lineno=node.lineno), "_joined", [], [],
                            None, None, lineno=node.lineno)


class _Sandbox(SandboxedEnvironment):
    """The sandbox (no underscore attributes, no internals) with its work bounded: the
    operators that can make big values are checked before they run (and never folded at
    compile time), loops and joins are counted (_Bounded)."""

    intercepted_binops = frozenset({"**", "*", "+", "%"})

    def call_binop(self, context, operator_: str, left, right):
        _check_binop(operator_, left, right)
        return self.binop_table[operator_](left, right)

    def getitem(self, obj, argument):
        """A letter of a text past its end is "" (a lead's empty first name[0])."""
        if isinstance(obj, str) and isinstance(argument, int):
            return obj[argument] if -len(obj) <= argument < len(obj) else ""
        return super().getitem(obj, argument)

    def _generate(self, source, name, filename, defer_init=False):
        source = _Bounded().visit(source)
        source.set_environment(self)
        return super()._generate(source, name, filename, defer_init=defer_init)


def _check_binop(operator_: str, left, right) -> None:
    numbers = all(isinstance(v, int | float) for v in (left, right))
    if operator_ == "**" and numbers and isinstance(left, int) and isinstance(right, int):
        if right > 0 and abs(left) > 1 and abs(left).bit_length() * right > MAX_BITS:
            raise SecurityError(f"{left} ** {right} is a bigger number than a template "
                                "may make")
    elif operator_ == "*" and isinstance(left, int) and isinstance(right, int):
        if abs(left).bit_length() + abs(right).bit_length() > MAX_BITS:
            raise SecurityError("a bigger number than a template may make")
    elif operator_ == "*" and not numbers:
        sized, times = (left, right) if isinstance(right, int) else (right, left)
        if isinstance(times, int) and hasattr(sized, "__len__") \
                and len(sized) * max(times, 0) > MAX_VALUE:
            raise SecurityError(f"repeating to more than {MAX_VALUE} characters or items")
    elif operator_ == "+" and not numbers:
        if _size(left) + _size(right) > MAX_VALUE:
            raise SecurityError(f"joining to more than {MAX_VALUE} characters or items")
    elif operator_ == "%" and isinstance(left, str):
        raise SecurityError("text % values is not available in a template")


def _size(value) -> int:
    return len(value) if isinstance(value, str | list | tuple) else 0


@jinja2.pass_context
def _counted(context, items: Iterable) -> Iterator:
    looped = _LOOPED.get(None)
    if looped is None:
        looped = [0]
    for item in items:
        looped[0] += 1
        if looped[0] > MAX_LOOP_ITEMS:
            raise SecurityError(f"more than {MAX_LOOP_ITEMS} loop rounds in one email")
        yield item


def _plain(value):
    """A value shown as text is not a list: a list of lists of long texts, shared, is small
    in memory and huge as text."""
    if isinstance(value, list | tuple | dict | set | frozenset):
        raise SecurityError("a list cannot be shown as text in a template")
    return value


def _text_filter(function):
    """The filter, refusing a list as its value (see _plain)."""
    if getattr(function, "jinja_pass_arg", None) is None:
        def checked(value, *args, **kwargs):
            return function(_plain(value), *args, **kwargs)
    else:
        def checked(passed, value, *args, **kwargs):
            return function(passed, _plain(value), *args, **kwargs)
        checked.jinja_pass_arg = function.jinja_pass_arg
    return checked


@jinja2.pass_context
def _joined(context, parts: list) -> str:
    texts = [p if isinstance(p, str) else str(_plain(p)) for p in parts]
    if sum(map(len, texts)) > MAX_VALUE:
        raise SecurityError(f"joining to more than {MAX_VALUE} characters")
    return markup_join(parts) if context.eval_ctx.autoescape else str_join(texts)


@jinja2.pass_eval_context
def _replace(eval_ctx, text, old, new, count=None):
    source, old_text, new_text = str(text), str(old), str(new)
    times = (source.count(old_text) if old_text else len(source) + 1)
    if count is not None:
        times = min(times, max(int(count), 0))
    if len(source) + times * max(len(new_text) - len(old_text), 0) > MAX_VALUE:
        raise SecurityError(f"replacing to more than {MAX_VALUE} characters")
    return do_replace(eval_ctx, text, old, new, count)


@jinja2.pass_eval_context
def _join(eval_ctx, items, d="", attribute=None):
    items = [_plain(item) for item in items]
    if len(items) > MAX_VALUE or sum(len(str(i)) for i in items) \
            + len(str(d)) * len(items) > MAX_VALUE:
        raise SecurityError(f"joining to more than {MAX_VALUE} characters")
    return do_join(eval_ctx, items, d, attribute)


def _range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise SecurityError(f"a range of more than {MAX_RANGE} numbers")
    return numbers


def _environment(autoescape: bool) -> SandboxedEnvironment:
    environment = _Sandbox(loader=_BasesOnly(TEMPLATES), undefined=jinja2.StrictUndefined,
                           autoescape=autoescape, trim_blocks=True, lstrip_blocks=True,
                           finalize=_plain)
    environment.globals = {"range": _range}
    environment.filters.update(replace=_replace)
    environment.filters.update({name: _text_filter(environment.filters[name])
                                for name in FILTERS - LIST_FILTERS})
    environment.filters.update(_counted=_counted, _joined=_joined, join=_join)
    return environment


ENVIRONMENTS = {"html": _environment(True), "text": _environment(False)}


class LeadFields:
    """The lead as a template sees it: LEAD_FIELDS as text ("" when empty), nothing else."""

    __slots__ = LEAD_FIELDS

    def __init__(self, **values: object):
        for field in LEAD_FIELDS:
            value = values.get(field)
            setattr(self, field, "" if value is None else str(value))

    @classmethod
    def of(cls, lead: object) -> LeadFields:
        """From a lead (a row, a dict, another LeadFields or None)."""
        if isinstance(lead, cls):
            return lead
        if isinstance(lead, dict):
            return cls(**lead)
        return cls(**{field: getattr(lead, field, None) for field in LEAD_FIELDS})

    def __str__(self) -> str:
        return self.name or self.email


SAMPLE_LEAD = LeadFields(email="sam.sample@example.com", first_name="Sam", last_name="Sample",
                         name="Sam Sample", company="Sample Co", title="Head of Sales",
                         phone="+44 20 7946 0000", country="GB", company_size="51-200",
                         industry="Software", source="website", utm_source="newsletter",
                         utm_campaign="spring", time_zone="Europe/London", stage="nurture")
# The leads a template is tried with at save: every field filled, every one empty, an email
# only (a lead from a bare sign-up).
TRIAL_LEADS = (SAMPLE_LEAD, LeadFields(), LeadFields(email="only.an.email@example.com"))
TRIAL_UNSUBSCRIBE = "https://unsubscribe.example/sample"
TRIAL_POSTAL_ADDRESS = "1 Sample Street, Sampleton"


@lru_cache(maxsize=256)
def _compiled(part: str, source: str) -> jinja2.Template:
    """Keyed by the source itself: a version never changes, and a new one is new text."""
    return ENVIRONMENTS[part].from_string(source)


def render_part(part: str, source: str, context: dict) -> str:
    """Rendered piece by piece: past MAX_OUTPUT characters it stops (SecurityError). The
    lead is handed over as LeadFields, whatever the caller has."""
    context = {**context, "lead": LeadFields.of(context.get("lead"))}
    token = _LOOPED.set([0])
    try:
        chunks, size = [], 0
        for chunk in _compiled(part, source).generate(context):
            size += len(chunk)
            if size > MAX_OUTPUT:
                raise SecurityError(f"the email would be longer than {MAX_OUTPUT // 1024} KB")
            chunks.append(chunk)
        return "".join(chunks)
    finally:
        _LOOPED.reset(token)


def render_subject(source: str, context: dict) -> str:
    """One line; a subject has no {{ subject }} of its own."""
    return " ".join(render_part("text", source, {**context, "subject": ""}).split())


def sample_context(lead: object = None, *, sender: str = "Leadbridge",
                   postal_address: str = "", subject: str = "") -> dict:
    """What a preview and a test send give a template: the sample lead (or the one chosen),
    links left as they are."""
    return {"lead": LeadFields.of(lead) if lead is not None else SAMPLE_LEAD,
            "sender": sender, "track": lambda url: url, "postal_address": postal_address,
            "unsubscribe_url": "#unsubscribe", "subject": subject}


def check_template(html: str, text: str) -> None:
    """Refuse (InvalidInput, naming the part and the line) what could not be sent."""
    for part, source in (("html", html), ("text", text)):
        check_source(part, source, f"body.{'txt' if part == 'text' else 'html'}",
                     extends=PARTS[part])


def check_subject(source: str, where: str = "subject") -> None:
    check_source("text", source, where)


def check_source(part: str, source: str, where: str, *, extends: str = "") -> None:
    """Whatever the check meets is a refusal with a line and a reason, never an error."""
    try:
        _check(part, source, where, extends)
    except InvalidInput:
        raise
    except jinja2.TemplateSyntaxError as exc:
        raise InvalidInput(f"{where} line {exc.lineno}: {_short(exc.message)}") from None
    except Exception as exc:
        raise InvalidInput(f"{where} line {_template_line(exc.__traceback__)}: "
                           f"{type(exc).__name__}: {_short(str(exc))}") from None


def _check(part: str, source: str, where: str, extends: str) -> None:
    environment = ENVIRONMENTS[part]
    tree = environment.parse(source)
    if extends:
        _check_extends(tree, extends, where)
    _check_blocks(tree, where, body=bool(extends))
    _check_lead_fields(tree, where)
    _check_names(tree, environment, where, body=bool(extends))
    _check_nodes(tree, where)
    for lead in TRIAL_LEADS:
        _trial(part, source, where, lead, body=bool(extends))
    for node in tree.find_all((nodes.Include, nodes.Import, nodes.FromImport)):
        raise InvalidInput(f"{where} line {node.lineno}: {REFUSED[type(node)]} is not "
                           "available in a template")


def _trial(part: str, source: str, where: str, lead: LeadFields, *, body: bool) -> None:
    """A render as sending would do it; a body keeps the unsubscribe link and the address."""
    context = {**sample_context(lead, postal_address=TRIAL_POSTAL_ADDRESS,
                                subject="A subject"), "unsubscribe_url": TRIAL_UNSUBSCRIBE}
    try:
        out = render_part(part, source, context)
    except Exception as exc:  # whatever the trial render meets is a refusal, with its line
        raise InvalidInput(f"{where} line {_template_line(exc.__traceback__)}: "
                           f"{type(exc).__name__}: {_short(str(exc))}"
                           f"{'' if lead is SAMPLE_LEAD else _which(lead)}") from None
    if body and not (TRIAL_UNSUBSCRIBE in out and TRIAL_POSTAL_ADDRESS in out):
        raise InvalidInput(f"{where} line 1: the email must keep the footer with the "
                           "unsubscribe link and the postal address")


def _which(lead: LeadFields) -> str:
    return " (with a lead that has an email only)" if lead.email else \
        " (with a lead whose fields are all empty)"


def _check_extends(tree: nodes.Template, extends: str, where: str) -> None:
    """The extends first, then the content block and nothing else: the footer stays."""
    body = [node for node in tree.body if not _blank(node)]
    first = body[0] if body else None
    if not (isinstance(first, nodes.Extends) and isinstance(first.template, nodes.Const)
            and first.template.value == extends):
        line = first.lineno if first is not None else 1
        raise InvalidInput(f'{where} line {line}: the template must begin with '
                           f'{{% extends "{extends}" %}} (it adds the unsubscribe footer)')
    for node in body[1:]:
        if not (isinstance(node, nodes.Block) and node.name == "content"):
            raise InvalidInput(f"{where} line {node.lineno}: after the extends only "
                               "{% block content %} … {% endblock %} may follow")


def _blank(node: nodes.Node) -> bool:
    return isinstance(node, nodes.Output) and all(
        isinstance(n, nodes.TemplateData) and not n.data.strip() for n in node.nodes)


def _check_blocks(tree: nodes.Template, where: str, *, body: bool) -> None:
    """The content block only (no other block, even inside it, replaces the footer); what
    captures output or brings in other templates is not available."""
    for node in tree.find_all((nodes.Block, nodes.Extends, nodes.AssignBlock,
                               nodes.FilterBlock, nodes.Macro, nodes.CallBlock)):
        line = f"{where} line {node.lineno}"
        if isinstance(node, nodes.Block) and (not body or node.name != "content"):
            raise InvalidInput(f"{line}: the only block a template may fill is content"
                               if body else f"{line}: a subject has no blocks")
        if isinstance(node, nodes.Extends) and not body:
            raise InvalidInput(f"{line}: a subject extends nothing")
        if isinstance(node, tuple(REFUSED)):
            raise InvalidInput(f"{line}: {REFUSED[type(node)]} is not available in a "
                               "template")


def _check_nodes(tree: nodes.Template, where: str) -> None:
    """Calls and filters, before any render: in a branch no sample lead takes too."""
    for node in tree.find_all((nodes.Name, nodes.Call, nodes.Filter)):
        line = f"{where} line {node.lineno}"
        if isinstance(node, nodes.Name) and node.name == "self":
            raise InvalidInput(f"{line}: self is not available in a template")
        if isinstance(node, nodes.Call) and (hidden := _hidden_attribute(node.node)):
            raise InvalidInput(f"{line}: SecurityError: {hidden!r} is unsafe in a template")
        if isinstance(node, nodes.Call) and not (
                isinstance(node.node, nodes.Name) and node.node.name in CALLABLE):
            raise InvalidInput(f"{line}: only track(url) and range(n) may be called (for "
                               "text, a filter such as |title or |upper)")
        if isinstance(node, nodes.Filter) and node.name not in FILTERS:
            raise InvalidInput(f"{line}: no filter |{node.name} (there are "
                               f"{', '.join(sorted(FILTERS))})")


def _hidden_attribute(node: nodes.Node) -> str:
    """The first attribute beginning with _ on the way to what is called, or ""."""
    for getattr_ in [node, *node.find_all(nodes.Getattr)]:
        if isinstance(getattr_, nodes.Getattr) and getattr_.attr.startswith("_"):
            return getattr_.attr
    return ""


def _check_names(tree: nodes.Template, environment: jinja2.Environment, where: str, *,
                 body: bool) -> None:
    known = set(VARIABLES if body else set(VARIABLES) - {"subject"}) | set(environment.globals)
    unknown = meta.find_undeclared_variables(tree) - known
    if unknown:
        first = min((node for node in tree.find_all(nodes.Name) if node.name in unknown),
                    key=lambda node: node.lineno)
        raise InvalidInput(f"{where} line {first.lineno}: unknown variable {first.name!r} "
                           f"(prospect mail has {', '.join(sorted(known))})")


def _check_lead_fields(tree: nodes.Template, where: str) -> None:
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        if not (isinstance(node.node, nodes.Name) and node.node.name == "lead"):
            continue
        field = node.attr if isinstance(node, nodes.Getattr) else (
            node.arg.value if isinstance(node.arg, nodes.Const) else "?")
        if field not in LEAD_FIELDS:
            raise InvalidInput(f"{where} line {node.lineno}: a lead has no {field!r} "
                               f"(it has {', '.join(sorted(LEAD_FIELDS))})")


def _short(message: str) -> str:
    return message if len(message) <= 300 else message[:300] + "…"


def _template_line(trace: TracebackType | None) -> int:
    """The line of the template the error came from (jinja2 rewrites the traceback so the
    template's frames carry its lines)."""
    line = 1
    while trace is not None:
        if trace.tb_frame.f_code.co_filename == "<template>":
            line = trace.tb_lineno
        trace = trace.tb_next
    return line

