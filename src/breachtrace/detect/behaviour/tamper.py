"""Log tampering and blind spots: cleared or stopped logs, deleted records, silences, and time
running backwards.

Findings (kind):
- ``log_cleared``: 1102 (Security log cleared), 104 (a System-channel log cleared).
- ``logging_stopped``: 1100 (event logging shut down), EventLog service stopped (7036) or
  terminated unexpectedly (7034).
- ``log_clear_command``: a process or script clearing or shrinking logs (wevtutil cl,
  Clear-EventLog, wmic nteventlog ... cleareventlog, auditpol /clear; patterns in detect.yaml),
  whether or not the clear itself was logged.
- ``log_gap``: EventRecordID holes within one host's channel, as the missing id range and the
  time window it spans (judged only for channels whose ids are dense; filtered or forwarded
  collections skip ids by design).
- ``log_silence``: runs of hours in which a host's channel logged (nearly) nothing although its
  own usual volume for that hour and kind of day is steady; and days far below its usual
  volume.
- ``log_blind_spot``: hours in which the network (Zeek conn, flows) sees the host's address
  talking while the host's own logs are empty.
- ``log_time_reversal``: a record whose time is well before its predecessor's in record order.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from breachtrace.detect.behaviour.common import fmt_ts, interval, like_any, make_finding, plural
from breachtrace.detect.behaviour.entities import ensure_addresses, ensure_flows, ensure_hosts
from breachtrace.detect.behaviour.registry import AnalyticResult, Run, register
from breachtrace.schema import Finding

NAME = "tamper"


@register(NAME, "Log tampering and blind spots: clears, record gaps, silences")
def run_tamper(run: Run) -> AnalyticResult:
    result = AnalyticResult()
    if run.first_ts is None:
        result.not_judged.append("the case holds no events")
        return result
    ensure_addresses(run)
    ensure_flows(run)
    result.findings.extend(_event_findings(run))
    result.findings.extend(_clear_command_findings(run))
    gaps, reversals, sparse = _record_findings(run)
    result.findings.extend(gaps)
    result.findings.extend(reversals)
    if sparse:
        result.not_judged.append(
            "tamper: record-id holes not judged for "
            + plural(len(sparse), "channel")
            + " with too few records or sparse ids (filtered or forwarded collection): "
            + ", ".join(sparse[:5])
            + ("..." if len(sparse) > 5 else "")
        )
    silences = _silence_findings(run, gaps)
    result.findings.extend(silences)
    result.findings.extend(_low_day_findings(run))
    blind = _blind_spot_findings(run)
    if blind is None:
        result.not_judged.append(
            "tamper: no network view (Zeek conn or flows) to compare hosts' own logs with"
        )
    else:
        result.findings.extend(blind)
    return result


# -- clear / stop events ------------------------------------------------------------------------
def _event_findings(run: Run) -> list[Finding]:
    names = like_any("query", [f"*{n}*" for n in run.settings.tamper.eventlog_service_names])
    rows = run.rows(
        f"""
SELECT ts, host, channel, event_code, action, user, subject_user, query, file_path, event_uid
FROM events
WHERE action IN ('log_cleared', 'logging_stopped')
   OR (action = 'service_state' AND event_code IN (7034, 7036) AND {names}
       AND (event_code = 7034 OR lower(coalesce(file_path, '')) LIKE '%stop%'))
ORDER BY ts
"""
    )
    out = []
    for r in rows:
        who = r["user"] or r["subject_user"]
        host = r["host"] or "?"
        if r["action"] == "log_cleared":
            which = r["query"] or ("Security" if r["event_code"] == 1102 else "a")
            kind, score, technique = "log_cleared", 0.8, "T1070.001"
            title = f"{which} log cleared on {host}"
            text = f"the {which} event log on {host} was cleared"
        elif r["action"] == "logging_stopped":
            kind, score, technique = "logging_stopped", 0.75, "T1562.002"
            title = f"Event logging shut down on {host}"
            text = f"the event logging service on {host} was shut down (1100)"
        else:
            crash = r["event_code"] == 7034
            kind, score, technique = "logging_stopped", 0.7 if crash else 0.6, "T1562.002"
            title = f"EventLog service {'crashed' if crash else 'stopped'} on {host}"
            text = (
                f"the Windows Event Log service on {host} "
                f"{'terminated unexpectedly' if crash else 'was stopped'} ({r['event_code']})"
            )
        out.append(
            make_finding(
                run,
                NAME,
                kind,
                (r["event_uid"],),
                title=title,
                score=score,
                techniques=[technique],
                first_ts=r["ts"],
                last_ts=r["ts"],
                explanation=f"At {fmt_ts(r['ts'])} {text}" + (f" by {who}." if who else "."),
                hosts=[host],
                users=[who],
                evidence=[r["event_uid"]],
                details={"event_code": r["event_code"], "channel": r["channel"]},
            )
        )
    return out


def _clear_command_findings(run: Run) -> list[Finding]:
    patterns = like_any("command_line", run.settings.tamper.clear_commands)
    rows = run.rows(
        f"""
SELECT host, coalesce(user, subject_user) AS who, CAST(ts AS DATE) AS day, min(ts) AS first_ts,
       max(ts) AS last_ts, list(DISTINCT left(command_line, 300)) AS commands,
       list(event_uid ORDER BY ts) AS uids, count(*) AS n
FROM events
WHERE action = 'process_start' AND command_line IS NOT NULL AND {patterns}
GROUP BY ALL ORDER BY first_ts
"""
    )
    return [
        make_finding(
            run,
            NAME,
            "log_clear_command",
            (r["host"], r["who"], r["day"].isoformat()),
            title=f"Log clearing command on {r['host'] or '?'}",
            score=0.7,
            techniques=["T1070.001"],
            first_ts=r["first_ts"],
            last_ts=r["last_ts"],
            explanation=(
                f"{r['who'] or 'someone'} ran {plural(r['n'], 'command')} clearing event logs on "
                f"{r['host'] or 'an unknown host'} from {fmt_ts(r['first_ts'])}, e.g. "
                f"{r['commands'][0][:120]}."
            ),
            hosts=[r["host"]],
            users=[r["who"]],
            evidence=r["uids"],
            details={"commands": r["commands"][:20]},
        )
        for r in rows
    ]


# -- record ids -----------------------------------------------------------------------------------
def _channels_filter(run: Run) -> str:
    chosen = [c.lower() for c in run.settings.tamper.channels]
    if not chosen:
        return "true"
    quoted = ", ".join("'" + c.replace("'", "''") + "'" for c in chosen)
    return f"lower(channel) IN ({quoted})"


def _record_findings(run: Run) -> tuple[list[Finding], list[Finding], list[str]]:
    s = run.settings.tamper
    run.execute(
        f"""
CREATE OR REPLACE TEMP TABLE bt_record_seq AS
-- in record order per host and channel (a record ingested twice repeats its id: step 0)
SELECT host, channel, record_id, ts, event_uid AS uid, input_id,
       lag(record_id) OVER w AS prev_id, lag(ts) OVER w AS prev_ts, lag(event_uid) OVER w AS prev_uid,
       lag(input_id) OVER w AS prev_input
FROM events
WHERE record_id IS NOT NULL AND host IS NOT NULL AND event_code IS NOT NULL
  AND {_channels_filter(run)}
WINDOW w AS (PARTITION BY host, channel ORDER BY record_id)
"""
    )
    # dense: nearly every record follows its predecessor's id by one (a filtered or forwarded
    # collection skips ids everywhere; a deletion leaves a few holes in a dense sequence)
    density = run.rows(
        """
SELECT host, channel, count(*) FILTER (WHERE prev_id IS NULL OR record_id <> prev_id) AS n,
       coalesce(count(*) FILTER (WHERE record_id - prev_id = 1)
                / nullif(count(*) FILTER (WHERE record_id > prev_id), 0), 0) AS density
FROM bt_record_seq GROUP BY host, channel
"""
    )
    enough = int(s.min_records)
    dense = {
        (d["host"], d["channel"])
        for d in density
        if d["density"] >= float(s.min_density) and d["n"] >= enough
    }
    sparse = [
        f"{d['host']}/{d['channel']} ({d['density']:.0%} of {d['n']} records in sequence)"
        for d in density
        if (d["host"], d["channel"]) not in dense and d["n"] > 1
    ]
    rows = run.rows(
        f"""
SELECT q.*, coalesce(r.rejected, 0) AS rejected_nearby
FROM bt_record_seq q
LEFT JOIN (SELECT input_id, count(*) AS rejected FROM rejects GROUP BY input_id) r
       ON r.input_id = q.input_id OR r.input_id = q.prev_input
WHERE q.prev_id IS NOT NULL AND q.record_id - q.prev_id - 1 >= {int(s.min_missing_records)}
ORDER BY q.prev_ts
"""
    )
    kept = [r for r in rows if (r["host"], r["channel"]) in dense]
    peers = _window_peers(run, [(r["host"], r["prev_ts"], r["ts"]) for r in kept])
    gaps = [_gap_finding(run, r, peers.get((r["host"], r["prev_ts"]), [])) for r in kept]
    back = run.rows(
        f"""
SELECT * FROM bt_record_seq
WHERE prev_id IS NOT NULL AND ts < prev_ts - {interval(float(s.backwards_seconds), "seconds")}
ORDER BY host, channel, record_id
"""
    )
    reversals = [_reversal_finding(run, r) for r in back]
    return gaps, reversals, sparse


def _window_peers(
    run: Run, windows: list[tuple[str, datetime, datetime]]
) -> dict[tuple[str, datetime], list[dict[str, Any]]]:
    """Who the network saw talking with each host during each window (Zeek conn, flows): what
    a deleted stretch of log no longer shows."""
    if not windows:
        return {}
    import pyarrow as pa

    run.engine.register(
        "bt_gap_windows",
        pa.table({
            "host": [w[0] for w in windows],
            "start": pa.array([w[1] for w in windows], pa.timestamp("us")),
            "stop": pa.array([w[2] for w in windows], pa.timestamp("us")),
        }),
    )  # fmt: skip
    rows = run.rows(
        """
WITH mine AS (SELECT ip, host FROM bt_addr WHERE host IS NOT NULL)
SELECT w.host, w.start, coalesce(pa.host, CASE WHEN m.ip = f.dst_ip THEN f.src_ip ELSE f.dst_ip END)
           AS peer,
       CASE WHEN m.ip = f.dst_ip THEN 'in' ELSE 'out' END AS direction,
       any_value(f.dst_port) AS port, count(*) AS connections, min(f.event_uid) AS uid
FROM bt_gap_windows w
JOIN mine m ON m.host = w.host
JOIN bt_flows f ON f.host IS NULL AND (f.src_ip = m.ip OR f.dst_ip = m.ip)
     AND f.ts >= w.start AND f.ts <= w.stop
LEFT JOIN bt_addr pa ON pa.ip = CASE WHEN m.ip = f.dst_ip THEN f.src_ip ELSE f.dst_ip END
GROUP BY ALL
ORDER BY connections DESC
"""
    )
    run.engine.unregister("bt_gap_windows")
    out: dict[tuple[str, datetime], list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault((r["host"], r["start"]), []).append(r)
    return out


def _gap_finding(run: Run, r: dict[str, Any], peers: list[dict[str, Any]]) -> Finding:
    missing = r["record_id"] - r["prev_id"] - 1
    first_missing, last_missing = r["prev_id"] + 1, r["record_id"] - 1
    span = r["ts"] - r["prev_ts"]
    note = (
        f"; {r['rejected_nearby']} records of the neighbouring input were rejected at ingest, "
        "which may explain part of it"
        if r["rejected_nearby"]
        else ""
    )
    ids = f"{first_missing}" if missing == 1 else f"{first_missing}-{last_missing}"
    inbound = [
        p for p in peers if p["direction"] == "in" and p["port"] in (22, 445, 3389, 5985, 5986, 135)
    ]
    if inbound:
        note += (
            "; meanwhile the network saw "
            + ", ".join(f"{p['peer']} (port {p['port']})" for p in inbound[:5])
            + f" connect to {r['host']}"
        )
    return make_finding(
        run,
        NAME,
        "log_gap",
        (r["host"], r["channel"], first_missing, last_missing),
        title=f"{plural(missing, 'record')} missing from {r['host']} {r['channel']}",
        score=min(0.9, 0.55 + 0.05 * missing**0.5),
        techniques=["T1070.001"],
        first_ts=r["prev_ts"],
        last_ts=r["ts"],
        explanation=(
            f"EventRecordIDs {ids} of {r['host']}'s {r['channel']} log are missing: "
            f"{plural(missing, 'record')} deleted or lost between {fmt_ts(r['prev_ts'])} and "
            f"{fmt_ts(r['ts'])} ({_hours(span)}){note}."
        ),
        hosts=[r["host"]],
        addresses=[p["peer"] for p in inbound],
        evidence=[r["prev_uid"], r["uid"], *(p["uid"] for p in inbound)],
        details={
            "channel": r["channel"],
            "network_peers_in_window": [
                {k: p[k] for k in ("peer", "direction", "port", "connections")} for p in peers[:30]
            ],
            "first_missing_record": first_missing,
            "last_missing_record": last_missing,
            "missing_records": missing,
            "window_start": r["prev_ts"],
            "window_end": r["ts"],
            "rejected_nearby": r["rejected_nearby"],
        },
    )


def _hours(span: timedelta) -> str:
    hours = span.total_seconds() / 3600
    return f"{hours:.1f} hours" if hours >= 1 else f"{span.total_seconds() / 60:.0f} minutes"


def _reversal_finding(run: Run, r: dict[str, Any]) -> Finding:
    back = r["prev_ts"] - r["ts"]
    return make_finding(
        run,
        NAME,
        "log_time_reversal",
        (r["host"], r["channel"], r["record_id"]),
        title=f"Time runs backwards in {r['host']} {r['channel']}",
        score=0.55,
        techniques=["T1070.006"],
        first_ts=r["ts"],
        last_ts=r["prev_ts"],
        explanation=(
            f"Record {r['record_id']} of {r['host']}'s {r['channel']} log is dated "
            f"{fmt_ts(r['ts'])}, {_hours(back)} before record {r['prev_id']} "
            f"({fmt_ts(r['prev_ts'])}): the clock was set back or records were altered."
        ),
        hosts=[r["host"]],
        evidence=[r["prev_uid"], r["uid"]],
        details={"channel": r["channel"], "seconds_back": back.total_seconds()},
    )


# -- silence --------------------------------------------------------------------------------------
def _hourly(run: Run) -> None:
    """``bt_hourly`` (events per host, channel and hour) and ``bt_host_offset``: each host's
    local time offset, estimated as the one that puts its clock's busiest eight hours at 09-17
    local (weekends are judged in local time; a Saturday morning in Tokyo is Friday night UTC).
    A clock is the host's site from the asset inventory, else the host alone: one host's own
    profile can mislead (a domain controller's busiest hour is the 07:00 logon burst), the
    hours of all a site's hosts together rarely do. An estimate of 12 to 14 hours east is also
    one of 10 to 12 hours west, a day apart: the reading with the quieter weekend is taken
    (a Melbourne DC, UTC+11, read as UTC-10 had its Saturday mornings judged as Fridays)."""
    ensure_hosts(run)
    run.execute(
        """
CREATE OR REPLACE TEMP TABLE bt_hourly AS
SELECT host, channel, date_trunc('hour', ts) AS hr, count(*) AS n,
       min(event_uid) AS uid
FROM events WHERE host IS NOT NULL GROUP BY ALL;

CREATE OR REPLACE TEMP TABLE bt_host_offset AS
WITH clocks AS (
    SELECT h.host, coalesce('site:' || i.site, 'host:' || h.host) AS clock
    FROM (SELECT DISTINCT host FROM bt_hourly) h LEFT JOIN bt_hostinfo i USING (host)
), profile AS (
    SELECT c.clock, CAST(extract('hour' FROM b.hr) AS INTEGER) AS h, sum(b.n) AS n
    FROM bt_hourly b JOIN clocks c USING (host) GROUP BY ALL
), windows AS (
    SELECT p.clock, s.start, sum(p.n) AS busy
    FROM profile p, (SELECT unnest(range(24)) AS start) s
    WHERE (p.h - s.start + 24) % 24 < 8
    GROUP BY ALL
), best AS (
    -- equal windows: the earliest start (an arbitrary pick differs between engines and runs)
    SELECT clock, (9 - arg_max(start, busy * 24 + (23 - start)) + 48) % 24 AS shift
    FROM windows GROUP BY clock
), candidates AS (
    -- zones run from UTC-12 to UTC+14, so a shift of 12 to 14 hours reads two ways (UTC+13 or
    -- UTC-11): the same hours a day apart, putting the weekend on other days
    SELECT clock, shift AS offset_hours FROM best WHERE shift <= 14
    UNION ALL
    SELECT clock, shift - 24 AS offset_hours FROM best WHERE shift >= 12
), by_hour AS (
    SELECT c.clock, b.hr, sum(b.n) AS n FROM bt_hourly b JOIN clocks c USING (host) GROUP BY ALL
), weekends AS (
    SELECT k.clock, k.offset_hours,
           coalesce(sum(h.n) FILTER (WHERE isodow(h.hr + to_hours(k.offset_hours)) >= 6), 0)
               AS weekend_n
    FROM candidates k JOIN by_hour h USING (clock) GROUP BY ALL
), chosen AS (
    -- the reading whose weekend is quieter; on a tie the one nearer UTC
    SELECT clock, arg_min(offset_hours, weekend_n * 2
                          + CASE WHEN offset_hours > 12 THEN 1 ELSE 0 END) AS offset_hours
    FROM weekends GROUP BY clock
)
SELECT c.host, o.offset_hours FROM clocks c JOIN chosen o USING (clock);
"""
    )


def _silence_findings(run: Run, gaps: list[Finding]) -> list[Finding]:
    s = run.settings.tamper
    _hourly(run)
    rows = run.rows(
        f"""
WITH spans AS (
    -- only channels that log steadily: at least silent_min_expected events in a quarter of
    -- their hours (others cannot fall silent in a way the logs can show)
    SELECT host, channel, min(hr) AS first_hr, max(hr) AS last_hr FROM bt_hourly
    WHERE {_channels_filter(run)} GROUP BY ALL
    HAVING count(*) FILTER (WHERE n >= {float(s.silent_min_expected)})
           >= 0.25 * (epoch(max(hr) - min(hr)) / 3600 + 1)
), grid AS (
    SELECT host, channel, unnest(generate_series(first_hr, last_hr, INTERVAL 1 HOUR)) AS hr
    FROM spans
), filled AS (
    SELECT g.host, g.channel, g.hr, coalesce(h.n, 0) AS n, extract('hour' FROM g.hr) AS hod,
           isodow(g.hr + to_hours(coalesce(o.offset_hours, 0))) >= 6 AS weekend
    FROM grid g LEFT JOIN bt_hourly h USING (host, channel, hr)
    LEFT JOIN bt_host_offset o USING (host)
), usual AS (
    -- the same hour on the neighbouring days of the same kind (weekday/weekend), before and
    -- after: a silence is below both levels, so a level that moves for good (a host put into
    -- service, an implant starting to beacon) is no silence (the day just before counts in
    -- full: a level that rose right before a silence, as an implant starting to beacon, is the
    -- level the silence fell from). A side with no day of that kind yet (a case that starts
    -- on a Monday has no weekend before its first Saturday) takes its neighbouring days of
    -- any kind instead; a side with no day at all is the case's edge, not judged.
    SELECT *,
           least(greatest(CASE WHEN count(*) OVER before > 0 THEN median(n) OVER before
                               ELSE median(n) OVER before_any END, lag(n) OVER seq),
                 CASE WHEN count(*) OVER after > 0 THEN median(n) OVER after
                      ELSE median(n) OVER after_any END) AS expected,
           least(count(*) OVER before_any, count(*) OVER after_any) AS samples
    FROM filled
    WINDOW before AS (PARTITION BY host, channel, hod, weekend ORDER BY hr
                      ROWS BETWEEN {int(s.neighbour_days)} PRECEDING AND 1 PRECEDING),
           after AS (PARTITION BY host, channel, hod, weekend ORDER BY hr
                     ROWS BETWEEN 1 FOLLOWING AND {int(s.neighbour_days)} FOLLOWING),
           seq AS (PARTITION BY host, channel, hod, weekend ORDER BY hr),
           before_any AS (PARTITION BY host, channel, hod ORDER BY hr
                          ROWS BETWEEN {int(s.neighbour_days)} PRECEDING AND 1 PRECEDING),
           after_any AS (PARTITION BY host, channel, hod ORDER BY hr
                         ROWS BETWEEN 1 FOLLOWING AND {int(s.neighbour_days)} FOLLOWING)
), marked AS (
    SELECT *, samples >= 1 AND expected >= {float(s.silent_min_expected)}
              AND n <= {float(s.silent_max_fraction)} * expected AS silent,
              n >= 0.5 * expected AS normal
    FROM usual
), runs AS (
    SELECT *, hr - to_hours(CAST(row_number() OVER (PARTITION BY host, channel ORDER BY hr)
                                 AS BIGINT)) AS run_key
    FROM marked WHERE silent
), grouped AS (
    SELECT host, channel, min(hr) AS start, max(hr) + INTERVAL 1 HOUR AS stop, count(*) AS hours,
           sum(expected) AS expected, sum(n) AS seen
    FROM runs GROUP BY host, channel, run_key
    HAVING count(*) >= {int(s.silent_min_hours)}
)
-- a silence is a dip: the log is at its usual level in the hour before and the hour after;
-- a silence rarely starts or ends on the hour, so a partly active boundary hour counts when
-- the hour beyond it is at its usual level
SELECT g.* FROM grouped g
JOIN marked b ON b.host = g.host AND b.channel = g.channel AND b.hr = g.start - INTERVAL 1 HOUR
JOIN marked a ON a.host = g.host AND a.channel = g.channel AND a.hr = g.stop
LEFT JOIN marked b2 ON b2.host = g.host AND b2.channel = g.channel
     AND b2.hr = g.start - INTERVAL 2 HOUR
LEFT JOIN marked a2 ON a2.host = g.host AND a2.channel = g.channel
     AND a2.hr = g.stop + INTERVAL 1 HOUR
WHERE (b.normal OR (b.n > 0 AND coalesce(b2.normal, false)))
  AND (a.normal OR (a.n > 0 AND coalesce(a2.normal, false)))
ORDER BY g.start
"""
    )
    explained: list[tuple[str, Any, datetime, datetime]] = [
        (g.hosts[0], _detail(g, "channel"), g.first_ts, g.last_ts)  # type: ignore[misc]
        for g in gaps
        if g.hosts
    ]
    out = []
    for r in rows:
        if any(
            h == r["host"]
            and c == r["channel"]
            and a <= r["start"]
            and r["stop"] <= b + timedelta(hours=1)
            for h, c, a, b in explained
        ):
            continue  # a record-id hole already accounts for this silence
        out.append(_silence_finding(run, r))
    return out


def _detail(f: Finding, key: str) -> Any:
    import orjson

    return orjson.loads(f.details).get(key)


def _silence_finding(run: Run, r: dict[str, Any]) -> Finding:
    evidence = [
        u
        for (u,) in run.tuples(
            "SELECT uid FROM bt_hourly WHERE host = ? AND channel = ? AND (hr = ? OR hr = ?)",
            [r["host"], r["channel"], r["start"] - timedelta(hours=1), r["stop"]],
        )
    ]
    return make_finding(
        run,
        NAME,
        "log_silence",
        (r["host"], r["channel"], r["start"].isoformat()),
        title=f"{r['host']} {r['channel']} silent for {plural(r['hours'], 'hour')}",
        score=min(0.85, 0.45 + 0.03 * r["hours"]),
        techniques=["T1562.002", "T1070"],
        first_ts=r["start"],
        last_ts=r["stop"],
        explanation=(
            f"{r['host']}'s {r['channel']} log recorded {r['seen']:,} events from "
            f"{fmt_ts(r['start'])} to {fmt_ts(r['stop'])} where its own usual volume for those "
            f"hours is about {r['expected']:,.0f}: logging stopped or records were removed."
        ),
        hosts=[r["host"]],
        evidence=evidence,
        details={
            "channel": r["channel"],
            "hours": r["hours"],
            "expected_events": r["expected"],
            "seen_events": r["seen"],
        },
    )


def _low_day_findings(run: Run) -> list[Finding]:
    s = run.settings.tamper
    rows = run.rows(
        f"""
WITH daily AS (
    SELECT h.host, h.channel,
           CAST(h.hr + to_hours(coalesce(o.offset_hours, 0)) AS DATE) AS day, sum(h.n) AS n
    FROM bt_hourly h LEFT JOIN bt_host_offset o USING (host)
    WHERE {_channels_filter(run)} GROUP BY ALL
), spans AS (
    SELECT host, channel, min(day) AS first_day, max(day) AS last_day FROM daily GROUP BY ALL
), grid AS (
    -- whole days only: the first and last day of a channel are partial
    SELECT host, channel,
           CAST(unnest(generate_series(first_day + 1, last_day - 1, INTERVAL 1 DAY)) AS DATE)
               AS day
    FROM spans WHERE date_diff('day', first_day, last_day) >= 3
), filled AS (
    SELECT g.host, g.channel, g.day, coalesce(d.n, 0) AS n, isodow(g.day) >= 6 AS weekend
    FROM grid g LEFT JOIN daily d USING (host, channel, day)
), usual AS (
    SELECT *, least(median(n) OVER before, median(n) OVER after) AS expected,
           least(count(*) OVER before, count(*) OVER after) AS samples,
           lag(n) OVER d AS n_before, lead(n) OVER d AS n_after
    FROM filled
    WINDOW before AS (PARTITION BY host, channel, weekend ORDER BY day
                      ROWS BETWEEN {int(s.neighbour_days)} PRECEDING AND 1 PRECEDING),
           after AS (PARTITION BY host, channel, weekend ORDER BY day
                     ROWS BETWEEN 1 FOLLOWING AND {int(s.neighbour_days)} FOLLOWING),
           d AS (PARTITION BY host, channel ORDER BY day)
)
SELECT * FROM usual
WHERE samples >= 1 AND expected >= {float(s.low_day_min_expected)}
  AND n < {float(s.low_day_fraction)} * expected
  AND n_before >= 0.5 * expected AND n_after >= 0.5 * expected
ORDER BY day
"""
    )
    out = []
    for r in rows:
        start = datetime.combine(r["day"], datetime.min.time())
        out.append(
            make_finding(
                run,
                NAME,
                "log_silence",
                (r["host"], r["channel"], r["day"].isoformat(), "day"),
                title=f"{r['host']} {r['channel']} nearly silent on {r['day']} (local)",
                score=0.5,
                techniques=["T1562.002", "T1070"],
                first_ts=start,
                last_ts=start + timedelta(days=1),
                explanation=(
                    f"{r['host']}'s {r['channel']} log holds {r['n']:,} events on {r['day']} "
                    f"against {r['expected']:,.0f} on its usual "
                    f"{'weekend' if r['weekend'] else 'week'} day."
                ),
                hosts=[r["host"]],
                details={"channel": r["channel"], "day_events": r["n"], "usual": r["expected"]},
            )
        )
    return out


def _blind_spot_findings(run: Run) -> list[Finding] | None:
    s = run.settings.tamper
    ensure_flows(run)
    have = run.one("SELECT count(*) FROM bt_flows WHERE host IS NULL")
    if not have or not have[0]:
        return None
    rows = run.rows(
        f"""
WITH flows AS (
    SELECT a.host, date_trunc('hour', e.ts) AS hr, count(*) AS flows,
           min(e.event_uid) AS uid
    FROM bt_flows e JOIN bt_addr a ON a.ip = e.src_ip
    WHERE e.host IS NULL AND a.host IS NOT NULL
    GROUP BY ALL
    HAVING count(*) >= {int(s.blind_min_flows)}
), own AS (
    SELECT host, sum(n) AS n, hr FROM bt_hourly GROUP BY host, hr
), spans AS (
    SELECT host, min(hr) AS first_hr, max(hr) AS last_hr FROM own GROUP BY host
), blind AS (
    SELECT f.* FROM flows f JOIN spans p USING (host)
    LEFT JOIN own o ON o.host = f.host AND o.hr = f.hr
    WHERE f.hr > p.first_hr AND f.hr < p.last_hr AND coalesce(o.n, 0) = 0
), runs AS (
    SELECT *, hr - to_hours(CAST(row_number() OVER (PARTITION BY host ORDER BY hr) AS BIGINT))
               AS run_key
    FROM blind
)
SELECT host, min(hr) AS start, max(hr) + INTERVAL 1 HOUR AS stop, count(*) AS hours,
       sum(flows) AS flows, list(uid ORDER BY hr)[1:50] AS uids
FROM runs GROUP BY host, run_key HAVING count(*) >= {int(s.blind_min_hours)} ORDER BY start
"""
    )
    return [
        make_finding(
            run,
            NAME,
            "log_blind_spot",
            (r["host"], r["start"].isoformat()),
            title=f"{r['host']} talks on the network while its logs are empty",
            score=min(0.85, 0.5 + 0.05 * r["hours"]),
            techniques=["T1562.002", "T1070"],
            first_ts=r["start"],
            last_ts=r["stop"],
            explanation=(
                f"The network saw {r['flows']:,} connections from {r['host']} between "
                f"{fmt_ts(r['start'])} and {fmt_ts(r['stop'])} while {r['host']}'s own logs "
                "hold no event in those hours."
            ),
            hosts=[r["host"]],
            evidence=r["uids"],
            details={"hours": r["hours"], "flows": r["flows"]},
        )
        for r in rows
    ]
