"""The report's CSV tables, whole (the HTML page carries only the head of each): findings,
timeline, exposed owners, the notification list and the input files. Every cell goes through
``safe_cell`` so a spreadsheet shows attacker-chosen text as text, never as a formula."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from breachtrace.case import Case
from breachtrace.cli_output import safe_cell
from breachtrace.findings_query import FindingFilter, select_findings
from breachtrace.report.evidence import INPUT_COLUMNS
from breachtrace.report.timeline import TIMELINE_COLUMNS

OWNER_COLUMNS = ("owner", "routes", "files", "first_access", "last_access", "classification",
                 "individuals", "evidence")  # fmt: skip


def cell(value: Any) -> str:
    """One CSV cell: lists joined with "; ", then neutralised."""
    if isinstance(value, list | tuple):
        value = "; ".join("" if v is None else str(v) for v in value)
    return safe_cell(value)


def write_csv(path: Path, names: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """Write a header and rows; return the number of rows."""
    n = 0
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow([cell(v) for v in names])
        for row in rows:
            writer.writerow([cell(v) for v in row])
            n += 1
    return n


def write_findings_csv(case: Case, path: Path) -> int:
    names, rows = select_findings(case, FindingFilter(), full=True)
    return write_csv(path, names, rows)


def write_timeline_csv(rows: list[dict[str, Any]], path: Path) -> int:
    return write_csv(path, TIMELINE_COLUMNS, ([r[c] for c in TIMELINE_COLUMNS] for r in rows))


def write_owners_csv(scope: dict[str, Any], path: Path) -> int:
    owners = scope.get("owners") or []
    return write_csv(path, OWNER_COLUMNS, ([o.get(c) for c in OWNER_COLUMNS] for o in owners))


def write_inputs_csv(inputs: list[dict[str, Any]], path: Path) -> int:
    return write_csv(path, INPUT_COLUMNS, ([i[c] for c in INPUT_COLUMNS] for i in inputs))


def copy_notification_csv(source: Path, path: Path) -> int:
    """The scope stage's notification list, re-written cell by cell through ``safe_cell``."""
    with open(source, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        return write_csv(path, [], [])
    return write_csv(path, rows[0], rows[1:])
