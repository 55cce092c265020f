"""Files read within each route's sessions, in SQL.

A route's sessions: logons on a hop's destination by the hop's account from the hop's source
(its host name or one of its addresses), from the hop's time on; for a VPN hop, logons by the
account from an address the VPN assigned to the route's device during a session from one of
the route's outside addresses. Files read are the object and share access records of those
logon sessions (host evidence), plus files the network saw move (Zeek smb_files/files) from a
route's client address to a route's host while the route was active (network evidence), unless
the server's own records of that connection name an account outside the route: the network
fills the holes host logs leave (deleted, never collected), it does not overrule them.

The SQL is DuckDB's dialect in the subset the Spark engine transpiles (``array_length`` rather
than ``len`` of a list, ordered lists before slicing), so ``scope --engine spark`` runs it too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa

from breachtrace.engines.base import Engine, materialize

# Share-level records (\\*\share, no file below it) are connections, not reads.
_SHARE_ONLY = r"regexp_full_match(file_path, '\\\\[^\\]+\\[^\\]+\\?')"


@dataclass(frozen=True)
class RouteEdge:
    route_id: str
    src: str
    dst: str
    account: str
    since: datetime
    via_vpn: bool


def register_edges(
    engine: Engine,
    edges: list[RouteEdge],
    route_addresses: dict[str, list[str]],
    ips_of_host: dict[str, list[str]],
) -> None:
    """Tables sc_edges, sc_route_addr and sc_host_ips for the session queries."""
    materialize(
        engine,
        "sc_edges",
        pa.table(
            {
                "route_id": pa.array([e.route_id for e in edges], pa.string()),
                "src": pa.array([e.src for e in edges], pa.string()),
                "dst": pa.array([e.dst for e in edges], pa.string()),
                "account": pa.array([e.account for e in edges], pa.string()),
                "since": pa.array([e.since for e in edges], pa.timestamp("us")),
                "via_vpn": pa.array([e.via_vpn for e in edges], pa.bool_()),
            }
        ),
    )
    for name, columns, lists in (
        ("sc_route_addr", ("route_id", "address"), route_addresses),
        ("sc_host_ips", ("host", "ip"), ips_of_host),
    ):
        pairs = [(key, value) for key, values in lists.items() for value in values]
        # typed: an empty table must still say its columns are text (Spark builds it from that)
        materialize(engine, name, pa.table({
            column: pa.array([p[i] for p in pairs], pa.string())
            for i, column in enumerate(columns)
        }))  # fmt: skip


SESSIONS_SQL = """
WITH vpn AS (
    SELECT a.route_id, v.user, v.src_host AS device, v.dst_ip AS assigned, v.ts AS start,
           lead(v.ts) OVER (PARTITION BY v.dst_ip ORDER BY v.ts) AS next_ts, v.action,
           v.input_id
    FROM events v JOIN sc_route_addr a ON v.src_ip = a.address
    WHERE v.action IN ('remote_access', 'logoff') AND v.dst_ip IS NOT NULL
), vpn_sessions AS (
    SELECT route_id, user, device, assigned, start, input_id AS vpn_input,
           coalesce(next_ts, start + INTERVAL 1 DAY) AS stop
    FROM vpn WHERE action = 'remote_access'
), logons AS (
    SELECT host, user, logon_id, ts, src_ip, src_host, event_uid, input_id FROM events
    WHERE action = 'logon' AND logon_id IS NOT NULL AND coalesce(outcome, 'success') = 'success'
      AND host IN (SELECT dst FROM sc_edges)
)
-- an edge whose account is unknown (logon records deleted) takes the logons from its source
SELECT DISTINCT e.route_id, l.host, l.user, l.logon_id, l.ts, l.event_uid, l.input_id,
       NULL AS vpn_input
FROM logons l JOIN sc_edges e ON l.host = e.dst AND NOT e.via_vpn
  AND (l.user = e.account OR e.account = '') AND l.ts >= e.since - INTERVAL 1 MINUTE
WHERE l.src_host = e.src
   OR l.src_ip IN (SELECT ip FROM sc_host_ips WHERE host = e.src)
UNION
SELECT DISTINCT e.route_id, l.host, l.user, l.logon_id, l.ts, l.event_uid, l.input_id,
       v.vpn_input
FROM logons l JOIN sc_edges e ON l.host = e.dst AND l.user = e.account AND e.via_vpn
JOIN vpn_sessions v ON v.route_id = e.route_id AND v.user = e.account AND v.device = e.src
  AND l.src_ip = v.assigned AND l.ts BETWEEN v.start AND v.stop
"""

READS_SQL = f"""
WITH host_reads AS (
    SELECT s.route_id, r.host, r.ts, r.event_uid, 'host' AS evidence,
           -- the read, the logon and the VPN session behind it: the inputs that expose it
           list_filter([r.input_id, s.input_id, s.vpn_input], lambda x: x IS NOT NULL) AS inputs,
           s.host || ':' || s.logon_id AS session,
           replace(r.file_path, '\\\\*\\', '\\\\' || r.host || '\\') AS path
    FROM events r
    JOIN (SELECT DISTINCT route_id, host, user, logon_id, input_id, vpn_input FROM sc_sessions) s
      ON r.host = s.host AND r.logon_id = s.logon_id AND r.user = s.user
    WHERE r.action IN ('file_access', 'share_access') AND r.file_path IS NOT NULL
      AND NOT {_SHARE_ONLY}
), clients AS (
    SELECT e.route_id, i.ip, min(e.since) AS since FROM sc_edges e
    JOIN sc_host_ips i ON i.host = e.src GROUP BY ALL
    UNION ALL
    SELECT a.route_id, v.dst_ip, min(v.ts) FROM events v
    JOIN sc_route_addr a ON v.src_ip = a.address
    WHERE v.action = 'remote_access' AND v.dst_ip IS NOT NULL GROUP BY ALL
), servers AS (
    SELECT DISTINCT e.route_id, i.ip, e.dst AS host FROM sc_edges e
    JOIN sc_host_ips i ON i.host = e.dst
), route_accounts AS (
    SELECT DISTINCT route_id, account FROM sc_edges WHERE account <> ''
), server_records AS (
    -- the server's own records of a connection (logon, share access: both name the client's
    -- address and port) naming an account outside the route, per route of that server
    SELECT s.route_id, w.host, w.src_ip, w.src_port, w.ts
    FROM (SELECT DISTINCT route_id, host FROM servers) s
    JOIN events w ON w.host = s.host
    LEFT JOIN route_accounts a ON a.route_id = s.route_id AND a.account = w.user
    WHERE w.action IN ('logon', 'share_access') AND w.source_format IS DISTINCT FROM 'zeek'
      AND w.src_ip IS NOT NULL AND w.src_port IS NOT NULL AND w.user IS NOT NULL
      AND a.account IS NULL
), net_reads AS (
    SELECT c.route_id, s.host, n.ts, n.event_uid, 'network' AS evidence, [n.input_id] AS inputs,
           n.src_ip || '>' || s.host AS session,
           CASE WHEN n.query IS NOT NULL AND NOT ends_with(lower(n.file_path), lower(n.query))
                THEN rtrim(n.file_path, '\\') || '\\' || n.query ELSE n.file_path END AS path
    FROM events n JOIN clients c ON n.src_ip = c.ip AND n.ts >= c.since
    JOIN servers s ON s.route_id = c.route_id AND n.dst_ip = s.ip
    WHERE n.source_format = 'zeek' AND n.action IN ('file_access', 'file_transfer')
      AND n.file_path IS NOT NULL
      -- where the server's logs show the connection was another account's (an employee on a
      -- route's workstation), the host evidence decides: the network only fills the holes
      AND NOT EXISTS (
          SELECT 1 FROM server_records w
          WHERE w.route_id = c.route_id AND w.host = s.host AND w.src_ip = n.src_ip
            AND w.src_port = n.src_port
            AND w.ts BETWEEN n.ts - INTERVAL 1 DAY AND n.ts + INTERVAL 1 DAY)
)
SELECT * FROM host_reads UNION ALL SELECT * FROM net_reads
"""

# Every folder prefix of each read path, joined on equality with the inventory (a prefix join
# would be a nested loop); the longest matching prefix names the owner.
OWNED_SQL = """
WITH paths AS (
    SELECT DISTINCT path, string_split(lower(path), '\\') AS parts
    FROM sc_reads
), cuts AS (
    SELECT path, parts, unnest(range(1, array_length(parts))) AS i FROM paths
), prefixes AS (
    SELECT path, array_to_string(parts[1:i], '\\') || '\\' AS prefix FROM cuts
), matched AS (
    SELECT p.path, arg_max(i.owner, len(i.prefix)) AS owner,
           arg_max(i.classification, len(i.prefix)) AS classification,
           arg_max(i.individuals, len(i.prefix)) AS individuals,
           max(len(i.prefix)) AS prefix_len
    FROM prefixes p JOIN sc_inventory i ON i.prefix = p.prefix GROUP BY p.path
)
SELECT r.*, m.owner, m.classification, m.individuals,
       -- one file read over SMB is logged twice (share path and local path): the part below
       -- the owner's folder is the same in both, so it identifies the file
       CASE WHEN m.owner IS NULL THEN lower(r.path)
            ELSE m.owner || '|' || substr(lower(r.path), m.prefix_len + 1) END AS file_key
FROM sc_reads r LEFT JOIN matched m USING (path)
"""

PER_ROUTE_OWNER_SQL = """
SELECT route_id, owner, count(DISTINCT host || '|' || file_key) AS files,
       min(ts) AS first_access, max(ts) AS last_access,
       arg_max(classification, individuals) AS classification, max(individuals) AS individuals,
       bool_or(evidence = 'host') AS host_evidence,
       list(DISTINCT session ORDER BY session)[1:5] AS sessions,
       list_distinct(flatten(list(inputs))) AS inputs,
       list(DISTINCT path ORDER BY path)[1:5] AS sample_files
FROM sc_owned WHERE owner IS NOT NULL GROUP BY route_id, owner ORDER BY route_id, owner
"""

UNOWNED_SQL = """
SELECT path, list(DISTINCT route_id ORDER BY route_id) AS routes, min(ts) AS first_access
FROM sc_owned WHERE owner IS NULL GROUP BY path ORDER BY path
"""

ROUTE_FILES_SQL = """
SELECT route_id, count(DISTINCT host || '|' || file_key) AS files FROM sc_owned GROUP BY route_id
"""

OWNER_FILES_SQL = """
SELECT owner, count(DISTINCT host || '|' || file_key) FROM sc_owned
WHERE owner IS NOT NULL GROUP BY owner
"""


def compute(engine: Engine) -> None:
    """Build sc_sessions, sc_reads and sc_owned (inventory and edges registered first)."""
    for name, sql in (("sc_sessions", SESSIONS_SQL), ("sc_reads", READS_SQL),
                      ("sc_owned", OWNED_SQL)):  # fmt: skip
        engine.create_table(name, sql)
