"""CSV import: exact counts on a generated 100,000-row file with duplicates and bad rows."""

from __future__ import annotations

import csv
import subprocess
import sys

import pytest

from service import lifecycle
from service.core.errors import InvalidInput
from service.core.models import Lead, StageChange
from service.intake.importer import import_csv
from tests.conftest import ROOT, leadbridge_env, run_cli
from tests.factories import record_activity

PEOPLE = ("Email", "First Name", "Last Name", "Company", "Country")


def write_csv(path, rows, header=("E-mail", "First Name", "Company", "Country")):
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows(rows)


def generated(path, total=100_000):
    """Every 10th row repeats an earlier email (different case), every 50th has a bad
    email, every 250th a wrong column count. Returns the expected counts."""
    rows, expected = [], {"created": 0, "duplicates": 0, "skipped": 0}
    for i in range(total):
        if i % 250 == 249:
            rows.append(["short@example.com"])
            expected["skipped"] += 1
        elif i % 50 == 49:
            rows.append([f"broken{i}@@example.com", "X", "Y", "Z"])
            expected["skipped"] += 1
        elif i % 10 == 9:
            rows.append([f"PERSON{i - 5}@Example.com ", "", "Later Co", "DE"])
            expected["duplicates"] += 1
        else:
            rows.append([f"person{i}@example.com", f"Name{i}", f"Company {i % 97}", "GB"])
            expected["created"] += 1
    write_csv(path, rows)
    return expected


def test_hundred_thousand_rows_exact_counts(app, now, tmp_path):
    file = tmp_path / "leads.csv"
    expected = generated(file)
    report = import_csv(file, source="import", now=now)
    assert (report.rows, report.created, report.duplicates, report.skipped, report.known) == (
        100_000, expected["created"], expected["duplicates"], expected["skipped"], 0)
    assert Lead.select().count() == expected["created"]
    assert StageChange.select().count() == expected["created"]
    person = Lead.get(Lead.email == "person4@example.com")
    assert (person.first_name, person.company, person.country) == ("Name4", "Company 4", "GB")
    with report.skipped_file.open() as file:
        skipped = list(csv.reader(file))
    assert skipped[0] == ["line", "reason", "row"] and len(skipped) == expected["skipped"] + 1
    assert skipped[1][:2] == ["51", skipped[1][1]] and "email is not valid" in skipped[1][1]
    assert any("expected 4 columns, found 1" in row[1] for row in skipped)


def test_existing_leads_are_filled_not_duplicated(app, now, tmp_path):
    record_activity("ada@example.com", type="page_view", source="t", occurred_at=now, now=now)
    file = tmp_path / "few.csv"
    write_csv(file, [["ADA@example.com", "Ada", "Engines", "GB"],
                     ["ada@example.com", "Ada L.", "", ""],
                     ["new@example.com", "New", "", ""]])
    report = import_csv(file, source="crm", now=now)
    assert (report.created, report.known, report.filled, report.duplicates, report.skipped) == (
        1, 1, 1, 1, 0)
    assert report.skipped_file is None and not (tmp_path / "few.skipped.csv").exists()
    ada = Lead.get(Lead.email == "ada@example.com")
    assert (ada.first_name, ada.company, ada.source) == ("Ada", "Engines", "t"), "first row wins"


def test_mapping_errors(app, now, tmp_path):
    file = tmp_path / "odd.csv"
    write_csv(file, [["a@example.com", "x"]], header=("Mail", "Org"))
    with pytest.raises(InvalidInput, match="no email column"):
        import_csv(file, source="import", now=now)
    with pytest.raises(InvalidInput, match="'org' is not a lead field"):
        import_csv(file, source="import", now=now, mapping={"Mail": "email", "Org": "org"})
    report = import_csv(file, source="import", now=now,
                        mapping={"Mail": "email", "Org": "company"})
    assert report.created == 1 and Lead.get().company == "x"


def test_cli_import(app, tmp_path, settings_overrides):
    file = tmp_path / "cli.csv"
    write_csv(file, [["a@example.com", "A", "", ""], ["bad", "", "", ""]])
    env = leadbridge_env(app, settings_overrides)
    result = subprocess.run([sys.executable, "-m", "service.ops.cli", "import", str(file),
                             "--source", "fair"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "2 rows: 1 created, 0 known (0 filled), 0 duplicates in the file, 1 skipped" in (
        result.stdout)
    assert Lead.get().source == "fair"
    bad = subprocess.run([sys.executable, "-m", "service.ops.cli", "import", str(file), "--map",
                          "nope"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and bad.stderr.strip() == (
        "Error: --map takes COLUMN=FIELD, got 'nope'")


def known_sql(rep, now):
    """An SQL sales registered with a last name and a company."""
    lifecycle.register_outbound(
        "ada@example.com", fields={"last_name": "Lovelace", "company": "Analytical Engines"},
        rep_id=rep.id, notes="", actor="sam@example.com", now=now,
        bant={"budget": "likely", "authority": "influencer", "need": "clear", "timeline": "lt_3m"})


def person(email):
    lead = Lead.get(Lead.email == email)
    return (lead.first_name, lead.last_name, lead.company, lead.country, lead.stage)


def test_import_fills_blanks_of_known_leads_and_keeps_the_rest(app, rep, now, tmp_path,
                                                               settings_overrides):
    known_sql(rep, now)
    record_activity("bo@example.com", type="page_view", source="t", occurred_at=now, now=now)
    record_activity("cy@example.com", type="page_view", source="t", occurred_at=now, now=now,
                    fields={"first_name": "Cy", "company": "Cy Co"})
    file = tmp_path / "crm.csv"
    write_csv(file, [["ada@example.com", "Ada", "Byron", "Other Co", "GB"],
                     ["bo@example.com", "Bo", "", "Bo Ltd", ""],
                     ["cy@example.com", "Cyril", "", "", ""],
                     ["new@example.com", "New", "", "", ""],
                     ["NEW@example.com", "Newer", "Later", "", ""],
                     ["bad", "", "", "", ""]], header=PEOPLE)
    result = run_cli(app, settings_overrides, "import", str(file))
    assert result.returncode == 0, result.stderr
    assert person("ada@example.com") == ("Ada", "Lovelace", "Analytical Engines", "GB", "sql")
    assert person("bo@example.com") == ("Bo", "", "Bo Ltd", "", "lead")
    assert person("cy@example.com") == ("Cy", "", "Cy Co", "", "lead")
    assert person("new@example.com") == ("New", "Later", "", "", "lead"), "first row wins"
    assert result.stdout.splitlines()[-1] == ("6 rows: 1 created, 3 known (2 filled), "
                                              "1 duplicates in the file, 1 skipped "
                                              f"(reasons in {tmp_path / 'crm.skipped.csv'})")


def test_import_update_overwrites_the_named_fields_only(app, rep, now, tmp_path,
                                                        settings_overrides):
    known_sql(rep, now)
    record_activity("cy@example.com", type="page_view", source="t", occurred_at=now, now=now,
                    fields={"company": "Cy Co", "country": "FR"})
    file = tmp_path / "crm.csv"
    write_csv(file, [["ada@example.com", "Ada", "Byron", "Other Co", ""],
                     ["cy@example.com", "", "Smith", "Cy Co", ""]], header=PEOPLE)
    result = run_cli(app, settings_overrides, "import", str(file), "--update", "company")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == ("2 rows: 0 created, 2 known (2 filled, 1 updated), "
                                              "0 duplicates in the file, 0 skipped")
    assert person("ada@example.com") == ("Ada", "Lovelace", "Other Co", "", "sql")
    assert person("cy@example.com") == ("", "Smith", "Cy Co", "FR", "lead")
    again = run_cli(app, settings_overrides, "import", str(file),
                    "--update", "last_name,company", "--update", "country")
    assert again.stdout.splitlines()[-1].startswith(
        "2 rows: 0 created, 2 known (0 filled, 1 updated)")
    assert person("ada@example.com") == ("Ada", "Byron", "Other Co", "", "sql")
    assert person("cy@example.com") == ("", "Smith", "Cy Co", "FR", "lead"), (
        "an empty cell clears nothing")


@pytest.mark.parametrize("update, message", [
    ("compnay", "Error: --update: 'compnay' is not a lead field (first_name, last_name, company, "),
    ("title", "Error: --update title: the file has no column for it"),
    ("email", "Error: --update: 'email' is not a lead field"),
])
def test_import_update_names_lead_fields(app, now, tmp_path, settings_overrides, update, message):
    file = tmp_path / "crm.csv"
    write_csv(file, [["ada@example.com", "Ada", "Byron", "Other Co", ""]], header=PEOPLE)
    result = run_cli(app, settings_overrides, "import", str(file), "--update", update)
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith(message)
    assert Lead.select().count() == 0
