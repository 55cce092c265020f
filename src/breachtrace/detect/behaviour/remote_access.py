"""Remote access opened: the preparations and traces of lateral movement that are no login.

Before (or instead of) a login from another host shows, an intruder opens a way in: a file
share created or re-permissioned (5142/5143/5144: a staging point, or a print share carrying a
driver exploit), a remote-access service installed or enabled (an SSH server, a WinRM listener,
PowerShell remoting), a WinRM listener handling a session (4656 on the WS-Management
Listener), or a COM object instantiated on another machine from a script (DCOM execution).
Each is reported per host, account, kind and day, with the commands or shares as evidence.
Patterns are data (``remote_access`` in detect.yaml).
"""

from __future__ import annotations

from typing import Any

from breachtrace.detect.behaviour.common import fmt_ts, like_any, make_finding, plural
from breachtrace.detect.behaviour.registry import AnalyticResult, Run, register
from breachtrace.engines.duckdb import sql_literal
from breachtrace.schema import Finding

NAME = "remote_access"

# kind -> (title, ATT&CK technique, sentence); the SQL below decides which events are which
KINDS: dict[str, tuple[str, str, str]] = {
    "share_opened": (
        "File share created or changed", "T1021.002",
        "created or changed {n}: {what} (a share is a way in for SMB lateral movement and a "
        "staging point; a print share can carry a driver exploit)",
    ),
    "remote_service_enabled": (
        "Remote-access service enabled", "T1021",
        "enabled remote access with {n}: {what}",
    ),
    "winrm_listener_session": (
        "WinRM listener session", "T1021.006",
        "used the WS-Management (WinRM) listener in {n}",
    ),
    "dcom_remote_activation": (
        "Remote DCOM activation from a script", "T1021.003",
        "instantiated a COM object on another machine in {n}: {what}",
    ),
}  # fmt: skip


def _events_sql(run: Run) -> str:
    s = run.settings.remote_access
    enable = like_any("command_line", s.enable_commands)
    services = like_any("coalesce(query, '') || ' ' || coalesce(file_path, '')", s.service_names)
    dcom = (
        " OR ".join(
            f"regexp_matches(lower(command_line), {sql_literal(p)})" for p in s.dcom_activation
        )
        or "false"
    )
    listener = sql_literal(str(s.winrm_listener_object).lower())
    return f"""
SELECT CASE
         WHEN action = 'share_change' THEN 'share_opened'
         WHEN action = 'process_start' AND command_line IS NOT NULL AND ({dcom})
           THEN 'dcom_remote_activation'
         WHEN action = 'process_start' AND command_line IS NOT NULL AND {enable}
           THEN 'remote_service_enabled'
         WHEN action = 'service_install' AND {services} THEN 'remote_service_enabled'
         WHEN event_code = 4656 AND lower(query) = {listener} THEN 'winrm_listener_session'
       END AS kind,
       host, coalesce(user, subject_user) AS who, ts, event_uid,
       coalesce(query || ' (' || file_path || ')', query, file_path, command_line) AS what
FROM events
WHERE action IN ('share_change', 'process_start', 'service_install', 'file_access')
"""


def _grouped(run: Run) -> list[dict[str, Any]]:
    cap = int(run.settings.general.max_evidence)
    return run.rows(
        f"""
SELECT kind, host, who, CAST(ts AS DATE) AS day, min(ts) AS first_ts, max(ts) AS last_ts,
       count(*) AS n, list(DISTINCT left(what, 200)) AS what,
       list(event_uid ORDER BY ts)[1:{cap}] AS uids
FROM ({_events_sql(run)}) WHERE kind IS NOT NULL
GROUP BY kind, host, who, CAST(ts AS DATE)
ORDER BY first_ts, kind, host
"""
    )


def _finding(run: Run, r: dict[str, Any]) -> Finding:
    title, technique, sentence = KINDS[r["kind"]]
    s = run.settings.remote_access
    seen = sorted(w for w in r["what"] if w)
    what = "; ".join(seen)[:300] or "(no detail recorded)"
    unit = {"share_opened": "share event", "winrm_listener_session": "handle request"}
    n = plural(r["n"], unit.get(r["kind"], "command"))
    host = r["host"] or "an unknown host"
    return make_finding(
        run,
        NAME,
        r["kind"],
        (r["kind"], r["host"], r["who"], r["day"].isoformat()),
        title=f"{title} on {host}",
        score=float(s.scores[r["kind"]]),
        techniques=[technique],
        first_ts=r["first_ts"],
        last_ts=r["last_ts"],
        explanation=(
            f"On {host} {r['who'] or 'an unknown account'} "
            f"{sentence.format(n=n, what=what)} from {fmt_ts(r['first_ts'])}."
        ),
        hosts=[r["host"]],
        users=[r["who"]],
        evidence=r["uids"],
        tags=["attack.lateral_movement", "attack.ta0008"],
        details={"events": r["n"], "what": seen[:20]},
    )


@register(NAME, "Remote access opened: shares, remote-access services, WinRM, remote DCOM")
def run_remote_access(run: Run) -> AnalyticResult:
    result = AnalyticResult()
    if run.first_ts is None:
        result.not_judged.append("the case holds no events")
        return result
    rows = _grouped(run)
    result.findings.extend(_finding(run, r) for r in rows)
    result.stats["events"] = sum(r["n"] for r in rows)
    return result
