"""Read-only queries over a case: filtered events and the case summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sqlglot import exp

from breachtrace.case import Case, ManifestEntry
from breachtrace.schema import COLUMN_NAMES


class QueryError(Exception):
    """A query the user asked for that cannot run, and why."""


@dataclass(frozen=True)
class EventFilter:
    since: str | None = None
    until: str | None = None
    host: str | None = None
    user: str | None = None
    action: str | None = None
    where: str | None = None


_FORBIDDEN = (exp.Select, exp.Subquery, exp.Table, exp.Command, exp.Anonymous)


def _checked_condition(where: str) -> str:
    """A user's --where text, accepted only as a plain condition over event columns."""
    try:
        parsed = sqlglot.parse_one(where, dialect="duckdb")
    except sqlglot.errors.ParseError as exc:
        raise QueryError(f"--where is not a valid SQL condition: {exc}") from exc
    if isinstance(parsed, exp.Query | exp.DDL | exp.DML) or any(
        isinstance(node, _FORBIDDEN) for node in parsed.walk()
    ):
        raise QueryError(
            "--where takes a condition over event columns, not a query or function call"
        )
    return parsed.sql(dialect="duckdb")


def select_events(
    case: Case, flt: EventFilter, *, limit: int = 100, columns: str | None = None
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Events matching the filter, oldest first."""
    names = [c.strip() for c in columns.split(",")] if columns else [
        "ts", "host", "action", "outcome", "user", "src_ip", "src_host", "dst_host",
        "process", "command_line", "file_path", "query", "event_code", "event_uid",
    ]  # fmt: skip
    unknown = [n for n in names if n not in COLUMN_NAMES]
    if unknown:
        raise QueryError(f"unknown columns {unknown}; known: {', '.join(COLUMN_NAMES)}")
    conditions, params = ["true"], []
    if flt.since:
        conditions.append("ts >= CAST(? AS TIMESTAMP)")
        params.append(flt.since)
    if flt.until:
        conditions.append("ts < CAST(? AS TIMESTAMP)")
        params.append(flt.until)
    for column, value in (("host", flt.host), ("user", flt.user), ("action", flt.action)):
        if value:
            conditions.append(f"lower({column}) = lower(?)")
            params.append(value)
    if flt.where:
        conditions.append(f"({_checked_condition(flt.where)})")
    sql = (
        f"SELECT {', '.join(names)} FROM events WHERE {' AND '.join(conditions)} "
        f"ORDER BY ts, event_uid" + (f" LIMIT {int(limit)}" if limit > 0 else "")
    )
    con = case.connect()
    try:
        rows = con.execute(sql, params).fetchall()
    except Exception as exc:  # DuckDB binder/conversion errors are the user's to fix
        raise QueryError(str(exc).splitlines()[0]) from exc
    finally:
        con.close()
    return names, rows


@dataclass
class CaseInfo:
    root: str
    files: list[ManifestEntry]
    events: int
    first: Any
    last: Any
    by_source: list[tuple[Any, ...]] = field(default_factory=list)
    by_host: list[tuple[Any, ...]] = field(default_factory=list)
    by_day: list[tuple[Any, ...]] = field(default_factory=list)
    rejects: int = 0
    reject_samples: list[tuple[Any, ...]] = field(default_factory=list)


def case_info(case: Case) -> CaseInfo:
    """The manifest summary and event counts per source, host and day."""
    con = case.connect()
    try:
        events, first, last = con.execute(
            "SELECT count(*), min(ts), max(ts) FROM events"
        ).fetchone() or (0, None, None)
        by_source = con.execute(
            "SELECT source_format, channel, count(*) AS events FROM events "
            "GROUP BY ALL ORDER BY events DESC"
        ).fetchall()
        by_host = con.execute(
            "SELECT coalesce(host, '(network)') AS host, count(*) AS events, min(ts), max(ts) "
            "FROM events GROUP BY ALL ORDER BY events DESC"
        ).fetchall()
        by_day = con.execute(
            "SELECT CAST(ts AS DATE) AS day, count(*) FROM events GROUP BY ALL ORDER BY day"
        ).fetchall()
        rejects = con.execute("SELECT count(*) FROM rejects").fetchone()
        samples = con.execute(
            "SELECT input_path, input_record, reason FROM rejects ORDER BY input_path, "
            "input_record LIMIT 10"
        ).fetchall()
    finally:
        con.close()
    return CaseInfo(
        str(case.root), case.manifest(), events, first, last, by_source, by_host, by_day,
        rejects[0] if rejects else 0, samples,
    )  # fmt: skip
