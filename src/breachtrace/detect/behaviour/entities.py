"""Addresses and hosts as the analytics see them: built once per run from the logs and context.

``bt_addr``: every address seen, with whether it is internal (network inventory, else private
range), a VPN address (inventory, else an address VPN logs handed out), its site and country
when an inventory says so, and the host it belongs to (asset inventory, else inferred from the
logs: Sysmon's own source address, machine-account logons, or a workstation name seen with only
that address).

``bt_hostinfo``: every host named in the logs or the asset inventory, with its site, country,
role, patch state and lifecycle when known, whether it has logs of its own, and whether it
looks like a server (many accounts log on to it over the network).
"""

from __future__ import annotations

import ipaddress
from typing import Any

import pyarrow as pa

from breachtrace.detect.behaviour.registry import Run

_IPV4_NUM = (
    r"CASE WHEN regexp_full_match({x}, '\d{{1,3}}\.\d{{1,3}}\.\d{{1,3}}\.\d{{1,3}}') THEN "
    "CAST(split_part({x}, '.', 1) AS BIGINT) * 16777216 + CAST(split_part({x}, '.', 2) AS BIGINT) * 65536 "
    "+ CAST(split_part({x}, '.', 3) AS BIGINT) * 256 + CAST(split_part({x}, '.', 4) AS BIGINT) END"
)


def ipv4_num(column: str) -> str:
    """SQL: a dotted IPv4 address in ``column`` as a number (NULL otherwise). Text, not a
    macro, so that every engine runs it."""
    return _IPV4_NUM.format(x=column)


# Private, loopback, link-local and shared (CGNAT) IPv4 ranges as (lo, hi) numbers.
_PRIVATE_V4 = [
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "169.254.0.0/16",
              "100.64.0.0/10")
]  # fmt: skip


def _private_sql(num: str, text: str) -> str:
    v4 = " OR ".join(
        f"({num} BETWEEN {int(n.network_address)} AND {int(n.broadcast_address)})"
        for n in _PRIVATE_V4
    )
    v6 = (
        f"(lower({text}) = '::1' OR starts_with(lower({text}), 'fe80:') "
        f"OR regexp_matches(lower({text}), '^f[cd][0-9a-f]{{2}}:'))"
    )
    return f"(CASE WHEN {num} IS NOT NULL THEN ({v4}) ELSE {v6} END)"


def ensure_addresses(run: Run) -> str:
    """Create ``bt_addr`` once per run; returns its name."""
    return str(run.once("addresses", _build_addresses))


def _build_addresses(run: Run) -> str:
    run.context.register(run.engine)
    run.execute(
        f"""
CREATE OR REPLACE TEMP TABLE bt_ip_agg AS
-- one pass over the events: every (address, naming evidence) combination, counted
SELECT src_ip, dst_ip,
       CASE WHEN action = 'network_connection' AND event_code = 3 THEN host END AS sysmon_host,
       -- Sysmon 3 records inbound connections too (Initiated=false): then the host's own
       -- address is the destination, and the source is the remote peer
       CASE WHEN action = 'network_connection' AND event_code = 3
            THEN coalesce(lower(list_filter(json_extract_string(raw, ['$.Initiated',
                     '$.Event.EventData.Initiated', '$.winlog.event_data.Initiated']),
                     lambda v: v IS NOT NULL)[1]), 'true') <> 'false' END AS sysmon_outbound,
       CASE WHEN action IN ('logon', 'share_access') AND ends_with(user, '$')
            THEN lower(rtrim(user, '$')) END AS machine,
       CASE WHEN action = 'logon' AND NOT regexp_full_match(coalesce(src_host, ''), '[0-9.]*')
            THEN src_host END AS workstation,
       action = 'remote_access' AND source_format <> 'zeek' AS vpn_record,
       count(*) AS n
FROM events
WHERE src_ip IS NOT NULL OR dst_ip IS NOT NULL
GROUP BY ALL;

CREATE OR REPLACE TEMP TABLE bt_ip_seen AS
SELECT ip, {ipv4_num("ip")} AS num FROM (
    SELECT src_ip AS ip FROM bt_ip_agg UNION SELECT dst_ip FROM bt_ip_agg
    UNION SELECT ip FROM ctx_asset_ips
) WHERE ip IS NOT NULL AND ({ipv4_num("ip")} IS NOT NULL OR strpos(ip, ':') > 0);

CREATE OR REPLACE TEMP TABLE bt_ip_host_inferred AS
WITH pairs AS (
    -- Sysmon network events carry the host's own address; machine accounts (NAME$) logging on
    -- or opening shares name the client host; a workstation name beside a client address
    SELECT src_ip AS ip, sysmon_host AS name, 3 AS strength, n FROM bt_ip_agg
    WHERE sysmon_host IS NOT NULL AND src_ip IS NOT NULL AND sysmon_outbound
    UNION ALL
    SELECT dst_ip, sysmon_host, 3, n FROM bt_ip_agg
    WHERE sysmon_host IS NOT NULL AND dst_ip IS NOT NULL AND NOT sysmon_outbound
    UNION ALL
    SELECT src_ip, machine, 3, n FROM bt_ip_agg WHERE machine IS NOT NULL AND src_ip IS NOT NULL
    UNION ALL
    SELECT src_ip, workstation, 1, n FROM bt_ip_agg
    WHERE workstation IS NOT NULL AND src_ip IS NOT NULL
), named AS (
    SELECT p.ip, p.name, max(p.strength) AS strength, sum(p.n) AS n
    FROM pairs p JOIN bt_ip_seen s ON s.ip = p.ip
    WHERE {_private_sql("s.num", "s.ip")} AND NOT starts_with(p.ip, '127.')
      AND p.ip NOT IN ('::1', '0.0.0.0')
    GROUP BY p.ip, p.name
)
SELECT ip, arg_max(name, strength * 1e9 + n) AS host, count(DISTINCT name) AS names,
       max(strength) AS strength
FROM named GROUP BY ip;

CREATE OR REPLACE TEMP TABLE bt_vpn_seen AS
SELECT DISTINCT dst_ip AS ip FROM bt_ip_agg
WHERE vpn_record AND dst_ip IS NOT NULL AND src_ip IS NOT NULL AND dst_ip <> src_ip;

CREATE OR REPLACE TEMP TABLE bt_addr AS
WITH net AS (
    SELECT s.ip, arg_max(n.site, n.prefix) AS site, arg_max(n.country, n.prefix) AS country,
           arg_max(n.internal, n.prefix) AS internal, arg_max(n.vpn_pool, n.prefix) AS vpn_pool
    FROM bt_ip_seen s JOIN ctx_networks n ON s.num BETWEEN n.lo AND n.hi
    GROUP BY s.ip
), asset AS (
    SELECT ip, min(host) AS host FROM ctx_asset_ips GROUP BY ip
)
SELECT s.ip, s.num,
       {_private_sql("s.num", "s.ip")} AS private,
       coalesce(net.internal, {_private_sql("s.num", "s.ip")}) AS internal,
       coalesce(net.vpn_pool, false) OR v.ip IS NOT NULL AS vpn,
       net.site, net.country,
       net.ip IS NOT NULL AS in_inventory,
       CASE WHEN coalesce(net.vpn_pool, false) OR v.ip IS NOT NULL THEN NULL
            ELSE coalesce(asset.host, CASE WHEN i.names = 1 OR i.strength >= 3 THEN i.host END)
       END AS host,
       CASE WHEN asset.host IS NOT NULL THEN 'asset inventory'
            WHEN i.host IS NOT NULL THEN 'inferred from logs' END AS host_source
FROM bt_ip_seen s
LEFT JOIN net ON net.ip = s.ip
LEFT JOIN asset ON asset.ip = s.ip
LEFT JOIN bt_ip_host_inferred i ON i.ip = s.ip
LEFT JOIN bt_vpn_seen v ON v.ip = s.ip;
"""
    )
    _ipv6_networks(run)
    return "bt_addr"


def _ipv6_networks(run: Run) -> None:
    """IPv6 inventory ranges are matched in Python over the (few) distinct IPv6 addresses."""
    nets = run.context.ipv6_networks()
    if not nets:
        return
    rows = run.tuples("SELECT ip FROM bt_addr WHERE num IS NULL")
    matches: list[tuple[str, Any]] = []
    for (ip,) in rows:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            continue
        hits = [n for n in nets if addr in n.network]
        if hits:
            matches.append((ip, max(hits, key=lambda n: n.network.prefixlen)))
    if not matches:
        return
    run.engine.register("bt_ipv6_inventory", pa.table({
        "ip": pa.array([ip for ip, _ in matches], pa.string()),
        "site": pa.array([n.site for _, n in matches], pa.string()),
        "country": pa.array([n.country for _, n in matches], pa.string()),
        "internal": pa.array([n.internal for _, n in matches], pa.bool_()),
        "vpn_pool": pa.array([n.vpn_pool for _, n in matches], pa.bool_()),
    }))  # fmt: skip
    # a rewrite rather than UPDATE, which temporary views on Spark do not take
    run.execute("""
CREATE OR REPLACE TEMP TABLE bt_addr AS
SELECT a.ip, a.num, a.private,
       CASE WHEN m.ip IS NULL THEN a.internal ELSE m.internal END AS internal,
       CASE WHEN m.ip IS NULL THEN a.vpn ELSE a.vpn OR m.vpn_pool END AS vpn,
       CASE WHEN m.ip IS NULL THEN a.site ELSE m.site END AS site,
       CASE WHEN m.ip IS NULL THEN a.country ELSE m.country END AS country,
       a.in_inventory OR m.ip IS NOT NULL AS in_inventory, a.host, a.host_source
FROM bt_addr a LEFT JOIN bt_ipv6_inventory m ON m.ip = a.ip
""")  # fmt: skip
    run.engine.unregister("bt_ipv6_inventory")


def ensure_hosts(run: Run) -> str:
    """Create ``bt_hostinfo`` once per run; returns its name."""
    ensure_addresses(run)
    return str(run.once("hosts", _build_hosts))


def _build_hosts(run: Run) -> str:
    min_accounts = int(run.settings.general.server_min_accounts)
    run.execute(
        f"""
CREATE OR REPLACE TEMP TABLE bt_hostinfo AS
WITH logged AS (
    SELECT host, count(*) AS events,
           count(DISTINCT user) FILTER (
               WHERE action = 'logon' AND logon_type IN (3, 10) AND NOT ends_with(user, '$')
           ) AS accounts
    FROM events WHERE host IS NOT NULL GROUP BY host
), names AS (
    SELECT host FROM logged UNION SELECT host FROM ctx_assets
)
SELECT n.host, a.site, a.country, a.role, a.managed, a.last_patched, a.lifecycle,
       a.host IS NOT NULL AS in_inventory,
       coalesce(l.events, 0) > 0 AS has_logs,
       CASE WHEN a.role IS NOT NULL
            THEN NOT regexp_matches(a.role, 'workstation|laptop|desktop|client|vpn')
            ELSE coalesce(l.accounts, 0) >= {min_accounts} END AS server_like
FROM names n
LEFT JOIN ctx_assets a ON a.host = n.host
LEFT JOIN logged l ON l.host = n.host
"""
    )
    return "bt_hostinfo"


def ensure_flows(run: Run) -> str:
    """Create ``bt_flows`` once per run: every network connection record (Zeek conn, Sysmon 3,
    flows, firewall), narrow, for the beacon and blind-spot analytics."""
    return str(run.once("flows", _build_flows))


def _build_flows(run: Run) -> str:
    run.execute(
        """
CREATE OR REPLACE TEMP TABLE bt_flows AS
SELECT ts, CASE WHEN event_code = 3 THEN 'sysmon' ELSE source_format END AS view, host,
       src_ip, src_host, dst_ip, dst_host, dst_port, bytes_out, duration, event_uid
FROM events WHERE action = 'network_connection'
"""
    )
    return "bt_flows"
