"""Which candidate hops are the attacker's, and the routes they form.

Propagation to a fixpoint over the candidate hops (oldest first), from seeds:

- without a lead, the seeds are the findings of high or critical severity that show the
  attacker acting (login paths, remote execution, unusual logins, beacons, bulk reads, Sigma):
  their hosts and accounts are compromised from the finding's first time;
- with a lead (``--from``), the lead alone: a host (any time), an account, an address, or a
  finding's hosts and accounts.

A hop is accepted when its own finding is high or critical, or when it leaves a compromised
host after that host's compromise (forward) or enters a compromised host before its first
malicious activity (backward), as an account already compromised (or unknown: logon records
deleted). Its source and destination then count as compromised from the hop's time.

Routes: an entry point is a compromised source no accepted hop reached before its own first
hop; a route is every accepted hop reachable from it along time-respecting paths (networkx).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import networkx as nx

from breachtrace.schema import SEVERITIES
from breachtrace.trace.evidence import CandidateHop, FindingView

HIGH = SEVERITIES.index("high")
MEDIUM = SEVERITIES.index("medium")
LATER = datetime(9000, 1, 1)  # "compromised at some time": any earlier hop into it counts
SLACK = timedelta(hours=1)  # clocks and first-seen times differ by minutes between views
SEED_KINDS = (
    "lateral_chain",
    "lateral_hop",
    "lateral_remote_exec",
    "lateral_admin_share",
    "credential_anomalous_login",
    "credential_impossible_travel",
    "beacon",
    "bulk_read",
    "sigma",
)


@dataclass
class Compromise:
    """Hosts and accounts judged compromised, each from the time of its first sign."""

    hosts: dict[str, datetime] = field(default_factory=dict)
    accounts: dict[str, datetime] = field(default_factory=dict)
    open_hosts: set[str] = field(default_factory=set)  # leads: compromised at any time

    def mark_host(self, name: str, when: datetime) -> bool:
        if name and (name not in self.hosts or when < self.hosts[name]):
            self.hosts[name] = when
            return True
        return False

    def mark_account(self, name: str, when: datetime) -> bool:
        if name and (name not in self.accounts or when < self.accounts[name]):
            self.accounts[name] = when
            return True
        return False


def seed_from_findings(findings: Iterable[FindingView]) -> Compromise:
    """Hosts and accounts of high/critical findings that show the attacker acting."""
    seeds = Compromise()
    for f in findings:
        kind = "sigma" if f.source == "sigma" else f.kind
        if f.level < HIGH or kind not in SEED_KINDS:
            continue
        for h in f.hosts:
            seeds.mark_host(h, f.first_ts)
        for u in f.users:
            seeds.mark_account(u, f.first_ts)
    return seeds


def accept_hops(candidates: list[CandidateHop], seeds: Compromise) -> list[CandidateHop]:
    """The candidate hops judged malicious (see the module docstring), oldest first."""
    state = seeds
    accepted: dict[int, CandidateHop] = {}
    changed = True
    while changed:
        changed = False
        for i, hop in enumerate(candidates):
            if i in accepted or not _malicious(hop, state):
                continue
            accepted[i] = hop
            changed = True
            state.mark_host(hop.src, hop.time)
            state.mark_host(hop.dst, hop.time)
            if hop.account:
                state.mark_account(hop.account, hop.time)
    return sorted(accepted.values(), key=lambda h: h.time)


def _malicious(hop: CandidateHop, state: Compromise) -> bool:
    if hop.level >= HIGH and hop.method != "vpn":
        return True
    if state.open_hosts & {hop.src, hop.dst} and hop.level >= MEDIUM:
        return True  # a cold lead: anything suspicious into or out of it
    known_account = not hop.account or hop.account in state.accounts
    if hop.method == "vpn":  # a device outside: the account's own high finding is the sign
        return hop.level >= HIGH or (known_account and hop.dst in state.hosts)
    if not known_account:
        return False
    src_since = state.hosts.get(hop.src)
    if src_since is not None and hop.time + SLACK >= src_since:
        return True  # forward: leaves a compromised host
    dst_since = state.hosts.get(hop.dst)
    return dst_since is not None and hop.time <= dst_since + SLACK  # backward


@dataclass(frozen=True)
class RouteHops:
    entry: str
    hops: tuple[CandidateHop, ...]


def routes_from(hops: list[CandidateHop]) -> list[RouteHops]:
    """One route per entry point: the accepted hops reachable from it in time order."""
    graph = nx.MultiDiGraph()
    for i, h in enumerate(hops):
        graph.add_edge(h.src, h.dst, key=i, hop=h)
    first_out = {
        n: min(d["hop"].time for *_, d in graph.out_edges(n, data=True))
        for n in graph.nodes
        if graph.out_degree(n)
    }
    entries = []
    for node in graph.nodes:
        if node not in first_out:
            continue
        inbound = [d["hop"].time for *_, d in graph.in_edges(node, data=True)]
        if not inbound or min(inbound) > first_out[node] + SLACK:
            entries.append(node)
    routes = []
    for entry in sorted(entries, key=lambda n: first_out[n]):
        reached = {entry: datetime.min}
        used: dict[int, CandidateHop] = {}
        changed = True
        while changed:  # oldest first; repeated because the slack lets a hop precede its cause
            changed = False
            for i, h in enumerate(hops):
                since = reached.get(h.src)
                if i in used or since is None or h.time + SLACK < since:
                    continue
                used[i] = h
                changed = True
                if h.dst not in reached or h.time < reached[h.dst]:
                    reached[h.dst] = h.time
        routes.append(RouteHops(entry, tuple(used[i] for i in sorted(used))))
    return routes


def merge_hops(hops: Iterable[CandidateHop]) -> list[tuple[CandidateHop, list[CandidateHop]]]:
    """The first hop per (source, destination, account) with every later one like it; a hop
    whose account is unknown (logon records missing) joins a known one on the same edge."""
    ordered = sorted(hops, key=lambda h: h.time)
    named = {(h.src, h.dst): h.account for h in ordered if h.account}
    groups: dict[tuple[str, str, str], list[CandidateHop]] = {}
    for h in ordered:
        account = h.account or named.get((h.src, h.dst), "")
        groups.setdefault((h.src, h.dst, account), []).append(h)
    return sorted(((g[0], g) for g in groups.values()), key=lambda x: x[0].time)
