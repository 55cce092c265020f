"""Bulk data access: sessions that read far more files than the account and its peers usually do.

A session is an account's logon session on one host (the logon id that 4663 and 5145 share),
or, without a logon id, the account's reads on that host that day. Per session SQL counts the
distinct files read (4663/4656 object access, 5145 share access with a file name, Zeek
smb_files and files), the folders read for the first time by the account, and the mean gap
between reads (in the view that saw the most files), and compares the count with the account's
own earlier sessions and with the peers' sessions on that host. The four named sub-scores are
weighted (bulk.weights) into one score reported from bulk.min_score.

Findings: ``bulk_read`` with counts, paths, folders, time range and the named sub-scores.
"""

from __future__ import annotations

from typing import Any

from breachtrace.detect.behaviour.common import fmt_ts, interval, like_any, make_finding, weighted
from breachtrace.detect.behaviour.entities import ensure_addresses
from breachtrace.detect.behaviour.registry import AnalyticResult, Run, register
from breachtrace.schema import Finding

NAME = "bulk"


@register(NAME, "Bulk data access: sessions reading far more than usual")
def run_bulk(run: Run) -> AnalyticResult:
    ensure_addresses(run)
    result = AnalyticResult()
    n = _reads(run)
    result.stats["file_reads"] = n
    if not n:
        result.not_judged.append(
            "bulk: no file reads in the case (4663/4656 object access, 5145 share access, "
            "Zeek smb_files/files): enable object-access auditing on file servers"
        )
        return result
    rows = _sessions(run)
    counted = run.one("SELECT count(*) FROM bt_read_sessions")
    result.stats["sessions"] = int(counted[0]) if counted else 0
    found = [_finding(run, r) for r in rows]
    result.findings.extend(f for f in found if f is not None)
    return result


def _reads(run: Run) -> int:
    s = run.settings.bulk
    ignored = like_any("lp", s.ignore_paths)
    allow = like_any("account", s.allow_accounts)
    run.execute(
        f"""
CREATE OR REPLACE TEMP TABLE bt_reads AS
WITH r AS (
    SELECT ts, host, dst_ip, src_ip, user, logon_id, file_path, lower(file_path) AS lp,
           event_code, event_uid
    FROM events
    WHERE (action IN ('file_access', 'file_transfer')
           OR (action = 'share_access' AND event_code = 5145))
      AND file_path IS NOT NULL
      -- files only: the last path component has an extension (directories are traversed too)
      AND regexp_matches(file_path, '\\.[A-Za-z0-9]{{1,8}}$')
), named AS (
    SELECT r.*, coalesce(r.host, d.host, r.dst_ip) AS on_host,
           coalesce(r.user, '@' || r.src_ip) AS account
    FROM r LEFT JOIN bt_addr d ON d.ip = r.dst_ip
    WHERE NOT {ignored} AND NOT ends_with(coalesce(r.user, ''), '$')
)
SELECT ts, on_host AS host, account, logon_id, file_path, event_code, event_uid, src_ip,
       -- a session: the logon id the reads share, else the account's reads that day
       coalesce(logon_id, CAST(CAST(ts AS DATE) AS VARCHAR)) AS session,
       -- 5145 names \\\\*\\share\\path; the others a local or network path
       CASE WHEN event_code = 5145 THEN 'share' ELSE 'object' END AS view,
       parse_dirpath(file_path, 'both_slash') AS folder
FROM named WHERE NOT {allow}
"""
    )
    row = run.one("SELECT count(*) FROM bt_reads")
    return int(row[0]) if row else 0


def _sessions(run: Run) -> list[dict[str, Any]]:
    s = run.settings.bulk
    learn = float(s.learning_days)
    run.execute(
        f"""
CREATE OR REPLACE TEMP TABLE bt_read_sessions AS
WITH accounts AS (
    SELECT account, min(ts) AS account_first FROM bt_reads GROUP BY account
), first_reads AS (
    -- the session in which the account first read each folder (after its learning days)
    SELECT f.account, f.host, f.session, f.view, count(*) AS new_folders
    FROM (SELECT account, folder, view, arg_min(host, ts) AS host, arg_min(session, ts) AS session,
                 min(ts) AS first_ts
          FROM bt_reads GROUP BY account, folder, view) f
    JOIN accounts a USING (account)
    WHERE f.first_ts >= a.account_first + {interval(learn, "days")}
    GROUP BY ALL
), per_view AS (
    SELECT account, host, session, view, min(ts) AS first_ts, max(ts) AS last_ts,
           count(DISTINCT file_path) AS files, count(DISTINCT folder) AS folders,
           any_value(src_ip) AS src_ip
    FROM bt_reads GROUP BY account, host, session, view
)
SELECT p.account, p.host, p.session, min(p.first_ts) AS first_ts, max(p.last_ts) AS last_ts,
       max(p.files) AS files, max(p.folders) AS folders,
       coalesce(max(n.new_folders), 0) AS new_folders,
       any_value(p.src_ip) AS src_ip,
       -- mean gap between reads, in the view that saw the most files
       epoch(arg_max(p.last_ts - p.first_ts, p.files)) / greatest(max(p.files) - 1, 1)
           AS mean_gap_s
FROM per_view p
LEFT JOIN first_reads n USING (account, host, session, view)
GROUP BY p.account, p.host, p.session
"""
    )
    q = float(s.peer_quantile)
    return run.rows(
        f"""
WITH own AS (
    SELECT *,
           median(files) OVER (PARTITION BY account ORDER BY first_ts
                               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS own_median,
           count(*) OVER (PARTITION BY account ORDER BY first_ts
                          ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS own_sessions
    FROM bt_read_sessions
), peers AS (
    SELECT host, quantile_cont(files, {q}) AS peer_q, count(*) AS peer_sessions,
           count(DISTINCT account) AS peer_accounts
    FROM bt_read_sessions GROUP BY host
), candidates AS (
    SELECT o.*, p.peer_q, p.peer_sessions, p.peer_accounts FROM own o JOIN peers p USING (host)
    WHERE o.files >= {int(s.min_files)}
)
SELECT c.*, list(r.file_path ORDER BY r.ts) AS paths, list(r.event_uid ORDER BY r.ts) AS uids,
       list(DISTINCT r.folder) AS folder_list
FROM candidates c JOIN bt_reads r
  ON r.account = c.account AND r.host = c.host AND r.session = c.session
GROUP BY ALL
ORDER BY c.first_ts
"""
    )


def _ratio_score(value: float, base: float | None, ratio: float) -> float:
    """0 at or below the baseline, 1 at ``ratio`` times it or more."""
    if base is None or base <= 0:
        return 1.0 if value > 0 else 0.0
    observed = value / base
    return max(0.0, min(1.0, (observed - 1.0) / max(ratio - 1.0, 1e-9)))


def _finding(run: Run, r: dict[str, Any]) -> Finding | None:
    s = run.settings.bulk
    own_known = (r["own_sessions"] or 0) >= int(s.own_min_sessions)
    peers_known = (r["peer_accounts"] or 0) >= 3
    parts = {
        "own": _ratio_score(r["files"], r["own_median"], float(s.own_ratio)) if own_known else None,
        "peers": (
            _ratio_score(r["files"], r["peer_q"], float(s.peer_ratio)) if peers_known else None
        ),
        "new_folders": min(1.0, (r["new_folders"] or 0) / max(int(s.new_folders_min), 1)),
        "enumeration": 0.0,
    }
    gap = r["mean_gap_s"]
    if gap is not None and r["files"] >= int(s.enumeration_min_files):
        limit = float(s.enumeration_max_gap_seconds)
        parts["enumeration"] = 1.0 if gap <= limit else max(0.0, 1 - (gap - limit) / (4 * limit))
    # A missing baseline borrows the other one (and says so).
    if parts["own"] is None and parts["peers"] is None:
        parts["own"] = parts["peers"] = 0.5
    elif parts["own"] is None:
        parts["own"] = parts["peers"]
    elif parts["peers"] is None:
        parts["peers"] = parts["own"]
    scores = {k: float(v or 0.0) for k, v in parts.items()}
    score = weighted(scores, s.weights)
    if score < float(s.min_score):
        return None
    folders = r["folder_list"] or []
    why = [f"{r['files']:,} files in {r['folders']:,} folders"]
    if own_known:
        why.append(f"its own usual session reads {r['own_median']:g}")
    else:
        why.append("no earlier sessions of its own to compare")
    if peers_known:
        why.append(
            f"peers on {r['host']} read at most {r['peer_q']:.0f} ({float(s.peer_quantile):.0%})"
        )
    if r["new_folders"]:
        why.append(f"{r['new_folders']} folders it never read before")
    fast = scores["enumeration"] >= 1.0
    if fast:
        why.append(f"one file every {gap:.1f} s (sequential enumeration)")
    tags = []
    if r["new_folders"] and scores["new_folders"] >= 1.0:
        tags.append("new_folders")
    if fast:
        tags.append("fast_enumeration")
    account = r["account"]
    return make_finding(
        run,
        NAME,
        "bulk_read",
        (account, r["host"], r["session"]),
        title=f"{account} read {r['files']:,} files on {r['host']}",
        score=score,
        techniques=["T1039", "T1005", "T1083"] if fast else ["T1039", "T1005"],
        first_ts=r["first_ts"],
        last_ts=r["last_ts"],
        explanation=(
            f"{account} read {', '.join(why[:1])} on {r['host']} between {fmt_ts(r['first_ts'])} "
            f"and {fmt_ts(r['last_ts'])}: " + "; ".join(why[1:]) + "."
        ),
        hosts=[r["host"]],
        users=[account] if not account.startswith("@") else [],
        addresses=[r["src_ip"]],
        files=r["paths"],
        evidence=r["uids"],
        tags=tags,
        details={
            "session": r["session"],
            "files": r["files"],
            "folders": r["folders"],
            "top_folders": folders[:20],
            "new_folders": r["new_folders"],
            "own_median": r["own_median"],
            "own_sessions": r["own_sessions"],
            "peer_quantile": r["peer_q"],
            "peer_sessions": r["peer_sessions"],
            "mean_gap_seconds": gap,
            "sub_scores": parts,
            "weights": s.weights.plain(),
        },
    )
