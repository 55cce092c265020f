"""The few event queries trace needs beyond the findings, each a small aggregate computed by
the engine (DuckDB or Spark, the same SQL): who connected to an entry point from outside before
its first malicious sign, what started the implant that beacons, the first connection behind a
hop whose logon records are missing, and which VPN addresses an account also used from its own
(other) devices. Ties are broken by name so that both engines give the same answer.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyarrow as pa

from breachtrace.context import Context
from breachtrace.engines.base import Engine, materialize, one, tuples

LOOKBACK = timedelta(days=2)
REGULAR_DAYS = 3


@dataclass(frozen=True)
class OutsideContact:
    address: str
    first: datetime
    last: datetime
    connections: int
    ports: int
    days_seen: int  # distinct days it connected to the host over the whole case


def host_addresses(context: Context) -> tuple[dict[str, list[str]], dict[str, str]]:
    """(host -> its addresses, address -> host) from the asset inventory."""
    by_host = {a.host: list(a.ips) for a in context.assets}
    by_ip = {ip: a.host for a in context.assets for ip in a.ips}
    return by_host, by_ip


def is_outside(address: str, context: Context) -> bool:
    """True for a public address that no internal network of the inventory holds."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    for net in context.networks:
        if ip in net.network:
            return not net.internal
    return ip.is_global


def outside_contacts(
    engine: Engine, addresses: list[str], before: datetime, context: Context
) -> list[OutsideContact]:
    """Outside addresses that connected to ``addresses`` in the two days before ``before``,
    latest first."""
    if not addresses:
        return []
    rows = tuples(
        engine,
        """
WITH flows AS MATERIALIZED (
    SELECT src_ip, ts, dst_port FROM events
    WHERE action = 'network_connection' AND list_contains(?, dst_ip) AND src_ip IS NOT NULL
), recent AS (
    SELECT src_ip, min(ts) AS first_ts, max(ts) AS last_ts, count(*) AS n,
           count(DISTINCT dst_port) AS ports
    FROM flows WHERE ts >= ? AND ts <= ? GROUP BY src_ip
)
SELECT r.*, (SELECT count(DISTINCT CAST(f.ts AS DATE)) FROM flows f WHERE f.src_ip = r.src_ip)
FROM recent r ORDER BY r.last_ts DESC, r.src_ip LIMIT 200
""",
        [addresses, before - LOOKBACK, before],
    )
    found = [
        OutsideContact(r[0], r[1], r[2], int(r[3]), int(r[4]), int(r[5]))
        for r in rows
        if is_outside(r[0], context)
    ]
    # an address that visits the host day after day is a regular client, not the intruder
    return sorted(found, key=lambda c: (c.days_seen > REGULAR_DAYS, -c.last.timestamp()))


def implant_start(
    engine: Engine, host: str, evidence: list[str], before: datetime
) -> tuple[datetime, str, str | None] | None:
    """(time, image, parent) of the first start on ``host`` of a program that made the
    beaconing connections in ``evidence``, if the process view recorded it."""
    if not evidence:
        return None
    row = one(
        engine,
        """
WITH images AS (
    SELECT DISTINCT lower(process) AS image FROM events
    WHERE list_contains(?, event_uid) AND process IS NOT NULL
)
SELECT e.ts, coalesce(e.process, e.file_path), e.parent_process FROM events e JOIN images i
  ON lower(e.process) = i.image OR lower(e.file_path) = i.image
WHERE e.host = ? AND e.action IN ('process_start', 'service_install') AND e.ts <= ?
ORDER BY e.ts, e.event_uid LIMIT 1
""",
        [evidence, host, before],
    )
    return (row[0], row[1], row[2]) if row else None


def first_connection(
    engine: Engine,
    src_ips: list[str],
    dst_ips: list[str],
    start: datetime,
    end: datetime,
) -> datetime | None:
    """The first flow from ``src_ips`` to ``dst_ips`` in [start, end] (network view)."""
    if not src_ips or not dst_ips:
        return None
    row = one(
        engine,
        "SELECT min(ts) FROM events WHERE action = 'network_connection' "
        "AND list_contains(?, src_ip) AND list_contains(?, dst_ip) AND ts BETWEEN ? AND ?",
        [src_ips, dst_ips, start, end],
    )
    return row[0] if row else None


def own_vpn_addresses(engine: Engine, account: str, devices: list[str]) -> set[str]:
    """Outside addresses ``account`` connected from over VPN with a device other than
    ``devices``: the employee's own connections (home, hotel), not the intruder's."""
    rows = tuples(
        engine,
        "SELECT DISTINCT src_ip FROM events WHERE action = 'remote_access' AND user = ? "
        "AND src_ip IS NOT NULL AND src_host IS NOT NULL AND NOT list_contains(?, src_host)",
        [account, devices],
    )
    return {r[0] for r in rows}


@dataclass(frozen=True)
class VpnLogonQuery:
    """The first logon on ``host`` by ``account`` from an address the VPN assigned to
    ``device`` for that account, at or after ``since``."""

    account: str
    host: str
    device: str
    since: datetime


def first_vpn_logons(
    engine: Engine, queries: list[VpnLogonQuery]
) -> list[tuple[datetime, str] | None]:
    """(time, event_uid) of each query's first logon, or None; one pass over the events for
    all queries (a query per hop scanned the case once per hop)."""
    if not queries:
        return []
    materialize(engine, "bt_vpn_queries", pa.table({
        "i": pa.array(range(len(queries)), pa.int32()),
        "account": [q.account for q in queries],
        "host": [q.host for q in queries],
        "device": [q.device for q in queries],
        "since": pa.array([q.since for q in queries], pa.timestamp("us")),
    }))  # fmt: skip
    try:
        rows = tuples(engine, """
WITH q AS (SELECT * FROM bt_vpn_queries),
vpn AS MATERIALIZED (
    SELECT q.i, e.ts AS start, e.dst_ip AS assigned,
           lead(e.ts) OVER (PARTITION BY q.i, e.dst_ip ORDER BY e.ts) AS next_ts
    FROM events e JOIN q ON e.user = q.account AND e.src_host = q.device
    WHERE e.action IN ('remote_access', 'logoff') AND e.dst_ip IS NOT NULL
), logons AS MATERIALIZED (
    SELECT q.i, e.ts, e.event_uid, e.src_ip FROM events e
    JOIN q ON e.host = q.host AND e.user = q.account AND e.ts >= q.since
    WHERE e.action = 'logon'
)
SELECT i, ts, event_uid FROM (
    SELECT l.i, l.ts, l.event_uid,
           row_number() OVER (PARTITION BY l.i ORDER BY l.ts, l.event_uid) AS nth
    FROM logons l JOIN vpn v ON v.i = l.i AND l.src_ip = v.assigned
     AND l.ts >= v.start AND l.ts <= coalesce(v.next_ts, v.start + INTERVAL 1 DAY)
) WHERE nth = 1
""")  # fmt: skip
    finally:
        engine.execute("DROP TABLE IF EXISTS bt_vpn_queries")
    found = {i: (ts, uid) for i, ts, uid in rows}
    return [found.get(i) for i in range(len(queries))]


def accounts_acting(engine: Engine, host: str, start: datetime, end: datetime) -> list[str]:
    """Accounts (not machine or system accounts) that started programs on ``host`` in
    [start, end]: on an entry point, whoever ran the first commands."""
    return [user for user, _ in programs_started(engine, host, start, end)]


def programs_started(
    engine: Engine, host: str, start: datetime, end: datetime
) -> list[tuple[str, datetime]]:
    """(account, first start) of the accounts that started programs on ``host`` in
    [start, end], machine and system accounts aside, earliest first."""
    rows = tuples(
        engine,
        """
SELECT user, min(ts) FROM events
WHERE host = ? AND action = 'process_start' AND ts BETWEEN ? AND ? AND user IS NOT NULL
  AND NOT ends_with(user, '$')
  AND lower(user) NOT IN ('system', 'localsystem', 'local service', 'network service', '-')
GROUP BY user ORDER BY min(ts), user
""",
        [host, start, end],
    )
    return [(r[0], r[1]) for r in rows]
