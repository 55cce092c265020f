"""Everything the report shows, gathered once from the case into one JSON-ready dict that every
renderer reads (the JSON output is this dict). Long lists are cut to ``Limits`` for the page;
the CSV files carry them whole."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb

from breachtrace import __version__
from breachtrace.case import Case
from breachtrace.context import ContextError, load_context
from breachtrace.report import evidence, findings_view, graph, summary, timeline
from breachtrace.report.inputs import StageOutputs, read_stage_outputs


@dataclass(frozen=True)
class Limits:
    """How many rows the HTML page carries per section (the CSV files carry every row)."""

    findings: int = 1500
    timeline: int = 3000
    graph_findings: int = 60  # lateral findings drawn before a trace exists
    tamper: int = 500
    containment: int = 200
    inputs: int = 400
    event_refs: int = 600


def build_report_data(case: Case, limits: Limits = Limits()) -> dict[str, Any]:
    """Read findings, events, manifest, context, trace and scope; return the report's data."""
    stages = read_stage_outputs(case)
    incidents = None if stages.incidents is None else list(stages.incidents.get("incidents") or [])
    con = case.connect()
    try:
        return _gather(case, con, stages, incidents, limits)
    finally:
        con.close()


def _gather(
    case: Case,
    con: duckdb.DuckDBPyConnection,
    stages: StageOutputs,
    incidents: list[dict[str, Any]] | None,
    limits: Limits,
) -> dict[str, Any]:
    counts = findings_view.findings_summary(con)
    all_timeline = timeline.timeline_rows(con, incidents or [])
    shown_timeline = timeline.shown_rows(all_timeline, limits.timeline)
    attack_graph = (
        graph.graph_from_incidents(incidents)
        if incidents
        else graph.graph_from_findings(
            findings_view.lateral_hops(con, limits.graph_findings), _assets(case)
        )
    )
    graph_fig = graph.graph_figure(attack_graph) if attack_graph.hops else None
    inputs = evidence.input_files(case)
    top = findings_view.top_findings(con, limits.findings)
    refs = _cited_events(incidents or [], shown_timeline, top)
    data: dict[str, Any] = {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "tool": f"breachtrace {__version__}",
        "case": str(case.root),
        "status": {"traced": stages.incidents is not None, "scoped": stages.scope is not None},
        "limits": asdict(limits),
        "events": _event_counts(con),
        "summary": summary.executive_summary(counts, incidents, stages.scope),
        "findings_summary": counts,
        "findings": top,
        "trace": None if stages.incidents is None else {
            "generated": stages.incidents.get("generated"), "lead": stages.incidents.get("lead"),
            "incidents": incidents,
        },
        "graph": {
            "source": attack_graph.source, "routes": attack_graph.routes,
            "hosts": len(attack_graph.hosts), "hops": len(attack_graph.hops), "figure": graph_fig,
        },
        "timeline": {"total": len(all_timeline), "rows": shown_timeline,
                     "figure": timeline.timeline_figure(shown_timeline)},
        "scope": stages.scope,
        "log_gaps": [g for inc in incidents or [] for g in inc.get("log_gaps") or []],
        "tamper_findings": findings_view.tamper_findings(con, limits.tamper),
        "containment": _containment(con, incidents, limits),
        "evidence": {
            "inputs_total": len(inputs), "inputs": inputs[: limits.inputs],
            "context": evidence.context_files(case),
            "events": evidence.resolve_events(con, refs, inputs, limits.event_refs),
        },
    }  # fmt: skip
    data["_all_timeline"] = all_timeline  # for the CSV/Timesketch writers, never serialised
    data["_all_inputs"] = inputs
    data["_notification_csv"] = stages.notification_csv
    return data


def _event_counts(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    n, hosts, first, last = con.execute(
        "SELECT count(*), count(DISTINCT host), strftime(min(ts), '%Y-%m-%dT%H:%M:%S'), "
        "strftime(max(ts), '%Y-%m-%dT%H:%M:%S') FROM events"
    ).fetchone() or (0, 0, None, None)
    return {"events": n, "hosts": hosts, "first": first, "last": last}


def _assets(case: Case) -> dict[str, dict[str, str]]:
    try:
        ctx = load_context(case, store=False)
    except ContextError:
        return {}
    return {a.host: {"site": a.site or "", "country": a.country or "", "role": a.role or ""}
            for a in ctx.assets}  # fmt: skip


def _containment(
    con: duckdb.DuckDBPyConnection, incidents: list[dict[str, Any]] | None, limits: Limits
) -> dict[str, Any]:
    if incidents is not None:
        items = [c | {"incident_id": inc.get("incident_id")}
                 for inc in incidents for c in inc.get("containment") or []]  # fmt: skip
        return {"source": "trace", "items": items}
    items = findings_view.provisional_containment(con, limits.containment)
    return {"source": "findings", "items": items}


def _cited_events(
    incidents: list[dict[str, Any]], rows: list[dict[str, Any]], top: list[dict[str, Any]]
) -> list[tuple[str, str | None, str | None]]:
    """Event references the report cites, with the time range each lies in: hop evidence,
    timeline entries, then the evidence of the findings shown."""
    refs: list[tuple[str, str | None, str | None]] = []
    for inc in incidents:
        for r in inc.get("routes") or []:
            for hop in r.get("hops") or []:
                when = _opt(hop.get("time"))
                refs += [(str(uid), when, when) for uid in hop.get("evidence") or []]
    refs += [(str(r["event_uid"]), r["time"], r["time"])
             for r in rows if r.get("event_uid") and r["origin"] == "trace"]  # fmt: skip
    refs += [(str(uid), f["first"], f["last"]) for f in top for uid in f.get("evidence") or []]
    return refs


def _opt(value: Any) -> str | None:
    return None if value is None else str(value)
