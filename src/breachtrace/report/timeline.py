"""The report's timeline: the traced incidents' timeline entries and every finding, one row per
moment, and the plotly figure of the rows the HTML shows (one trace per severity, one row per
kind; the page's script filters by host, account and kind)."""

from __future__ import annotations

from functools import partial
from html import escape as html_escape
from typing import Any

import duckdb
import plotly.graph_objects as go

from breachtrace.report.findings_view import records
from breachtrace.schema import SEVERITIES

# plotly decodes &lt; &gt; &amp; in labels but shows &quot; as is; quotes outside tags are inert
escape = partial(html_escape, quote=False)

TIMELINE_COLUMNS = ("time", "kind", "severity", "host", "user", "summary", "finding_id",
                    "event_uid", "origin")  # fmt: skip
SEVERITY_COLOURS = {"critical": "#b2182b", "high": "#ef8a62", "medium": "#e0b000",
                    "low": "#67a9cf", "informational": "#999999"}  # fmt: skip


def timeline_rows(
    con: duckdb.DuckDBPyConnection, incidents: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """All timeline rows, oldest first: incident entries (origin "trace") and findings."""
    found = records(con, """
        SELECT strftime(first_ts, '%Y-%m-%dT%H:%M:%S') AS time, kind, severity, hosts[1] AS host,
               users[1] AS "user", title AS summary, finding_id, evidence[1] AS event_uid,
               'finding' AS origin
        FROM findings""")  # fmt: skip
    severity_of = {r["finding_id"]: r["severity"] for r in found}
    traced = []
    for inc in incidents:
        for e in inc.get("timeline") or []:
            fid = e.get("finding_id")
            traced.append({
                "time": _text(e.get("time"))[:19], "kind": _text(e.get("kind")) or "event",
                "severity": severity_of.get(fid) or _text(inc.get("severity")) or "medium",
                "host": e.get("host"), "user": e.get("user"), "summary": _text(e.get("summary")),
                "finding_id": fid, "event_uid": e.get("event_uid"), "origin": "trace",
            })  # fmt: skip
    rows = traced + found
    rows.sort(key=lambda r: (r["time"] or "", r["origin"] != "trace"))
    return rows


def shown_rows(rows: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """The rows the HTML plots: every traced entry, then findings by severity, up to ``limit``;
    in time order."""
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    if len(rows) <= limit:
        return rows
    keep = sorted(range(len(rows)), key=lambda i: (
        rows[i]["origin"] != "trace", -rank.get(rows[i]["severity"], 0), rows[i]["time"] or ""))  # fmt: skip
    return [rows[i] for i in sorted(keep[:limit])]


def timeline_figure(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Scatter of the rows: x time, y kind, colour severity; customdata = row index."""
    fig = go.Figure()
    kinds = sorted({r["kind"] for r in rows})
    for severity in reversed(SEVERITIES):
        index = [i for i, r in enumerate(rows) if r["severity"] == severity]
        if not index:
            continue
        fig.add_trace(go.Scatter(
            x=[rows[i]["time"] for i in index], y=[escape(rows[i]["kind"]) for i in index],
            customdata=index, mode="markers", name=severity, meta="timeline",
            marker={"color": SEVERITY_COLOURS.get(severity, "#999"), "size": 9,
                    "symbol": ["diamond" if rows[i]["origin"] == "trace" else "circle" for i in index]},
            hovertext=[_hover(rows[i]) for i in index], hoverinfo="text",
        ))  # fmt: skip
    fig.update_layout(
        height=max(260, 60 + 28 * len(kinds)), margin={"l": 10, "r": 10, "t": 30, "b": 10},
        xaxis={"type": "date", "rangeslider": {"visible": True}, "title": "time (UTC)"},
        yaxis={"type": "category", "categoryorder": "category ascending", "automargin": True},
        legend={"orientation": "h", "y": 1.08}, hovermode="closest", plot_bgcolor="white",
    )  # fmt: skip
    return fig.to_plotly_json()


def _hover(row: dict[str, Any]) -> str:
    parts = [row["time"], f"{row['severity']} {row['kind']}", f"host {row['host'] or '-'}",
             f"account {row['user'] or '-'}", row["summary"] or ""]  # fmt: skip
    return "<br>".join(escape(_text(p)[:200]) for p in parts)


def _text(value: Any) -> str:
    return "" if value is None else str(value)
