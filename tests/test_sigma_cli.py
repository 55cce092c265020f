"""The `hunt` and `findings` commands, registered on a fresh app as cli.py will register them."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from breachtrace.cli_hunt import register

from sigma_helpers import PROCESS, fresh_case, rule_id, rule_yaml, write_rules


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    application = typer.Typer()

    @application.callback()
    def main() -> None:
        """breachtrace (test app)"""

    register(application)
    return application


@pytest.fixture(scope="module")
def hunted(app: typer.Typer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sigma-cli")
    case = fresh_case(root / "case")
    rules = {
        "cli_cmd": rule_yaml("cli_cmd", PROCESS, {"sel": {"Image|endswith": "\\cmd.exe"}, "condition": "sel"},
                             level="high", tags=["attack.t1059.003"]),
        "cli_tool": rule_yaml("cli_tool", PROCESS, {"sel": {"CommandLine|contains": "cleared"}, "condition": "sel"},
                              level="low", title='=HYPERLINK("http://x") tool'),
        "cli_broken": "title: broken\nlogsource: [\n",
    }  # fmt: skip
    write_rules(root / "rules", rules)
    result = CliRunner().invoke(
        app, ["hunt", "--case", str(case.root), "--rules", str(root / "rules")],
        env={"BREACHTRACE_CACHE_DIR": str(root / "cache"), "COLUMNS": "200"},  # see wide_terminal
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "1 skipped" in result.output and "2 fired" in result.output
    assert "Skipped rules" in result.output and "cannot parse" in result.output
    return case.root


def _run(app: typer.Typer, *args: str) -> str:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "1000"})
    assert result.exit_code == 0, result.output
    return result.output


def test_findings_jsonl_and_filters(app: typer.Typer, hunted: Path) -> None:
    rows = [
        json.loads(line)
        for line in _run(app, "findings", "-c", str(hunted), "-o", "jsonl").splitlines()
    ]
    assert {r["rule_id"] for r in rows} == {rule_id("cli_cmd"), rule_id("cli_tool")}
    high = _run(app, "findings", "-c", str(hunted), "-o", "jsonl", "--severity", "high")
    assert [json.loads(x)["rule_id"] for x in high.splitlines()] == [rule_id("cli_cmd")]
    assert (
        _run(app, "findings", "-c", str(hunted), "-o", "jsonl", "--host", "WS03").count("\n") == 1
    )
    assert _run(app, "findings", "-c", str(hunted), "-o", "jsonl", "--user", "nobody") == ""
    late = _run(app, "findings", "-c", str(hunted), "-o", "jsonl", "--since", "2024-03-01T15:00:00")
    assert [json.loads(x)["rule_id"] for x in late.splitlines()] == [rule_id("cli_tool")]
    assert (
        _run(app, "findings", "-c", str(hunted), "-o", "jsonl", "--kind", "sigma_correlation") == ""
    )


def test_attacker_strings_are_neutralised(app: typer.Typer, hunted: Path) -> None:
    table = _run(app, "findings", "-c", str(hunted), "--rule", "tool")
    assert "\x1b" not in table and "cleared" in table  # the command line's escapes never print raw
    text = _run(app, "findings", "-c", str(hunted), "-o", "csv", "--rule", rule_id("cli_tool"))
    [row] = list(csv.DictReader(io.StringIO(text)))
    assert row["title"].startswith("'=HYPERLINK")  # a spreadsheet shows it as text
    details = json.loads(row["details"])
    assert details["fields"]["CommandLine"].startswith('=HYPERLINK("http://x") \x1b[2J')


def test_findings_csv_writes_lists_as_json_arrays(app: typer.Typer, hunted: Path) -> None:
    args = ("findings", "-c", str(hunted), "--rule", rule_id("cli_cmd"))
    text = _run(app, *args, "-o", "csv")
    assert '"[""T1059.003""]"' in text  # a JSON array, not the Python repr ['T1059.003']
    rows = list(csv.DictReader(io.StringIO(text)))
    expected = [json.loads(x) for x in _run(app, *args, "-o", "jsonl").splitlines()]
    lists = ("techniques", "tags", "hosts", "users", "addresses", "files", "evidence")
    assert rows and len(rows) == len(expected)
    for row, want in zip(rows, expected, strict=True):
        assert {c: json.loads(row[c]) for c in lists} == {c: want[c] for c in lists}
    assert json.loads(rows[0]["files"])[0].endswith("\\cmd.exe")


def test_tags_match_whatever_the_case_and_separator(app: typer.Typer, tmp_path: Path) -> None:
    """SigmaHQ spells tactics attack.lateral-movement, older rules attack.lateral_movement."""
    case = fresh_case(tmp_path / "case")
    cmd = {"sel": {"Image|endswith": "\\cmd.exe"}, "condition": "sel"}
    write_rules(tmp_path / "rules", {
        "tag_hyphen": rule_yaml("tag_hyphen", PROCESS, cmd, tags=["attack.lateral-movement"]),
        "tag_underscore": rule_yaml("tag_underscore", PROCESS, cmd,
                                    tags=["attack.lateral_movement", "attack.t1021.002"]),
        "tag_other": rule_yaml("tag_other", PROCESS, cmd, tags=["attack.execution"]),
    })  # fmt: skip
    env = {"BREACHTRACE_CACHE_DIR": str(tmp_path / "cache")}
    both = {rule_id("tag_hyphen"), rule_id("tag_underscore")}
    for wanted, expected in (
        ("attack.lateral_movement", both),
        ("attack.lateral-movement", both),
        ("ATTACK.Lateral-Movement", both),
        ("attack.T1021", {rule_id("tag_underscore")}),
    ):
        hunt = ["hunt", "-c", str(case.root), "-r", str(tmp_path / "rules"), "--tags", wanted]
        result = CliRunner().invoke(app, hunt, env=env)
        assert result.exit_code == 0, result.output
        rows = _run(app, "findings", "-c", str(case.root), "-o", "jsonl").splitlines()
        assert {json.loads(r)["rule_id"] for r in rows} == expected, wanted


def test_bad_arguments_fail_cleanly(app: typer.Typer, hunted: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["findings", "-c", str(hunted), "--severity", "severe"])
    assert result.exit_code == 2 and "unknown severity" in result.output
    result = CliRunner().invoke(app, ["findings", "-c", str(hunted), "--since", "yesterday"])
    assert result.exit_code == 2
    result = CliRunner().invoke(app, ["hunt", "-c", str(tmp_path / "no-case"), "-r", str(tmp_path)])
    assert result.exit_code == 2 and "not a breachtrace case" in result.output
    result = CliRunner().invoke(app, ["hunt", "-c", str(hunted)],
                                env={"BREACHTRACE_SIGMA_RULES": "", "BREACHTRACE_CONFIG": str(tmp_path / "x")})  # fmt: skip
    assert result.exit_code == 2 and "git clone" in result.output


def test_investigate_hunts_with_the_rules_given(tmp_path: Path) -> None:
    """``investigate --rules`` runs the Sigma hunt with those rules (no configuration needed),
    and a rule path that does not exist is an error naming it, before any stage runs."""
    from breachtrace.cli import app as full_app

    case = fresh_case(tmp_path / "case")
    rules = {"inv_cmd": rule_yaml("inv_cmd", PROCESS, {"sel": {"Image|endswith": "\\cmd.exe"},
                                                       "condition": "sel"}, level="high")}  # fmt: skip
    write_rules(tmp_path / "rules", rules)
    env = {"BREACHTRACE_CACHE_DIR": str(tmp_path / "cache"), "BREACHTRACE_SIGMA_RULES": ""}
    result = CliRunner().invoke(
        full_app, ["investigate", "--case", str(case.root), "--rules", str(tmp_path / "rules")],
        env=env,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"hunting with the Sigma rules in {tmp_path / 'rules'}" in result.output
    found = json.loads((case.root / "report" / "report.json").read_text())
    assert any(f.get("rule_id") == rule_id("inv_cmd") for f in found["findings"])
    missing = CliRunner().invoke(
        full_app, ["investigate", "--case", str(case.root), "--rules", str(tmp_path / "nope")],
        env=env,
    )  # fmt: skip
    assert missing.exit_code == 2 and "Sigma rule path not found" in missing.output
