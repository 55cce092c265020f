"""The report on a small case: every format, with and without trace and scope outputs (the
hand-written fixtures in tests/data/report follow the agreed incidents/scope shapes)."""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from breachtrace.cli import app
from breachtrace.report import FORMATS, ReportError, parse_formats, write_report
from breachtrace.report.timesketch import COLUMNS as TS_COLUMNS

from report_support import small_case


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("report-full")
    case = small_case(root / "case", traced=True, scoped=True)
    summary = write_report(case, root / "out")
    assert set(summary.files) >= {"html", "json", "md", "findings_csv", "timeline_csv",
                                  "inputs_csv", "owners_csv", "notification_csv",
                                  "timesketch_jsonl", "timesketch_csv"}  # fmt: skip
    return root / "out", json.loads((root / "out" / "report.json").read_text())


def test_numbers_come_from_trace_and_scope(full: tuple[Path, dict]) -> None:
    _, data = full
    n = data["summary"]["numbers"]
    assert (n["entry"], n["routes"], n["dwell_days"], n["accounts"]) == ("vn-srv01", 2, 55.2, 3)
    assert (n["owners"], n["overlap_owners"], n["files"]) == (3, 1, 14 + 9 + 3 + 1)
    assert n["findings"] == 6 and n["critical"] == 3 and n["c2"] == 1
    assert data["status"] == {"traced": True, "scoped": True}
    assert data["graph"]["source"] == "trace"
    assert (data["graph"]["hosts"], data["graph"]["hops"]) == (6, 5)  # 5 hosts + the laptop
    # 7 traced entries + 6 findings; traced entries take their finding's severity
    assert data["timeline"]["total"] == 13
    traced = [r for r in data["timeline"]["rows"] if r["origin"] == "trace"]
    assert {r["severity"] for r in traced if r["finding_id"] == "f-cred-1"} == {"high"}
    assert [c["target"] for c in data["containment"]["items"]][:2] == ["vn-srv01", "aben"]
    refs = {e["event_uid"]: e for e in data["evidence"]["events"]}
    assert refs["a1b2c3d4e5f6:101"]["found"] and refs["a1b2c3d4e5f6:101"]["host"] == "jp-fs01"
    assert not refs["a1b2c3d4e5f6:404"]["found"]  # cited by the trace, not in the store


def test_html_is_self_contained_and_complete(full: tuple[Path, dict]) -> None:
    out, _ = full
    page = (out / "report.html").read_text()
    assert "Content-Security-Policy" in page and "script-src &#39;sha256-" in page
    for remote in ("<script src", "<link ", '<img src="http'):  # nothing fetched from elsewhere
        assert remote not in page
    for text in ("Route R1: overseas servers", "stolen employee identity over VPN",
                 'href="notification_list.csv"', "Sasebo Base Facilities Agency",
                 "MOD defence-industry security", "isolate host", "Security", "T1071.001",
                 "a1b2c3d4e5f6:101", "Overlaps between routes"):  # fmt: skip
        assert text in page, text
    assert "Not traced yet" not in page and "Not scoped yet" not in page


def test_csv_tables_are_whole(full: tuple[Path, dict]) -> None:
    out, _ = full
    with open(out / "findings.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 6 and {"finding_id", "techniques", "evidence"} <= set(rows[0])
    with open(out / "owners.csv", newline="") as fh:
        owners = list(csv.DictReader(fh))
    assert [o["owner"] for o in owners] == [
        "Sasebo Base Facilities Agency",
        "Kure Signals Office",
        "Hokuriku Power",
    ]
    assert owners[0]["routes"] == "R1; R2"
    with open(out / "notification_list.csv", newline="") as fh:
        assert len(list(csv.reader(fh))) == 4
    with open(out / "inputs.csv", newline="") as fh:
        inputs = list(csv.DictReader(fh))
    assert len(inputs) == 1 and len(inputs[0]["sha256"]) == 64


def test_timesketch_follows_the_import_format(full: tuple[Path, dict]) -> None:
    out, data = full
    lines = (out / "timesketch.jsonl").read_text().splitlines()
    assert len(lines) == data["timeline"]["total"]
    for line in lines:
        event = json.loads(line)
        assert {"message", "datetime", "timestamp_desc"} <= set(event)
        when = datetime.fromisoformat(event["datetime"])
        assert when.utcoffset() is not None  # ISO 8601 with offset, as Timesketch documents
        assert event["timestamp"] == int(when.timestamp() * 1_000_000)
        assert event["message"] and event["timestamp_desc"]
    with open(out / "timesketch.csv", newline="") as fh:
        reader = csv.reader(fh)
        assert tuple(next(reader)) == TS_COLUMNS
        assert sum(1 for _ in reader) == len(lines)


def test_markdown_has_every_section(full: tuple[Path, dict]) -> None:
    out, _ = full
    text = (out / "report.md").read_text()
    for heading in ("## Executive summary", "## Attack path", "## Timeline", "## Findings",
                    "## Scope", "## Log gaps and tampering", "## Containment checklist",
                    "## Evidence appendix"):  # fmt: skip
        assert heading in text
    assert (
        "- [ ] **isolate host**: vn\\-srv01" in text or "- [ ] **isolate host**: vn-srv01" in text
    )
    assert "[notification_list.csv](notification_list.csv)" in text


def test_before_trace_and_scope_the_report_says_so(tmp_path: Path) -> None:
    case = small_case(tmp_path / "case", traced=False, scoped=False)
    summary = write_report(case, tmp_path / "out", ("html", "json", "md"))
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    page = (tmp_path / "out" / "report.html").read_text()
    assert "Not traced yet" in page and "Not scoped yet" in page
    assert "Not traced yet" in (tmp_path / "out" / "report.md").read_text()
    assert data["status"] == {"traced": False, "scoped": False} and not summary.scoped
    # the provisional graph: the hops of the lateral chain finding
    assert data["graph"]["source"] == "findings" and data["graph"]["hops"] == 2
    assert data["containment"]["source"] == "findings"
    assert {c["target"] for c in data["containment"]["items"]} >= {"vn-srv01", "aben"}
    assert "owners_csv" not in summary.files  # no scope, no owners table


def test_unreadable_trace_output_is_an_error(tmp_path: Path) -> None:
    case = small_case(tmp_path / "case", traced=False, scoped=False)
    (case.root / "trace").mkdir()
    (case.root / "trace" / "incidents.json").write_text("{not json")
    with pytest.raises(ReportError, match=r"incidents\.json"):
        write_report(case, tmp_path / "out", ("json",))


def test_formats_are_checked() -> None:
    assert parse_formats("md, html") == ("html", "md")
    assert parse_formats(list(FORMATS)) == FORMATS
    with pytest.raises(ReportError, match="pdf"):
        parse_formats("html,pdf")


def test_report_command(tmp_path: Path) -> None:
    small_case(tmp_path / "case", traced=True, scoped=False)
    runner = CliRunner()
    args = ["report", "--case", str(tmp_path / "case"), "--out", str(tmp_path / "out")]
    result = runner.invoke(app, [*args, "--format", "json,csv"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "findings.csv", "inputs.csv", "report.json", "timeline.csv"]  # fmt: skip
    bad = runner.invoke(app, [*args, "--format", "pdf"])
    assert bad.exit_code == 2 and "unknown report format pdf" in bad.output
