"""Stages run in sequence: the demo (simulate, then every stage that exists) and investigate."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from breachtrace.case import Case
from breachtrace.detect.behaviour import DetectSummary, detect
from breachtrace.detect.sigma import HuntSummary, NoRulesConfigured, default_rule_paths, hunt
from breachtrace.ingest.runner import IngestSummary, Progress, ingest
from breachtrace.query import CaseInfo, case_info
from breachtrace.simulate import SimulationSummary, simulate

# the report is imported where it runs: its CSV writer imports cli_output, which imports us
if TYPE_CHECKING:
    from breachtrace.report import ReportSummary
    from breachtrace.scope import ScopeResult
    from breachtrace.trace import TraceResult

DEMO_SCENARIO = "telecom-2020"


@dataclass
class DemoResult:
    out: Path
    case: Path
    simulation: SimulationSummary
    ingest: IngestSummary
    info: CaseInfo
    seconds: dict[str, float] = field(default_factory=dict)
    hunt: HuntSummary | None = None
    detect: DetectSummary | None = None
    skipped: dict[str, str] = field(default_factory=dict)  # stage -> why it did not run
    report: ReportSummary | None = None
    trace: TraceResult | None = None
    scope: ScopeResult | None = None


def run_demo(
    out: Path,
    *,
    hosts: int = 150,
    days: int = 60,
    seed: int = 2020,
    say: Callable[[str], None] = lambda _: None,
    progress: Progress | None = None,
    rules: Sequence[Path] = (),
) -> DemoResult:
    """Simulate the telecom-2020 incident at a modest size and run the pipeline over it."""
    out = Path(out)
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    say(f"simulating {DEMO_SCENARIO}: {hosts} hosts, {days} days, seed {seed}")
    sim = simulate(out / "evidence", DEMO_SCENARIO, hosts=hosts, days=days, seed=seed)
    seconds["simulate"] = time.perf_counter() - started
    case_dir = out / "case"
    say(f"ingesting {sum(sim.files_by_format.values())} log files into {case_dir}")
    mark = time.perf_counter()
    ingested = ingest(case_dir, [out / "evidence" / "logs"], progress=progress)
    seconds["ingest"] = time.perf_counter() - mark
    result = DemoResult(out, case_dir, sim, ingested, case_info(Case.open(case_dir)), seconds)
    evidence = out / "evidence"
    say("investigating with the simulated organisation's context files and data inventory")
    found = investigate(
        Case.open(case_dir), inventory=evidence / "data_inventory.csv",
        assets=evidence / "assets.csv", networks=evidence / "networks.csv",
        identities=evidence / "identities.csv", report_dir=out / "report", say=say, rules=rules,
    )  # fmt: skip
    result.hunt, result.detect = found.hunt, found.detect
    result.trace, result.scope, result.report = found.trace, found.scope, found.report
    result.skipped.update(found.skipped)
    seconds.update(found.seconds)
    return result


@dataclass
class Investigation:
    """What ``investigate`` ran and produced, stage by stage."""

    hunt: HuntSummary | None = None
    detect: DetectSummary | None = None
    trace: TraceResult | None = None
    scope: ScopeResult | None = None
    report: ReportSummary | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # stage -> why it did not run


def investigate(
    case: Case,
    *,
    inventory: Path | None = None,
    assets: Path | None = None,
    networks: Path | None = None,
    identities: Path | None = None,
    lead: str | None = None,
    report_dir: Path | None = None,
    say: Callable[[str], None] = lambda _: None,
    engine: str = "duckdb",
    spark_master: str | None = None,
    rules: Sequence[Path] = (),
) -> Investigation:
    """hunt (with ``rules``, else the configured Sigma rules if any), detect, trace, scope and
    report over one case.

    The report goes to ``report_dir`` (default: the case's ``report`` folder). ``engine``
    ("duckdb" or "spark", with ``spark_master``) runs every stage's SQL."""
    from breachtrace.report import write_report
    from breachtrace.scope import scope
    from breachtrace.trace import trace

    result = Investigation()
    on: dict[str, Any] = {"engine": engine, "spark_master": spark_master}  # every stage's engine

    def timed(stage: str, run: Callable[[], object]) -> object:
        mark = time.perf_counter()
        value = run()
        result.seconds[stage] = time.perf_counter() - mark
        return value

    try:
        rule_paths = list(rules) or default_rule_paths()
    except NoRulesConfigured:
        result.skipped["hunt"] = (
            "no Sigma rules given (--rules) or configured (BREACHTRACE_SIGMA_RULES)"
        )
    else:
        say(f"hunting with the Sigma rules in {', '.join(map(str, rule_paths))}")
        result.hunt = timed("hunt", lambda: hunt(case, rule_paths, **on))  # type: ignore[assignment]
    say("running the behavioural analytics")
    result.detect = timed("detect", lambda: detect(  # type: ignore[assignment]
        case, assets=assets, networks=networks, identities=identities, **on))  # fmt: skip
    say("tracing incidents" + (f" from {lead}" if lead else ""))
    result.trace = timed("trace", lambda: trace(case, lead=lead, **on))  # type: ignore[assignment]
    say("scoping the exposed data per route")
    result.scope = timed("scope", lambda: scope(case, inventory=inventory, diff=True, **on))  # type: ignore[assignment]
    target = Path(report_dir) if report_dir is not None else case.root / "report"
    say(f"writing the report to {target}")
    result.report = timed("report", lambda: write_report(case.root, target))  # type: ignore[assignment]
    return result
