"""Ground truth: what a scenario injected, and truth.json, the file tests and benchmarks read.

truth.json's top level is stable: ``scenario``, ``seed``, ``first_compromise``,
``first_detectable``, ``routes`` (each with ``name``, ``entry``, ``hops`` of
``src``/``dst``/``time``/``account``, ``accounts``, ``hosts``, ``devices``, ``files_read``,
``exposed_clients``), ``exposed_clients`` (the union), ``beacons``, ``log_gaps``,
``malicious_record_ids``; plus ``period``, ``detected``, ``overlaps``, ``record_id_scheme`` and
``events`` (record counts per format and per file).

Record ids (``malicious_record_ids``), one scheme per format, each found again from the files:

- Windows JSON: ``<host>|<Channel>|<RecordNumber>`` (host = lower-case short name)
- auth.log: ``<file path relative to the output dir>:<1-based line number>``
- Zeek: ``<uid>`` (a DNS transaction's uid is in both conn.log and dns.log)
- VPN CSV: ``<file path relative to the output dir>:<1-based line number>`` (line 1 = header)

Times are ISO-8601 UTC with milliseconds and a Z. Host names are lower-case short names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from breachtrace.simulate.events import Events
from breachtrace.simulate.org import Org
from breachtrace.simulate.writers.windows import LogGap

RECORD_ID_SCHEME = {
    "windows": "<host>|<Channel>|<RecordNumber>",
    "auth.log": "<relative path>:<line number>",
    "zeek": "<uid>",
    "vpn": "<relative path>:<line number, header is line 1>",
}


@dataclass(frozen=True)
class Hop:
    src: str
    dst: str
    time: int  # µs
    account: str
    method: str  # e.g. "exploit", "smb", "rdp", "ssh", "vpn"


@dataclass
class Route:
    name: str
    entry: str
    hops: list[Hop] = field(default_factory=list)
    accounts: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)
    files: list[int] = field(default_factory=list)  # catalog rows read
    source_ips: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Beacon:
    src: str
    dst_ip: str
    dst_port: int
    domain: str
    image: str
    interval_s: int
    jitter: float
    first: int  # µs
    last: int  # µs


@dataclass
class Plan:
    """What a scenario injects: its events, log gaps, and the truth about them."""

    events: Events = field(default_factory=Events)
    gaps: list[LogGap] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)
    beacons: list[Beacon] = field(default_factory=list)
    first_compromise: int | None = None
    detected: int | None = None


def iso(ts_us: int | None) -> str | None:
    if ts_us is None:
        return None
    return str(np.datetime64(int(ts_us), "us").astype("datetime64[ms]")) + "Z"


def route_files(org: Org, route: Route) -> tuple[list[str], list[str]]:
    """(files read as UNC paths, exposed client names), both sorted and de-duplicated."""
    files = sorted(set(route.files))
    paths = sorted(org.catalog.unc[f] for f in files)
    clients = {int(org.catalog.client[f]) for f in files if org.catalog.client[f] >= 0}
    return paths, sorted(org.client_name[c] for c in clients)


def build_truth(
    org: Org,
    scenario: str,
    plan: Plan,
    *,
    malicious_ids: list[str],
    first_detectable: int | None,
    events_by_file: dict[str, int],
    events_by_format: dict[str, int],
) -> dict[str, Any]:
    routes = []
    exposed: dict[str, set[str]] = {}
    for r in plan.routes:
        paths, clients = route_files(org, r)
        exposed[r.name] = set(clients)
        routes.append(
            {
                "name": r.name,
                "entry": r.entry,
                "hops": [
                    {
                        "src": h.src,
                        "dst": h.dst,
                        "time": iso(h.time),
                        "account": h.account,
                        "method": h.method,
                    }
                    for h in r.hops
                ],
                "accounts": r.accounts,
                "hosts": r.hosts,
                "devices": r.devices,
                "source_ips": r.source_ips,
                "start": iso(r.hops[0].time) if r.hops else None,
                "end": iso(r.hops[-1].time) if r.hops else None,
                "files_read": paths,
                "exposed_clients": clients,
            }
        )
    overlaps = []
    names = [r.name for r in plan.routes]
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            overlaps.append({"routes": [a, b], "clients": sorted(exposed[a] & exposed[b])})
    end = org.start + org.days * 86_400
    return {
        "scenario": scenario,
        "seed": org.seed,
        "period": {"start": iso(org.start * 1_000_000), "end": iso(end * 1_000_000)},
        "first_compromise": iso(plan.first_compromise),
        "first_detectable": iso(first_detectable),
        "detected": iso(plan.detected),
        "routes": routes,
        "exposed_clients": sorted(set().union(*exposed.values())) if exposed else [],
        "overlaps": overlaps,
        "beacons": [
            {
                "src": b.src,
                "dst_ip": b.dst_ip,
                "dst_port": b.dst_port,
                "domain": b.domain,
                "image": b.image,
                "interval_s": b.interval_s,
                "jitter": b.jitter,
                "first": iso(b.first),
                "last": iso(b.last),
            }
            for b in plan.beacons
        ],
        "log_gaps": [
            {
                "host": org.hosts.name[g.host],
                "channel": ("Security", "System", "Microsoft-Windows-Sysmon/Operational")[
                    g.channel
                ],
                "kind": g.kind,
                "start": iso(g.start),
                "end": iso(g.end),
                "first_record": g.first_record if g.kind != "silent" else None,
                "last_record": g.last_record if g.kind != "silent" else None,
                "events_missing": g.records,
            }
            for g in plan.gaps
        ],
        "malicious_record_ids": sorted(malicious_ids),
        "record_id_scheme": RECORD_ID_SCHEME,
        "events": {"by_format": events_by_format, "by_file": dict(sorted(events_by_file.items()))},
    }


def write_truth(path: Path, truth: dict[str, Any]) -> None:
    path.write_bytes(orjson.dumps(truth, option=orjson.OPT_INDENT_2) + b"\n")
