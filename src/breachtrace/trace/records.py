"""The records trace writes to CASE/trace/incidents.json: small frozen dataclasses, one per
thing a responder names (incident, route, hop, entry point, containment action, ...).

``as_json`` turns any of them into plain JSON values (datetimes as ISO-8601 UTC with a Z).
The shape is a contract with the report and scope stages: keys may be added, never renamed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Hop:
    """One host-to-host (or device-to-host) step of a route."""

    src: str
    dst: str
    time: datetime
    account: str
    method: str  # exploit, network, rdp, ssh, explicit, admin_share, vpn, ...
    evidence: tuple[str, ...] = ()  # event_uid values
    finding_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class EntryPoint:
    """Where the attacker first got in, and why we say so."""

    host: str
    source: str  # outside address, device or host the first hop came from
    time: datetime
    reasons: tuple[str, ...] = ()
    finding_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Route:
    """A hop-by-hop path from one entry point (time-respecting)."""

    route_id: str
    name: str
    entry: str
    first: datetime
    last: datetime
    accounts: tuple[str, ...]
    hosts: tuple[str, ...]
    devices: tuple[str, ...]
    hops: tuple[Hop, ...]
    source_addresses: tuple[str, ...] = ()  # outside addresses the route came from


@dataclass(frozen=True)
class HostInfo:
    name: str
    site: str | None
    country: str | None
    role: str | None
    first: datetime
    last: datetime


@dataclass(frozen=True)
class Entity:
    """A compromised account or device, with its first and last malicious activity."""

    name: str
    first: datetime
    last: datetime


@dataclass(frozen=True)
class TimelineEntry:
    time: datetime
    kind: str
    host: str | None
    user: str | None
    summary: str
    finding_id: str | None = None
    event_uid: str | None = None


@dataclass(frozen=True)
class Dwell:
    first_compromise: datetime | None
    first_detectable: datetime | None
    detection: datetime | None
    days: float | None


@dataclass(frozen=True)
class C2Channel:
    host: str
    dst_ip: str | None
    dst_port: int | None
    domain: str | None
    first: datetime
    last: datetime
    finding_id: str


@dataclass(frozen=True)
class LogGapNote:
    """A log gap that blinds part of the story, and what it may hide."""

    host: str
    channel: str | None
    start: datetime
    end: datetime
    kind: str
    may_hide: tuple[str, ...] = ()


CONTAINMENT_ACTIONS = (
    "isolate_host",
    "disable_account",
    "reset_credentials",
    "block_address",
    "close_access_path",
)


@dataclass(frozen=True)
class ContainmentAction:
    action: str  # one of CONTAINMENT_ACTIONS
    target: str
    reason: str
    finding_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Incident:
    incident_id: str
    severity: str
    title: str
    summary: str
    entry_points: tuple[EntryPoint, ...]
    routes: tuple[Route, ...]
    hosts: tuple[HostInfo, ...]
    accounts: tuple[Entity, ...]
    devices: tuple[Entity, ...]
    timeline: tuple[TimelineEntry, ...]
    dwell: Dwell
    c2: tuple[C2Channel, ...]
    log_gaps: tuple[LogGapNote, ...]
    containment: tuple[ContainmentAction, ...]
    finding_ids: tuple[str, ...] = ()  # every finding the incident rests on


def iso(value: datetime | None) -> str | None:
    """ISO-8601 UTC with milliseconds and a Z (the store keeps naive UTC)."""
    if value is None:
        return None
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def as_json(value: Any) -> Any:
    """A record (or list/tuple/dict of them) as plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: as_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, (list, tuple)):
        return [as_json(v) for v in value]
    if isinstance(value, dict):
        return {k: as_json(v) for k, v in value.items()}
    return value


def parse_time(text: str | None) -> datetime | None:
    """The inverse of ``iso`` (naive UTC), for stages that read incidents.json back."""
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).replace(tzinfo=None)
