"""The ``report`` command: write the case's report (HTML, JSON, Markdown, CSV, Timesketch).

cli.py adds it with ``cli_report.register(app)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from breachtrace.case import Case, CaseError
from breachtrace.cli_output import printable
from breachtrace.report import FORMATS, ReportError, ReportSummary, parse_formats, write_report


def register(app: typer.Typer) -> None:
    """Add the ``report`` command to the breachtrace CLI."""
    app.command("report")(report_command)


def report_command(
    case: Annotated[Path, typer.Option("--case", "-c", help="Case directory.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for the report files.")],
    format: Annotated[
        str, typer.Option("--format", "-f", help=f"Comma-separated: {','.join(FORMATS)}.")
    ] = ",".join(FORMATS),
) -> None:
    """Write the report: offline HTML (summary, attack path, timeline, findings, scope, log
    gaps, containment, evidence), JSON, Markdown, CSV tables and a Timesketch timeline."""
    err = Console(stderr=True, soft_wrap=True)
    try:
        formats = parse_formats(format)
        summary = write_report(Case.open(case), out, formats)
    except (CaseError, ReportError) as exc:
        err.print(Text.assemble(("error: ", "bold red"), printable(exc)), highlight=False)
        raise typer.Exit(2) from None
    print_report_summary(err, summary)


def print_report_summary(console: Console, summary: ReportSummary) -> None:
    seconds = sum(summary.seconds.values())
    status = [
        "traced" if summary.traced else "not traced yet",
        "scoped" if summary.scoped else "not scoped yet",
    ]
    console.print(Text(
        f"report of {summary.findings:,} findings and {summary.timeline:,} timeline moments "
        f"({', '.join(status)}) written in {seconds:.1f} s to {summary.out_dir}"
    ))  # fmt: skip
    for name, path in summary.files.items():
        size = path.stat().st_size
        console.print(Text(f"  {name:<18} {path}  ({size / 2**20:,.2f} MiB)"))
