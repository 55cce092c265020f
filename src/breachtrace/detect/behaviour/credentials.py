"""Credential misuse: logins unlike the account's own history, sprays, brute force, fan-out.

Findings (kind):
- ``credential_anomalous_login``: per account, the logins whose weighted score (new source,
  new device, new country, unusual hour, risky source, failures just before) reaches
  credentials.min_score, with the sources, devices and hosts reached (through a VPN session,
  the hosts its assigned address logged on to). Accounts are judged only after their learning
  period (14 days or 10 logins by default, as identity platforms do).
- ``credential_impossible_travel``: consecutive logins from different countries closer in time
  than credentials.travel_min_hours.
- ``credential_spray`` / ``credential_brute_force``: one source failing for many accounts, or
  many times for one, within a window; "failures then success" when a targeted account then
  logs on from that source.
- ``credential_fanout``: an account reaching far more hosts in a day than its usual day.

All per-login features are SQL window functions over one login stream; Python only groups the
flagged logins of each account into one finding.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from breachtrace.detect.behaviour.common import (
    fmt_ts,
    human_account,
    interval,
    like_any,
    make_finding,
    plural,
)
from breachtrace.detect.behaviour.logins import ensure_failures, ensure_logins
from breachtrace.detect.behaviour.registry import AnalyticResult, Run, register
from breachtrace.detect.behaviour.tails import count_tail
from breachtrace.schema import Finding

NAME = "credentials"


@register(NAME, "Credential misuse: unusual logins, sprays, brute force, fan-out")
def run_credentials(run: Run) -> AnalyticResult:
    ensure_logins(run)
    ensure_failures(run)
    result = AnalyticResult()
    if run.first_ts is None:
        result.not_judged.append("the case holds no events")
        return result
    _login_stream(run)
    result.not_judged.extend(_limits(run))
    _score_logins(run)
    result.findings.extend(_anomalous_login_findings(run))
    result.findings.extend(_travel_findings(run))
    sprays = _spray_findings(run)
    result.findings.extend(sprays)
    result.findings.extend(_fanout_findings(run))
    n = run.one("SELECT count(*), count(*) FILTER (WHERE judged) FROM bt_cred_scored")
    result.stats.update({"logins": n[0] if n else 0, "logins_judged": n[1] if n else 0})
    return result


def _learning_days(run: Run) -> float:
    s = run.settings.credentials.learning
    return min(float(s.min_days), float(s.max_fraction) * run.span_days)


def _limits(run: Run) -> list[str]:
    out = []
    row = run.one(
        "SELECT count(*) FILTER (WHERE country IS NOT NULL), count(*) FILTER (WHERE kind = 'vpn'),"
        " count(*) FILTER (WHERE kind = 'vpn' AND managed IS NULL) FROM bt_cred_logins"
    )
    located, vpn, vpn_unknown = row if row else (0, 0, 0)
    if not located:
        # countries come from the network inventory only (an asset's country is its home,
        # and laptops travel)
        why = (
            "no network inventory range with a country holds a login source"
            if any(n.country for n in run.context.networks)
            else "no network inventory (--networks) with countries"
        )
        out.append(
            f"credentials: no login could be placed in a country ({why}): new-country and "
            "impossible-travel not judged"
        )
    if vpn and vpn_unknown == vpn:
        out.append(
            "credentials: VPN records say nothing about device management "
            f"(fields tried: {', '.join(run.settings.credentials.managed_fields)})"
        )
    if not vpn:
        out.append("credentials: no VPN logs in the case (remote access not judged)")
    return out


# -- the login stream -------------------------------------------------------------------------------
def _managed_sql(fields: list[str]) -> str:
    parts = ", ".join(f"json_extract_string(raw, '$.{f}')" for f in fields)
    return f"lower(coalesce({parts}))"


def _login_stream(run: Run) -> None:
    """``bt_cred_logins``: every successful login (remote, interactive, VPN) with its source,
    device, country and managed state."""
    s = run.settings.credentials
    human = human_account("user", run)
    allow = like_any("user", s.allow_accounts)
    run.execute(
        f"""
CREATE OR REPLACE TEMP TABLE bt_cred_logins AS
WITH vpn_raw AS (
    -- VPN connects (with the raw record, for the device's managed flag) and disconnects
    SELECT ts, user, src_ip, src_host, dst_ip, event_uid, action, outcome,
           {_managed_sql(list(s.managed_fields))} AS managed_text
    FROM events
    WHERE action = 'remote_access' AND source_format <> 'zeek' AND {human}
    UNION ALL
    SELECT ts, user, src_ip, src_host, dst_ip, event_uid, action, outcome, NULL
    FROM events
    WHERE action = 'logoff' AND dst_ip IS NOT NULL AND source_format <> 'zeek' AND {human}
), vpn_ends AS (
    SELECT c.event_uid, min(o.ts) AS ended
    FROM vpn_raw c
    JOIN vpn_raw o ON o.action = 'logoff' AND o.user = c.user AND o.dst_ip = c.dst_ip
     AND o.ts >= c.ts AND o.ts <= c.ts + INTERVAL 24 HOUR
    WHERE c.action = 'remote_access'
    GROUP BY c.event_uid
), vpn AS (
    SELECT c.ts, c.user, c.src_ip AS client_ip, c.src_host AS device, c.dst_ip AS assigned,
           c.event_uid, c.managed_text, coalesce(e.ended, c.ts + INTERVAL 12 HOUR) AS session_end
    FROM vpn_raw c LEFT JOIN vpn_ends e USING (event_uid)
    WHERE c.action = 'remote_access' AND coalesce(c.outcome, 'success') = 'success'
), streams AS (
    SELECT user, ts, 'vpn' AS kind, client_ip AS source, device, client_ip AS ip, event_uid,
           CASE WHEN managed_text IN ('true', 'yes', '1', 'managed', 'compliant') THEN true
                WHEN managed_text IN ('false', 'no', '0', 'unmanaged', 'noncompliant') THEN false
           END AS managed,
           NULL AS dst, assigned, session_end, 'VPN' AS how
    FROM vpn
    UNION ALL
    SELECT user, ts, 'remote', src, CASE WHEN src_kind = 'host' THEN src END, src_ip, event_uid,
           NULL, dst, NULL, NULL, method
    FROM bt_logins
    UNION ALL
    SELECT user, ts, 'interactive', host, host, NULL, event_uid, NULL, host, NULL, NULL,
           'interactive'
    FROM events
    WHERE action = 'logon' AND logon_type IN (2, 11) AND host IS NOT NULL
      AND coalesce(outcome, 'success') = 'success' AND {human}
)
-- where the person was: the country of the source address (inventory ranges, never the VPN
-- pool, never an asset's home country: laptops travel)
SELECT s.*, CASE WHEN NOT coalesce(a.vpn, false) THEN a.country END AS country,
       coalesce(s.managed, h.managed) AS device_managed,
       h.in_inventory AS device_in_inventory,
       coalesce(a.internal, true) AS internal_source, coalesce(a.vpn, false) AS vpn_address
FROM streams s
LEFT JOIN bt_addr a ON a.ip = s.ip
LEFT JOIN bt_hostinfo h ON h.host = s.device
WHERE NOT {allow}
"""
    )


def _score_logins(run: Run) -> None:
    """``bt_cred_scored``: per login, every sub-score and the weighted score (two passes for
    the hour profile: the second ignores logins the first flagged)."""
    s = run.settings.credentials
    w = s.weights
    learn = _learning_days(run)
    assets = bool(run.context.assets)
    # VPN connects come from outside by design: their risk is the device's; other logins from
    # outside the organisation, or from an unmanaged device through the VPN pool, are risky.
    risky = f"""CASE
        WHEN kind = 'vpn' AND device_managed = false THEN 1.0
        WHEN kind = 'vpn' AND {"device_in_inventory = false" if assets else "false"} THEN 0.7
        WHEN kind = 'vpn' THEN 0.3
        WHEN kind <> 'interactive' AND NOT internal_source THEN 1.0
        WHEN kind = 'remote' AND vpn_address AND device_managed = false THEN 1.0
        WHEN vpn_address THEN 0.3
        ELSE 0.0 END"""
    run.execute(
        f"""
CREATE OR REPLACE TEMP TABLE bt_cred_base AS
WITH ordered AS (
    SELECT *, row_number() OVER (PARTITION BY user ORDER BY ts, event_uid) AS nth,
           min(ts) OVER (PARTITION BY user) AS account_first,
           row_number() OVER (PARTITION BY user, source ORDER BY ts, event_uid) AS source_nth,
           lag(ts) OVER (PARTITION BY user, device ORDER BY ts, event_uid) AS device_prev,
           lag(ts) OVER (PARTITION BY user, country ORDER BY ts, event_uid) AS country_prev,
           count(country) OVER (PARTITION BY user ORDER BY ts, event_uid
                                ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS countries_before,
           extract('hour' FROM ts) AS hour
    FROM bt_cred_logins
), fails AS (
    SELECT o.event_uid, count(f.ts) AS failures
    FROM ordered o JOIN bt_auth_failures f
      ON f.user = o.user AND f.source = coalesce(o.ip, o.source)
     AND f.ts < o.ts AND f.ts >= o.ts - {interval(float(s.failures_window_minutes), "minutes")}
    GROUP BY o.event_uid
), known_devices AS (
    SELECT DISTINCT user, device FROM ctx_identities WHERE device IS NOT NULL
)
SELECT o.*,
       (o.ts >= o.account_first + {interval(learn, "days")} OR o.nth > {int(s.learning.min_logins)})
           AS judged,
       -- a VPN pool address is no source of its own (pools rotate; the connect has the source)
       CASE WHEN o.source_nth = 1 AND o.source IS NOT NULL
                 AND NOT (o.kind = 'remote' AND o.vpn_address AND o.source = o.ip)
            THEN 1.0 ELSE 0.0 END AS new_source,
       CASE WHEN o.device IS NOT NULL AND k.device IS NULL
             AND (o.device_prev IS NULL
                  OR o.ts - o.device_prev > {interval(float(s.new_device_days), "days")})
            THEN 1.0 ELSE 0.0 END AS new_device,
       CASE WHEN o.country IS NOT NULL AND o.countries_before > 0
             AND (o.country_prev IS NULL
                  OR o.ts - o.country_prev > {interval(float(s.new_country_days), "days")})
            THEN 1.0 ELSE 0.0 END AS new_country,
       {risky} AS risky_source,
       least(1.0, coalesce(f.failures, 0) / 3.0) AS failures_score,
       coalesce(f.failures, 0) AS failures
FROM ordered o
LEFT JOIN fails f ON f.event_uid = o.event_uid
LEFT JOIN known_devices k ON k.user = o.user AND k.device = o.device
"""
    )
    first = _hour_pass(run, "bt_cred_base", None)
    _hour_pass(run, "bt_cred_base", first)
    run.execute(
        f"""
CREATE OR REPLACE TEMP TABLE bt_cred_scored AS
SELECT b.*, h.unusual_hour, h.hour_share,
       CASE WHEN b.judged THEN
           {float(w.new_source)} * b.new_source + {float(w.new_device)} * b.new_device
           + {float(w.new_country)} * b.new_country + {float(w.unusual_hour)} * h.unusual_hour
           + {float(w.risky_source)} * b.risky_source + {float(w.failures)} * b.failures_score
       ELSE 0 END AS score
FROM bt_cred_base b JOIN bt_cred_hours h USING (event_uid)
"""
    )


def _hour_pass(run: Run, base: str, flagged_table: str | None) -> str:
    """``bt_cred_hours``: for each login, the share of the account's earlier logins within an
    hour of its hour of day; the profile leaves out logins flagged by an earlier pass.

    Counts come from running sums over a union of "profile" rows (kind 1) and "asked" rows
    (kind 0, sorted first at equal times so a login never counts itself)."""
    s = run.settings.credentials
    w = s.weights
    exclude = (
        f"WHERE event_uid NOT IN (SELECT event_uid FROM {flagged_table})" if flagged_table else ""
    )
    run.execute(
        f"""
CREATE OR REPLACE TEMP TABLE bt_cred_hours AS
WITH profile AS MATERIALIZED (
    SELECT user, CAST(hour AS INTEGER) AS hour, ts FROM {base} {exclude}
), near AS (
    SELECT event_uid, near_before FROM (
        SELECT event_uid, kind,
               sum(kind) OVER (PARTITION BY user, bin ORDER BY ts, kind
                               ROWS UNBOUNDED PRECEDING) AS near_before
        FROM (
            SELECT user, CAST((hour + d + 24) % 24 AS INTEGER) AS bin, ts,
                   NULL::VARCHAR AS event_uid, 1 AS kind
            FROM profile, (SELECT unnest([-1, 0, 1]) AS d)
            UNION ALL
            SELECT user, CAST(hour AS INTEGER), ts, event_uid, 0 FROM {base}
        )
    ) WHERE kind = 0
), total AS (
    SELECT event_uid, total_before FROM (
        SELECT event_uid, kind,
               sum(kind) OVER (PARTITION BY user ORDER BY ts, kind
                               ROWS UNBOUNDED PRECEDING) AS total_before
        FROM (
            SELECT user, ts, NULL::VARCHAR AS event_uid, 1 AS kind FROM profile
            UNION ALL
            SELECT user, ts, event_uid, 0 FROM {base}
        )
    ) WHERE kind = 0
)
SELECT t.event_uid,
       CASE WHEN t.total_before >= {int(s.learning.min_logins)}
             AND n.near_before / t.total_before < {float(s.unusual_hour_max_fraction)}
            THEN 1.0 ELSE 0.0 END AS unusual_hour,
       CASE WHEN t.total_before > 0 THEN n.near_before / t.total_before END AS hour_share
FROM total t JOIN near n USING (event_uid)
"""
    )
    # logins the pass would flag, for the next pass to leave out of the profile
    run.execute(
        f"""
CREATE OR REPLACE TEMP TABLE bt_cred_flagged AS
SELECT b.event_uid FROM {base} b JOIN bt_cred_hours h USING (event_uid)
WHERE b.judged AND {float(w.new_source)} * b.new_source + {float(w.new_device)} * b.new_device
      + {float(w.new_country)} * b.new_country + {float(w.unusual_hour)} * h.unusual_hour
      + {float(w.risky_source)} * b.risky_source + {float(w.failures)} * b.failures_score
      >= {float(s.min_score)}
"""
    )
    return "bt_cred_flagged"


# -- findings -------------------------------------------------------------------------------------
_PARTS = ("new_source", "new_device", "new_country", "unusual_hour", "risky_source", "failures")


def _anomalous_login_findings(run: Run) -> list[Finding]:
    """Flagged logins per account, with the account's other VPN sessions from the same risky
    device and from sources it had not used on two days before (the same intruder's earlier or
    later sessions, which need not look unusual one by one)."""
    s = run.settings.credentials
    rows = run.rows(
        f"""
WITH flagged AS (
    SELECT *, false AS related FROM bt_cred_scored
    WHERE judged AND score >= {float(s.min_score)}
), first_flag AS (
    SELECT user, min(ts) AS first_flag FROM flagged GROUP BY user
), risky_devices AS (
    SELECT DISTINCT user, device FROM flagged
    WHERE kind = 'vpn' AND device IS NOT NULL AND risky_source >= 0.7
), usual_sources AS (
    SELECT c.user, c.source FROM bt_cred_scored c JOIN first_flag f USING (user)
    WHERE c.kind = 'vpn' AND c.ts < f.first_flag
    GROUP BY ALL HAVING count(DISTINCT CAST(c.ts AS DATE)) >= 2
), related AS (
    SELECT c.*, true AS related FROM bt_cred_scored c
    JOIN risky_devices d ON d.user = c.user AND d.device = c.device
    ANTI JOIN usual_sources u ON u.user = c.user AND u.source = c.source
    WHERE c.kind = 'vpn' AND c.event_uid NOT IN (SELECT event_uid FROM flagged)
), chosen AS (
    SELECT * FROM flagged UNION ALL BY NAME SELECT * FROM related
), reached AS (
    SELECT f.event_uid, list(DISTINCT l.dst ORDER BY l.dst) AS hosts,
           list(l.event_uid ORDER BY l.ts)[1:50] AS uids
    FROM chosen f JOIN bt_logins l
      ON f.kind = 'vpn' AND l.src_ip = f.assigned AND l.ts >= f.ts AND l.ts <= f.session_end
    GROUP BY f.event_uid
)
SELECT f.*, r.hosts AS reached_hosts, r.uids AS reached_uids
FROM chosen f LEFT JOIN reached r USING (event_uid)
ORDER BY f.user, f.ts
"""
    )
    by_user: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_user[r["user"]].append(r)
    return [_account_finding(run, user, logins) for user, logins in by_user.items()]


def _account_finding(run: Run, user: str, logins: list[dict[str, Any]]) -> Finding:
    s = run.settings.credentials
    sources = list(dict.fromkeys(r["source"] for r in logins if r["source"]))
    devices = list(dict.fromkeys(r["device"] for r in logins if r["device"]))
    reached = list(
        dict.fromkeys(
            h for r in logins for h in ([r["dst"]] if r["dst"] else []) + (r["reached_hosts"] or [])
        )
    )
    why = []
    news = [r["source"] for r in logins if r["new_source"]]
    if news:
        why.append(f"from sources never seen for it ({', '.join(dict.fromkeys(news))})")
    if any(r["new_device"] for r in logins):
        why.append(
            "from devices new to it ("
            + ", ".join(dict.fromkeys(r["device"] for r in logins if r["new_device"]))
            + ")"
        )
    if any(r["new_country"] for r in logins):
        why.append(
            "from countries new to it ("
            + ", ".join(dict.fromkeys(r["country"] for r in logins if r["new_country"]))
            + ")"
        )
    hours = sorted({int(r["hour"]) for r in logins if r["unusual_hour"]})
    if hours:
        why.append(
            f"at hours it almost never logs on ({', '.join(f'{h:02d}:00' for h in hours)} UTC)"
        )
    if any(r["risky_source"] >= 1.0 for r in logins):
        why.append("from an unmanaged device or an address outside the organisation")
    elif any(r["risky_source"] > 0 for r in logins):
        why.append("through the VPN")
    if any(r["failures"] for r in logins):
        why.append(f"right after {sum(r['failures'] for r in logins)} failed attempts")
    first, last = logins[0]["ts"], logins[-1]["ts"]
    flagged = [r for r in logins if not r["related"]]
    related = len(logins) - len(flagged)
    explanation = (
        f"{user} logged on {plural(len(flagged), 'time')} unlike its own history between "
        f"{fmt_ts(first)} and {fmt_ts(last)}: "
        + ", ".join(why)
        + (
            f"; {plural(related, 'more VPN session')} came from the same risky device and "
            "addresses it had not used before"
            if related
            else ""
        )
        + (f"; these sessions reached {', '.join(reached[:8])}" if reached else "")
        + "."
    )
    techniques = ["T1078"]
    if any(r["kind"] == "vpn" for r in logins):
        techniques.append("T1133")
    return make_finding(
        run,
        NAME,
        "credential_anomalous_login",
        (user, first.isoformat()),
        title=f"Unusual logins by {user} ({len(logins)})",
        score=max(r["score"] for r in flagged),
        techniques=techniques,
        first_ts=first,
        last_ts=max(r["session_end"] or r["ts"] for r in logins),
        explanation=explanation,
        hosts=[*reached, *[d for d in devices if d]],
        users=[user],
        addresses=[r["ip"] for r in logins],
        evidence=[u for r in logins for u in [r["event_uid"], *(r["reached_uids"] or [])]],
        tags=["vpn"] if any(r["kind"] == "vpn" for r in logins) else [],
        details={
            "sources": sources,
            "devices": devices,
            "hosts_reached": reached,
            "weights": s.weights.plain(),
            "logins": [
                {
                    "time": r["ts"].isoformat(),
                    "kind": r["kind"],
                    "how": r["how"],
                    "source": r["source"],
                    "device": r["device"],
                    "country": r["country"],
                    "destination": r["dst"],
                    "reached": r["reached_hosts"],
                    "score": round(r["score"], 3),
                    "related": r["related"],
                    "sub_scores": {
                        "new_source": float(r["new_source"]),
                        "new_device": float(r["new_device"]),
                        "new_country": float(r["new_country"]),
                        "unusual_hour": float(r["unusual_hour"]),
                        "risky_source": float(r["risky_source"]),
                        "failures": float(r["failures_score"]),
                    },
                    "hour_share": None if r["hour_share"] is None else float(r["hour_share"]),
                    "evidence": r["event_uid"],
                }
                for r in logins[:100]
            ],
        },
    )


def _travel_findings(run: Run) -> list[Finding]:
    hours = float(run.settings.credentials.travel_min_hours)
    rows = run.rows(
        f"""
WITH located AS (
    SELECT user, ts, country, source, event_uid, kind,
           lag(country) OVER w AS prev_country, lag(ts) OVER w AS prev_ts,
           lag(source) OVER w AS prev_source, lag(event_uid) OVER w AS prev_uid
    FROM bt_cred_logins WHERE country IS NOT NULL
    WINDOW w AS (PARTITION BY user ORDER BY ts, event_uid)
)
SELECT * FROM located
WHERE prev_country IS NOT NULL AND country <> prev_country
  AND ts - prev_ts < {interval(hours, "hours")}
ORDER BY user, ts
"""
    )
    out = []
    for r in rows:
        gap = (r["ts"] - r["prev_ts"]).total_seconds() / 3600
        out.append(
            make_finding(
                run,
                NAME,
                "credential_impossible_travel",
                (r["user"], r["prev_uid"], r["event_uid"]),
                title=f"Impossible travel for {r['user']}: {r['prev_country']} -> {r['country']}",
                score=0.7,
                techniques=["T1078"],
                first_ts=r["prev_ts"],
                last_ts=r["ts"],
                explanation=(
                    f"{r['user']} logged on from {r['prev_source']} ({r['prev_country']}) at "
                    f"{fmt_ts(r['prev_ts'])} and from {r['source']} ({r['country']}) "
                    f"{gap:.1f} hours later, too soon to have travelled."
                ),
                users=[r["user"]],
                addresses=[r["prev_source"], r["source"]],
                evidence=[r["prev_uid"], r["event_uid"]],
                details={"hours_apart": round(gap, 2)},
            )
        )
    return out


def _spray_findings(run: Run) -> list[Finding]:
    s = run.settings.credentials
    spray_w, brute_w = float(s.spray_window_minutes), float(s.brute_window_minutes)
    within = float(s.success_within_hours)
    rows = run.rows(
        f"""
WITH f AS (
    SELECT a.*, coalesce(b.internal, true) AS internal FROM bt_auth_failures a
    LEFT JOIN bt_addr b ON b.ip = a.source
    WHERE a.source IS NOT NULL AND a.user IS NOT NULL
), buckets AS (
    SELECT 'spray' AS pattern, source, any_value(internal) AS internal,
           min(ts) AS first_ts, max(ts) AS last_ts, count(*) AS failures,
           count(DISTINCT user) AS accounts, list(DISTINCT user) AS users,
           list(DISTINCT host) AS hosts, list(event_uid ORDER BY ts) AS uids
    FROM (SELECT *, time_bucket({interval(spray_w, "minutes")}, ts) AS b0,
                 time_bucket({interval(spray_w, "minutes")}, ts + {interval(spray_w / 2, "minutes")})
                     AS b1 FROM f),
         (SELECT unnest([0, 1]) AS shift)
    GROUP BY source, shift, CASE WHEN shift = 0 THEN b0 ELSE b1 END
    HAVING count(DISTINCT user) >= {int(s.spray_min_accounts)}
    UNION ALL
    SELECT 'brute', source, any_value(internal), min(ts), max(ts), count(*), 1, list(DISTINCT user),
           list(DISTINCT host), list(event_uid ORDER BY ts)
    FROM (SELECT *, time_bucket({interval(brute_w, "minutes")}, ts) AS b0,
                 time_bucket({interval(brute_w, "minutes")}, ts + {interval(brute_w / 2, "minutes")})
                     AS b1 FROM f),
         (SELECT unnest([0, 1]) AS shift)
    GROUP BY source, user, shift, CASE WHEN shift = 0 THEN b0 ELSE b1 END
    HAVING count(*) >= {int(s.brute_min_failures)}
), merged AS (
    -- overlapping windows of one source and pattern become one episode
    SELECT pattern, source, any_value(internal) AS internal, min(first_ts) AS first_ts,
           max(last_ts) AS last_ts, max(failures) AS failures, max(accounts) AS accounts,
           flatten(list(users)) AS users, flatten(list(hosts)) AS hosts,
           flatten(list(uids)) AS uids
    FROM (SELECT *, sum(new) OVER (PARTITION BY pattern, source ORDER BY first_ts) AS episode
          FROM (SELECT *, CASE WHEN first_ts <= max(last_ts) OVER (
                    PARTITION BY pattern, source ORDER BY first_ts
                    ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) THEN 0 ELSE 1 END AS new
                FROM buckets))
    GROUP BY pattern, source, episode
), success AS (
    SELECT m.pattern, m.source, m.first_ts, list(DISTINCT c.user) AS won_users,
           list(DISTINCT coalesce(c.dst, c.source)) AS won_hosts,
           min(c.ts) AS won_ts, list(c.event_uid ORDER BY c.ts)[1:20] AS won_uids
    FROM merged m JOIN bt_cred_logins c
      ON coalesce(c.ip, c.source) = m.source AND list_contains(m.users, c.user)
     AND c.ts >= m.first_ts AND c.ts <= m.last_ts + {interval(within, "hours")}
    GROUP BY ALL
)
SELECT m.*, s.won_users, s.won_hosts, s.won_ts, s.won_uids
FROM merged m LEFT JOIN success s USING (pattern, source, first_ts)
ORDER BY m.first_ts
"""
    )
    out = []
    for r in rows:
        won = bool(r["won_users"])
        if not r["internal"] and s.external_needs_success and not won:
            continue
        users = list(dict.fromkeys(r["users"]))
        hosts = list(dict.fromkeys(h for h in r["hosts"] if h))
        kind = "credential_spray" if r["pattern"] == "spray" else "credential_brute_force"
        what = (
            f"failed to log on as {len(users)} different accounts"
            if r["pattern"] == "spray"
            else f"failed {r['failures']} times to log on as {users[0]}"
        )
        tail = (
            f", then logged on successfully as {', '.join(r['won_users'])} at {fmt_ts(r['won_ts'])}"
            if won
            else ""
        )
        explanation = (
            f"{r['source']} {what} between {fmt_ts(r['first_ts'])} and {fmt_ts(r['last_ts'])}"
            f" on {', '.join(hosts[:5]) or 'the network'}{tail}."
        )
        out.append(
            make_finding(
                run,
                NAME,
                kind,
                (r["source"], r["first_ts"].isoformat()),
                title=(
                    f"{'Password spraying' if r['pattern'] == 'spray' else 'Brute force'} from "
                    f"{r['source']}" + (" followed by a successful logon" if won else "")
                ),
                score=0.9 if won else (0.6 if r["pattern"] == "spray" else 0.5),
                techniques=["T1110.003" if r["pattern"] == "spray" else "T1110.001"]
                + (["T1078"] if won else []),
                first_ts=r["first_ts"],
                last_ts=r["won_ts"] or r["last_ts"],
                explanation=explanation,
                hosts=hosts + list(r["won_hosts"] or []),
                users=(list(r["won_users"] or []) + users),
                addresses=[r["source"]],
                evidence=list(r["won_uids"] or []) + list(r["uids"]),
                tags=["failures_then_success"] if won else [],
                details={
                    "failures": r["failures"],
                    "accounts": len(users),
                    "targeted_accounts": users[:200],
                    "source_internal": r["internal"],
                    "succeeded_as": r["won_users"],
                },
                severity_floor="critical" if won else None,
            )
        )
    return out


def _fanout_findings(run: Run) -> list[Finding]:
    s = run.settings.credentials
    rows = run.rows(
        f"""
WITH firsts AS (
    -- the day each account first reached each host: a sweep of its usual hosts is no spread
    SELECT user, dst, min(CAST(ts AS DATE)) AS first_day FROM bt_logins GROUP BY user, dst
), daily AS (
    SELECT l.user, CAST(l.ts AS DATE) AS day, count(DISTINCT l.dst) AS hosts,
           count(DISTINCT l.dst) FILTER (WHERE f.first_day = CAST(l.ts AS DATE)) AS new_hosts,
           list(DISTINCT l.dst) AS dsts, min(l.ts) AS first_ts, max(l.ts) AS last_ts,
           list(l.event_uid ORDER BY l.ts)[1:100] AS uids
    FROM bt_logins l JOIN firsts f ON f.user = l.user AND f.dst = l.dst
    GROUP BY l.user, CAST(l.ts AS DATE)
), judged AS (
    -- the tail test: each day against the account's earlier days only (count, mean and
    -- variance over the earlier frame), judged once the account has history, as it would
    -- have been on the day
    SELECT *, count(*) OVER earlier AS prior_days, avg(hosts) OVER earlier AS prior_mean,
           var_pop(hosts) OVER earlier AS prior_var,
           -- the fanout_ratio test: the median over ALL the account's days, this day and later
           -- ones included (a median over the ROWS frame does not run on Spark)
           median(hosts) OVER (PARTITION BY user) AS median_hosts,
           count(*) OVER (PARTITION BY user) AS days
    FROM daily
    WINDOW earlier AS (PARTITION BY user ORDER BY day
                       ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
), tested AS MATERIALIZED (
    SELECT * FROM judged WHERE prior_days >= {int(s.fanout_min_days)}
)
SELECT t.*, (SELECT count(*) FROM tested) AS tests FROM tested t
WHERE t.hosts >= {int(s.fanout_min_hosts)}
  AND t.hosts >= {float(s.fanout_ratio)} * t.median_hosts
  AND t.new_hosts >= {int(s.fanout_min_new_hosts)}
ORDER BY t.first_ts
"""
    )
    out = []
    for r in rows:
        # Bonferroni over every account-day judged: with thousands of accounts a one-in-a-
        # thousand busy day of an administrator is expected, an attacker's sweep is not
        tail = count_tail(r["hosts"], r["prior_mean"], r["prior_var"] or 0.0)
        adjusted = min(1.0, tail * r["tests"])
        if adjusted > s.fanout_max_p:
            continue
        out.append(
            make_finding(
                run,
                NAME,
                "credential_fanout",
                (r["user"], r["day"].isoformat()),
                title=f"{r['user']} reached {r['hosts']} hosts on {r['day']}",
                score=min(0.9, 0.4 + 0.1 * r["hosts"] / max(r["median_hosts"], 1)),
                techniques=["T1078", "T1021"],
                first_ts=r["first_ts"],
                last_ts=r["last_ts"],
                explanation=(
                    f"{r['user']} logged on to {r['hosts']} hosts on {r['day']} "
                    f"({r['new_hosts']} of them never before), against "
                    f"{r['prior_mean']:.1f} a day on its {r['prior_days']} earlier days "
                    f"(chance of so busy a day {tail:.1e}, over "
                    f"{r['tests']:,} account-days judged)."
                ),
                hosts=r["dsts"],
                users=[r["user"]],
                evidence=r["uids"],
                details={
                    "hosts": r["hosts"],
                    "new_hosts": r["new_hosts"],
                    "median_hosts": r["median_hosts"],
                    "prior_days": r["prior_days"],
                    "prior_mean": round(r["prior_mean"], 3),
                    "prior_var": round(r["prior_var"] or 0.0, 3),
                    "tail_probability": tail,
                    "account_days_judged": r["tests"],
                    "days": r["days"],
                },
            )
        )
    return out
