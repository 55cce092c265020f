"""The findings as the report shows them: counts in SQL, the most severe rows, the tampering
findings, and the lateral-movement hops (the attack graph before a trace exists)."""

from __future__ import annotations

from typing import Any

import duckdb

from breachtrace.schema import SEVERITIES

_TS = "strftime({col}, '%Y-%m-%dT%H:%M:%S')"
# severity rank for ORDER BY: critical first
_RANK = "list_position(['informational','low','medium','high','critical'], severity)"
TAMPER_KINDS = ("log_cleared", "logging_stopped", "log_clear_command", "log_gap", "log_silence",
                "log_blind_spot", "log_time_reversal")  # fmt: skip
HOP_KINDS = ("lateral_chain", "lateral_hop", "lateral_remote_exec", "lateral_admin_share")


def records(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """Rows of a query as dicts."""
    cursor = con.execute(sql, params or [])
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def findings_summary(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """Counts by severity, kind and ATT&CK technique, distinct hosts and accounts, time span."""
    total = records(con, f"""
        SELECT count(*) AS total, {_TS.format(col="min(first_ts)")} AS first,
               {_TS.format(col="max(last_ts)")} AS last,
               (SELECT count(DISTINCT h) FROM (SELECT unnest(hosts) AS h FROM findings)) AS hosts,
               (SELECT count(DISTINCT u) FROM (SELECT unnest(users) AS u FROM findings)) AS accounts
        FROM findings""")[0]  # fmt: skip
    by_severity = dict(
        con.execute("SELECT severity, count(*) FROM findings GROUP BY ALL").fetchall()
    )
    by_kind = records(con, f"""
        SELECT kind, count(*) AS findings, max({_RANK}) AS rank,
               {_TS.format(col="min(first_ts)")} AS first, {_TS.format(col="max(last_ts)")} AS last
        FROM findings GROUP BY kind ORDER BY rank DESC, findings DESC, kind""")  # fmt: skip
    for row in by_kind:
        row["severity"] = SEVERITIES[max(int(row.pop("rank") or 1), 1) - 1]
    techniques = records(con, """
        SELECT t AS technique, count(*) AS findings FROM (SELECT unnest(techniques) AS t FROM findings)
        GROUP BY t ORDER BY findings DESC, t""")  # fmt: skip
    return total | {
        "by_severity": {s: int(by_severity.get(s, 0)) for s in reversed(SEVERITIES)},
        "by_kind": by_kind,
        "techniques": techniques,
    }


def top_findings(con: duckdb.DuckDBPyConnection, limit: int) -> list[dict[str, Any]]:
    """The ``limit`` most severe findings (then highest score, then oldest), lists trimmed."""
    return records(con, f"""
        SELECT finding_id, {_TS.format(col="first_ts")} AS first, {_TS.format(col="last_ts")} AS last,
               severity, round(score, 2) AS score, source, kind, rule_id, title, techniques,
               hosts[1:8] AS hosts, len(hosts) AS host_count, users[1:8] AS users,
               len(users) AS user_count, files[1:5] AS files, len(files) AS file_count,
               evidence[1:5] AS evidence, len(evidence) AS evidence_count, explanation
        FROM findings ORDER BY {_RANK} DESC, score DESC, first_ts, finding_id LIMIT ?""", [limit])  # fmt: skip


def tamper_findings(con: duckdb.DuckDBPyConnection, limit: int) -> list[dict[str, Any]]:
    """Cleared, stopped or missing logs as found by the tamper analytic."""
    return records(con, f"""
        SELECT finding_id, kind, severity, hosts, {_TS.format(col="first_ts")} AS start,
               {_TS.format(col="last_ts")} AS "end", explanation
        FROM findings WHERE kind IN ?
        ORDER BY first_ts, finding_id LIMIT ?""", [list(TAMPER_KINDS), limit])  # fmt: skip


def lateral_hops(con: duckdb.DuckDBPyConnection, limit: int) -> list[dict[str, Any]]:
    """Hops of the lateral-movement findings (details.hops), most severe findings first."""
    return records(con, f"""
        WITH f AS (
            SELECT finding_id, kind, severity, score, first_ts,
                   unnest(from_json(json_extract(details, '$.hops'),
                          '[{{"src":"VARCHAR","dst":"VARCHAR","time":"VARCHAR","account":"VARCHAR","method":"VARCHAR"}}]')) AS hop
            FROM findings WHERE kind IN ? AND json_valid(details)
                AND json_type(json_extract(details, '$.hops')) = 'ARRAY'
            ORDER BY {_RANK} DESC, score DESC, first_ts LIMIT ?)
        SELECT hop.src AS src, hop.dst AS dst, left(hop.time, 19) AS time, hop.account AS account,
               hop.method AS method, kind, severity, finding_id FROM f
        WHERE hop.src IS NOT NULL AND hop.dst IS NOT NULL""", [list(HOP_KINDS), limit])  # fmt: skip


def provisional_containment(con: duckdb.DuckDBPyConnection, limit: int) -> list[dict[str, Any]]:
    """Before a trace: hosts and accounts named by high or critical findings, to review first."""
    return records(con, """
        WITH severe AS (SELECT * FROM findings WHERE severity IN ('high', 'critical')),
        targets AS (
            SELECT 'review / isolate host' AS action, unnest(hosts) AS target, finding_id, kind FROM severe
            UNION ALL
            SELECT 'review / reset account', unnest(users), finding_id, kind FROM severe)
        SELECT action, target, 'named by ' || count(*) || ' high/critical finding(s): '
                   || string_agg(DISTINCT kind, ', ' ORDER BY kind) AS reason,
               list(DISTINCT finding_id ORDER BY finding_id)[1:10] AS finding_ids
        FROM targets WHERE target IS NOT NULL GROUP BY action, target
        ORDER BY action, count(*) DESC, target LIMIT ?""", [limit])  # fmt: skip
