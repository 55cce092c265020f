"""What every analytic shares: building Findings, severity bands, and small SQL helpers."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import orjson

from breachtrace.detect.behaviour.config import Settings
from breachtrace.detect.behaviour.registry import Run
from breachtrace.engines.duckdb import sql_literal
from breachtrace.schema import SEVERITIES, Finding

TACTIC_TAGS = {
    "lateral": ("attack.lateral_movement", "attack.ta0008"),
    "credentials": ("attack.credential_access", "attack.ta0006", "attack.initial_access"),
    "bulk": ("attack.collection", "attack.ta0009"),
    "beacon": ("attack.command_and_control", "attack.ta0011"),
    "tamper": ("attack.defense_evasion", "attack.ta0005"),
}


def severity(score: float, bands: Settings) -> str:
    """The severity band a 0..1 score falls in (bands are lower bounds, from detect.yaml)."""
    chosen = "informational"
    for name in SEVERITIES[1:]:
        if score >= float(bands[name]):
            chosen = name
    return chosen


def finding_id(*parts: object) -> str:
    """A stable id: the same analytic, kind and key always give the same id."""
    text = "\x1f".join("" if p is None else str(p) for p in parts)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _uniq(values: Iterable[Any]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for v in values:
        if v is not None and v != "":
            seen.setdefault(str(v), None)
    return tuple(seen)


def make_finding(
    run: Run,
    analytic: str,
    kind: str,
    key: Sequence[object],
    *,
    title: str,
    score: float,
    techniques: Iterable[str],
    first_ts: datetime | None,
    last_ts: datetime | None,
    explanation: str,
    hosts: Iterable[Any] = (),
    users: Iterable[Any] = (),
    addresses: Iterable[Any] = (),
    files: Iterable[Any] = (),
    evidence: Iterable[Any] = (),
    tags: Iterable[str] = (),
    details: dict[str, Any] | None = None,
    severity_floor: str | None = None,
) -> Finding:
    """One behavioural Finding; evidence is capped at general.max_evidence (the full count is
    kept in details), the score clamped to [0, 1] and rounded."""
    general = run.settings.general
    score = round(min(1.0, max(0.0, float(score))), 3)
    level = severity(score, general.severity_bands)
    if severity_floor and SEVERITIES.index(severity_floor) > SEVERITIES.index(level):
        level = severity_floor
    all_evidence = _uniq(evidence)
    cap = int(general.max_evidence)
    info = dict(details or {})
    info["evidence_total"] = len(all_evidence)
    if len(all_evidence) > cap:
        info["evidence_truncated_to"] = cap
    cap_files = int(general.max_files)
    all_files = _uniq(files)
    if len(all_files) > cap_files:
        info["files_total"] = len(all_files)
        info["files_truncated_to"] = cap_files
    return Finding(
        finding_id=finding_id(analytic, kind, *key),
        source="behaviour",
        kind=kind,
        rule_id=f"behaviour.{analytic}.{kind}",
        title=title,
        severity=level,
        score=score,
        techniques=_uniq(techniques),
        tags=_uniq([*TACTIC_TAGS.get(analytic, ()), *tags]),
        first_ts=first_ts,
        last_ts=last_ts,
        hosts=_uniq(hosts),
        users=_uniq(users),
        addresses=_uniq(addresses),
        files=all_files[:cap_files],
        evidence=all_evidence[:cap],
        explanation=explanation,
        details=orjson.dumps(info, default=str, option=orjson.OPT_NON_STR_KEYS).decode(),
    )


def weighted(parts: dict[str, float], weights: Settings) -> float:
    """Sum of named sub-scores times their weights (weights sum to 1; checked at load)."""
    return sum(float(weights[name]) * float(parts.get(name, 0.0)) for name in weights)


def sql_str_list(values: Iterable[str]) -> str:
    """A SQL list literal of strings (values quoted; for settings, never free SQL)."""
    items = [sql_literal(str(v)) for v in values]
    return "[" + ", ".join(items) + "]::VARCHAR[]"


def like_any(column: str, patterns: Iterable[str]) -> str:
    """SQL: ``column`` matches any of the glob patterns (``*`` wildcard), case-insensitive."""
    parts = [
        f"{column} ILIKE {sql_literal(p.lower().replace('%', '').replace('*', '%'))}"
        for p in patterns
    ]
    return "(" + " OR ".join(parts) + ")" if parts else "false"


def human_account(column: str, run: Run) -> str:
    """SQL: ``column`` is a person's or service's account, not a machine or a placeholder."""
    ignored = like_any(column, run.settings.general.ignore_accounts)
    return f"({column} IS NOT NULL AND NOT ends_with({column}, '$') AND NOT {ignored})"


_MICROS = {"days": 86_400_000_000, "hours": 3_600_000_000, "minutes": 60_000_000,
           "seconds": 1_000_000}  # fmt: skip


def interval(amount: float, unit: str) -> str:
    """SQL for a duration from a setting (whole microseconds: never '1e-05 days')."""
    return f"to_microseconds(CAST({round(float(amount) * _MICROS[unit])} AS BIGINT))"


def fmt_ts(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M") + " UTC"
    return str(value)


def plural(n: int, word: str, words: str | None = None) -> str:
    return f"{n:,} {word if n == 1 else (words or word + 's')}"
