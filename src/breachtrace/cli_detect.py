"""The ``detect`` command: run the behavioural analytics over a case and print what they found.

cli.py adds it with ``cli_detect.register(app)``. Values printed here may come from an attacker
(host, account and file names), so they go through cli_output's ``printable``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from breachtrace.case import Case, CaseError
from breachtrace.cli_engine import DEFAULT_MASTER, EngineName, EngineOpt, SparkMasterOpt
from breachtrace.cli_output import BarProgress, printable, write_rows
from breachtrace.context import ContextError
from breachtrace.detect.behaviour import AnalyticSummary, DetectSummary, detect
from breachtrace.detect.behaviour.config import ConfigError
from breachtrace.detect.behaviour.registry import Analytic, analytics

# from the registry, so a new analytic is listed in --only's help without editing this
ANALYTIC_NAMES = ", ".join(analytics())


class DetectProgressBar(BarProgress):
    """Detect progress: one step per analytic."""

    def __init__(self, console: Console) -> None:
        super().__init__(console, "detect")
        self.events = 0

    def started(self, analytics: list[Analytic], events: int) -> None:
        self.events = events
        self.bar.update(self.task, total=len(analytics))
        self._log(f"{len(analytics)} analytics over {events:,} events")

    def analytic_started(self, analytic: Analytic) -> None:
        self.bar.update(self.task, description=analytic.name)
        self._log(f"{analytic.name}: {analytic.title}")

    def analytic_done(self, analytic: Analytic, summary: AnalyticSummary) -> None:
        self.bar.advance(self.task)
        self._log(f"{analytic.name}: {summary.findings:,} findings in {summary.seconds:.1f} s")


def register(app: typer.Typer) -> None:
    """Add the ``detect`` command to the breachtrace CLI."""
    app.command("detect")(detect_command)


def detect_command(
    case: Annotated[Path, typer.Option("--case", "-c", help="Case directory.")],
    only: Annotated[
        str | None, typer.Option(help=f"Comma-separated analytics ({ANALYTIC_NAMES}).")
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="YAML file overriding data/detect.yaml.")
    ] = None,
    assets: Annotated[
        Path | None, typer.Option(help="Asset inventory CSV (stored in the case).")
    ] = None,
    networks: Annotated[
        Path | None, typer.Option(help="Network inventory CSV (stored in the case).")
    ] = None,
    identities: Annotated[
        Path | None, typer.Option(help="Identity inventory CSV (stored in the case).")
    ] = None,
    top: Annotated[int, typer.Option(help="Show this many findings, highest score first.")] = 20,
    output: Annotated[
        str, typer.Option("--output", "-o", help="table, jsonl or csv (the findings shown).")
    ] = "table",
    engine: EngineOpt = EngineName.duckdb,
    spark_master: SparkMasterOpt = DEFAULT_MASTER,
) -> None:
    """Run behavioural analytics (lateral movement, credential misuse, bulk reads, beaconing,
    log tampering, remote access opened) and write their findings into the case beside the
    Sigma findings."""
    err = Console(stderr=True, soft_wrap=True)
    out = Console(soft_wrap=True)
    names = [n.strip() for n in only.split(",")] if only else None
    progress = DetectProgressBar(err)
    try:
        Case.open(case)  # a clear error before anything runs
        with progress:
            summary = detect(
                case, only=names, config_path=config, assets=assets, networks=networks,
                identities=identities, progress=progress, engine=engine.value,
                spark_master=spark_master,
            )  # fmt: skip
    except (CaseError, ConfigError, ContextError, ValueError) as exc:
        err.print(Text.assemble(("error: ", "bold red"), printable(exc)), highlight=False)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        err.print(Text("interrupted: findings of finished analytics were kept"))
        raise typer.Exit(130) from None
    print_summary(err, summary)
    rows = _top_findings(summary, top)
    if rows:
        names = ["score", "severity", "kind", "first seen", "title", "explanation"]
        if output == "table":  # the full sentence is in jsonl/csv output and in the case
            names, rows = names[:-1], [r[:-1] for r in rows]
        write_rows(out, names, rows, output)


def print_summary(console: Console, summary: DetectSummary) -> None:
    rate = summary.events / summary.seconds if summary.seconds else 0.0
    console.print(Text(
        f"{summary.findings:,} findings from {len(summary.analytics)} analytics over "
        f"{summary.events:,} events in {summary.seconds:.1f} s ({rate:,.0f} events/s)"
    ))  # fmt: skip
    table = Table("analytic", "findings", "by kind", "seconds", title="Behavioural analytics")
    for a in summary.analytics:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(a.by_kind.items()))
        table.add_row(a.name, f"{a.findings:,}", Text(printable(kinds)), f"{a.seconds:.2f}")
    console.print(table)
    lateral = next((a for a in summary.analytics if a.name == "lateral"), None)
    if lateral and lateral.stats.get("path_alerts") is not None:
        per_day = lateral.stats.get("baseline_alerts_per_day")
        console.print(Text(
            "lateral alerts per day after the learning window: never-seen-edge baseline "
            f"{'n/a' if per_day is None else f'{per_day:g}'}, login paths "
            f"{lateral.stats.get('path_alerts_per_day', 0):g}"
        ))  # fmt: skip
    limits = list(summary.not_judged) + [n for a in summary.analytics for n in a.not_judged]
    if limits:
        console.print(Text("Not judged:", style="bold"))
        for note in limits:
            console.print(Text(f"  - {printable(note)}"))
    for a in summary.analytics:
        if a.output:
            console.print(Text(f"{a.name}: {printable(a.output)}"))


def _top_findings(summary: DetectSummary, top: int) -> list[list[Any]]:
    if top <= 0:
        return []
    import duckdb

    paths = [a.output for a in summary.analytics if a.output and Path(a.output).exists()]
    if not paths:
        return []
    con = duckdb.connect()
    try:
        rows = con.execute(
            "SELECT round(score, 2), severity, kind, first_ts, title, explanation "
            "FROM read_parquet(?, union_by_name = true) WHERE kind <> 'lateral_new_edge' "
            "ORDER BY score DESC, first_ts LIMIT ?",
            [paths, top],
        ).fetchall()
    finally:
        con.close()
    return [list(r) for r in rows]
