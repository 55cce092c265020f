"""Behavioural analytics over the case store: lateral movement, credential misuse, bulk reads,
beaconing, and log tampering. Each analytic is one module registered in ``registry``; ``detect``
runs the chosen ones and writes one findings set per analytic into the case.

    from breachtrace.detect.behaviour import detect
    summary = detect(case_dir, only=("lateral", "tamper"))
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from breachtrace.case import Case
from breachtrace.context import Context, load_context
from breachtrace.detect.behaviour.config import ConfigError, Settings, load_config
from breachtrace.detect.behaviour.registry import Analytic, AnalyticResult, Run, select
from breachtrace.engines.base import one, open_engine
from breachtrace.engines.duckdb import sql_literal
from breachtrace.findings import findings_table, write_findings
from breachtrace.schema import Finding

__all__ = ["AnalyticSummary", "ConfigError", "DetectProgress", "DetectSummary", "detect"]


class DetectProgress(Protocol):
    """Callbacks a caller may pass to follow a detect run."""

    def started(self, analytics: list[Analytic], events: int) -> None: ...

    def analytic_started(self, analytic: Analytic) -> None: ...

    def analytic_done(self, analytic: Analytic, summary: AnalyticSummary) -> None: ...


@dataclass
class AnalyticSummary:
    name: str
    title: str
    findings: int
    by_kind: dict[str, int]
    by_severity: dict[str, int]
    seconds: float
    not_judged: list[str] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    output: str = ""
    items: list[Finding] = field(default_factory=list, repr=False)  # the findings themselves


@dataclass
class DetectSummary:
    case: str
    events: int
    first_ts: Any
    last_ts: Any
    analytics: list[AnalyticSummary]
    not_judged: list[str]  # context limits that apply to every analytic
    shared_seconds: dict[str, float]
    seconds: float

    @property
    def findings(self) -> int:
        return sum(a.findings for a in self.analytics)


def detect(
    case: str | Path | Case,
    *,
    only: tuple[str, ...] | list[str] | None = None,
    config_path: str | Path | None = None,
    context: Context | None = None,
    assets: Path | None = None,
    networks: Path | None = None,
    identities: Path | None = None,
    progress: DetectProgress | None = None,
    write: bool = True,
    threads: int | None = None,
    inputs: list[str] | None = None,
    engine: str = "duckdb",
    spark_master: str | None = None,
) -> DetectSummary:
    """Run the behavioural analytics (all, or those in ``only``) over a case.

    Inputs: the case (directory or Case), optional analytic names, an optional user config
    file merged over data/detect.yaml, and the context (a Context, or context files which are
    validated and stored in the case; by default the case's stored context).
    Output: a DetectSummary; each analytic's findings are written to CASE/findings/<name>.parquet
    (replacing that analytic's earlier set) unless ``write`` is false. ``inputs`` (input ids
    from the case manifest) restricts the analytics to the events of those input files.
    ``engine`` runs the SQL on "duckdb" (default) or "spark" (``spark_master``, default
    local[*]); the findings are the same.
    """
    began = time.perf_counter()
    opened = case if isinstance(case, Case) else Case.open(case)
    settings: Settings = load_config(config_path)
    chosen = select(only)
    if context is None:
        context = load_context(opened, assets=assets, networks=networks, identities=identities)
    sql = open_engine(opened, engine, master=spark_master, threads=threads)
    try:
        if inputs is not None:
            chosen_ids = ", ".join(sql_literal(i) for i in inputs) or "NULL"
            sql.restrict_events(f"input_id IN ({chosen_ids})")
        totals = one(sql, "SELECT count(*), min(ts), max(ts) FROM events")
        events, first, last = totals or (0, None, None)
        run = Run(opened, sql, settings, context, first, last, int(events))
        if progress:
            progress.started(chosen, run.events)
        summaries = [_run_one(run, a, progress, write) for a in chosen]
    finally:
        sql.close()
    return DetectSummary(
        case=str(opened.root),
        events=run.events,
        first_ts=first,
        last_ts=last,
        analytics=summaries,
        not_judged=context.limits(),
        shared_seconds=dict(run.shared_seconds),
        seconds=time.perf_counter() - began,
    )


def _run_one(
    run: Run, analytic: Analytic, progress: DetectProgress | None, write: bool
) -> AnalyticSummary:
    if progress:
        progress.analytic_started(analytic)
    shared_before = sum(run.shared_seconds.values())
    began = time.perf_counter()
    result: AnalyticResult = analytic.run(run)
    result.seconds = time.perf_counter() - began
    output = ""
    if write:
        write_findings(run.case, analytic.name, findings_table(result.findings))
        output = str(run.case.findings_dir / f"{analytic.name}.parquet")
    summary = AnalyticSummary(
        name=analytic.name,
        title=analytic.title,
        findings=len(result.findings),
        by_kind=dict(Counter(f.kind for f in result.findings)),
        by_severity=dict(Counter(f.severity for f in result.findings)),
        seconds=result.seconds,
        not_judged=result.not_judged,
        stats=result.stats | {"shared_seconds": sum(run.shared_seconds.values()) - shared_before},
        output=output,
        items=result.findings,
    )
    if progress:
        progress.analytic_done(analytic, summary)
    return summary


Callback = Callable[[str], None]
