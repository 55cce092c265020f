"""``breachtrace detect``: runs the analytics, writes findings into the case, prints a summary
and the top findings with attacker-controlled text made inert."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from breachtrace import cli_detect

from detect_support import t, write_events


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """test app"""

    cli_detect.register(app)
    return app


def test_detect_command_writes_findings_and_prints_them_inert(tmp_path: Path) -> None:
    evil = "dc1\x1b[31m"  # an escape sequence smuggled into a host name
    rows = [{"ts": t(0, 1), "host": evil, "channel": "Security", "event_code": 1102,
             "action": "log_cleared", "user": "mallory"}]  # fmt: skip
    write_events(tmp_path / "case", rows)
    result = CliRunner().invoke(
        _app(), ["detect", "--case", str(tmp_path / "case"), "--only", "tamper", "-o", "jsonl"]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "case" / "findings" / "tamper.parquet").exists()
    lines = [json.loads(x) for x in result.stdout.splitlines() if x.startswith("{")]
    assert lines and lines[0]["kind"] == "log_cleared"
    table = CliRunner().invoke(
        _app(), ["detect", "--case", str(tmp_path / "case"), "--only", "tamper"]
    )
    assert "\x1b[31m" not in table.output and "\\x1b[31m" in table.output
    assert "Not judged" in table.output  # no context files: said


def test_detect_command_refuses_bad_input_clearly(tmp_path: Path) -> None:
    write_events(tmp_path / "case", [{"ts": t(0), "host": "x", "action": "other"}])
    runner = CliRunner()
    bad_only = runner.invoke(_app(), ["detect", "--case", str(tmp_path / "case"), "--only", "nope"])
    assert bad_only.exit_code == 2 and "unknown analytic" in bad_only.output
    cfg = tmp_path / "c.yaml"
    cfg.write_text("tamper:\n  min_densty: 1\n")
    bad_cfg = runner.invoke(
        _app(), ["detect", "--case", str(tmp_path / "case"), "--config", str(cfg)]
    )
    assert bad_cfg.exit_code == 2 and "unknown setting 'tamper.min_densty'" in bad_cfg.output
    no_case = runner.invoke(_app(), ["detect", "--case", str(tmp_path / "nothing")])
    assert no_case.exit_code == 2 and "not a breachtrace case" in no_case.output


def test_only_help_lists_every_registered_analytic() -> None:
    from breachtrace.detect.behaviour.registry import analytics

    result = CliRunner().invoke(_app(), ["detect", "--help"], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert "remote_access" in analytics()
    assert f"({', '.join(analytics())})" in result.output
