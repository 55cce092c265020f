"""Login paths in the manner of Hopper (Ho et al., USENIX Security 2021), over aggregated hops.

A *hop* is the first login of a (source, destination, account) edge, with signals computed in
SQL (was the account present on the source before? who was? is the source risky?). Here hops
are linked into time-respecting paths: a hop out of host B continues a path whose hop entered B
earlier (within the chain window) when it carries the same account, switches credential, or
leaves a server the path already holds. Each path keeps the *causal user* found at its root
(the people logged on at the root's source, or "none" when nobody was), and raises the alarm
when a credential switch happens along it and it reaches a host the causal user never reached.
Other suspicious roots are ranked by score under a daily alert budget.

Pure Python over a few thousand hops at most; networkx records the path graph.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import networkx as nx


@dataclass
class Hop:
    """One candidate hop and what SQL found about it."""

    key: int
    src: str
    dst: str
    user: str
    ts: datetime
    method: str
    src_kind: str
    switch: bool | None  # account absent from the source before (None: source has no logs)
    causal: tuple[str, ...]  # users present at the source (owners or recent sessions)
    unreached: bool | None  # none of ``causal`` reached dst before (None: no causal user)
    src_server: bool
    parts: dict[str, float]  # sub-scores (credential_switch/unreached filled in here)
    reasons: list[str]  # plain phrases for the explanation
    evidence: list[str]
    row: dict[str, Any] = field(default_factory=dict)
    # filled by link_paths
    parent: Hop | None = None
    path_causal: tuple[str, ...] = ()
    switch_in_path: bool = False
    alarm: bool = False
    score: float = 0.0
    root: Hop | None = None


@dataclass
class Path:
    root: Hop
    hops: list[Hop]
    alarm: bool
    score: float
    causal: tuple[str, ...]

    @property
    def first_ts(self) -> datetime:
        return self.hops[0].ts

    @property
    def last_ts(self) -> datetime:
        return self.hops[-1].ts


def _score(parts: dict[str, float], weights: Any) -> float:
    return sum(float(weights[k]) * float(parts.get(k, 0.0)) for k in weights)


def link_paths(
    hops: list[Hop],
    *,
    weights: Any,
    chain_window: timedelta,
    min_score: float,
    reached: Callable[[str, str, datetime], bool],
) -> tuple[list[Hop], nx.DiGraph]:
    """Link hops into paths; returns the flagged hops (in time order) and the path graph.

    ``reached(user, host, before)`` says whether ``user`` was present on ``host`` before a time.
    """
    graph: nx.DiGraph = nx.DiGraph()
    arrivals: dict[str, list[Hop]] = defaultdict(list)  # flagged hops into a host
    flagged: list[Hop] = []
    for hop in sorted(hops, key=lambda h: (h.ts, h.key)):
        parent = _parent(hop, arrivals.get(hop.src, []), chain_window)
        if parent is not None:
            hop.parent = parent
            hop.root = parent.root or parent
            hop.path_causal = parent.path_causal
            hop.switch_in_path = (
                parent.switch_in_path or bool(hop.switch) or (hop.user != parent.user)
            )
            if hop.path_causal:
                hop.unreached = not any(reached(u, hop.dst, hop.ts) for u in hop.path_causal)
            else:
                hop.unreached = None
        else:
            hop.root = hop
            hop.path_causal = hop.causal
            hop.switch_in_path = bool(hop.switch)
        switched = hop.switch_in_path
        hop.parts["credential_switch"] = 1.0 if switched else 0.0
        # No causal user at all (nobody logged on at the source) cannot explain the hop either.
        hop.parts["unreached"] = 1.0 if (hop.unreached or hop.unreached is None) else 0.0
        if not switched:
            hop.parts["unreached"] *= 0.5  # unreached alone is weak (new work, new server)
        hop.score = _score(hop.parts, weights)
        hop.alarm = switched and hop.parts["unreached"] >= 1.0
        # Candidates: alarms, continuations, any credential switch (ranked under the budget),
        # and hops whose score alone reaches min_score.
        if parent is None and not hop.alarm and not switched and hop.score < min_score:
            continue
        flagged.append(hop)
        arrivals[hop.dst].append(hop)
        graph.add_node(hop.key, src=hop.src, dst=hop.dst, user=hop.user, ts=hop.ts)
        if parent is not None:
            graph.add_edge(parent.key, hop.key)
    return flagged, graph


def _parent(hop: Hop, entered: list[Hop], window: timedelta) -> Hop | None:
    """The latest flagged hop into hop.src, within the window, that this hop can continue."""
    best: Hop | None = None
    for p in entered:
        if not (p.ts < hop.ts <= p.ts + window):
            continue
        carries = p.user == hop.user or bool(hop.switch) or hop.src_server
        if not carries:
            continue
        if best is None or (p.user == hop.user, p.ts) > (best.user == hop.user, best.ts):
            best = p
    return best


def paths_under_budget(
    flagged: list[Hop], graph: nx.DiGraph, *, daily_budget: int
) -> tuple[list[Path], dict[str, Any]]:
    """Group flagged hops into paths (one per root) and keep, per day, every alarmed path and
    the ``daily_budget`` best-scoring other paths. Returns the kept paths and budget stats."""
    by_key = {h.key: h for h in flagged}
    roots = [h for h in flagged if h.parent is None]
    paths: list[Path] = []
    for root in roots:
        members = [by_key[k] for k in nx.descendants(graph, root.key)] + [root]
        members.sort(key=lambda h: (h.ts, h.key))
        alarm = any(h.alarm for h in members)
        score = max(h.score for h in members)
        paths.append(Path(root, members, alarm, score, root.path_causal))
    per_day: dict[str, list[Path]] = defaultdict(list)
    for p in paths:
        per_day[p.first_ts.date().isoformat()].append(p)
    kept: list[Path] = []
    dropped = 0
    for _day, day_paths in sorted(per_day.items()):
        alarms = [p for p in day_paths if p.alarm]
        rest = sorted((p for p in day_paths if not p.alarm), key=lambda p: -p.score)
        kept.extend(alarms)
        kept.extend(rest[:daily_budget])
        dropped += max(0, len(rest) - daily_budget)
    kept.sort(key=lambda p: (p.first_ts, p.root.key))
    stats = {
        "candidate_paths": len(paths),
        "alarm_paths": sum(p.alarm for p in paths),
        "paths_over_budget_dropped": dropped,
    }
    return kept, stats
