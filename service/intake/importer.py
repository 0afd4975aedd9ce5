"""CSV import: streamed in chunks, deduplicated by normalised email, every skipped row
written to a file with its reason. A lead that exists already keeps its values and stage:
the file fills its empty fields, and overwrites only the fields named to update."""

from __future__ import annotations

import csv
import operator
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import reduce
from itertools import islice
from pathlib import Path

from peewee import Case

from service import lifecycle
from service.core import csvfile
from service.core.addresses import normalise_email
from service.core.db import change_stamp, transaction
from service.core.errors import InvalidInput
from service.core.models import Lead
from service.intake.event import lead_fields

CHUNK = 1000
ALIASES = {"e_mail": "email", "email_address": "email", "firstname": "first_name",
           "given_name": "first_name", "lastname": "last_name", "surname": "last_name",
           "family_name": "last_name", "company_name": "company", "organization": "company",
           "job_title": "title", "phone_number": "phone", "employees": "company_size"}
FIELDS = ("email", *Lead.EDITABLE)


@dataclass
class Report:
    rows: int = 0
    created: int = 0
    known: int = 0  # leads that existed before the import
    filled: int = 0  # known leads that had empty fields filled
    updated: int = 0  # known leads whose fields named by --update changed
    duplicates: int = 0
    skipped: int = 0
    skipped_file: Path | None = None
    overwrite: tuple[str, ...] = ()
    existing_seen: set = field(default_factory=set, repr=False)

    def __str__(self) -> str:
        changed = f"{self.filled} filled" + (f", {self.updated} updated" if self.overwrite else "")
        text = (f"{self.rows} rows: {self.created} created, {self.known} known ({changed}), "
                f"{self.duplicates} duplicates in the file, {self.skipped} skipped")
        return text + (f" (reasons in {self.skipped_file})" if self.skipped_file else "")


def fields_to_overwrite(names: Iterable[str]) -> tuple[str, ...]:
    """--update values, each one field or a comma list, as lead fields."""
    fields = tuple(dict.fromkeys(name.strip() for entry in names
                                 for name in entry.split(",") if name.strip()))
    for name in fields:
        if name not in Lead.EDITABLE:
            raise InvalidInput(f"--update: {name!r} is not a lead field "
                               f"({', '.join(Lead.EDITABLE)})")
    return fields


def column_mapping(header: list[str], explicit: dict[str, str]) -> dict[str, str]:
    """CSV column → lead field: explicit --map entries, then headers that name a field."""
    for column, name in explicit.items():
        if column not in header:
            raise InvalidInput(f"--map names column {column!r}, which the file does not have")
        if name not in FIELDS:
            raise InvalidInput(f"--map {column}={name}: {name!r} is not a lead field "
                               f"({', '.join(FIELDS)})")
    mapping = dict(explicit)
    taken = set(explicit.values())
    for column in header:
        key = column.strip().lower().replace(" ", "_").replace("-", "_")
        name = ALIASES.get(key, key)
        if column not in mapping and name in FIELDS and name not in taken:
            mapping[column] = name
            taken.add(name)
    if "email" not in mapping.values():
        raise InvalidInput("no email column: name one with --map COLUMN=email")
    return mapping


def import_csv(path: Path, *, source: str, now: datetime, mapping: dict[str, str] | None = None,
               overwrite: Iterable[str] = (), skipped_path: Path | None = None,
               progress: Callable[[int], None] = lambda n: None) -> Report:
    """Import leads. Known leads get only their empty fields filled, except the fields named
    in `overwrite`, which take the file's value where it has one."""
    report = Report(overwrite=fields_to_overwrite(overwrite))
    skipped_path = skipped_path or path.with_suffix(".skipped.csv")
    with path.open(newline="", encoding="utf-8-sig") as file, _SkipLog(skipped_path) as skips:
        reader = csv.reader(file)
        header = next(reader, None)
        if not header:
            raise InvalidInput(f"{path} is empty")
        columns = column_mapping(header, mapping or {})
        index = {name: header.index(column) for column, name in columns.items()}
        for name in report.overwrite:
            if name not in index:
                raise InvalidInput(f"--update {name}: the file has no column for it")
        for chunk in _chunks(enumerate(reader, start=2)):
            _import_chunk(chunk, index, len(header), source, now, report, skips)
            progress(len(chunk))
    report.skipped = skips.count
    report.skipped_file = skipped_path if skips.count else None
    return report


def _chunks(rows: Iterator) -> Iterator[list]:
    while chunk := list(islice(rows, CHUNK)):
        yield chunk


def _import_chunk(chunk, index, width, source, now, report, skips) -> None:
    leads: dict[str, dict] = {}
    for line, row in chunk:
        report.rows += 1
        if len(row) != width:
            skips.add(line, row, f"expected {width} columns, found {len(row)}")
            continue
        values = {name: row[i] for name, i in index.items()}
        try:
            email = normalise_email(values.pop("email"))
        except InvalidInput as exc:
            skips.add(line, row, exc.message)
            continue
        found = lead_fields(values)
        if email in leads:
            report.duplicates += 1
            leads[email] = {**found, **leads[email]}
        else:
            leads[email] = found
    with transaction():
        _store(leads, source, now, report)


def _store(leads: dict[str, dict], source: str, now: datetime, report: Report) -> None:
    known = {row.email: row for row in Lead.select(Lead.id, Lead.email, Lead.created_at,
                                                   Lead.source)
             .where(Lead.email.in_(list(leads))).namedtuples()}
    new = [{"email": email, **fields} for email, fields in leads.items() if email not in known]
    report.created += len(lifecycle.capture_many(new, source=source, actor=source, now=now))
    changed_at = change_stamp(now)  # this chunk's, not the import's start
    for email, lead in known.items():
        fields = leads[email]
        if (lead.created_at == now and lead.source == source) or lead.id in report.existing_seen:
            report.duplicates += 1  # an earlier row of this file came first: it only fills
            _fill_blanks(lead.id, fields, changed_at)
            continue
        report.known += 1
        report.existing_seen.add(lead.id)
        chosen = {name: value for name, value in fields.items() if name in report.overwrite}
        report.updated += _overwrite(lead.id, chosen, changed_at)
        report.filled += _fill_blanks(lead.id, {name: value for name, value in fields.items()
                                                if name not in chosen}, changed_at)


def _fill_blanks(lead_id: int, fields: dict[str, str], now: datetime) -> int:
    """Give the lead's empty fields these values in one conditional update, so a value
    already there (even one written a moment ago) stays. 1 when a field was filled."""
    if not fields:
        return 0
    columns = {Lead._meta.fields[name]: value for name, value in fields.items()}
    blank = reduce(operator.or_, [column == "" for column in columns])
    return (Lead.update({**{column: Case(None, [(column == "", value)], column)
                            for column, value in columns.items()}, Lead.updated_at: now})
            .where(Lead.id == lead_id, blank).execute())


def _overwrite(lead_id: int, fields: dict[str, str], now: datetime) -> int:
    """Set the fields named by --update; 1 when one of them changed."""
    if not fields:
        return 0
    differs = reduce(operator.or_, [Lead._meta.fields[name] != value
                                    for name, value in fields.items()])
    return Lead.update(**fields, updated_at=now).where(Lead.id == lead_id, differs).execute()


class _SkipLog:
    """Skipped rows with their line number and reason, written as they come."""

    def __init__(self, path: Path):
        self.path, self.count, self.file, self.writer = path, 0, None, None

    def add(self, line: int, row: list[str], reason: str) -> None:
        if self.writer is None:
            self.file = self.path.open("w", newline="", encoding="utf-8")
            self.writer = csvfile.Writer(self.file)
            self.writer.writerow(["line", "reason", "row"])
        self.writer.writerow([line, reason, *row])
        self.count += 1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.file:
            self.file.close()
        elif self.path.exists():
            self.path.unlink()
