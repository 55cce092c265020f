"""Beaconing (command and control): regular outbound connection series, long connections, and
DNS tunnelling signs.

Series are (source, destination, port) per view (Zeek conn and flows, Sysmon 3), outbound only
by default. SQL keeps the series with enough connections over enough hours, drops shared
destinations (contacted by a large share of internal sources: updates, SaaS) and allowlisted
ones, and computes RITA-style statistics (activecm/rita analysis/beacons.go): Bowley skewness
and median absolute deviation of inter-arrival times and of bytes sent, connections per hour,
the longest run of consecutive hours, coverage of the case's span. Python only combines those
aggregates into the named sub-scores:

    timestamp  = (1 - |Bowley skew| + (median - MAD) / median) / 2   of inter-arrival times
    data_size  = the same over bytes sent (not judged when the view has no sizes)
    histogram  = 1 - coefficient of variation of connections per hour over the series' hours
    duration   = max(span covered / case span, longest consecutive-hours run / ideal hours)
    score      = sum(weight * sub-score), weights from detect.yaml (summing to 1)

Findings: ``beacon``, ``beacon_long_connection``, ``dns_tunnel``.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import math
import re
from collections import Counter, defaultdict
from typing import Any

from breachtrace.detect.behaviour.common import fmt_ts, interval, make_finding
from breachtrace.detect.behaviour.entities import ensure_addresses, ensure_flows
from breachtrace.detect.behaviour.registry import AnalyticResult, Run, register
from breachtrace.schema import Finding

NAME = "beacon"


@register(NAME, "Beaconing: regular outbound series, long connections, DNS tunnelling")
def run_beacon(run: Run) -> AnalyticResult:
    ensure_addresses(run)
    ensure_flows(run)
    result = AnalyticResult()
    n = _connections(run)
    result.stats["outbound_connections"] = n
    if not n:
        result.not_judged.append(
            "beacon: no outbound connections in the case (Zeek conn, Sysmon 3, flows)"
        )
    else:
        series = _series_stats(run)
        result.stats["candidate_series"] = len(series)
        scored = [s for s in (_score(run, row) for row in series) if s is not None]
        result.findings.extend(_beacon_findings(run, scored))
        result.findings.extend(_long_connection_findings(run))
    dns = _dns_tunnel_findings(run)
    if dns is None:
        result.not_judged.append("beacon: no DNS queries in the case (DNS tunnelling not judged)")
    else:
        result.findings.extend(dns)
    return result


# -- SQL: outbound connections and candidate series -----------------------------------------------
def _connections(run: Run) -> int:
    s = run.settings.beacon
    scope = (
        "true"
        if s.include_internal
        else "coalesce(sa.internal, true) AND NOT coalesce(da.internal, false)"
    )
    run.execute(
        f"""
CREATE OR REPLACE TEMP TABLE bt_conn AS
SELECT c.ts, c.view,
       coalesce(CASE WHEN c.view = 'sysmon' THEN c.host END, sa.host, c.src_ip, c.src_host) AS src,
       coalesce(c.dst_ip, c.dst_host) AS dst, coalesce(c.dst_port, 0) AS port,
       c.bytes_out, c.duration, c.event_uid, c.src_ip
FROM bt_flows c
LEFT JOIN bt_addr sa ON sa.ip = c.src_ip
LEFT JOIN bt_addr da ON da.ip = c.dst_ip
WHERE coalesce(c.dst_ip, c.dst_host) IS NOT NULL AND {scope}
"""
    )
    row = run.one("SELECT count(*) FROM bt_conn")
    return int(row[0]) if row else 0


def _allowed_address(value: str, s: Any) -> bool:
    if value in set(s.allowlist.addresses):
        return True
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        return False
    return any(addr in ipaddress.ip_network(c, strict=False) for c in s.allowlist.cidrs)


def _series_stats(run: Run) -> list[dict[str, Any]]:
    s = run.settings.beacon
    rows = run.rows(
        f"""
WITH sources AS (
    SELECT count(DISTINCT src) AS total FROM bt_conn
), prevalence AS (
    SELECT dst, count(DISTINCT src) AS sources FROM bt_conn GROUP BY dst
), cand AS MATERIALIZED (
    SELECT view, src, dst, port, count(*) AS n, min(ts) AS first_ts, max(ts) AS last_ts
    FROM bt_conn GROUP BY ALL
    HAVING count(*) >= {int(s.min_connections)}
       AND max(ts) - min(ts) >= {interval(float(s.min_hours), "hours")}
), kept AS MATERIALIZED (
    SELECT c.*, p.sources, t.total FROM cand c JOIN prevalence p USING (dst), sources t
    WHERE NOT (p.sources > {int(s.prevalence_min_sources)}
               AND p.sources > {float(s.max_prevalence)} * t.total)
), rows AS MATERIALIZED (
    SELECT b.view, b.src, b.dst, b.port, b.ts, b.bytes_out, b.event_uid,
           epoch(b.ts - lag(b.ts) OVER (PARTITION BY b.view, b.src, b.dst, b.port ORDER BY b.ts))
               AS delta
    FROM bt_conn b SEMI JOIN kept k USING (view, src, dst, port)
), hours AS (
    SELECT view, src, dst, port, hr, count(*) AS c,
           epoch(hr) / 3600 - row_number() OVER (PARTITION BY view, src, dst, port ORDER BY hr)
               AS run_key
    FROM (SELECT *, date_trunc('hour', ts) AS hr FROM rows) GROUP BY view, src, dst, port, hr
), hist AS (
    SELECT view, src, dst, port, count(*) AS hours_seen, sum(c * c) AS sum_sq,
           max(run_len) AS longest_run
    FROM (SELECT *, count(*) OVER (PARTITION BY view, src, dst, port, run_key) AS run_len
          FROM hours)
    GROUP BY ALL
), stats AS (
    SELECT view, src, dst, port,
           quantile_cont(delta, [0.25, 0.5, 0.75]) FILTER (WHERE delta > 0) AS dq,
           mad(delta) FILTER (WHERE delta > 0) AS dmad,
           count(*) FILTER (WHERE delta > 0) AS intervals,
           quantile_cont(bytes_out, [0.25, 0.5, 0.75]) AS bq, mad(bytes_out) AS bmad,
           count(bytes_out) AS sized, median(bytes_out) AS bytes_median,
           list(event_uid ORDER BY ts)[1:200] AS uids
    FROM rows GROUP BY ALL
)
SELECT k.*, s.dq, s.dmad, s.intervals, s.bq, s.bmad, s.sized, s.bytes_median, s.uids,
       h.hours_seen, h.sum_sq, h.longest_run
FROM kept k JOIN stats s USING (view, src, dst, port) JOIN hist h USING (view, src, dst, port)
ORDER BY k.first_ts
"""
    )
    return [r for r in rows if not _allowed_address(str(r["dst"]), s)]


# -- scoring (Python over aggregates) -----------------------------------------------------------
def _stat_score(
    q: list[float] | None, mad: float | None, min_spread: float, default_mad: float
) -> float:
    """RITA's statistical score: mean of the Bowley-skewness score and the MAD score."""
    if not q:
        return 0.0
    q1, q2, q3 = q
    spread = q3 - q1
    skew = 0.0
    if spread >= min_spread and q2 != q1 and q2 != q3:
        skew = (q1 + q3 - 2 * q2) / spread
    skew_score = 1.0 - abs(skew)
    mad_score = default_mad
    if q2 >= 1:
        mad_score = (q2 - float(mad or 0.0)) / q2
    mad_score = 0.0 if mad_score < 0 or math.isnan(mad_score) else mad_score
    return max(0.0, min(1.0, (skew_score + mad_score) / 2))


def _score(run: Run, r: dict[str, Any]) -> dict[str, Any] | None:
    s = run.settings.beacon
    if (r["intervals"] or 0) < 3:
        return None
    span_hours = (r["last_ts"] - r["first_ts"]).total_seconds() / 3600
    hours = max(1.0, math.floor(span_hours) + 1)
    mean = r["n"] / hours
    var = max(0.0, r["sum_sq"] / hours - mean * mean)
    cv = math.sqrt(var) / mean if mean else 1.0
    case_hours = max(run.span_days * 24, 1e-9)
    coverage = min(1.0, span_hours / case_hours)
    consistency = min(1.0, (r["longest_run"] or 0) / float(s.ideal_consecutive_hours))
    parts: dict[str, float | None] = {
        "timestamp": _stat_score(r["dq"], r["dmad"], float(s.skew_min_spread), 1.0),
        "data_size": (
            _stat_score(r["bq"], r["bmad"], float(s.skew_min_spread), 0.0)
            if (r["sized"] or 0) >= 3
            else None
        ),
        "histogram": max(0.0, 1.0 - cv),
        "duration": max(coverage, consistency) if (r["hours_seen"] or 0) >= 6 else 0.0,
    }
    weights = s.weights
    judged = {k: v for k, v in parts.items() if v is not None}
    total_w = sum(float(weights[k]) for k in judged)
    score = sum(float(weights[k]) * v for k, v in judged.items()) / total_w if total_w else 0.0
    if score < float(s.min_score):
        return None
    return r | {"parts": parts, "score": score, "cv": cv, "coverage": coverage}


def _names(run: Run, series: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Domain names seen for the destinations: Sysmon's DestinationHostname and DNS answers."""
    dsts = sorted({str(r["dst"]) for r in series})
    names: dict[str, list[str]] = defaultdict(list)
    if not dsts:
        return names
    ips = [ip for ip in dsts if ip.count(".") == 3][:50]
    if ips:
        # contains() on the raw record first (fast), answers checked exactly below
        rows = run.tuples(
            "SELECT query, json_extract_string(raw, '$.answers') FROM events "
            "WHERE action = 'dns_query' AND query IS NOT NULL AND ("
            + " OR ".join("contains(raw, ?)" for _ in ips)
            + ") GROUP BY ALL",
            ips,
        )
        for query, answers in rows:
            for ip in ips:
                if answers and ip in re.split(r"[^0-9.]+", str(answers)):
                    names[ip].append(str(query).lower())
    # no DNS answer for a destination: Sysmon's DestinationHostname from one raw record
    uids = [
        r["uids"][0] for r in series
        if r["view"] == "sysmon" and r["uids"] and str(r["dst"]) not in names
    ]  # fmt: skip
    if uids:
        for uid, name in run.tuples(
            "SELECT event_uid, coalesce(json_extract_string(raw, '$.DestinationHostname'), "
            "json_extract_string(raw, '$.Event.EventData.DestinationHostname'), "
            "json_extract_string(raw, '$.winlog.event_data.DestinationHostname')) "
            "FROM events WHERE action = 'network_connection' AND event_code = 3 "
            "AND list_contains(?, event_uid)",
            [uids],
        ):
            for r in series:
                if r["uids"] and r["uids"][0] == uid and name:
                    names[str(r["dst"])].append(name.lower())
    return {k: sorted(set(v)) for k, v in names.items()}


def _allowed_name(names: list[str], patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(n, p.lower()) for n in names for p in patterns)


def _beacon_findings(run: Run, scored: list[dict[str, Any]]) -> list[Finding]:
    s = run.settings.beacon
    names = _names(run, scored)
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = defaultdict(list)
    for r in scored:
        groups[(str(r["src"]), str(r["dst"]), int(r["port"]))].append(r)
    out = []
    for (src, dst, port), views in groups.items():
        dst_names = names.get(dst, [])
        if _allowed_name(dst_names, list(s.allowlist.domains)):
            continue
        best = max(views, key=lambda v: v["score"])
        q = best["dq"] or [0, 0, 0]
        interval = q[1]
        jitter = (best["dmad"] or 0) / interval if interval else 0
        label = f"{dst}" + (f" ({dst_names[0]})" if dst_names else "")
        parts = {k: (round(v, 3) if v is not None else None) for k, v in best["parts"].items()}
        explanation = (
            f"{src} connected to {label} port {port} {best['n']:,} times from "
            f"{fmt_ts(best['first_ts'])} to {fmt_ts(best['last_ts'])}, about every "
            f"{_duration(interval)} (median absolute deviation {jitter:.0%} of it), in "
            f"{best['hours_seen']} distinct hours: "
            + ", ".join(f"{k} {v:.2f}" for k, v in parts.items() if v is not None)
            + "."
        )
        out.append(
            make_finding(
                run,
                NAME,
                "beacon",
                (src, dst, port),
                title=f"Beaconing from {src} to {label}:{port}",
                score=max(v["score"] for v in views),
                techniques=["T1071", "T1573"] if port == 443 else ["T1071"],
                first_ts=min(v["first_ts"] for v in views),
                last_ts=max(v["last_ts"] for v in views),
                explanation=explanation,
                hosts=[src] if not _is_ip(src) else [],
                addresses=[dst, *([src] if _is_ip(src) else []), *(v.get("src_ip") for v in views)],
                evidence=[u for v in views for u in v["uids"]],
                tags=["c2"],
                details={
                    "destination_names": dst_names,
                    "views": sorted({v["view"] for v in views}),
                    "connections": best["n"],
                    "median_interval_s": interval,
                    "interval_quartiles_s": best["dq"],
                    "interval_mad_s": best["dmad"],
                    "bytes_median": best["bytes_median"],
                    "hours_seen": best["hours_seen"],
                    "longest_run_hours": best["longest_run"],
                    "coverage": round(best["coverage"], 3),
                    "sources_contacting_destination": best["sources"],
                    "sub_scores": parts,
                    "weights": s.weights.plain(),
                },
            )
        )
    return out


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.0f} s"


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return False


def _long_connection_findings(run: Run) -> list[Finding]:
    s = run.settings.beacon
    long_s = float(s.long_connection_seconds)
    rows = run.rows(
        f"""
WITH sources AS (SELECT count(DISTINCT src) AS total FROM bt_conn),
prevalence AS (SELECT dst, count(DISTINCT src) AS sources FROM bt_conn GROUP BY dst)
SELECT c.src, c.dst, c.port, count(*) AS n, max(c.duration) AS longest, sum(c.duration) AS total_s,
       min(c.ts) AS first_ts, max(c.ts + to_seconds(coalesce(c.duration, 0))) AS last_ts,
       list(c.event_uid ORDER BY c.duration DESC)[1:50] AS uids,
       -- the view of the first evidence (the longest connection), for _names
       arg_max(c.view, c.duration) AS view
FROM bt_conn c JOIN prevalence p USING (dst), sources t
WHERE c.duration IS NOT NULL
  AND NOT (p.sources > {int(s.prevalence_min_sources)} AND p.sources > {float(s.max_prevalence)} * t.total)
GROUP BY c.src, c.dst, c.port
HAVING max(c.duration) >= {long_s} OR sum(c.duration) >= {float(s.long_total_hours) * 3600}
ORDER BY first_ts
"""
    )
    rows = [r for r in rows if not _allowed_address(str(r["dst"]), s)]
    # the destination's names as for beacons (DNS answers, Sysmon), for the domain allowlist
    names = _names(run, rows)
    out = []
    for r in rows:
        dst_names = names.get(str(r["dst"]), [])
        if _allowed_name(dst_names, list(s.allowlist.domains)):
            continue
        label = f"{r['dst']}" + (f" ({dst_names[0]})" if dst_names else "")
        out.append(
            make_finding(
                run,
                NAME,
                "beacon_long_connection",
                (r["src"], r["dst"], r["port"]),
                title=f"Long connections from {r['src']} to {r['dst']}:{r['port']}",
                score=min(0.8, 0.4 + 0.1 * (r["total_s"] or 0) / max(long_s, 1)),
                techniques=["T1071", "T1572"],
                first_ts=r["first_ts"],
                last_ts=r["last_ts"],
                explanation=(
                    f"{r['src']} held connections to {label} port {r['port']} for "
                    f"{(r['total_s'] or 0) / 3600:.1f} hours in all ({r['n']} connections, the "
                    f"longest {(r['longest'] or 0) / 3600:.1f} h) from {fmt_ts(r['first_ts'])}."
                ),
                hosts=[r["src"]] if not _is_ip(str(r["src"])) else [],
                addresses=[r["dst"], *([r["src"]] if _is_ip(str(r["src"])) else [])],
                evidence=r["uids"],
                details={
                    "destination_names": dst_names,
                    "connections": r["n"],
                    "longest_s": r["longest"],
                    "total_s": r["total_s"],
                },
            )
        )
    return out


# -- DNS tunnelling -------------------------------------------------------------------------------
def _entropy(text: str) -> float:
    if not text:
        return 0.0
    counts = Counter(text)
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def _dns_tunnel_findings(run: Run) -> list[Finding] | None:
    s = run.settings.beacon
    suffixes = list(s.two_label_suffixes)
    run.execute(
        """
CREATE OR REPLACE TEMP TABLE bt_dns AS
SELECT lower(rtrim(query, '.')) AS name, coalesce(host, src_ip) AS src, ts, event_uid
FROM events WHERE action = 'dns_query' AND query IS NOT NULL
"""
    )
    total = run.one("SELECT count(*) FROM bt_dns")
    if not total or not total[0]:
        return None
    rows = run.rows(
        f"""
WITH q AS (SELECT * FROM bt_dns), labelled AS (
    SELECT *, string_split(name, '.') AS labels FROM q
), domains AS (
    SELECT *,
           CASE WHEN array_length(labels) >= 3 AND list_contains(?, labels[-2] || '.' || labels[-1])
                THEN array_to_string(labels[-3:], '.') ELSE array_to_string(labels[-2:], '.')
           END AS domain,
           regexp_matches(name, '[^.]{{{int(s.dns_max_label_length)},}}') AS very_long
    FROM labelled WHERE array_length(labels) >= 2
)
SELECT domain, count(DISTINCT name) AS names, count(*) AS queries,
       avg(length(labels[1])) AS mean_label, bool_or(very_long) AS very_long,
       list(DISTINCT name ORDER BY length(name) DESC)[1:5] AS longest_names,
       list(DISTINCT labels[1])[1:300] AS sample, list(DISTINCT src)[1:20] AS sources,
       min(ts) AS first_ts, max(ts) AS last_ts, list(event_uid ORDER BY ts)[1:100] AS uids
FROM domains WHERE name <> domain
GROUP BY domain
HAVING count(DISTINCT name) >= {int(s.dns_min_subdomains)} OR bool_or(very_long)
""",
        [suffixes],
    )
    out = []
    for r in rows:
        if _allowed_name([r["domain"], f"x.{r['domain']}"], list(s.allowlist.domains)):
            continue
        entropy = sum(_entropy(x) for x in r["sample"]) / max(len(r["sample"]), 1)
        many = r["names"] >= int(s.dns_min_subdomains)
        odd = r["mean_label"] >= float(s.dns_min_label_length) or entropy >= float(
            s.dns_min_entropy
        )
        max_label = max(len(x) for n in r["longest_names"] for x in n.split("."))
        very_long = bool(r["very_long"])
        if not ((many and odd) or very_long):
            continue
        why = [f"{r['names']:,} distinct names under {r['domain']}"]
        why.append(f"leftmost labels {r['mean_label']:.0f} characters long on average")
        why.append(f"{entropy:.1f} bits of entropy per character")
        if very_long:
            why.append(f"a label of {max_label} characters")
        out.append(
            make_finding(
                run,
                NAME,
                "dns_tunnel",
                (r["domain"],),
                title=f"DNS tunnelling signs under {r['domain']}",
                score=0.8 if (many and odd) else 0.6,
                techniques=["T1071.004", "T1048"],
                first_ts=r["first_ts"],
                last_ts=r["last_ts"],
                explanation=(
                    f"{', '.join(str(x) for x in r['sources'][:3])} queried "
                    + ", ".join(why)
                    + f" between {fmt_ts(r['first_ts'])} and {fmt_ts(r['last_ts'])}."
                ),
                hosts=[x for x in r["sources"] if not _is_ip(str(x))],
                addresses=[x for x in r["sources"] if _is_ip(str(x))],
                evidence=r["uids"],
                tags=["c2", "dns"],
                details={
                    "domain": r["domain"],
                    "names": r["names"],
                    "queries": r["queries"],
                    "mean_label_length": r["mean_label"],
                    "max_label_length": max_label,
                    "mean_entropy": round(entropy, 3),
                    "examples": r["sample"][:10],
                },
            )
        )
    return out
