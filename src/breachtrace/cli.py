"""The breachtrace command line: parse arguments, call a stage, print. Nothing else lives here."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from breachtrace import __version__
from breachtrace.case import Case, CaseError
from breachtrace.cli_engine import RulesOpt
from breachtrace.cli_output import IngestProgress, print_ingest_summary, write_rows
from breachtrace.ingest.mapped import MappingError
from breachtrace.query import EventFilter, QueryError, case_info, select_events

app = typer.Typer(
    name="breachtrace",
    help="Breach investigation from raw logs: ingest, hunt, trace routes, scope exposed data.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)
console = Console(stderr=True, soft_wrap=True)
out_console = Console(soft_wrap=True)

CaseOpt = Annotated[Path, typer.Option("--case", "-c", help="Case directory.")]


def _version(value: bool) -> None:
    if value:
        print(f"breachtrace {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """Breach investigation from raw logs."""


def _fail(message: str, code: int = 2) -> None:
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


@app.command()
def ingest(
    case: CaseOpt,
    paths: Annotated[
        list[Path], typer.Argument(help="Files or directories (.zip/.gz read in place).")
    ],
    format: Annotated[
        str | None, typer.Option("--format", "-f", help="Force a format instead of sniffing.")
    ] = None,
    mapping: Annotated[
        list[Path] | None,
        typer.Option("--mapping", "-m", help="YAML mapping for a CSV/JSON source (repeatable)."),
    ] = None,
    timezone: Annotated[
        str,
        typer.Option(
            "--timezone",
            "-z",
            help="Zone of times written without an offset (classic syslog, offset-less ISO, "
            "mapped CSV/JSON), an IANA name such as Asia/Tokyo; ingest each site's logs "
            "with its own zone.",
        ),
    ] = "UTC",
) -> None:
    """Read log files into a case (created if needed); re-ingesting a file is a no-op."""
    from breachtrace.ingest.runner import ingest as run_ingest

    progress = IngestProgress(console)
    try:
        with progress:
            summary = run_ingest(
                case, paths, mappings=mapping or [], format=format, progress=progress,
                timezone=timezone,
            )  # fmt: skip
    except (CaseError, MappingError, FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
        return
    except KeyboardInterrupt:
        _fail("interrupted: nothing of the unfinished batch was kept; re-run to complete", 130)
        return
    print_ingest_summary(console, summary)
    if summary.events == 0 and summary.count("duplicate") == 0:
        _fail("nothing could be read from the inputs (see the messages above)", 1)


@app.command()
def events(
    case: CaseOpt,
    since: Annotated[str | None, typer.Option(help="From this time (ISO-8601, UTC).")] = None,
    until: Annotated[str | None, typer.Option(help="Before this time (ISO-8601, UTC).")] = None,
    host: Annotated[str | None, typer.Option(help="Host name (case-insensitive).")] = None,
    user: Annotated[str | None, typer.Option(help="Account name (case-insensitive).")] = None,
    action: Annotated[str | None, typer.Option(help="Action category, e.g. logon.")] = None,
    where: Annotated[
        str | None, typer.Option(help="Extra SQL condition over the event columns (read-only).")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many rows (0 = all).")] = 100,
    columns: Annotated[str | None, typer.Option(help="Comma-separated columns to show.")] = None,
    output: Annotated[str, typer.Option("--output", "-o", help="table, jsonl or csv.")] = "table",
) -> None:
    """Query the case's normalized events."""
    try:
        c = Case.open(case)
        flt = EventFilter(since, until, host, user, action, where)
        names, rows = select_events(c, flt, limit=limit, columns=columns)
    except (CaseError, QueryError) as exc:
        _fail(str(exc))
        return
    write_rows(out_console, names, rows, output)


@app.command()
def info(case: CaseOpt) -> None:
    """Summarise a case: input files, events per source, host and day, time span, rejects."""
    from breachtrace.cli_output import print_info

    try:
        summary = case_info(Case.open(case))
    except CaseError as exc:
        _fail(str(exc))
        return
    print_info(out_console, summary)


@app.command()
def simulate(
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory to write (new or empty).")],
    scenario: Annotated[
        str, typer.Option(help="telecom-2020, maker-2016 or quiet.")
    ] = "telecom-2020",
    hosts: Annotated[int, typer.Option(help="Number of hosts.")] = 200,
    users: Annotated[
        int | None, typer.Option(help="Number of people (default: from hosts).")
    ] = None,
    days: Annotated[int, typer.Option(help="Days of activity.")] = 60,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same bytes).")] = 1,
) -> None:
    """Write a synthetic multi-site organisation's logs with an incident injected, and truth."""
    from breachtrace.simulate import simulate as run_simulation

    try:
        summary = run_simulation(
            out, scenario, hosts=hosts, users=users, days=days, seed=seed,
            progress=None if console.is_terminal else (lambda m: console.print(Text(m))),
        )  # fmt: skip
    except (ValueError, FileExistsError) as exc:
        _fail(str(exc))
        return
    console.print(Text(
        f"{summary.events:,} events in {sum(summary.files_by_format.values())} files "
        f"({', '.join(f'{k}: {v:,}' for k, v in summary.events_by_format.items())}) "
        f"from {summary.start} to {summary.end}; truth in {summary.truth}"
    ))  # fmt: skip
    console.print(Text(f"next: breachtrace ingest --case CASE {summary.out / 'logs'}"))


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for the demo.")] = Path(
        "demo-case"
    ),
    hosts: Annotated[int, typer.Option(help="Number of hosts.")] = 150,
    days: Annotated[int, typer.Option(help="Days of activity.")] = 60,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 2020,
    rules: RulesOpt = None,
) -> None:
    """Simulate the 2020 telecom intrusion and run every pipeline stage over it (the Sigma hunt
    too, with --rules or the configured rules)."""
    from breachtrace.cli_output import print_demo
    from breachtrace.pipeline import run_demo

    if out.exists() and any(out.iterdir()) and not (out / "case" / "case.json").exists():
        _fail(f"{out} exists and is not an earlier demo; choose another --out")
    from breachtrace.detect.sigma.loader import check_rule_paths

    try:  # said now, not after the simulation and the ingest
        check_rule_paths(rules or [])
    except FileNotFoundError as exc:
        _fail(str(exc))
    if (out / "case").exists():
        import shutil

        shutil.rmtree(out / "case")  # a demo is re-made from scratch, not extended
    progress = IngestProgress(console)
    try:
        with progress:
            result = run_demo(
                out, hosts=hosts, days=days, seed=seed,
                say=lambda m: console.print(Text(m)), progress=progress, rules=rules or (),
            )  # fmt: skip
    except (ValueError, FileExistsError, CaseError) as exc:
        _fail(str(exc))
        return
    print_demo(out_console, result)


def _register_stage_commands() -> None:
    """Commands of the later stages live beside their stage, registered here."""
    from breachtrace.cli_detect import register as register_detect
    from breachtrace.cli_hunt import register as register_hunt
    from breachtrace.cli_investigate import register as register_investigate
    from breachtrace.cli_report import register as register_report

    register_hunt(app)
    register_detect(app)
    register_investigate(app)
    register_report(app)


_register_stage_commands()


def run() -> None:  # pragma: no cover - console-script shim
    sys.exit(app())
