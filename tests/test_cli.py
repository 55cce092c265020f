"""The command line, run as a user would: help, version, ingest, events, info."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from breachtrace import __version__
from breachtrace.cli import app

from conftest import DATA

runner = CliRunner()


def test_help_lists_every_command_with_a_description() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("ingest", "events", "info", "simulate", "demo"):
        assert command in result.output
    assert runner.invoke(app, ["--version"]).output.strip() == f"breachtrace {__version__}"


def test_ingest_info_and_events_outputs(tmp_path: Path) -> None:
    case = tmp_path / "case"
    result = runner.invoke(app, ["ingest", "--case", str(case), str(DATA / "winlogbeat"),
                                 str(DATA / "mapped"), "--mapping", str(DATA / "mapped")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "3 files ingested" in result.output
    info = runner.invoke(app, ["info", "--case", str(case)])
    assert info.exit_code == 0 and "winlogbeat" in info.output and "jp-fs01" in info.output
    jsonl = runner.invoke(app, ["events", "--case", str(case), "--host", "JP-FS01", "--action",
                                "logon", "--output", "jsonl"])  # fmt: skip
    records = [json.loads(line) for line in jsonl.stdout.splitlines()]
    assert [r["user"] for r in records] == ["k.sato"]
    since = runner.invoke(app, ["events", "--case", str(case), "--since", "2020-05-04T01:17:00",
                                "--until", "2020-05-04T01:19:00", "--output", "jsonl"])  # fmt: skip
    assert sorted(json.loads(x)["event_code"] for x in since.stdout.splitlines()) == [1, 4663]
    where = runner.invoke(app, ["events", "--case", str(case), "--where", "src_ip LIKE '198.51.%'",
                                "--output", "csv", "--columns", "user,src_ip"])  # fmt: skip
    cells = list(csv.reader(io.StringIO(where.stdout)))
    assert cells[0] == ["user", "src_ip"] and len(cells) == 5
    # an attacker's spreadsheet formula comes out as inert text
    assert ["'=cmd|' /c calc'!a0", "198.51.100.78"] in cells


def test_events_refuses_queries_in_where(tmp_path: Path) -> None:
    case = tmp_path / "case"
    runner.invoke(app, ["ingest", "--case", str(case), str(DATA / "lanl")])
    bad = runner.invoke(app, ["events", "--case", str(case), "--where", "1=1; DROP TABLE x"])
    assert bad.exit_code == 2 and "error" in bad.output
    sub = runner.invoke(app, ["events", "--case", str(case), "--where",
                              "user IN (SELECT 1 FROM read_csv('/etc/passwd'))"])  # fmt: skip
    assert sub.exit_code == 2


def test_nothing_readable_exits_nonzero_and_says_why(tmp_path: Path) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01\x02 nothing here")
    result = runner.invoke(app, ["ingest", "--case", str(tmp_path / "case"), str(junk)])
    assert result.exit_code == 1
    assert "unrecognised format" in result.output and "nothing could be read" in result.output


def test_missing_case_is_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["info", "--case", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "not a breachtrace case" in result.output


def test_plain_progress_lines_when_not_a_tty(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "breachtrace", "ingest", "--case", str(tmp_path / "c"), str(DATA / "zeek")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "ingesting 4 files" in proc.stderr and "zeek:" in proc.stderr
    assert "\x1b[" not in proc.stderr  # no terminal control sequences in logs


def test_summary_counts_informational_findings_apart() -> None:
    from breachtrace.cli_output import detect_line
    from breachtrace.detect.behaviour import AnalyticSummary, DetectSummary

    lateral = AnalyticSummary("lateral", "", 257, {}, {"informational": 233, "medium": 24}, 1.0)
    beacon = AnalyticSummary("beacon", "", 1, {}, {"critical": 1}, 0.5)
    summary = DetectSummary("case", 10, None, None, [lateral, beacon], [], {}, 2.5)
    assert detect_line(summary) == (
        "behavioural analytics: 25 (+233 informational) findings "
        "(lateral 24 (+233 informational), beacon 1) in 2.5 s"
    )


def test_demo_refuses_a_missing_rule_path_before_simulating(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = runner.invoke(app, ["demo", "--out", str(out), "--rules", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "Sigma rule path not found" in result.output and str(tmp_path / "nope") in result.output
    assert not out.exists()


def test_demo_outputs_name_scope_runs_from_the_case_path_as_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The outputs list spells every path alike: a relative --out gives relative paths."""
    from breachtrace.cli_output import _as_given

    monkeypatch.chdir(tmp_path)
    run = (tmp_path / "demo" / "case" / "scope" / "runs" / "r1").resolve()
    assert _as_given(Path("demo/case"), run) == Path("demo/case/scope/runs/r1")
    assert _as_given(Path("elsewhere"), run) == run  # not inside: left as it is
