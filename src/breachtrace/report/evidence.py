"""The evidence appendix: input files with their SHA-256 (chain of custody) and the stored
events the report cites, each resolved to its input file and record number."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

import duckdb

from breachtrace.case import Case
from breachtrace.report.findings_view import records

INPUT_COLUMNS = ("input_id", "path", "format", "sha256", "size", "records_read",
                 "records_rejected", "first_ts", "last_ts", "ingested_at", "batch_id")  # fmt: skip


def input_files(case: Case) -> list[dict[str, Any]]:
    """Every ingested input file with its hash, oldest batch first."""
    return [{k: asdict(e)[k] for k in INPUT_COLUMNS} for e in case.manifest()]


def context_files(case: Case) -> list[dict[str, Any]]:
    """The context files stored in the case (inventories) with their SHA-256."""
    index = case.root / "context" / "context.json"
    if not index.is_file():
        return []
    try:
        stored = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return []
    return [
        {"kind": kind, "source": str(v.get("source", "")), "sha256": str(v.get("sha256", "")),
         "stored": str(v.get("stored", ""))}
        for kind, v in sorted(stored.items()) if isinstance(v, dict)
    ]  # fmt: skip


def resolve_events(
    con: duckdb.DuckDBPyConnection,
    refs: Iterable[tuple[str, str | None, str | None]],
    inputs: list[dict[str, Any]],
    limit: int,
) -> list[dict[str, Any]]:
    """The cited events (``(event_uid, earliest, latest)`` with the time range the event lies
    in, first ``limit`` distinct uids), with their stored time, host, action and account, and
    the input file + record they came from. The months of the ranges prune the scan."""
    wanted: dict[str, None] = {}
    months: set[str] = set()
    unbounded = False
    for uid, first, last in refs:
        if not uid or uid in wanted:
            continue
        if len(wanted) >= limit:
            break
        wanted[uid] = None
        if first and last and len(first) >= 7 and len(last) >= 7:
            months.update(_months(first[:7], last[:7]))
        else:
            unbounded = True
    if not wanted:
        return []
    month_filter = "AND month IN ?" if months and not unbounded else ""
    params: list[Any] = [list(wanted)] + ([sorted(months)] if month_filter else [])
    try:
        found = {
            r["event_uid"]: r
            for r in records(
                con,
                f"""
                SELECT event_uid, strftime(ts, '%Y-%m-%dT%H:%M:%S') AS time, host, action, user,
                       input_id, input_record
                FROM events WHERE event_uid IN (SELECT unnest(?)) {month_filter}""",
                params,
            )
        }
    except duckdb.Error:  # a case without events has no month column
        found = {}
    paths = {i["input_id"]: i["path"] for i in inputs}
    out = []
    for uid in wanted:
        row = found.get(uid)
        input_id, _, record = uid.partition(":")
        out.append({
            "event_uid": uid, "found": row is not None,
            "time": row["time"] if row else None, "host": row["host"] if row else None,
            "action": row["action"] if row else None, "user": row["user"] if row else None,
            "input_path": paths.get(input_id), "input_record": record,
        })  # fmt: skip
    return out


def _months(first: str, last: str) -> list[str]:
    """Every YYYY-MM from ``first`` to ``last`` (at most 36, beyond that no pruning)."""
    y, m = int(first[:4]), int(first[5:7])
    out = []
    while f"{y:04d}-{m:02d}" <= last and len(out) < 36:
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out
