"""Read-only listing of a case's findings (Sigma and behavioural), filtered."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from breachtrace.case import Case
from breachtrace.query import QueryError
from breachtrace.schema import SEVERITIES

TABLE_COLUMNS = ("first_ts", "severity", "kind", "title", "hosts", "users", "techniques",
                 "evidence_count", "explanation")  # fmt: skip
FULL_COLUMNS = ("finding_id", "first_ts", "last_ts", "severity", "score", "source", "kind",
                "rule_id", "title", "techniques", "tags", "hosts", "users", "addresses", "files",
                "evidence", "explanation", "details")  # fmt: skip


@dataclass(frozen=True)
class FindingFilter:
    """Which findings to list. ``severity`` is a minimum; text filters are case-insensitive."""

    severity: str | None = None
    kind: str | None = None
    host: str | None = None
    user: str | None = None
    since: str | None = None
    until: str | None = None
    rule: str | None = None  # rule id, or text in the title


def select_findings(
    case: Case, flt: FindingFilter, *, full: bool = False, limit: int = 0
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Findings matching the filter, oldest first, most severe first within the same time."""
    conditions, params = ["true"], []
    if flt.severity:
        level = flt.severity.lower()
        if level not in SEVERITIES:
            raise QueryError(
                f"unknown severity {flt.severity!r}: choose one of {', '.join(SEVERITIES)}"
            )
        conditions.append("list_position(?, severity) >= ?")
        params += [list(SEVERITIES), SEVERITIES.index(level) + 1]
    if flt.kind:
        conditions.append("lower(kind) = lower(?)")
        params.append(flt.kind)
    if flt.host:
        conditions.append("list_contains(list_transform(hosts, lambda h: lower(h)), lower(?))")
        params.append(flt.host)
    if flt.user:
        conditions.append("list_contains(list_transform(users, lambda u: lower(u)), lower(?))")
        params.append(flt.user)
    if flt.since:
        conditions.append("last_ts >= CAST(? AS TIMESTAMP)")
        params.append(flt.since)
    if flt.until:
        conditions.append("first_ts < CAST(? AS TIMESTAMP)")
        params.append(flt.until)
    if flt.rule:
        conditions.append("(lower(rule_id) = lower(?) OR contains(lower(title), lower(?)))")
        params += [flt.rule, flt.rule]
    names = list(FULL_COLUMNS if full else TABLE_COLUMNS)
    select = ", ".join(
        "len(evidence) AS evidence_count" if n == "evidence_count" else n for n in names
    )
    sql = (
        f"SELECT {select} FROM findings WHERE {' AND '.join(conditions)} "
        "ORDER BY first_ts, list_position(?, severity) DESC, rule_id"
        + (f" LIMIT {int(limit)}" if limit > 0 else "")
    )
    params.append(list(SEVERITIES))
    con = case.connect()
    try:
        rows = con.execute(sql, params).fetchall()
    except Exception as exc:  # bad timestamps and the like are the user's to fix
        raise QueryError(str(exc).splitlines()[0]) from exc
    finally:
        con.close()
    return names, rows
