"""What trace builds on: the case's findings (Sigma and behavioural) read back once, and the
candidate hops they describe (login paths, remote execution, unusual logins, VPN sessions).

Findings are aggregates (hundreds to a few thousand rows), so they are read into Python; the
never-seen-edge baseline (``lateral_new_edge``) is left out: it is a rate measure, not a lead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from breachtrace.engines.base import Engine, tuples
from breachtrace.schema import SEVERITIES
from breachtrace.trace.records import parse_time

IGNORED_KINDS = ("lateral_new_edge",)
PATH_KINDS = ("lateral_chain", "lateral_hop")
GAP_KINDS = (
    "log_cleared",
    "log_gap",
    "log_silence",
    "log_blind_spot",
    "logging_stopped",
    "log_time_reversal",
    "log_clear_command",
)


@dataclass(frozen=True)
class FindingView:
    """One finding as trace sees it: the stored columns plus parsed details."""

    finding_id: str
    source: str
    kind: str
    title: str
    severity: str
    score: float
    first_ts: datetime
    last_ts: datetime
    hosts: tuple[str, ...]
    users: tuple[str, ...]
    addresses: tuple[str, ...]
    files: tuple[str, ...]
    evidence: tuple[str, ...]
    explanation: str
    details: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def level(self) -> int:
        return SEVERITIES.index(self.severity) if self.severity in SEVERITIES else 0


@dataclass(frozen=True)
class CandidateHop:
    """A host-to-host step some finding describes; trace decides whether it is malicious."""

    src: str
    dst: str
    time: datetime
    account: str
    method: str
    finding_id: str
    level: int  # severity index of the finding that describes it
    evidence: tuple[str, ...] = ()
    source_ip: str | None = None
    reasons: tuple[str, ...] = ()
    vpn_source: str | None = None  # the outside address of a VPN session


def load_findings(engine: Engine) -> list[FindingView]:
    """Every finding of the case except the never-seen-edge baseline, oldest first (ties by
    id, so that every engine lists them in the same order)."""
    rows = tuples(
        engine,
        "SELECT finding_id, source, kind, title, severity, score, first_ts, last_ts, hosts, "
        "users, addresses, files, evidence, explanation, details FROM findings "
        "WHERE NOT list_contains(?, kind) AND first_ts IS NOT NULL ORDER BY first_ts, finding_id",
        [list(IGNORED_KINDS)],
    )
    out = []
    for r in rows:
        details = orjson.loads(r[14]) if r[14] else {}
        out.append(
            FindingView(
                finding_id=r[0],
                source=r[1],
                kind=r[2],
                title=r[3],
                severity=r[4],
                score=float(r[5] or 0.0),
                first_ts=r[6],
                last_ts=r[7] or r[6],
                hosts=tuple(r[8] or ()),
                users=tuple(r[9] or ()),
                addresses=tuple(r[10] or ()),
                files=tuple(r[11] or ()),
                evidence=tuple(r[12] or ()),
                explanation=r[13] or "",
                details=details if isinstance(details, dict) else {},
            )
        )
    return out


def candidate_hops(findings: list[FindingView]) -> list[CandidateHop]:
    """Every hop a finding describes, oldest first (duplicates kept: trace merges them)."""
    out: list[CandidateHop] = []
    for f in findings:
        if f.kind in PATH_KINDS:
            out.extend(_path_hops(f))
        elif f.kind == "lateral_remote_exec" and len(f.hosts) >= 2 and f.users:
            out.append(
                CandidateHop(
                    f.hosts[0],
                    f.hosts[1],
                    f.first_ts,
                    f.users[0],
                    "remote_exec",
                    f.finding_id,
                    f.level,
                    f.evidence[:20],
                )
            )
        elif f.kind == "credential_anomalous_login" and f.users:
            out.extend(_login_hops(f))
    return sorted(out, key=lambda h: h.time)


def _path_hops(f: FindingView) -> list[CandidateHop]:
    hops = []
    for h in f.details.get("hops", []):
        when = parse_time(h.get("time"))
        if when is None or not h.get("src") or not h.get("dst"):
            continue
        hops.append(
            CandidateHop(
                h["src"],
                h["dst"],
                when,
                h.get("account") or "",
                h.get("method") or "login",
                f.finding_id,
                f.level,
                tuple(h.get("evidence") or ()),
                h.get("source_ip"),
                tuple(h.get("reasons") or ()),
            )
        )
    return hops


def _login_hops(f: FindingView) -> list[CandidateHop]:
    """Remote logins become source -> destination hops; VPN logins become device -> host hops
    for every host the session's address reached (times refined later from the logons)."""
    account = f.users[0]
    hops = []
    for login in f.details.get("logins", []):
        when = parse_time(login.get("time"))
        if when is None:
            continue
        evidence = (login["evidence"],) if login.get("evidence") else ()
        if login.get("kind") == "vpn":
            device = login.get("device") or login.get("source")
            for dst in login.get("reached") or ():
                hops.append(
                    CandidateHop(
                        device,
                        dst,
                        when,
                        account,
                        "vpn",
                        f.finding_id,
                        f.level,
                        evidence,
                        login.get("source"),
                        vpn_source=login.get("source"),
                    )
                )
        elif login.get("source") and login.get("destination"):
            hops.append(
                CandidateHop(
                    login["source"],
                    login["destination"],
                    when,
                    account,
                    login.get("how") or "login",
                    f.finding_id,
                    f.level,
                    evidence,
                )
            )
    return hops


REMOTE_PORTS = (22, 135, 445, 3389, 5985, 5986)


def reading_hops(findings: list[FindingView], host_of_ip: dict[str, str]) -> list[CandidateHop]:
    """Hops that other findings imply, judged only by propagation (level 0): a bulk read's
    client host -> the host read; and a peer the network saw connect to a host while that
    host's logon records are missing (account unknown)."""
    out: list[CandidateHop] = []
    for f in findings:
        if f.kind == "bulk_read" and f.hosts and f.addresses:
            src = host_of_ip.get(f.addresses[0], f.addresses[0])
            if src and src != f.hosts[0]:
                account = f.users[0] if f.users else ""
                out.append(
                    CandidateHop(
                        src,
                        f.hosts[0],
                        f.first_ts,
                        account,
                        "smb",
                        f.finding_id,
                        0,
                        f.evidence[:20],
                        f.addresses[0],
                    )
                )
        elif f.kind == "log_gap" and f.hosts:
            for peer in f.details.get("network_peers_in_window", []):
                if peer.get("direction") != "in" or peer.get("port") not in REMOTE_PORTS:
                    continue
                src = host_of_ip.get(peer["peer"], peer["peer"])
                out.append(
                    CandidateHop(
                        src,
                        f.hosts[0],
                        f.first_ts,
                        "",
                        f"port {peer['port']} (logon records missing)",
                        f.finding_id,
                        0,
                        f.evidence[:20],
                    )
                )
    return out
