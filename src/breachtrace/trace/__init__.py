"""trace: findings (Sigma and behavioural) and the login graph become incidents.

    from breachtrace.trace import trace
    result = trace(case_dir)                      # every incident
    result = trace(case_dir, lead="host:jp-fs01")  # forward and backward from a lead
    result = trace(case_dir, engine="spark")        # the same SQL on Spark (local[*])

Writes CASE/trace/incidents.json (shape: docs/investigation.md) and returns a TraceResult.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from breachtrace import atomic_write
from breachtrace.case import Case
from breachtrace.context import load_context
from breachtrace.engines.base import one, open_engine
from breachtrace.trace import lookups
from breachtrace.trace.evidence import (
    CandidateHop,
    FindingView,
    candidate_hops,
    load_findings,
    reading_hops,
)
from breachtrace.trace.graph import HIGH, accept_hops, routes_from, seed_from_findings
from breachtrace.trace.incidents import Workspace, build_incident, group_routes
from breachtrace.trace.lead import Lead, LeadError, parse_lead, seeds_from_lead, touches
from breachtrace.trace.records import Incident, as_json, iso

__all__ = ["LeadError", "TraceResult", "incidents_path", "trace"]


@dataclass
class TraceResult:
    case: str
    lead: str | None
    incidents: list[Incident]
    unattached: list[FindingView]  # high findings no incident explains
    path: Path
    seconds: float


def incidents_path(case: Case) -> Path:
    return case.root / "trace" / "incidents.json"


def trace(
    case: str | Path | Case,
    *,
    lead: str | Lead | None = None,
    detection: datetime | None = None,
    engine: str = "duckdb",
    spark_master: str | None = None,
) -> TraceResult:
    """Correlate the case's findings into incidents and write CASE/trace/incidents.json.

    ``lead`` (``host:NAME``, ``user:NAME``, ``ip:ADDR``, ``finding:ID``) traces forward and
    backward from that one thing instead of from every high finding; ``detection`` is when the
    breach was detected (default: the last event in the case, when the logs were collected).
    ``engine`` runs the event queries on "duckdb" (default) or "spark" (``spark_master``,
    default local[*]); the incidents are the same.
    """
    began = time.perf_counter()
    opened = case if isinstance(case, Case) else Case.open(case)
    chosen = parse_lead(lead) if isinstance(lead, str) else lead
    context = load_context(opened, store=False)
    sql = open_engine(opened, engine, master=spark_master, metadata_cache=True)
    try:
        findings = load_findings(sql)
        if detection is None:
            row = one(sql, "SELECT max(ts) FROM events")
            detection = row[0] if row else None
        ips_of_host, host_of_ip = lookups.host_addresses(context)
        ws = Workspace(sql, context, findings, host_of_ip, ips_of_host, detection)
        candidates = _candidates(ws)
        if chosen is not None:
            seeds = seeds_from_lead(chosen, findings, candidates, host_of_ip)
        else:
            seeds = seed_from_findings(findings)
        accepted = _refine_times(ws, accept_hops(candidates, seeds))
        groups = group_routes(routes_from(accepted))
        incidents = [build_incident(ws, g) for g in groups]
    finally:
        sql.close()
    if chosen is not None:
        incidents = [i for i in incidents if _answers(chosen, i)]
    explained = {fid for i in incidents for fid in i.finding_ids}
    unattached = [f for f in findings if f.level >= HIGH and f.finding_id not in explained]
    path = incidents_path(opened)
    _write(path, chosen, incidents, unattached)
    return TraceResult(
        str(opened.root),
        str(chosen) if chosen else None,
        incidents,
        unattached,
        path,
        time.perf_counter() - began,
    )


def _candidates(ws: Workspace) -> list[CandidateHop]:
    """Candidate hops; VPN sessions from addresses the account also used from its own other
    devices are the employee's (home, travel), not the intruder's, and are left out."""
    host_of_ip = dict(ws.host_of_ip)
    found = candidate_hops(ws.findings)
    for h in found:
        if h.source_ip and h.src and not ws.is_address(h.src):
            host_of_ip.setdefault(h.source_ip, h.src)
    ws.host_of_ip = host_of_ip
    found += reading_hops(ws.findings, host_of_ip)
    own: dict[tuple[str, str], set[str]] = {}
    kept = []
    for h in found:
        if h.method == "vpn":
            key = (h.account, h.src)
            if key not in own:
                own[key] = lookups.own_vpn_addresses(ws.engine, h.account, [h.src])
            if h.vpn_source in own[key]:
                continue
        kept.append(h)
    return sorted(kept, key=lambda h: h.time)


def _refine_times(ws: Workspace, hops: list[CandidateHop]) -> list[CandidateHop]:
    """Exact times where a finding gives only a session or a window: the first logon a VPN
    session made on the host; the first flow behind a hop whose logon records are missing."""
    vpn = [h for h in hops if h.method == "vpn"]
    # answers in the order of ``vpn``, which is the order the loop below meets them
    first_logons = iter(lookups.first_vpn_logons(
        ws.engine, [lookups.VpnLogonQuery(h.account, h.dst, h.src, h.time) for h in vpn]
    ))  # fmt: skip
    out = []
    for h in hops:
        if h.method == "vpn":
            found = next(first_logons)
            if found:
                h = replace(h, time=found[0], evidence=(*h.evidence, found[1]))
        elif h.method.endswith("(logon records missing)"):
            gap = next((f for f in ws.findings if f.finding_id == h.finding_id), None)
            src_ips = [ip for ip, host in ws.host_of_ip.items() if host == h.src] or [h.src]
            if gap is not None:
                when = lookups.first_connection(
                    ws.engine, src_ips, ws.ips_of_host.get(h.dst, []), gap.first_ts, gap.last_ts
                )
                if when:
                    h = replace(h, time=when)
        out.append(h)
    return sorted(out, key=lambda h: h.time)


def _answers(lead: Lead, incident: Incident) -> bool:
    hosts = {h.name for h in incident.hosts} | {d.name for d in incident.devices}
    accounts = {a.name for a in incident.accounts}
    addresses = {a for r in incident.routes for a in r.source_addresses}
    addresses |= {c.dst_ip for c in incident.c2 if c.dst_ip}
    return touches(lead, hosts, accounts, addresses, set(incident.finding_ids))


def _write(
    path: Path, lead: Lead | None, incidents: list[Incident], unattached: list[FindingView]
) -> None:
    document = {
        "generated": iso(datetime.now().astimezone().replace(tzinfo=None)),
        "lead": str(lead) if lead else None,
        "incidents": as_json(incidents),
        "unattached_findings": [
            {
                "finding_id": f.finding_id,
                "kind": f.kind,
                "severity": f.severity,
                "time": iso(f.first_ts),
                "title": f.title,
            }
            for f in unattached
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write.write_text(path, json.dumps(document, indent=1, ensure_ascii=False))
