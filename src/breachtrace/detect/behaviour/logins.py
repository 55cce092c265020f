"""The login tables lateral movement and credential analytics share, built once per run in SQL.

``bt_logins``: one row per successful remote authentication to a host (source -> destination as
an account), from Windows network and RDP logons (4624 types 3/8/10, TerminalServices 21/22/25
and 1149, 4778 reconnects), explicit-credential logons (4648, recorded on the source), admin
share access (5140/5145 on C$, ADMIN$, ...), sshd "Accepted", LANL authentication, and Zeek
NTLM/RDP logs. Sources are resolved to host names where the record names the workstation or
the address belongs to a known host.

``bt_presence``: when each account was first present on each host (an interactive logon there,
a remote logon into it, or the identity inventory listing the host as the account's device).

``bt_auth_failures``: failed authentications (4625, 4771, 4825, sshd failures, VPN failures).
"""

from __future__ import annotations

from breachtrace.detect.behaviour.common import human_account
from breachtrace.detect.behaviour.entities import ensure_addresses, ensure_hosts
from breachtrace.detect.behaviour.registry import Run

ADMIN_SHARE = r"regexp_matches(file_path, '^\\\\[^\\]+\\([a-z]\$|admin\$)(\\|$)', 'i')"

# Source resolution: the workstation name the record gives, else the host owning the address.
IP_LIKE = r"(regexp_full_match({v}, '\d{{1,3}}(\.\d{{1,3}}){{3}}') OR strpos({v}, ':') > 0)"


def ip_like(column: str) -> str:
    """SQL: the value looks like an IPv4 or IPv6 address rather than a name."""
    return IP_LIKE.format(v=column)


def event_field(name: str) -> str:
    """SQL: an EventData field from ``raw`` whichever JSON dialect the record came in."""
    return (
        f"coalesce(json_extract_string(raw, '$.Event.EventData.{name}'), "
        f"json_extract_string(raw, '$.winlog.event_data.{name}'), "
        f"json_extract_string(raw, '$.{name}'))"
    )


_SRC = f"""CASE
    WHEN l.src_host IS NOT NULL AND NOT {ip_like("l.src_host")}
         AND l.src_host NOT IN ('localhost', '-') THEN l.src_host
    WHEN a.host IS NOT NULL THEN a.host
    ELSE l.src_ip END"""


def ensure_logins(run: Run) -> str:
    """Create ``bt_logins`` once per run; returns its name."""
    ensure_hosts(run)
    return str(run.once("logins", _build_logins))


def _build_logins(run: Run) -> str:
    human = human_account("user", run)
    run.execute(
        f"""
CREATE OR REPLACE TEMP TABLE bt_login_raw AS
WITH ev AS MATERIALIZED (
    SELECT ts, host, event_code, lower(channel) AS channel, source_format, action, outcome, user,
           logon_id, src_ip, src_host, dst_ip, dst_host, protocol, logon_type, auth_package,
           file_path, event_uid
    FROM events
    WHERE (action IN ('logon', 'explicit_credentials', 'share_access')
           AND coalesce(outcome, 'success') = 'success')
       OR (action = 'remote_access' AND source_format = 'zeek')
), reconnects AS (
    -- 4778 is not normalized: its fields come from the raw record (a selective scan)
    SELECT ts, host, event_code, event_uid, raw FROM events
    WHERE event_code = 4778 AND lower(channel) = 'security'
)
SELECT ts, host AS dst, src_ip, src_host, user, logon_id, logon_type, auth_package, event_code,
       event_uid,
       CASE WHEN logon_type = 10 OR protocol = 'rdp' THEN 'rdp'
            WHEN source_format = 'lanl_auth' THEN 'lanl'
            ELSE 'network' END AS method
FROM ev
WHERE action = 'logon' AND host IS NOT NULL
  AND ((event_code = 4624 AND logon_type IN (3, 8, 10))
       OR (event_code IN (21, 22, 25, 1149) AND protocol = 'rdp')
       OR (source_format = 'lanl_auth' AND coalesce(logon_type, 3) NOT IN (2, 5, 7, 11)))
UNION ALL BY NAME
SELECT ts, host AS dst, bt_ip({event_field("ClientAddress")}) AS src_ip,
       bt_host({event_field("ClientName")}) AS src_host,
       bt_user({event_field("AccountName")}) AS user,
       lower({event_field("LogonID")}) AS logon_id,
       10 AS logon_type, NULL AS auth_package, event_code, event_uid, 'rdp_reconnect' AS method
FROM reconnects
UNION ALL BY NAME
SELECT ts, host AS dst, src_ip, NULL AS src_host, user, logon_id, NULL AS logon_type,
       auth_package, event_code, event_uid, 'ssh' AS method
FROM ev WHERE source_format = 'authlog' AND action = 'logon' AND protocol = 'ssh'
UNION ALL BY NAME
SELECT ts, host AS dst, src_ip, NULL AS src_host, user, logon_id, NULL AS logon_type,
       NULL AS auth_package, event_code, event_uid, 'admin_share' AS method
FROM ev WHERE action = 'share_access' AND host IS NOT NULL AND {ADMIN_SHARE}
UNION ALL BY NAME
-- 4648 is recorded on the source; its IpAddress is the target's address
SELECT ts, coalesce(CASE WHEN NOT {ip_like("dst_host")} THEN dst_host END,
                    '@' || src_ip) AS dst,
       NULL AS src_ip, host AS src_host, user, logon_id, NULL AS logon_type, NULL AS auth_package,
       event_code, event_uid, 'explicit' AS method
FROM ev WHERE action = 'explicit_credentials' AND host IS NOT NULL
  AND (dst_host IS NOT NULL OR src_ip IS NOT NULL)
UNION ALL BY NAME
SELECT ts, '@' || dst_ip AS dst, src_ip, src_host, user, logon_id, NULL AS logon_type,
       auth_package, event_code, event_uid, 'zeek_' || channel AS method
FROM ev WHERE source_format = 'zeek' AND channel IN ('ntlm', 'rdp') AND dst_ip IS NOT NULL;

CREATE OR REPLACE TEMP TABLE bt_logins AS
WITH resolved AS (
    SELECT l.*,
           CASE WHEN starts_with(l.dst, '@') THEN coalesce(d.host, substr(l.dst, 2))
                ELSE l.dst END AS dst_name,
           {_SRC} AS src_name,
           a.internal AS src_internal, a.vpn AS src_vpn
    FROM bt_login_raw l
    LEFT JOIN bt_addr a ON a.ip = l.src_ip
    LEFT JOIN bt_addr d ON starts_with(l.dst, '@') AND d.ip = substr(l.dst, 2)
    WHERE {human}
)
SELECT ts, src_name AS src, dst_name AS dst, user, method, src_ip, logon_id, logon_type,
       auth_package, event_code, event_uid,
       CASE WHEN src_name IS NULL THEN 'unknown'
            WHEN src_name <> coalesce(src_ip, '') THEN 'host'
            WHEN src_vpn THEN 'vpn'
            WHEN src_internal THEN 'internal'
            WHEN src_internal IS NOT NULL THEN 'external'
            ELSE 'unknown' END AS src_kind
FROM resolved
WHERE src_name IS NOT NULL AND dst_name IS NOT NULL AND src_name <> dst_name
  AND coalesce(src_ip, '') NOT IN ('127.0.0.1', '::1', '0.0.0.0', 'LOCAL')
  AND NOT starts_with(coalesce(src_ip, ''), '127.');
"""
    )
    return "bt_logins"


def ensure_presence(run: Run) -> str:
    """Create ``bt_presence`` once per run; returns its name."""
    ensure_logins(run)
    return str(run.once("presence", _build_presence))


def _build_presence(run: Run) -> str:
    human = human_account("user", run)
    run.execute(
        f"""
CREATE OR REPLACE TEMP TABLE bt_presence AS
WITH seen AS (
    SELECT host, user, ts, true AS interactive FROM events
    WHERE action = 'logon' AND host IS NOT NULL AND coalesce(outcome, 'success') = 'success'
      AND (logon_type IN (2, 7, 11) OR (source_format = 'authlog' AND protocol IS NULL))
      AND {human}
    UNION ALL
    SELECT dst, user, ts, false FROM bt_logins
    UNION ALL
    SELECT device, user, TIMESTAMP '1970-01-01', true FROM ctx_identities
    WHERE device IS NOT NULL
)
SELECT host, user, min(ts) AS first_ts, max(ts) AS last_ts,
       min(ts) FILTER (WHERE interactive) AS first_interactive, count(*) AS n
FROM seen GROUP BY host, user
"""
    )
    return "bt_presence"


def ensure_failures(run: Run) -> str:
    """Create ``bt_auth_failures`` once per run; returns its name."""
    ensure_addresses(run)
    return str(run.once("failures", _build_failures))


def _build_failures(run: Run) -> str:
    run.execute(
        f"""
CREATE OR REPLACE TEMP TABLE bt_auth_failures AS
SELECT ts, host, user, src_ip, src_host, event_code, event_uid,
       CASE WHEN source_format = 'authlog' THEN 'ssh'
            WHEN action = 'remote_access' OR channel = 'vpn' THEN 'vpn'
            WHEN event_code = 4771 THEN 'kerberos'
            ELSE 'windows' END AS method,
       -- failures typed at a console (loopback or no address) belong to that host alone
       CASE WHEN src_ip IS NULL OR starts_with(src_ip, '127.') OR src_ip IN ('::1', '0.0.0.0')
            THEN coalesce(src_host, host) ELSE src_ip END AS source
FROM events
WHERE action = 'logon_failed' OR (action IN ('remote_access', 'logon') AND outcome = 'failure')
UNION ALL BY NAME
-- 4825 (RDP denied) is not normalized: its fields come from the raw record (a selective scan)
SELECT ts, host, bt_user({event_field("AccountName")}) AS user,
       bt_ip({event_field("ClientAddress")}) AS src_ip, NULL AS src_host, event_code, event_uid,
       'rdp_denied' AS method, bt_ip({event_field("ClientAddress")}) AS source
FROM events WHERE event_code = 4825 AND lower(channel) = 'security'
"""
    )
    return "bt_auth_failures"
