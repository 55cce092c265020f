"""How the CLI shows things: progress, summaries, and rows as table, JSON lines or CSV.

Values shown here may come from an attacker (command lines, file names), so the table
escapes control characters and never interprets markup, and CSV cells that a spreadsheet
would run as a formula are neutralised.
"""

from __future__ import annotations

import csv
import sys
import time
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from breachtrace.ingest.runner import FileResult, IngestSummary
from breachtrace.ingest.runner import Progress as IngestCallbacks
from breachtrace.ingest.sources import InputFile
from breachtrace.query import CaseInfo

if TYPE_CHECKING:  # the pipeline (simulator, trace, scope) is not loaded to print
    from breachtrace.detect.behaviour import DetectSummary
    from breachtrace.pipeline import DemoResult

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> str:
    """A CSV cell a spreadsheet will show as text, never evaluate."""
    text = "" if value is None else _plain(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_cell(value: Any) -> str:
    """A CSV cell for ``--output csv``: lists (techniques, hosts, evidence) as JSON arrays,
    readable by any tool, rather than Python reprs; then neutralised like any cell."""
    if isinstance(value, list | tuple | dict):
        value = orjson.dumps(value, default=str).decode()
    return safe_cell(value)


def printable(value: Any) -> str:
    """Text for a terminal: control characters (escape sequences) shown escaped."""
    text = "" if value is None else _plain(value)
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)


def _plain(value: Any) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def write_rows(
    console: Console, names: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str
) -> None:
    if fmt == "jsonl":
        for row in rows:
            sys.stdout.write(
                orjson.dumps(dict(zip(names, row, strict=True)), default=str).decode() + "\n"
            )
    elif fmt == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(names)
        writer.writerows([csv_cell(v) for v in row] for row in rows)
    elif fmt == "table":
        table = Table(*names, show_lines=False, highlight=False)
        for row in rows:
            table.add_row(*(Text(printable(v)) for v in row))
        console.print(table)
        console.print(Text(f"{len(rows)} rows"))
    else:
        raise SystemExit(f"unknown output {fmt!r}: choose table, jsonl or csv")


class BarProgress:
    """A transient progress bar on a terminal; plain log lines when not a TTY (CI, pipes)."""

    def __init__(
        self, console: Console, description: str, *extra: TextColumn, **fields: Any
    ) -> None:
        self.console = console
        self.live = console.is_terminal
        self.bar = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), *extra,
            TimeElapsedColumn(), console=console, transient=True,
        )  # fmt: skip
        self.task = self.bar.add_task(description, total=None, **fields)

    def __enter__(self) -> BarProgress:
        if self.live:
            self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live:
            self.bar.stop()

    def _log(self, message: str) -> None:
        if not self.live:
            self.console.print(Text(message), highlight=False)


class IngestProgress(BarProgress, IngestCallbacks):
    """Ingest progress: files, records and records/s."""

    def __init__(self, console: Console) -> None:
        records = TextColumn("{task.fields[records]:,} records, {task.fields[rate]:,.0f}/s")
        super().__init__(console, "ingest", records, records=0, rate=0.0)
        self.records_total = 0
        self.started = time.perf_counter()
        self.last_log = 0.0

    def start(self, total_files: int, total_bytes: int) -> None:
        self.bar.update(self.task, total=total_files)
        self._log(f"ingesting {total_files} files ({total_bytes / 2**20:,.1f} MiB)")

    def file_started(self, src: InputFile, reader: str) -> None:
        self.bar.update(self.task, description=f"{reader}")

    def records(self, n: int) -> None:
        self.records_total += n
        rate = self.records_total / max(time.perf_counter() - self.started, 1e-6)
        self.bar.update(self.task, records=self.records_total, rate=rate)
        now = time.perf_counter()
        if not self.live and now - self.last_log > 5:
            self.last_log = now
            self._log(f"{self.records_total:,} records ({rate:,.0f}/s)")

    def file_done(self, result: FileResult) -> None:
        self.bar.advance(self.task)
        if result.status == "failed":
            self.console.print(
                Text(f"failed: {printable(result.path)}: {result.message}", style="red")
            )
        elif result.status == "duplicate":
            self.console.print(
                Text(f"skipped: {printable(result.path)}: {result.message}", style="yellow")
            )
        elif not self.live:
            self._log(
                f"{result.format}: {printable(result.path)}: {result.records_read:,} records, "
                f"{result.records_rejected:,} rejected"
            )

    def file_revised(self, result: FileResult) -> None:
        self.console.print(
            Text(f"skipped: {printable(result.path)}: {result.message}", style="yellow")
        )


def print_ingest_summary(console: Console, summary: IngestSummary) -> None:
    rate = summary.events / summary.seconds if summary.seconds else 0.0
    console.print(Text(
        f"{summary.count('ingested')} files ingested, {summary.count('duplicate')} already in "
        f"the case, {summary.count('failed')} failed; {summary.events:,} events, "
        f"{summary.rejected:,} rejected records; {summary.seconds:.1f} s ({rate:,.0f} events/s)"
    ))  # fmt: skip
    if summary.rejected:
        console.print(
            Text(f"rejected records are listed by: breachtrace info --case {summary.case}")
        )
    print_warnings(console, summary.warnings)


def print_warnings(console: Console, warnings: list[str]) -> None:
    for warning in warnings:
        console.print(Text(f"warning: {printable(warning)}", style="yellow"))


def print_info(console: Console, info: CaseInfo) -> None:
    console.print(Text(f"case {info.root}", style="bold"))
    console.print(Text(
        f"{len(info.files)} input files, {info.events:,} events, {info.rejects:,} rejected records; "
        f"from {printable(info.first)} to {printable(info.last)} (UTC)"
    ))  # fmt: skip
    sources = Table("source", "channel", "events", title="Events per source")
    for fmt, channel, n in info.by_source:
        sources.add_row(Text(printable(fmt)), Text(printable(channel)), f"{n:,}")
    console.print(sources)
    hosts = Table("host", "events", "first", "last", title=f"Events per host ({len(info.by_host)})")
    for host, n, first, last in info.by_host[:25]:
        hosts.add_row(Text(printable(host)), f"{n:,}", printable(first), printable(last))
    if len(info.by_host) > 25:
        hosts.add_row(f"... {len(info.by_host) - 25} more", "", "", "")
    console.print(hosts)
    days = Table("day", "events", title=f"Events per day ({len(info.by_day)} days)")
    shown = info.by_day if len(info.by_day) <= 31 else info.by_day[:15] + info.by_day[-15:]
    for day, n in shown:
        days.add_row(printable(day), f"{n:,}")
    console.print(days)
    files = Table("file", "format", "records", "rejected", "sha256", title="Input files")
    for e in info.files[:50]:
        files.add_row(Text(printable(e.path)), e.format, f"{e.records_read:,}",
                      f"{e.records_rejected:,}", e.sha256[:16])  # fmt: skip
    if len(info.files) > 50:
        files.add_row(f"... {len(info.files) - 50} more", "", "", "", "")
    console.print(files)
    if info.reject_samples:
        rejects = Table("file", "record", "reason", title=f"Rejected records ({info.rejects:,})")
        for path, record, reason in info.reject_samples:
            rejects.add_row(Text(printable(path)), printable(record), Text(printable(reason)))
        console.print(rejects)


def print_demo(console: Console, result: DemoResult) -> None:
    """What the demo found and where its outputs are."""
    sim, ing, info = result.simulation, result.ingest, result.info
    console.print(Text("breachtrace demo: the 2020 telecom intrusion, simulated", style="bold"))
    console.print(Text(
        f"evidence: {sim.events:,} events in {sum(sim.files_by_format.values())} files, "
        f"{sim.hosts} hosts, {sim.days} days ({sim.start} to {sim.end}); "
        f"simulated in {result.seconds['simulate']:.1f} s"
    ))  # fmt: skip
    console.print(Text(
        f"case: {ing.events:,} events ingested from {ing.count('ingested')} files, "
        f"{ing.rejected:,} rejected, in {result.seconds['ingest']:.1f} s "
        f"({ing.events / max(result.seconds['ingest'], 1e-9):,.0f} events/s)"
    ))  # fmt: skip
    print_warnings(console, ing.warnings)
    table = Table("source", "channel", "events", title="What the case holds")
    for fmt, channel, n in info.by_source:
        table.add_row(Text(printable(fmt)), Text(printable(channel)), f"{n:,}")
    console.print(table)
    console.print(Text(f"hosts seen: {len(info.by_host)}; days: {len(info.by_day)}; "
                       f"span {printable(info.first)} to {printable(info.last)} UTC"))  # fmt: skip
    if result.hunt is not None:
        h = result.hunt
        console.print(Text(
            f"sigma hunt: {h.rules_compiled:,} rules compiled, {h.rules_fired:,} fired, "
            f"{h.findings:,} findings over {h.events_scanned:,} events in {h.seconds:.1f} s"
        ))  # fmt: skip
    if result.detect is not None:
        d = result.detect
        console.print(Text(detect_line(d)))
    if result.trace is not None:
        for inc in result.trace.incidents:
            console.print(
                Text(f"trace: {inc.incident_id} [{inc.severity}] {printable(inc.summary)}")
            )
    if result.scope is not None:
        sc = result.scope.document
        per = "; ".join(f"{printable(r['name'])}: {len(r['owners'])}" for r in sc["routes"])
        console.print(Text(f"scope: {len(sc['union'])} owners exposed ({per}), "
                           f"{sc['individuals']:,} individuals"))  # fmt: skip
    for stage, why in result.skipped.items():
        console.print(Text(f"{stage} skipped: {why}", style="yellow"))
    console.print(Text("outputs:", style="bold"))
    console.print(Text(f"  case directory      {result.case}"))
    console.print(Text(f"  simulated evidence  {result.out / 'evidence' / 'logs'}"))
    console.print(Text(f"  ground truth        {sim.truth}"))
    if result.scope is not None:
        run_dir = _as_given(result.case, result.scope.run_dir)
        console.print(Text(f"  incidents, scope    {result.case / 'trace'}, {run_dir}"))
    if result.report is not None and "html" in result.report.files:
        console.print(Text(f"  report              {result.report.files['html']}"))
    console.print(Text(f"explore: breachtrace info --case {result.case}"))
    console.print(
        Text(f"         breachtrace events --case {result.case} --action logon --limit 20")
    )


def _as_given(case: Path, path: Path) -> Path:
    """``path`` (resolved, inside the case) spelled from the case path as the user gave it, so
    that the outputs listed together read alike."""
    try:
        return case / path.relative_to(case.resolve())
    except ValueError:
        return path


def detect_line(d: DetectSummary) -> str:
    """One line: findings per analytic, informational ones (the baseline) counted apart."""
    per = ", ".join(f"{a.name} {_alerts_and_info(a.findings, a.by_severity)}" for a in d.analytics)
    return (
        f"behavioural analytics: {_alerts_and_info(d.findings, _severities(d))} findings "
        f"({per}) in {d.seconds:.1f} s"
    )


def _severities(summary: DetectSummary) -> dict[str, int]:
    out: dict[str, int] = {}
    for a in summary.analytics:
        for severity, n in a.by_severity.items():
            out[severity] = out.get(severity, 0) + n
    return out


def _alerts_and_info(total: int, by_severity: dict[str, int]) -> str:
    """A count with informational findings (the never-seen-edge baseline) apart, as in
    "24 (+233 informational)": they are context and must not read as alerts."""
    info = by_severity.get("informational", 0)
    return f"{total - info:,}" + (f" (+{info:,} informational)" if info else "")
