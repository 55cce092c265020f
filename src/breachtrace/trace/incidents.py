"""Findings and the login graph become incidents: routes grouped by the hosts they share, each
with its entry points, compromised hosts/accounts/devices, timeline, dwell time, C2 channels,
log gaps and containment actions (see docs/investigation.md for the rules)."""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import networkx as nx

from breachtrace.context import Context
from breachtrace.engines.base import Engine
from breachtrace.schema import SEVERITIES
from breachtrace.trace import lookups
from breachtrace.trace.evidence import GAP_KINDS, PATH_KINDS, FindingView
from breachtrace.trace.graph import HIGH, RouteHops, merge_hops
from breachtrace.trace.records import (
    C2Channel,
    ContainmentAction,
    Dwell,
    Entity,
    EntryPoint,
    Hop,
    HostInfo,
    Incident,
    LogGapNote,
    Route,
    TimelineEntry,
    iso,
)

MALICIOUS_KINDS = (
    "beacon",
    "bulk_read",
    "lateral_remote_exec",
    "lateral_admin_share",
    "credential_anomalous_login",
    "credential_impossible_travel",
    "lateral_chain",
    "lateral_hop",
)
ENTRY_WINDOW = timedelta(minutes=15)  # who ran programs on an entry point right after entry
BEFORE_IMPLANT = timedelta(minutes=30)  # the first commands on an entry before its implant


@dataclass
class Workspace:
    """What building incidents reads: findings, context, the engine, address maps."""

    engine: Engine
    context: Context
    findings: list[FindingView]
    host_of_ip: dict[str, str]
    ips_of_host: dict[str, list[str]]
    detection: datetime | None

    def is_address(self, name: str) -> bool:
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
        return True


def group_routes(routes: list[RouteHops]) -> list[list[RouteHops]]:
    """Routes that share a host belong to one incident."""
    graph = nx.Graph()
    for i, r in enumerate(routes):
        graph.add_node(("route", i))
        for h in r.hops:
            for node in (h.src, h.dst):
                graph.add_edge(("route", i), ("node", node))
    groups = []
    for component in nx.connected_components(graph):
        idx = sorted(n[1] for n in component if n[0] == "route")
        if idx:
            groups.append([routes[i] for i in idx])
    return sorted(groups, key=lambda g: min(h.time for r in g for h in r.hops))


def build_incident(ws: Workspace, routes: list[RouteHops]) -> Incident:
    """One incident from routes that share hosts."""
    hop_ids = {h.finding_id for r in routes for h in r.hops}
    devices = {h.src for r in routes for h in r.hops if h.method == "vpn"}
    nodes = {n for r in routes for h in r.hops for n in (h.src, h.dst)}
    hosts = {n for n in nodes if n not in devices and not ws.is_address(n)}
    accounts = {h.account for r in routes for h in r.hops if h.account}
    entries = [_entry_point(ws, r, devices) for r in routes]
    for e in entries:
        accounts.update(e.accounts)
    related = _related_findings(ws.findings, hosts, accounts, hop_ids)
    built = [
        _route(ws, f"R{i + 1}", r, e, devices)
        for i, (r, e) in enumerate(zip(routes, entries, strict=True))
    ]
    incident_id = (
        "INC-" + hashlib.sha256("|".join(sorted(r.entry for r in built)).encode()).hexdigest()[:8]
    )
    built = [
        Route(
            f"{incident_id}-{r.route_id}",
            *[getattr(r, f) for f in list(Route.__dataclass_fields__)[1:]],
        )
        for r in built
    ]
    hops = [h for r in built for h in r.hops]
    c2 = _c2(related, hosts)
    gaps = _gaps(related, hosts, hops)
    first_compromise = min(e.entry.time for e in entries)
    detectable = [f.first_ts for f in related] + [
        e.first_contact for e in entries if e.first_contact
    ]
    detection = ws.detection
    dwell = Dwell(
        first_compromise=first_compromise,
        first_detectable=min(detectable) if detectable else None,
        detection=detection,
        days=round((detection - first_compromise).total_seconds() / 86_400, 2)
        if detection
        else None,
    )
    host_infos = _hosts(ws, hosts, hops, related)
    account_infos = _entities(accounts, hops, related, entries, key="account")
    device_infos = _entities(devices, hops, [], entries, key="device")
    severity = _severity(related, built, c2)
    timeline = _timeline(built, entries, related)
    containment = _containment(ws, built, entries, host_infos, account_infos, c2)
    title, summary = _words(
        built, host_infos, account_infos, device_infos, c2, gaps, dwell, severity
    )
    return Incident(
        incident_id=incident_id,
        severity=severity,
        title=title,
        summary=summary,
        entry_points=tuple(e.entry for e in entries),
        routes=tuple(built),
        hosts=tuple(host_infos),
        accounts=tuple(account_infos),
        devices=tuple(device_infos),
        timeline=tuple(timeline),
        dwell=dwell,
        c2=tuple(c2),
        log_gaps=tuple(gaps),
        containment=tuple(containment),
        finding_ids=tuple(sorted({f.finding_id for f in related} | hop_ids)),
    )


# -- entry points ----------------------------------------------------------------------------
@dataclass
class EntryFacts:
    entry: EntryPoint
    accounts: list[str]
    first_contact: datetime | None  # first sign from outside (e.g. a scan), if any
    outside: list[str]  # outside addresses to block


def _entry_point(ws: Workspace, route: RouteHops, devices: set[str]) -> EntryFacts:
    node = route.entry
    first_hop = route.hops[0]
    if node in devices:
        return _device_entry(ws, route)
    if ws.is_address(node):
        why = (f"the first hop comes from the outside address {node}",)
        return EntryFacts(
            EntryPoint(first_hop.dst, node, first_hop.time, why, (first_hop.finding_id,)),
            [first_hop.account] if first_hop.account else [],
            None,
            [node],
        )
    on_host = [f for f in ws.findings if node in f.hosts and f.kind in MALICIOUS_KINDS]
    signs = [first_hop.time] + [f.first_ts for f in on_host]
    first_sign = min(signs)
    reasons: list[str] = []
    ids = [first_hop.finding_id]
    asset = next((a for a in ws.context.assets if a.host == node), None)
    if asset is not None:
        if asset.lifecycle and asset.lifecycle != "active":
            reasons.append(f"{node} is an asset marked {asset.lifecycle}")
        if asset.last_patched and (first_sign.date() - asset.last_patched).days >= 90:
            reasons.append(
                f"{node} was last patched {asset.last_patched.isoformat()}, "
                f"{(first_sign.date() - asset.last_patched).days} days before the first sign"
            )
        if asset.managed is False:
            reasons.append(f"{node} is unmanaged")
    elif ws.context.assets:
        reasons.append(f"{node} is not in the asset inventory")
    beacons = [f for f in on_host if f.kind == "beacon"]
    when = first_sign
    implant = None
    if beacons:
        b = beacons[0]
        reasons.append(f"{node} beacons to {', '.join(b.addresses[:2])} from {iso(b.first_ts)}")
        ids.append(b.finding_id)
        implant = lookups.implant_start(ws.engine, node, list(b.evidence), b.first_ts)
        if implant:
            when = min(when, implant[0])
            parent = f", started by {implant[2]}" if implant[2] else ""
            reasons.append(
                f"the beaconing program {implant[1]} first ran at {iso(implant[0])}{parent}"
            )
    # the intruder's connection comes just before the first programs run on the host, which
    # may be minutes before the implant starts (other outside clients may come in between)
    started = lookups.programs_started(ws.engine, node, when - BEFORE_IMPLANT, when)
    anchor = started[0][1] if started else when
    contacts = lookups.outside_contacts(ws.engine, ws.ips_of_host.get(node, []), anchor, ws.context)
    source = implant[2].rsplit("\\", 1)[-1] if implant and implant[2] else node
    first_contact = None
    if contacts:
        chosen = contacts[0]  # the last outside address to connect before the first sign
        source, when = chosen.address, min(when, chosen.last)
        first_contact = min(c.first for c in contacts)
        reasons.append(
            f"the outside address {chosen.address} connected to {node} at {iso(chosen.last)}, "
            f"just before the first malicious sign"
        )
        scanners = [c for c in contacts if c.ports >= 10]
        for c in scanners[:2]:
            reasons.append(f"{c.address} probed {c.ports} ports of {node} from {iso(c.first)}")
    inbound = [h for h in route.hops if h.dst == node]
    if not inbound:
        reasons.append(f"no login into {node} from another compromised host came first")
    accounts = lookups.accounts_acting(
        ws.engine, node, when - timedelta(minutes=1), when + ENTRY_WINDOW
    )
    if accounts:
        reasons.append(f"{', '.join(accounts)} ran the first programs on {node} right after entry")
    outside = [c.address for c in contacts[:1]] + [c.address for c in contacts if c.ports >= 10]
    entry = EntryPoint(node, source, when, tuple(reasons), tuple(dict.fromkeys(ids)))
    return EntryFacts(entry, accounts, first_contact, list(dict.fromkeys(outside)))


def _device_entry(ws: Workspace, route: RouteHops) -> EntryFacts:
    first = route.hops[0]
    finding = next((f for f in ws.findings if f.finding_id == first.finding_id), None)
    sources = list(dict.fromkeys(h.vpn_source for h in route.hops if h.vpn_source))
    reasons = [
        f"the credential of {first.account} was used over VPN from the device {first.src}, "
        f"from {', '.join(sources)}"
    ]
    if ws.context.assets and not any(a.host == first.src for a in ws.context.assets):
        reasons.append(f"{first.src} is not a managed asset (not in the asset inventory)")
    if finding is not None:
        reasons.append(finding.explanation)
    when = first.time
    if finding is not None:
        when = min(when, finding.first_ts)
    entry = EntryPoint(
        first.src, sources[0] if sources else first.src, when, tuple(reasons), (first.finding_id,)
    )
    return EntryFacts(entry, [first.account], None, sources)


# -- routes ----------------------------------------------------------------------------------
def _route(
    ws: Workspace, route_id: str, route: RouteHops, facts: EntryFacts, devices: set[str]
) -> Route:
    hops: list[Hop] = []
    e = facts.entry
    if e.source != e.host and ws.is_address(e.source):
        account = facts.accounts[0] if facts.accounts else ""
        hops.append(Hop(e.source, e.host, e.time, account, "outside_access", (), e.finding_ids))
    for first, group in merge_hops(route.hops):
        if not first.account:  # the account is the one the edge shows elsewhere, if any
            first = replace(first, account=next((h.account for h in group if h.account), ""))
        evidence = tuple(dict.fromkeys(u for h in group for u in h.evidence))[:20]
        ids = tuple(dict.fromkeys(h.finding_id for h in group))
        hops.append(
            Hop(first.src, first.dst, first.time, first.account, first.method, evidence, ids)
        )
    nodes = [n for h in hops for n in (h.src, h.dst)]
    is_vpn = route.entry in devices
    hosts = [n for n in dict.fromkeys(nodes) if n not in devices and not ws.is_address(n)]
    accounts = list(dict.fromkeys([*facts.accounts, *(h.account for h in hops if h.account)]))
    name = (
        f"stolen credential of {', '.join(accounts)} over VPN from {route.entry}"
        if is_vpn
        else f"from {e.host}" + (f" (entered from {e.source})" if e.source != e.host else "")
    )
    times = [h.time for h in route.hops] + [e.time]
    return Route(
        route_id=route_id,
        name=name,
        entry=e.host,
        first=min(times),
        last=max(times),
        accounts=tuple(accounts),
        hosts=tuple(hosts),
        devices=(route.entry,) if is_vpn else (),
        hops=tuple(hops),
        source_addresses=tuple(facts.outside),
    )


# -- what the incident rests on ----------------------------------------------------------------
def _related_findings(
    findings: list[FindingView], hosts: set[str], accounts: set[str], hop_ids: set[str]
) -> list[FindingView]:
    """Findings behind the hops, and findings on the incident's hosts that name no account or
    one of its accounts (a stranger's unusual login into a compromised server is not ours)."""
    out = []
    for f in findings:
        if f.finding_id in hop_ids:
            out.append(f)
        elif f.kind in PATH_KINDS:
            continue  # paths not accepted as hops are someone else's
        elif _ours(f, hosts, accounts):
            out.append(f)
    return out


def _ours(f: FindingView, hosts: set[str], accounts: set[str]) -> bool:
    if f.hosts:
        return bool(set(f.hosts) & hosts) and (not f.users or bool(set(f.users) & accounts))
    return bool(set(f.users) & accounts)


def _c2(related: list[FindingView], hosts: set[str]) -> list[C2Channel]:
    out = []
    for f in related:
        if f.kind != "beacon" or not f.hosts or f.hosts[0] not in hosts:
            continue
        port = f.title.rsplit(":", 1)[-1]
        names = f.details.get("destination_names") or []
        out.append(
            C2Channel(
                f.hosts[0],
                f.addresses[0] if f.addresses else None,
                int(port) if port.isdigit() else None,
                names[0] if names else None,
                f.first_ts,
                f.last_ts,
                f.finding_id,
            )
        )
    return out


def _gaps(related: list[FindingView], hosts: set[str], hops: list[Hop]) -> list[LogGapNote]:
    out = []
    for f in related:
        if f.kind not in GAP_KINDS or not f.hosts:
            continue
        host = f.hosts[0]
        lo, hi = f.first_ts - timedelta(hours=1), f.last_ts + timedelta(hours=1)
        hidden = [
            f"hop {h.src} -> {h.dst} as {h.account or 'an unknown account'} at {iso(h.time)}"
            for h in hops
            if host in (h.src, h.dst) and lo <= h.time <= hi
        ]
        if host in hosts:
            hidden.append(
                f"logons to {host} and files read on it from {iso(f.first_ts)} to "
                f"{iso(f.last_ts)} (the data exposed in that window may be undercounted)"
            )
        out.append(
            LogGapNote(host, f.details.get("channel"), f.first_ts, f.last_ts, f.kind, tuple(hidden))
        )
    return out


def _hosts(
    ws: Workspace, hosts: set[str], hops: list[Hop], related: list[FindingView]
) -> list[HostInfo]:
    assets = {a.host: a for a in ws.context.assets}
    out = []
    for name in hosts:
        times = [h.time for h in hops if name in (h.src, h.dst)]
        times += [t for f in related if name in f.hosts for t in (f.first_ts, f.last_ts)]
        a = assets.get(name)
        out.append(
            HostInfo(
                name,
                a.site if a else None,
                a.country if a else None,
                a.role if a else None,
                min(times),
                max(times),
            )
        )
    return sorted(out, key=lambda h: (h.first, h.name))  # name: runs give the same order


def _entities(
    names: Iterable[str],
    hops: list[Hop],
    related: list[FindingView],
    entries: list[EntryFacts],
    *,
    key: str,
) -> list[Entity]:
    out = []
    for name in set(names):
        if key == "account":
            times = [h.time for h in hops if h.account == name]
            times += [e.entry.time for e in entries if name in e.accounts]
            times += [t for f in related if name in f.users for t in (f.first_ts, f.last_ts)]
        else:
            times = [h.time for h in hops if h.src == name]
        if times:
            out.append(Entity(name, min(times), max(times)))
    return sorted(out, key=lambda e: (e.first, e.name))


def _severity(related: list[FindingView], routes: list[Route], c2: list[C2Channel]) -> str:
    """critical: a route with C2 or bulk reads behind high findings; high: high findings of two
    kinds or more; otherwise at most medium (one kind of evidence is a lead, not a breach)."""
    top = max((f.level for f in related), default=0)
    kinds = {f.kind for f in related if f.kind in MALICIOUS_KINDS or f.source == "sigma"}
    hops = sum(len(r.hops) for r in routes)
    if top >= HIGH and hops and (c2 or "bulk_read" in kinds) and len(kinds) >= 3:
        return "critical"
    if top >= HIGH and len(kinds) >= 2:
        return "high"
    return SEVERITIES[min(top, SEVERITIES.index("medium"))]


def _timeline(
    routes: list[Route], entries: list[EntryFacts], related: list[FindingView]
) -> list[TimelineEntry]:
    out = []
    for e in entries:
        out.append(
            TimelineEntry(
                e.entry.time,
                "entry",
                e.entry.host,
                None,
                f"entry point {e.entry.host} from {e.entry.source}",
            )
        )
    for r in routes:
        for h in r.hops:
            out.append(
                TimelineEntry(
                    h.time,
                    "hop",
                    h.dst,
                    h.account or None,
                    f"{r.route_id}: {h.src} -> {h.dst} ({h.method})",
                    h.finding_ids[0] if h.finding_ids else None,
                    h.evidence[0] if h.evidence else None,
                )
            )
    for f in related:
        out.append(
            TimelineEntry(
                f.first_ts,
                f.kind,
                f.hosts[0] if f.hosts else None,
                f.users[0] if f.users else None,
                f.title,
                f.finding_id,
                f.evidence[0] if f.evidence else None,
            )
        )
    return sorted(out, key=lambda t: (t.time, t.kind))


def _containment(
    ws: Workspace,
    routes: list[Route],
    entries: list[EntryFacts],
    hosts: list[HostInfo],
    accounts: list[Entity],
    c2: list[C2Channel],
) -> list[ContainmentAction]:
    out: list[ContainmentAction] = []
    ids_of: dict[str, list[str]] = {}
    for r in routes:
        for hop in r.hops:
            for n in (hop.src, hop.dst, hop.account):
                ids_of.setdefault(n, []).extend(hop.finding_ids)
    for h in hosts:
        beacon = [c for c in c2 if c.host == h.name]
        why = (
            f"beacons to {beacon[0].dst_ip}"
            if beacon
            else f"reached by the attacker from {iso(h.first)}"
        )
        ids = tuple(dict.fromkeys(ids_of.get(h.name, []) + [c.finding_id for c in beacon]))
        out.append(ContainmentAction("isolate_host", h.name, why, ids))
    for a in accounts:
        ids = tuple(dict.fromkeys(ids_of.get(a.name, [])))
        why = f"used by the attacker from {iso(a.first)} to {iso(a.last)}"
        out.append(ContainmentAction("disable_account", a.name, why, ids))
        out.append(ContainmentAction("reset_credentials", a.name, why, ids))
    blocked: dict[str, ContainmentAction] = {}
    for c in c2:
        if c.dst_ip:
            blocked.setdefault(
                c.dst_ip,
                ContainmentAction(
                    "block_address", c.dst_ip, f"command and control of {c.host}", (c.finding_id,)
                ),
            )
    for e in entries:
        for addr in e.outside:
            blocked.setdefault(
                addr,
                ContainmentAction(
                    "block_address",
                    addr,
                    f"the attacker came from it to {e.entry.host}",
                    e.entry.finding_ids,
                ),
            )
    out.extend(blocked.values())
    for r, e in zip(routes, entries, strict=True):
        if r.devices:
            out.append(
                ContainmentAction(
                    "close_access_path",
                    f"remote access (VPN) from unmanaged devices ({', '.join(r.devices)})",
                    f"{r.route_id}: a stolen credential was used from {', '.join(r.devices)}",
                    e.entry.finding_ids,
                )
            )
        elif e.entry.source != e.entry.host and ws.is_address(e.entry.source):
            out.append(
                ContainmentAction(
                    "close_access_path",
                    f"access from outside to {e.entry.host}",
                    f"{r.route_id}: entered from {e.entry.source}; "
                    + "; ".join(e.entry.reasons[:2]),
                    e.entry.finding_ids,
                )
            )
    return out


def _words(
    routes: list[Route],
    hosts: list[HostInfo],
    accounts: list[Entity],
    devices: list[Entity],
    c2: list[C2Channel],
    gaps: list[LogGapNote],
    dwell: Dwell,
    severity: str,
) -> tuple[str, str]:
    entries = list(dict.fromkeys(r.entry for r in routes))
    lead = SEVERITIES.index(severity) < HIGH
    title = f"{'Lead: possible intrusion' if lead else 'Intrusion'} through {' and '.join(entries)}"
    first = iso(dwell.first_compromise) or "?"
    parts = [
        f"{_n(len(routes), 'route')} from {', '.join(entries)} "
        f"reached {_n(len(hosts), 'host')} with {_n(len(accounts), 'account')}"
        + (f" and {_n(len(devices), 'outside device')}" if devices else "")
        + f", from {first[:16].replace('T', ' ')} UTC.",
    ]
    extra = []
    if c2:
        verb = "beacons" if len(c2) == 1 else "beacon"
        extra.append(f"{_n(len(c2), 'host')} {verb} to command and control")
    if gaps:
        verb = "hides" if len(gaps) == 1 else "hide"
        extra.append(f"{_n(len(gaps), 'log gap')} {verb} part of the story")
    if extra:
        parts.append("; ".join(extra).capitalize() + ".")
    if dwell.days is not None:
        parts.append(f"Dwell time until detection: {dwell.days:.1f} days.")
    if lead:
        parts.append(
            "One kind of evidence only: confirm with the account's owner or the hosts' own logs "
            "before treating it as a breach."
        )
    return title, " ".join(parts)


def _n(count: int, noun: str) -> str:
    """ "1 host", "2 hosts": a count with its noun in the matching number."""
    return f"{count} {noun}{'' if count == 1 else 's'}"
