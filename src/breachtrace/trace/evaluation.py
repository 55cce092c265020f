"""Scoring trace and scope against a simulation's truth.json (tests and benchmarks only; the
stages themselves never read truth).

Per case: entry points found (and the outside address behind them), every injected hop found
(same source, destination and account, or an unknown account where logon records were deleted,
within 15 minutes), compromised accounts and hosts (recall and precision over the incidents'
hosts and accounts), exposed owners per route equal to truth (routes matched by entry point),
the overlap between routes, dwell time within a day, and the highest incident severity.

Entry points, hops, accounts, hosts and dwell are scored over the incidents trace asserts as
breaches (high or critical). Incidents below high are leads: trace rates an incident that rests
on one kind of evidence at most medium and titles it a lead to confirm. Leads are counted apart
(``leads``), with the accounts and hosts they name that truth does not, so nothing is hidden.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from breachtrace.schema import SEVERITIES
from breachtrace.trace.records import parse_time

HOP_TOLERANCE = timedelta(minutes=15)


@dataclass
class TraceScore:
    entries: tuple[int, int] = (0, 0)
    entry_sources: tuple[int, int] = (0, 0)
    hops: tuple[int, int] = (0, 0)
    accounts_recall: tuple[int, int] = (0, 0)
    accounts_precision: tuple[int, int] = (0, 0)
    hosts_recall: tuple[int, int] = (0, 0)
    hosts_precision: tuple[int, int] = (0, 0)
    owners_exact: tuple[int, int] = (0, 0)  # routes whose owner set equals truth
    owners_found: tuple[int, int] = (0, 0)  # truth owners (union) in our union
    overlap_exact: tuple[int, int] = (0, 0)
    dwell_error_days: float | None = None
    first_compromise_error_days: float | None = None
    max_severity: str = "none"
    leads: int = 0  # incidents below high severity, not scored as breaches
    missed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        pairs = (self.entries, self.hops, self.accounts_recall, self.hosts_recall,
                 self.owners_exact, self.overlap_exact)  # fmt: skip
        full = all(a == b for a, b in pairs)
        prec = all(n == 0 or tp / n >= 0.95 for tp, n in
                   (self.accounts_precision, self.hosts_precision))  # fmt: skip
        dwell = self.dwell_error_days is None or self.dwell_error_days <= 1.0
        return full and prec and dwell


def score(case_dir: Path, sim_dir: Path) -> TraceScore:
    """Score CASE/trace/incidents.json and CASE/scope/latest.json against SIM/truth.json."""
    truth = json.loads((Path(sim_dir) / "truth.json").read_text())
    traced = json.loads((Path(case_dir) / "trace" / "incidents.json").read_text())
    latest = Path(case_dir) / "scope" / "latest.json"
    scoped = json.loads(latest.read_text()) if latest.exists() else None
    everything = traced["incidents"]
    s = TraceScore()
    levels = [SEVERITIES.index(i["severity"]) for i in everything]
    s.max_severity = SEVERITIES[max(levels)] if levels else "none"
    high = SEVERITIES.index("high")
    incidents = [i for i in everything if SEVERITIES.index(i["severity"]) >= high]
    leads = [i for i in everything if SEVERITIES.index(i["severity"]) < high]
    s.leads = len(leads)
    if not truth["routes"]:
        return s
    _leads(s, truth, leads)
    routes = [r for i in incidents for r in i["routes"]]
    entries = {e["host"]: e for i in incidents for e in i["entry_points"]}
    _entries(s, truth, entries)
    _hops(s, truth, routes)
    _entities(s, truth, incidents)
    _owners(s, truth, routes, scoped)
    _dwell(s, truth, incidents)
    return s


def _leads(s: TraceScore, truth: dict[str, Any], leads: list[dict[str, Any]]) -> None:
    """Name the accounts and hosts of leads that truth does not hold (reported, not scored)."""
    want = {x for r in truth["routes"] for x in (*r["accounts"], *r["hosts"])}
    for i in leads:
        names = [e["name"] for key in ("accounts", "hosts") for e in i[key]]
        extra = [n for n in names if n not in want]
        if extra:
            s.missed.append(f"{i['severity']} lead names {', '.join(extra)} (not scored)")


def _entries(s: TraceScore, truth: dict[str, Any], entries: dict[str, Any]) -> None:
    found = total = src_found = src_total = 0
    for r in truth["routes"]:
        total += 1
        if r["entry"] in entries:
            found += 1
        else:
            s.missed.append(f"entry {r['entry']}")
        for h in r["hops"]:
            if h["method"] == "exploit":
                src_total += 1
                e = entries.get(h["dst"])
                if e and e["source"] == h["src"]:
                    src_found += 1
                else:
                    s.missed.append(f"entry source {h['src']} -> {h['dst']}")
    s.entries, s.entry_sources = (found, total), (src_found, src_total)


def _hops(s: TraceScore, truth: dict[str, Any], routes: list[dict[str, Any]]) -> None:
    ours = [h for r in routes for h in r["hops"]]
    found = total = 0
    for r in truth["routes"]:
        for h in r["hops"]:
            if h["method"] == "exploit":
                continue
            total += 1
            t = parse_time(h["time"])
            assert t is not None
            if any(_same_hop(o, h, t) for o in ours):
                found += 1
            else:
                s.missed.append(f"hop {h['src']}->{h['dst']} {h['account']} {h['time']}")
    s.hops = (found, total)


def _same_hop(o: dict[str, Any], h: dict[str, Any], t: datetime) -> bool:
    when = parse_time(o["time"])
    return (
        o["src"] == h["src"] and o["dst"] == h["dst"]
        and o["account"] in (h["account"], "")
        and when is not None and abs(when - t) <= HOP_TOLERANCE
    )  # fmt: skip


def _entities(s: TraceScore, truth: dict[str, Any], incidents: list[dict[str, Any]]) -> None:
    want_accounts = {a for r in truth["routes"] for a in r["accounts"]}
    want_hosts = {h for r in truth["routes"] for h in r["hosts"]}
    got_accounts = {a["name"] for i in incidents for a in i["accounts"]}
    got_hosts = {h["name"] for i in incidents for h in i["hosts"]}
    s.accounts_recall = (len(want_accounts & got_accounts), len(want_accounts))
    s.accounts_precision = (len(want_accounts & got_accounts), len(got_accounts))
    s.hosts_recall = (len(want_hosts & got_hosts), len(want_hosts))
    s.hosts_precision = (len(want_hosts & got_hosts), len(got_hosts))
    s.missed += [f"account {a}" for a in sorted(want_accounts - got_accounts)]
    s.missed += [f"host {h}" for h in sorted(want_hosts - got_hosts)]
    s.missed += [f"extra account {a}" for a in sorted(got_accounts - want_accounts)]
    s.missed += [f"extra host {h}" for h in sorted(got_hosts - want_hosts)]


def _owners(s: TraceScore, truth: dict[str, Any], routes: list[dict[str, Any]],
            scoped: dict[str, Any] | None) -> None:  # fmt: skip
    if scoped is None:
        s.owners_exact = (0, len(truth["routes"]))
        return
    by_entry = {r["entry"]: r for r in scoped["routes"]}
    exact = 0
    matched: dict[str, str] = {}
    for r in truth["routes"]:
        ours = by_entry.get(r["entry"])
        if ours is None:
            s.missed.append(f"owners of {r['name']}: route not scoped")
            continue
        matched[r["name"]] = ours["route_id"]
        got, want = set(ours["owners"]), set(r["exposed_clients"])
        if got == want:
            exact += 1
        else:
            s.missed.append(
                f"owners of {r['name']}: {len(want - got)} missing, {len(got - want)} extra "
                f"(of {len(want)})"
            )
    s.owners_exact = (exact, len(truth["routes"]))
    union, want_all = set(scoped["union"]), set(truth["exposed_clients"])
    s.owners_found = (len(union & want_all), len(want_all))
    ok = total = 0
    for o in truth.get("overlaps", []):
        total += 1
        a, b = (matched.get(n) for n in o["routes"])
        mine = next((x for x in scoped["overlaps"] if set(x["routes"]) == {a, b}), None)
        if mine is not None and set(mine["owners"]) == set(o["clients"]):
            ok += 1
        else:
            s.missed.append(f"overlap {o['routes']}")
    s.overlap_exact = (ok, total)


def _dwell(s: TraceScore, truth: dict[str, Any], incidents: list[dict[str, Any]]) -> None:
    first = [parse_time(i["dwell"]["first_compromise"]) for i in incidents]
    got = min((t for t in first if t), default=None)
    want = parse_time(truth["first_compromise"])
    detected = parse_time(truth.get("detected"))
    if got is None or want is None:
        return
    s.first_compromise_error_days = abs((got - want).total_seconds()) / 86_400
    ours = [i["dwell"]["days"] for i in incidents if i["dwell"]["days"] is not None]
    if detected and ours:
        truth_days = (detected - want).total_seconds() / 86_400
        s.dwell_error_days = abs(max(ours) - truth_days)
