"""The ``trace``, ``scope`` and ``investigate`` commands.

cli.py adds them with ``cli_investigate.register(app)``. Values printed here may come from an
attacker (host, account and file names), so they go through cli_output's ``printable``.
"""

from __future__ import annotations

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
from breachtrace.cli_output import printable
from breachtrace.context import ContextError

CaseOpt = Annotated[Path, typer.Option("--case", "-c", help="Case directory.")]
FromOpt = Annotated[
    str | None,
    typer.Option("--from", help="Trace from a lead: host:NAME, user:NAME, ip:ADDR, finding:ID."),
]
InventoryOpt = Annotated[
    Path | None,
    typer.Option(help="Data inventory CSV (path_prefix, owner, ...; kept in the case)."),
]


def register(app: typer.Typer) -> None:
    """Add ``trace``, ``scope`` and ``investigate`` to the breachtrace CLI."""
    app.command("trace")(trace_command)
    app.command("scope")(scope_command)
    app.command("investigate")(investigate_command)


def _fail(err: Console, exc: BaseException) -> None:
    err.print(Text.assemble(("error: ", "bold red"), printable(exc)), highlight=False)
    raise typer.Exit(2) from None


def trace_command(
    case: CaseOpt,
    lead: FromOpt = None,
    engine: EngineOpt = EngineName.duckdb,
    spark_master: SparkMasterOpt = DEFAULT_MASTER,
) -> None:
    """Correlate findings with the login graph into incidents: entry points, routes hop by hop,
    compromised hosts and accounts, timeline, dwell time, C2, log gaps, containment."""
    from breachtrace.trace import LeadError, trace

    err, out = Console(stderr=True, soft_wrap=True), Console(soft_wrap=True)
    try:
        result = trace(Case.open(case), lead=lead, engine=engine.value, spark_master=spark_master)
    except (CaseError, LeadError, ContextError) as exc:
        _fail(err, exc)
        return
    print_trace(out, result)


def scope_command(
    case: CaseOpt,
    inventory: InventoryOpt = None,
    jurisdictions: Annotated[
        Path | None, typer.Option(help="YAML replacing data/jurisdictions.yaml.")
    ] = None,
    diff: Annotated[
        bool, typer.Option("--diff", help="Explain owners added or removed since the last run.")
    ] = False,
    engine: EngineOpt = EngineName.duckdb,
    spark_master: SparkMasterOpt = DEFAULT_MASTER,
) -> None:
    """Per route, the files read in its sessions mapped to owners; overlaps, union, people,
    notification thresholds; the notification list is kept in the case."""
    from breachtrace.scope import scope

    err, out = Console(stderr=True, soft_wrap=True), Console(soft_wrap=True)
    try:
        result = scope(
            Case.open(case), inventory=inventory, rules=jurisdictions, diff=diff,
            engine=engine.value, spark_master=spark_master,
        )  # fmt: skip
    except (CaseError, ContextError, ValueError) as exc:
        _fail(err, exc)
        return
    print_scope(out, result)


def investigate_command(
    case: CaseOpt,
    inventory: InventoryOpt = None,
    assets: Annotated[Path | None, typer.Option(help="Asset inventory CSV.")] = None,
    networks: Annotated[Path | None, typer.Option(help="Network inventory CSV.")] = None,
    identities: Annotated[Path | None, typer.Option(help="Identity inventory CSV.")] = None,
    lead: FromOpt = None,
    report: Annotated[
        Path | None, typer.Option("--report", help="Report folder (default: CASE/report).")
    ] = None,
    rules: RulesOpt = None,
    engine: EngineOpt = EngineName.duckdb,
    spark_master: SparkMasterOpt = DEFAULT_MASTER,
) -> None:
    """Run detect, trace, scope and the report (and hunt with --rules or the configured Sigma
    rules); ``--engine spark`` runs every stage's SQL on Spark."""
    from breachtrace.pipeline import Investigation, investigate

    err, out = Console(stderr=True, soft_wrap=True), Console(soft_wrap=True)
    try:
        result: Investigation = investigate(
            Case.open(case), inventory=inventory, assets=assets, networks=networks,
            identities=identities, lead=lead, report_dir=report,
            say=lambda m: err.print(Text(m)), engine=engine.value, spark_master=spark_master,
            rules=rules or (),
        )  # fmt: skip
    except (CaseError, ContextError, ValueError, FileNotFoundError) as exc:
        _fail(err, exc)
        return
    if result.trace:
        print_trace(out, result.trace)
    if result.scope:
        print_scope(out, result.scope)
    if result.report:
        out.print(Text(f"report: {result.report.out_dir}"))


def print_trace(console: Console, result: object) -> None:
    from breachtrace.trace import TraceResult

    assert isinstance(result, TraceResult)
    lead = f" from {result.lead}" if result.lead else ""
    console.print(Text(f"{len(result.incidents)} incident(s){lead} in {result.seconds:.1f} s; "
                       f"written to {result.path}"))  # fmt: skip
    for inc in result.incidents:
        console.print(
            Text(f"\n{inc.incident_id} [{inc.severity}] {printable(inc.title)}", style="bold")
        )
        console.print(Text(printable(inc.summary)))
        table = Table("route", "time", "hop", "account", "method")
        for r in inc.routes:
            for h in r.hops:
                table.add_row(r.route_id.rsplit("-", 1)[-1], h.time.strftime("%Y-%m-%d %H:%M"),
                              Text(printable(f"{h.src} -> {h.dst}")), Text(printable(h.account)),
                              h.method)  # fmt: skip
        console.print(table)
        for c in inc.containment[:12]:
            console.print(Text(f"  {c.action}: {printable(c.target)} ({printable(c.reason)})"))
    if result.unattached:
        console.print(Text(f"\n{len(result.unattached)} high finding(s) no incident explains "
                           "(see unattached_findings in incidents.json)"))  # fmt: skip


def print_scope(console: Console, result: object) -> None:
    from breachtrace.scope import ScopeResult

    assert isinstance(result, ScopeResult)
    d = result.document
    table = Table("route", "owners", "files", "individuals", title="Exposed data per route")
    for r in d["routes"]:
        table.add_row(Text(printable(r["name"])), str(len(r["owners"])), f"{r['files']:,}",
                      f"{r['individuals']:,}")  # fmt: skip
    console.print(table)
    for o in d["overlaps"]:
        console.print(Text(f"overlap {' & '.join(o['routes'])}: {len(o['owners'])} owners"))
    console.print(Text(f"union: {len(d['union'])} owners, {d['individuals']:,} individuals; "
                       f"{len(d['unowned_files'])} files with no owner in the inventory"))  # fmt: skip
    for t in d["thresholds"]:
        if t["crossed"]:
            console.print(Text(f"  crossed: {t['jurisdiction']}: {t['rule']} (by {t['deadline']})"))
    for note in d.get("limits", []):
        console.print(Text(f"  not judged: {note}"))
    console.print(Text(f"kept in {result.run_dir} (notification_list.csv/.json)"))
    if result.diff is not None:
        console.print(Text(f"changes since {result.diff.previous or 'no earlier run'}: "
                           f"{len(result.diff.changes)}"))  # fmt: skip
        for c in result.diff.changes[:50]:
            console.print(Text(f"  {c.change} {printable(c.owner)}: {printable(c.why)}"))
