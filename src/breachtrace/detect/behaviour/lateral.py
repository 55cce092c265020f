"""Lateral movement: the host-to-host login graph, hop by hop.

Findings (kind):
- ``lateral_chain`` / ``lateral_hop``: Hopper-style login paths (see paths.py) of two or more
  hops, or of one; each hop listed with its time, account, method and evidence; alarmed when a
  credential switch along the path reaches a host its causal user never reached, otherwise
  ranked under a daily alert budget. Hops crossing sites or countries, and paths starting from
  an outside address or an unpatched, stale, unmanaged or decommissioning asset, say so.
- ``lateral_remote_exec``: a network logon followed within seconds by a process started in
  that logon session, or by a service install tied to it by evidence rather than time alone
  (PsExec, smbexec, WMI, DCOM, WinRM).
- ``lateral_admin_share``: C$/ADMIN$ opened from another host.
- ``lateral_alt_credentials``: a NewCredentials logon (4624 type 9): runas /netonly or
  pass-the-hash tooling.
- ``lateral_denied``: a Remote Desktop connection from another host refused for an account
  with valid credentials (4825): an attempted hop.
- ``lateral_new_edge``: the never-seen-edge baseline (first (source, destination, account)
  after the learning window), reported beside the path analytic with its alerts per day.

SQL aggregates the logins into edges and computes every per-hop signal; Python only links the
(few) candidate hops into paths.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from breachtrace.detect.behaviour.common import (
    fmt_ts,
    human_account,
    interval,
    like_any,
    make_finding,
)
from breachtrace.detect.behaviour.logins import ADMIN_SHARE, ensure_failures, ensure_presence
from breachtrace.detect.behaviour.paths import Hop, Path, link_paths, paths_under_budget
from breachtrace.detect.behaviour.registry import AnalyticResult, Run, register
from breachtrace.engines.duckdb import sql_literal
from breachtrace.schema import Finding

NAME = "lateral"
METHOD_TECHNIQUES = {
    "rdp": "T1021.001",
    "rdp_reconnect": "T1021.001",
    "zeek_rdp": "T1021.001",
    "network": "T1021.002",
    "admin_share": "T1021.002",
    "explicit": "T1021.002",
    "zeek_ntlm": "T1021.002",
    "ssh": "T1021.004",
    "lanl": "T1021",
}
METHOD_WORDS = {
    "rdp": "over RDP",
    "rdp_reconnect": "by reconnecting an RDP session",
    "zeek_rdp": "over RDP (network view)",
    "network": "with a network logon",
    "admin_share": "through an admin share",
    "explicit": "with explicit credentials",
    "zeek_ntlm": "with NTLM (network view)",
    "ssh": "over SSH",
    "lanl": "(authentication log)",
}


@register(NAME, "Lateral movement: login paths, remote execution, never-seen edges")
def run_lateral(run: Run) -> AnalyticResult:
    ensure_presence(run)
    result = AnalyticResult()
    if run.first_ts is None:
        result.not_judged.append("the case holds no events")
        return result
    result.not_judged.extend(_limits(run))
    learning_end, judged = _learning_end(run)
    exec_rows = _remote_exec(run)
    hops = _candidate_hops(run, exec_rows)
    result.stats["candidate_hops"] = len(hops)
    paths, budget_stats = _paths(run, hops)
    result.stats.update(budget_stats)
    result.findings.extend(_path_finding(run, p) for p in paths)
    result.findings.extend(_remote_exec_findings(run, exec_rows))
    result.findings.extend(_admin_share_findings(run))
    result.findings.extend(_alt_credential_findings(run))
    result.findings.extend(_denied_findings(run))
    baseline = _new_edges(run, learning_end, judged)
    if run.settings.lateral.new_edge.emit_findings:
        result.findings.extend(baseline)
    result.stats.update(_alert_rates(run, learning_end, paths, baseline, judged))
    if not judged:
        result.not_judged.append(
            f"the case spans {run.span_days * 24:.1f} hours, shorter than the "
            f"{run.settings.lateral.new_edge.min_history_hours:g} hours needed to learn which "
            "logins are usual: every login edge is reported as unjudged"
        )
    return result


# -- learning window ----------------------------------------------------------------------------
def _learning_end(run: Run) -> tuple[datetime, bool]:
    s = run.settings.lateral.new_edge
    assert run.first_ts is not None
    judged = run.span_days * 24 >= float(s.min_history_hours)
    days = min(float(s.learning_days), float(s.learning_max_fraction) * run.span_days)
    return run.first_ts + timedelta(days=days), judged


def _limits(run: Run) -> list[str]:
    out = []
    if not run.context.has("assets"):
        out.append(
            "lateral: without an asset inventory, cross-site/country hops and unpatched or "
            "decommissioning entry points are not judged"
        )
    n = run.one("SELECT count(*) FROM bt_logins")
    if not n or not n[0]:
        out.append(
            "lateral: no remote logons in the case (4624 type 3/10, 4648, RDP, SSH, admin "
            "shares, LANL auth), so no login graph"
        )
    return out


# -- remote execution ---------------------------------------------------------------------------
def _remote_exec(run: Run) -> list[dict[str, Any]]:
    """Logins followed within seconds by a service install or a process in the session.

    A 7045 names no logon session, so time alone would tie any install to any logon before
    it: an install is linked only with evidence (see ``_install_link``)."""
    s = run.settings.lateral.remote_exec
    window = int(s.window_seconds)
    parents = like_any("parent_process", s.remote_parents)
    return run.rows(
        f"""
WITH ex AS MATERIALIZED (
    SELECT host, ts, event_code, action, user, logon_id, process, parent_process, command_line,
           query, file_path, event_uid
    FROM events
    WHERE host IS NOT NULL AND (action = 'service_install'
          OR (action = 'process_start' AND (logon_id IS NOT NULL OR parent_process IS NOT NULL)))
), priv AS (
    SELECT DISTINCT host, logon_id FROM events
    WHERE action = 'privilege_assigned' AND logon_id IS NOT NULL
), lg AS (
    SELECT l.*, p.logon_id IS NOT NULL AS privileged FROM bt_logins l
    LEFT JOIN priv p ON p.host = l.dst AND p.logon_id = l.logon_id
    WHERE l.method IN ('network', 'admin_share', 'lanl', 'rdp')
), pairs AS (
    SELECT l.src, l.dst, l.user, l.ts AS login_ts, l.event_uid AS login_uid, l.method, l.src_ip,
           l.logon_id AS login_logon, l.privileged, x.ts AS exec_ts, x.event_code, x.action,
           x.user AS exec_user, x.process, x.parent_process, x.command_line,
           x.query AS service, x.file_path, x.event_uid AS exec_uid, x.logon_id AS exec_logon
    FROM lg l JOIN ex x
      ON x.host = l.dst AND x.ts >= l.ts - INTERVAL 5 SECOND
     AND x.ts <= l.ts + INTERVAL {window} SECOND
), {_install_link(run)}, processes AS (
    SELECT *, CASE WHEN exec_logon = login_logon THEN 'process in the logon session'
                   ELSE 'process under a remote-execution parent' END AS link
    FROM pairs
    WHERE action = 'process_start'
      AND ((method <> 'rdp' AND exec_logon IS NOT NULL AND exec_logon = login_logon
            AND exec_logon NOT IN ('0x3e7', '0x3e4', '0x3e5'))
           OR (exec_user = user AND {parents}))
)
SELECT src, dst, user, login_ts, login_uid, method, src_ip, exec_ts, event_code, action, process,
       parent_process, command_line, service, file_path, exec_uid, link
FROM installs WHERE link IS NOT NULL
UNION ALL
SELECT src, dst, user, login_ts, login_uid, method, src_ip, exec_ts, event_code, action, process,
       parent_process, command_line, service, file_path, exec_uid, link
FROM processes
ORDER BY login_ts, exec_ts
"""
    )


def _install_link(run: Run) -> str:
    """SQL CTEs ending in ``installs``: each service install within the window after a non-RDP
    logon on its host, with ``link`` saying what ties the two (NULL: nothing but time).

    Evidence, strongest first: the install record names the logon session (4697), or a 4697
    of the same service does (for its 7045); the login is an admin share access, or the
    account opened an admin share or the service control pipe from the same source around the
    install; the logon was privileged and the service program sits where remote-execution
    tools put it (``staged_images``), not where installers do."""
    staged = " OR ".join(
        f"regexp_matches(lower(coalesce(s.file_path, s.process)), {sql_literal(p)})"
        for p in run.settings.lateral.remote_exec.staged_images
    )
    pipe = r"regexp_matches(file_path, '\\ipc\$\\svcctl$', 'i')"
    return f"""svc AS MATERIALIZED (
    SELECT * FROM pairs WHERE action = 'service_install' AND method <> 'rdp'
), named AS (
    SELECT DISTINCT s.login_uid, s.exec_uid FROM svc s JOIN ex n
      ON n.host = s.dst AND n.action = 'service_install' AND n.logon_id = s.login_logon
     AND lower(n.query) = lower(s.service)
     AND n.ts >= s.exec_ts - INTERVAL 5 SECOND AND n.ts <= s.exec_ts + INTERVAL 5 SECOND
), opens AS MATERIALIZED (
    SELECT host, ts, user, logon_id, src_ip FROM events
    WHERE action = 'share_access' AND host IS NOT NULL AND ({ADMIN_SHARE} OR {pipe})
), opened AS (
    SELECT DISTINCT s.login_uid, s.exec_uid FROM svc s JOIN opens o
      ON o.host = s.dst AND o.user = s.user
     AND (o.logon_id = s.login_logon OR o.src_ip = s.src_ip)
     AND o.ts >= s.login_ts - INTERVAL 5 SECOND AND o.ts <= s.exec_ts + INTERVAL 5 SECOND
), installs AS (
    SELECT s.*,
           CASE WHEN s.exec_logon = s.login_logon OR nm.exec_uid IS NOT NULL
                    THEN 'service install naming the logon session'
                WHEN s.method = 'admin_share' OR op.exec_uid IS NOT NULL
                    THEN 'service install after an admin share or the service control pipe'
                         || ' was opened'
                WHEN s.privileged AND ({staged or "false"})
                    THEN 'privileged service install of a program where remote tools drop it'
           END AS link
    FROM svc s
    LEFT JOIN named nm ON nm.login_uid = s.login_uid AND nm.exec_uid = s.exec_uid
    LEFT JOIN opened op ON op.login_uid = s.login_uid AND op.exec_uid = s.exec_uid
)"""


# -- candidate hops -----------------------------------------------------------------------------
def _candidate_hops(run: Run, exec_rows: list[dict[str, Any]]) -> list[Hop]:
    """Non-routine edges with every per-hop signal, as Hop objects for path linking."""
    p = run.settings.lateral.path
    assert run.last_ts is not None
    end = sql_literal(run.last_ts.date().isoformat())
    allow = like_any("e.user", p.allow_accounts)
    allow_src = like_any("e.src", p.allow_sources)
    grace = float(p.presence_grace_hours)
    session = float(p.session_hours)
    rows = run.rows(
        f"""
WITH edges AS (
    SELECT src, dst, user, min(ts) AS first_ts, max(ts) AS last_ts, count(*) AS logins,
           count(DISTINCT CAST(ts AS DATE)) AS days, arg_min(method, ts) AS method,
           arg_min(src_kind, ts) AS src_kind, arg_min(src_ip, ts) AS src_ip
    FROM bt_logins GROUP BY ALL
), routine AS (
    SELECT *, days >= {int(p.habitual_min_days)}
              AND days >= {float(p.habitual_coverage)}
                  * (date_diff('day', CAST(first_ts AS DATE), DATE {end}) + 1) AS habitual
    FROM edges
), automation AS (
    SELECT src, user FROM routine WHERE habitual GROUP BY ALL
    HAVING count(*) >= {int(p.automation_min_destinations)}
), cand AS MATERIALIZED (
    SELECT e.* FROM routine e ANTI JOIN automation a ON a.src = e.src AND a.user = e.user
    WHERE NOT e.habitual AND NOT {allow} AND NOT {allow_src}
), evidence AS (
    SELECT c.src, c.dst, c.user, list(l.event_uid ORDER BY l.ts)[1:20] AS uids
    FROM cand c JOIN bt_logins l ON l.src = c.src AND l.dst = c.dst AND l.user = c.user
    WHERE l.ts <= c.first_ts + INTERVAL 1 HOUR GROUP BY ALL
), present AS (
    SELECT c.src, c.dst, c.user,
           bool_or(p.first_ts <= c.first_ts + {interval(grace, "hours")}) AS present
    FROM cand c JOIN bt_presence p ON p.host = c.src AND p.user = c.user GROUP BY ALL
), owners AS (
    SELECT c.src, c.dst, c.user, list(DISTINCT p.user ORDER BY p.user)[1:20] AS owners
    FROM cand c JOIN bt_presence p ON p.host = c.src AND p.first_interactive <= c.first_ts
    GROUP BY ALL
), sessions AS (
    SELECT c.src, c.dst, c.user, list(DISTINCT l.user ORDER BY l.user)[1:20] AS sessions
    FROM cand c JOIN bt_logins l
      ON l.dst = c.src AND l.ts <= c.first_ts AND l.ts >= c.first_ts - {interval(session, "hours")}
    GROUP BY ALL
)
SELECT c.*, ev.uids, pr.present, o.owners, se.sessions,
       s.has_logs AS src_has_logs, s.in_inventory AS src_in_inventory,
       coalesce(s.server_like, false) AS src_server, s.site AS src_site, s.country AS src_country,
       s.managed AS src_managed, s.last_patched AS src_last_patched,
       s.lifecycle AS src_lifecycle, s.role AS src_role,
       d.site AS dst_site, d.country AS dst_country, d.role AS dst_role,
       a.site AS addr_site, a.country AS addr_country
FROM cand c
LEFT JOIN evidence ev USING (src, dst, user)
LEFT JOIN present pr USING (src, dst, user)
LEFT JOIN owners o USING (src, dst, user)
LEFT JOIN sessions se USING (src, dst, user)
LEFT JOIN bt_hostinfo s ON s.host = c.src
LEFT JOIN bt_hostinfo d ON d.host = c.dst
LEFT JOIN bt_addr a ON a.ip = c.src_ip
ORDER BY c.first_ts
"""
    )
    execs = _first_exec(exec_rows)
    learning_end, judged = _learning_end(run)
    return [_hop(run, i, r, execs, learning_end, judged) for i, r in enumerate(rows)]


def _first_exec(exec_rows: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    out: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in exec_rows:
        out.setdefault((r["src"], r["dst"], r["user"]), r)
    return out


def _hop(
    run: Run,
    key: int,
    r: dict[str, Any],
    execs: dict[tuple[str, str, str], dict[str, Any]],
    learning_end: datetime,
    judged: bool,
) -> Hop:
    reasons: list[str] = []
    risk, risk_reasons = _source_risk(run, r)
    reasons.extend(risk_reasons)
    spread = 0.0
    src_country = r["src_country"] or r["addr_country"]
    src_site = r["src_site"] or r["addr_site"]
    if src_country and r["dst_country"] and src_country != r["dst_country"]:
        spread = 1.0
        reasons.append(f"crosses from {src_country} to {r['dst_country']}")
    elif src_site and r["dst_site"] and src_site != r["dst_site"]:
        spread = 0.5
        reasons.append(f"crosses from site {src_site} to site {r['dst_site']}")
    novelty = 0.0
    if r["days"] <= 3:
        novelty = 1.0 if (judged and r["first_ts"] >= learning_end) else 0.5
    exec_row = execs.get((r["src"], r["dst"], r["user"]))
    remote_exec = 0.0
    evidence = list(r["uids"] or [])
    if exec_row and exec_row["login_ts"] <= r["first_ts"] + timedelta(hours=1):
        remote_exec = 1.0
        what = exec_row["service"] or exec_row["process"] or "a program"
        reasons.append(f"{exec_row['link']} ({what}) right after the logon")
        evidence.append(exec_row["exec_uid"])
    switch: bool | None
    switch = not bool(r["present"]) if r["src_has_logs"] else None
    owners = tuple(u for u in (r["owners"] or []) if u != r["user"] or not switch)
    causal = owners or tuple(r["sessions"] or [])
    parts = {
        "source_risk": risk,
        "novelty": novelty,
        "spread": spread,
        "remote_exec": remote_exec,
    }
    return Hop(
        key=key,
        src=r["src"],
        dst=r["dst"],
        user=r["user"],
        ts=r["first_ts"],
        method=r["method"],
        src_kind=r["src_kind"],
        switch=switch,
        causal=causal,
        unreached=None,
        src_server=bool(r["src_server"]) and r["src_kind"] == "host",
        parts=parts,
        reasons=reasons,
        evidence=evidence,
        row=r | {"causal_from": "owners" if owners else ("sessions" if causal else "none")},
    )


def _source_risk(run: Run, r: dict[str, Any]) -> tuple[float, list[str]]:
    p = run.settings.lateral.path
    risk, reasons = 0.0, []
    kind = r["src_kind"]
    if kind == "external":
        return 1.0, [f"starts from an outside address ({r['src']})"]
    lifecycle = (r["src_lifecycle"] or "").lower()
    if lifecycle and lifecycle in [x.lower() for x in p.risky_lifecycle]:
        risk = 1.0
        reasons.append(f"starts at {r['src']}, an asset marked {lifecycle}")
    patched = r["src_last_patched"]
    if patched is not None:
        age = (r["first_ts"].date() - patched).days
        if age >= int(p.stale_patch_days):
            risk = 1.0
            reasons.append(f"{r['src']} was last patched {patched.isoformat()} ({age} days before)")
    if r["src_managed"] is False:
        risk = max(risk, 0.7)
        reasons.append(f"{r['src']} is unmanaged")
    if r["src_server"] and kind == "host":
        risk = max(risk, 0.7)
        reasons.append(f"{r['src']} is a server, and servers rarely log on elsewhere")
    if kind == "vpn" or (kind == "host" and r["src_in_inventory"] is False and run.context.assets):
        risk = max(risk, 0.3)
        reasons.append(
            f"{r['src']} is a VPN address"
            if kind == "vpn"
            else f"{r['src']} is not in the asset inventory"
        )
    return risk, reasons


def _paths(run: Run, hops: list[Hop]) -> tuple[list[Path], dict[str, Any]]:
    p = run.settings.lateral.path
    reached = _reached_index(run, hops)
    flagged, graph = link_paths(
        hops,
        weights=p.weights,
        chain_window=timedelta(days=float(p.chain_window_days)),
        min_score=float(p.min_score),
        reached=reached,
    )
    return paths_under_budget(flagged, graph, daily_budget=int(p.daily_budget))


def _reached_index(run: Run, hops: list[Hop]) -> Callable[[str, str, datetime], bool]:
    """``reached(user, host, before)`` over bt_presence, loaded for the hops' destinations."""
    hosts = sorted({h.dst for h in hops})
    first: dict[tuple[str, str], datetime] = {}
    if hosts:
        rows = run.tuples(
            "SELECT host, user, first_ts FROM bt_presence WHERE list_contains(?, host)",
            [hosts],
        )
        first = {(h, u): t for h, u, t in rows}

    def reached(user: str, host: str, before: datetime) -> bool:
        t = first.get((host, user))
        return t is not None and t < before

    for hop in hops:  # a root hop's own causal users, judged before linking
        if hop.causal:
            hop.unreached = not any(reached(u, hop.dst, hop.ts) for u in hop.causal)
    return reached


# -- findings -----------------------------------------------------------------------------------
def _techniques(hops: list[Hop]) -> list[str]:
    out = [METHOD_TECHNIQUES.get(h.method, "T1021") for h in hops]
    if any(h.switch_in_path for h in hops):
        out.append("T1078")
    if any(h.parts.get("remote_exec") for h in hops):
        out.append("T1569.002")
    return out


def _path_finding(run: Run, path: Path) -> Finding:
    hops = path.hops
    root = path.root
    multi = len(hops) > 1
    kind = "lateral_chain" if multi else "lateral_hop"
    hosts: list[str] = []
    for h in hops:
        hosts.extend([h.src, h.dst])
    causal_text = ", ".join(path.causal) if path.causal else f"nobody logged on at {root.src}"
    first = hops[0]
    route = "; ".join(f"{h.src} -> {h.dst}" for h in hops)
    why = []
    if path.alarm:
        why.append(
            f"a credential switch along the path reaches hosts its causal user ({causal_text}) "
            "never reached"
        )
    reasons = [r for h in hops for r in h.reasons]
    why.extend(dict.fromkeys(reasons))
    reached = list(dict.fromkeys(h.dst for h in hops))
    if multi:
        what = (
            f"Login chain of {len(hops)} hops from {root.src} reaching {len(reached)} hosts "
            f"({', '.join(reached[:6])}{', ...' if len(reached) > 6 else ''})"
        )
    else:
        what = f"Suspicious login {first.src} -> {first.dst}"
    explanation = (
        f"{what} from {fmt_ts(first.ts)} as "
        f"{', '.join(dict.fromkeys(h.user for h in hops))}: " + "; ".join(why[:6]) + "."
    )
    tags = ["multi_hop"] if multi else []
    if path.alarm:
        tags.append("hopper_alarm")
    if root.src_kind == "external":
        tags.append("entry:external")
    if root.parts.get("source_risk", 0) >= 1.0:
        tags.append("entry:at_risk")
    if any(h.parts.get("spread", 0) >= 1.0 for h in hops):
        tags.append("cross_country")
    elif any(h.parts.get("spread", 0) > 0 for h in hops):
        tags.append("cross_site")
    details = {
        "route": route,
        "causal_users": list(path.causal),
        "causal_from": root.row.get("causal_from"),
        "alarm": path.alarm,
        "hops": [
            {
                "src": h.src,
                "dst": h.dst,
                "time": h.ts.isoformat(),
                "account": h.user,
                "method": h.method,
                "source_kind": h.src_kind,
                "source_ip": h.row.get("src_ip"),
                "credential_switch": h.switch_in_path,
                "score": round(h.score, 3),
                "sub_scores": {k: round(v, 3) for k, v in h.parts.items()},
                "alarm": h.alarm,
                "reasons": h.reasons,
                "evidence": h.evidence[:20],
                "logins_on_edge": h.row.get("logins"),
                "days_on_edge": h.row.get("days"),
            }
            for h in hops
        ],
        "weights": run.settings.lateral.path.weights.plain(),
    }
    title = (
        f"Login chain from {root.src}: {len(hops)} hops to {len(reached)} hosts"
        if multi
        else f"Suspicious login {first.src} -> {first.dst} as {first.user}"
    )
    return make_finding(
        run,
        NAME,
        kind,
        (root.src, root.dst, root.user, root.ts.isoformat()),
        title=title,
        score=path.score,
        techniques=_techniques(hops),
        first_ts=path.first_ts,
        last_ts=path.last_ts,
        explanation=explanation,
        hosts=hosts,
        users=[h.user for h in hops],
        addresses=[h.row.get("src_ip") for h in hops],
        evidence=[u for h in hops for u in h.evidence],
        tags=tags,
        details=details,
        severity_floor="high" if path.alarm else None,
    )


def _remote_exec_findings(run: Run, rows: list[dict[str, Any]]) -> list[Finding]:
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(r["src"], r["dst"], r["user"], r["login_ts"].date())].append(r)
    out = []
    for (src, dst, user, _day), items in groups.items():
        first = items[0]
        whats = list(dict.fromkeys(
            (i["service"] or i["process"] or i["file_path"] or "?") for i in items
        ))  # fmt: skip
        links = list(dict.fromkeys(i["link"] for i in items))
        techniques = [METHOD_TECHNIQUES.get(first["method"], "T1021.002")]
        if any(i["action"] == "service_install" for i in items):
            techniques.append("T1569.002")
        if any("wmiprvse" in (i["parent_process"] or "").lower() for i in items):
            techniques.append("T1047")
        if any("mmc.exe" in (i["process"] or "").lower() for i in items):
            techniques.append("T1021.003")
        explanation = (
            f"{user} logged on to {dst} from {src} {METHOD_WORDS.get(first['method'], '')} at "
            f"{fmt_ts(first['login_ts'])} and within seconds {', '.join(links)} followed "
            f"({', '.join(whats[:3])}): the pattern of remote execution tools."
        )
        out.append(
            make_finding(
                run,
                NAME,
                "lateral_remote_exec",
                (src, dst, user, first["login_ts"].isoformat()),
                title=f"Remote execution on {dst} from {src} as {user}",
                score=0.75,
                techniques=techniques,
                first_ts=first["login_ts"],
                last_ts=max(i["exec_ts"] for i in items),
                explanation=explanation,
                hosts=[src, dst],
                users=[user],
                addresses=[first["src_ip"]],
                files=[i["file_path"] for i in items],
                evidence=[x for i in items for x in (i["login_uid"], i["exec_uid"])],
                details={
                    "executed": whats,
                    "command_lines": [i["command_line"] for i in items if i["command_line"]][:10],
                    "links": links,
                },
            )
        )
    return out


def _admin_share_findings(run: Run) -> list[Finding]:
    s = run.settings.lateral.admin_share
    allow = like_any("user", s.allow_accounts)
    allow_src = like_any("src", s.allow_sources)
    rows = run.rows(
        f"""
SELECT src, dst, user, min(ts) AS first_ts, max(ts) AS last_ts, count(*) AS n,
       list(event_uid ORDER BY ts) AS uids, arg_min(src_ip, ts) AS src_ip
FROM bt_logins WHERE method = 'admin_share' AND NOT {allow} AND NOT {allow_src}
GROUP BY src, dst, user ORDER BY first_ts
"""
    )
    paths = {
        (r["src"], r["dst"], r["user"]): r["paths"]
        for r in run.rows(
            f"""
SELECT l.src, l.dst, l.user, list(DISTINCT e.file_path)[1:20] AS paths
FROM bt_logins l JOIN events e ON e.event_uid = l.event_uid
WHERE l.method = 'admin_share' AND NOT {like_any("l.user", s.allow_accounts)}
GROUP BY ALL
"""
        )
    }
    out = []
    for r in rows:
        files = paths.get((r["src"], r["dst"], r["user"]), [])
        out.append(
            make_finding(
                run,
                NAME,
                "lateral_admin_share",
                (r["src"], r["dst"], r["user"]),
                title=f"Admin share on {r['dst']} opened from {r['src']} as {r['user']}",
                score=float(s.score),
                techniques=["T1021.002"],
                first_ts=r["first_ts"],
                last_ts=r["last_ts"],
                explanation=(
                    f"{r['user']} opened an administrative share on {r['dst']} from {r['src']} "
                    f"{r['n']} times from {fmt_ts(r['first_ts'])} "
                    f"({', '.join(files[:3]) or 'C$/ADMIN$'}), which tools use to copy and run "
                    "programs remotely."
                ),
                hosts=[r["src"], r["dst"]],
                users=[r["user"]],
                addresses=[r["src_ip"]],
                files=files,
                evidence=r["uids"],
            )
        )
    return out


def _alt_credential_findings(run: Run) -> list[Finding]:
    human = human_account("user", run)
    rows = run.rows(
        f"""
SELECT host, user, subject_user, min(ts) AS first_ts, max(ts) AS last_ts, count(*) AS n,
       list(event_uid ORDER BY ts) AS uids, any_value(process) AS process,
       any_value(auth_package) AS package
FROM events
WHERE action = 'logon' AND event_code = 4624 AND logon_type = 9 AND {human}
GROUP BY host, user, subject_user ORDER BY first_ts
"""
    )
    score = float(run.settings.lateral.alt_credentials.score)
    return [
        make_finding(
            run,
            NAME,
            "lateral_alt_credentials",
            (r["host"], r["user"], r["subject_user"]),
            title=f"NewCredentials logon on {r['host']} as {r['user']}",
            score=score,
            techniques=["T1550.002", "T1134"],
            first_ts=r["first_ts"],
            last_ts=r["last_ts"],
            explanation=(
                f"{r['subject_user'] or r['user']} started a NewCredentials logon (type 9) on "
                f"{r['host']} {r['n']} times from {fmt_ts(r['first_ts'])}, so network access "
                "used other credentials: runas /netonly, or pass-the-hash tooling."
            ),
            hosts=[r["host"]],
            users=[r["user"], r["subject_user"]],
            evidence=r["uids"],
            details={"process": r["process"], "package": r["package"]},
        )
        for r in rows
    ]


def _denied_findings(run: Run) -> list[Finding]:
    ensure_failures(run)
    rows = run.rows(
        """
SELECT f.source, f.host, f.user, min(f.ts) AS first_ts, max(f.ts) AS last_ts, count(*) AS n,
       list(f.event_uid ORDER BY f.ts) AS uids, any_value(a.host) AS source_host
FROM bt_auth_failures f LEFT JOIN bt_addr a ON a.ip = f.source
WHERE f.method = 'rdp_denied' GROUP BY f.source, f.host, f.user ORDER BY first_ts
"""
    )
    out = []
    for r in rows:
        src = r["source_host"] or r["source"] or "?"
        out.append(
            make_finding(
                run,
                NAME,
                "lateral_denied",
                (src, r["host"], r["user"]),
                title=f"RDP from {src} to {r['host']} refused for {r['user']}",
                score=0.45,
                techniques=["T1021.001"],
                first_ts=r["first_ts"],
                last_ts=r["last_ts"],
                explanation=(
                    f"{src} tried {r['n']} times from {fmt_ts(r['first_ts'])} to open a Remote "
                    f"Desktop session on {r['host']} as {r['user']}, whose credentials were valid "
                    "but not allowed to log on there (4825): an attempted hop."
                ),
                hosts=[src, r["host"]],
                users=[r["user"]],
                addresses=[r["source"]],
                evidence=r["uids"],
            )
        )
    return out


# -- the never-seen-edge baseline -----------------------------------------------------------
def _new_edges(run: Run, learning_end: datetime, judged: bool) -> list[Finding]:
    cond = "true" if not judged else "first_ts >= ?"
    params = [] if not judged else [learning_end]
    rows = run.rows(
        f"""
SELECT src, dst, user, min(ts) AS first_ts, max(ts) AS last_ts, count(*) AS n,
       arg_min(event_uid, ts) AS uid, arg_min(method, ts) AS method,
       arg_min(src_ip, ts) AS src_ip
FROM bt_logins GROUP BY src, dst, user HAVING {cond.replace("first_ts", "min(ts)")}
ORDER BY first_ts
""",
        params,
    )
    out = []
    for r in rows:
        when = (
            "after the learning window"
            if judged
            else "(the case is too short to learn which logins are usual)"
        )
        out.append(
            make_finding(
                run,
                NAME,
                "lateral_new_edge",
                (r["src"], r["dst"], r["user"]),
                title=f"First login {r['src']} -> {r['dst']} as {r['user']}",
                score=0.2 if judged else 0.15,
                techniques=[METHOD_TECHNIQUES.get(r["method"], "T1021")],
                first_ts=r["first_ts"],
                last_ts=r["last_ts"],
                explanation=(
                    f"{r['user']} logged on to {r['dst']} from {r['src']} "
                    f"{METHOD_WORDS.get(r['method'], '')} for the first time at "
                    f"{fmt_ts(r['first_ts'])} {when} ({r['n']} logins in all)."
                ),
                hosts=[r["src"], r["dst"]],
                users=[r["user"]],
                addresses=[r["src_ip"]],
                evidence=[r["uid"]],
                tags=["baseline", "never_seen_edge"],
                details={"method": r["method"], "logins": r["n"], "judged": judged},
            )
        )
    return out


def _alert_rates(
    run: Run, learning_end: datetime, paths: list[Path], baseline: list[Finding], judged: bool
) -> dict[str, Any]:
    assert run.last_ts is not None
    days_after = max((run.last_ts - learning_end).total_seconds() / 86_400, 1e-9)
    paths_after = [p for p in paths if p.first_ts >= learning_end]
    return {
        "learning_end": learning_end.isoformat(),
        "days_after_learning": round(days_after, 2),
        "baseline_alerts": len(baseline),
        "baseline_alerts_per_day": round(len(baseline) / days_after, 2) if judged else None,
        "path_alerts": len(paths),
        "path_alerts_after_learning": len(paths_after),
        "path_alerts_per_day": round(len(paths_after) / days_after, 2),
        "path_alerts_per_day_whole_case": round(len(paths) / max(run.span_days, 1e-9), 2),
    }
