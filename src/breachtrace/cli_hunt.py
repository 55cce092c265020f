"""The `hunt` and `findings` commands: parse arguments, call the Sigma hunt or the findings
query, print. Registered on the main app by ``register(app)``."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from breachtrace.case import Case, CaseError
from breachtrace.cli_engine import (
    DEFAULT_MASTER,
    EngineName,
    EngineOpt,
    RulesOpt,
    SparkMasterOpt,
)
from breachtrace.cli_output import printable, write_rows
from breachtrace.query import QueryError

CaseOpt = Annotated[Path, typer.Option("--case", "-c", help="Case directory.")]
SHOW_SKIPPED = 50


def _console() -> Console:
    """Messages go to stderr; made per command so the terminal's current width applies."""
    return Console(stderr=True, soft_wrap=True)


def _fail(message: str, code: int = 2) -> None:
    _console().print(Text("error: ", style="bold red") + Text(message))
    raise typer.Exit(code)


def _split(values: list[str] | None) -> list[str]:
    """Repeatable options that also take comma-separated values."""
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


def hunt(
    case: CaseOpt,
    rules: RulesOpt = None,
    min_level: Annotated[
        str | None,
        typer.Option(
            help="Only rules of this level or above: informational, low, medium, high, critical."
        ),
    ] = None,
    status: Annotated[
        list[str] | None,
        typer.Option(
            "--status", help="Only rules of these statuses (stable, test, experimental...)."
        ),
    ] = None,
    tags: Annotated[
        list[str] | None,
        typer.Option(
            "--tags",
            help=(
                "Only rules with one of these tags or their sub-tags, e.g. "
                "attack.t1021,attack.lateral-movement (case, _ and - do not matter)."
            ),
        ),
    ] = None,
    engine: EngineOpt = EngineName.duckdb,
    spark_master: SparkMasterOpt = DEFAULT_MASTER,
) -> None:
    """Run Sigma rules over every event of the case; each hit becomes a finding."""
    from breachtrace.detect.sigma import NoRulesConfigured, default_rule_paths
    from breachtrace.detect.sigma import hunt as run_hunt

    try:
        opened = Case.open(case)
        paths = rules or default_rule_paths()
    except (CaseError, NoRulesConfigured) as exc:
        _fail(str(exc))
        return
    console = _console()
    try:
        if console.is_terminal:
            with console.status("hunting") as spinner:
                summary = run_hunt(
                    opened, paths, min_level=min_level, statuses=_split(status), tags=_split(tags),
                    progress=lambda m: spinner.update(Text(printable(m))),
                    engine=engine.value, spark_master=spark_master,
                )  # fmt: skip
        else:
            summary = run_hunt(
                opened, paths, min_level=min_level, statuses=_split(status), tags=_split(tags),
                progress=lambda m: console.print(Text(printable(m))),
                engine=engine.value, spark_master=spark_master,
            )  # fmt: skip
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
        return
    _print_summary(console, summary)


def _print_summary(console: Console, summary: object) -> None:
    from breachtrace.detect.sigma import HuntSummary

    assert isinstance(summary, HuntSummary)
    s = summary
    rate = s.events_scanned / s.scan_seconds if s.scan_seconds else 0.0
    console.print(Text(
        f"{s.rules_loaded:,} rules loaded from {s.rule_files:,} files "
        f"({s.files_from_cache:,} from the cache), {s.rules_compiled:,} compiled, "
        f"{len(s.skipped):,} skipped, {len(s.unmapped):,} for logsources with no stored events; "
        f"{s.rules_selected:,} selected, {s.rules_fired:,} fired"
        + (f", {s.correlations_fired} of {s.correlations_run} correlations fired" if s.correlations_run else "")
    ))  # fmt: skip
    console.print(Text(
        f"{s.events_scanned:,} of {s.events_total:,} events scanned by {s.groups_scanned} logsource "
        f"groups; {s.findings:,} findings; {s.seconds:.2f} s (compile {s.compile_seconds:.2f} s, "
        f"scan {s.scan_seconds:.2f} s, {rate:,.0f} events/s)"
    ))  # fmt: skip
    if s.skipped:
        table = Table(title=f"Skipped rules ({len(s.skipped)})")
        for name in ("rule id", "title", "file", "reason"):
            table.add_column(name, overflow="fold")
        for rule in s.skipped[:SHOW_SKIPPED]:
            table.add_row(
                *(Text(printable(v)) for v in (rule.rule_id, rule.title, rule.file, rule.reason))
            )
        if len(s.skipped) > SHOW_SKIPPED:
            table.add_row(f"... {len(s.skipped) - SHOW_SKIPPED} more", "", "", "")
        console.print(table)
    if s.unmapped:
        by_reason = Counter(r.reason for r in s.unmapped)
        table = Table("rules", "logsource", title="Rules whose logsource has no stored events")
        for reason, n in by_reason.most_common(15):
            table.add_row(f"{n:,}", Text(printable(reason)))
        console.print(table)
    if s.findings:
        console.print(Text(f"list them with: breachtrace findings --case {printable(s.case)}"))


def findings(
    case: CaseOpt,
    severity: Annotated[
        str | None, typer.Option(help="At least this severity (informational ... critical).")
    ] = None,
    kind: Annotated[
        str | None, typer.Option(help="Finding kind, e.g. sigma, sigma_correlation.")
    ] = None,
    host: Annotated[
        str | None, typer.Option(help="Involving this host (case-insensitive).")
    ] = None,
    user: Annotated[
        str | None, typer.Option(help="Involving this account (case-insensitive).")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Ending at or after this time (ISO-8601, UTC).")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Starting before this time (ISO-8601, UTC).")
    ] = None,
    rule: Annotated[str | None, typer.Option(help="Rule id, or text in the rule title.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many rows (0 = all).")] = 0,
    output: Annotated[str, typer.Option("--output", "-o", help="table, jsonl or csv.")] = "table",
) -> None:
    """List the case's findings (Sigma hits and behavioural detections)."""
    from breachtrace.findings_query import FindingFilter, select_findings

    if output not in ("table", "jsonl", "csv"):
        _fail(f"unknown output {output!r}: choose table, jsonl or csv")
    try:
        flt = FindingFilter(severity, kind, host, user, since, until, rule)
        names, rows = select_findings(Case.open(case), flt, full=output != "table", limit=limit)
    except (CaseError, QueryError) as exc:
        _fail(str(exc))
        return
    if output == "table":  # lists as plain text, not Python reprs
        rows = [
            tuple(", ".join(map(str, v)) if isinstance(v, list) else v for v in r) for r in rows
        ]
    write_rows(Console(soft_wrap=True), names, rows, output)


def register(app: typer.Typer) -> None:
    """Add the `hunt` and `findings` commands to the breachtrace app."""
    app.command(name="hunt")(hunt)
    app.command(name="findings")(findings)
