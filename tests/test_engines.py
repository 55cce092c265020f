"""The same analytics on DuckDB and on Spark (local mode) give the same findings.

One simulated case (the cached telecom-2020 case the detect tests use), every behavioural
analytic and a Sigma hunt with a handful of rules written for it, run once per engine; the
findings must have the same ids and counts, and scores within a tolerance. Then trace and scope
run on each engine over the same findings and must give the same incidents and the same
exposed data. The SQL Spark runs is the DuckDB SQL transpiled (breachtrace.engines.spark_sql);
nothing is re-implemented.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from breachtrace.case import Case
from breachtrace.detect.behaviour import detect
from breachtrace.detect.behaviour.registry import analytics
from breachtrace.detect.sigma import hunt
from breachtrace.ingest.runner import ingest
from breachtrace.scope import scope
from breachtrace.trace import trace

from detect_support import fresh_copy, simulated
from sigma_helpers import SECURITY, matched_records, rule_id, rule_yaml, write_rules

pytest.importorskip("pyspark", reason="pyspark is not installed: pip install -e '.[spark]'")
pytestmark = pytest.mark.skipif(
    shutil.which("java") is None, reason="Spark needs a Java runtime (17) on PATH"
)

SCORE_TOLERANCE = 0.02
ENGINES = ("duckdb", "spark")

# Rules written for the simulated case's events, one per backend feature: endswith, regex,
# exact values, numbers, contains on another channel, keywords, and a correlation (also the
# default rule set of benchmarks/engines.py).
RULES = Path(__file__).parent / "data" / "sigma" / "engines"


@pytest.fixture(scope="session")
def spark_session() -> Iterator[Any]:
    """One local SparkSession for the whole test session (the engines reuse it)."""
    from breachtrace.engines.spark import spark_session as make

    session = make("local[2]")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, spark_session: Any
) -> dict[str, dict[str, Any]]:
    """Per engine: detect's findings per analytic, the hunt's findings table and the case."""
    built = simulated(request, "telecom-2020", 60, 21, 1)
    sim = built / "sim"
    tmp = tmp_path_factory.mktemp("engines")
    out: dict[str, dict[str, Any]] = {}
    for engine in ENGINES:
        case_dir = fresh_copy(built / "case", tmp / engine)
        summary = detect(
            case_dir, assets=sim / "assets.csv", networks=sim / "networks.csv",
            identities=sim / "identities.csv", write=engine == "duckdb", engine=engine,
        )  # fmt: skip
        hunted = hunt(Case.open(case_dir), [RULES], cache_dir=tmp / "cache", engine=engine)
        sigma = pq.read_table(Path(case_dir) / "findings" / "sigma.parquet").to_pylist()
        out[engine] = {
            "analytics": {a.name: a.items for a in summary.analytics},
            "hunt": hunted,
            "sigma": sigma,
            "case": case_dir,
        }
    return out


@pytest.fixture(scope="session")
def investigated(
    request: pytest.FixtureRequest, runs: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Per engine: trace's incidents.json and scope's document, both engines reading the
    findings DuckDB's detect and hunt wrote (so only trace and scope can differ)."""
    sim = simulated(request, "telecom-2020", 60, 21, 1) / "sim"
    findings = Path(runs["duckdb"]["case"]) / "findings"
    out: dict[str, dict[str, Any]] = {}
    for engine in ENGINES:
        case_dir = Path(runs[engine]["case"])
        if engine != "duckdb":
            shutil.copytree(findings, case_dir / "findings", dirs_exist_ok=True)
        traced = trace(case_dir, engine=engine)
        scoped = scope(case_dir, inventory=sim / "data_inventory.csv", engine=engine)
        document = json.loads(traced.path.read_text())
        out[engine] = {"incidents": document["incidents"], "trace": document, "scope": scoped}
    return out


def test_every_behavioural_analytic_finds_the_same_on_both_engines(
    runs: dict[str, dict[str, Any]],
) -> None:
    duck, spark = runs["duckdb"]["analytics"], runs["spark"]["analytics"]
    assert set(duck) == set(spark) == set(analytics())  # every registered analytic
    assert sum(len(v) for v in duck.values()) > 10  # the case's incident is found at all
    for name in duck:
        d = {f.finding_id: f for f in duck[name]}
        s = {f.finding_id: f for f in spark[name]}
        assert Counter(f.kind for f in duck[name]) == Counter(f.kind for f in spark[name]), name
        assert set(d) == set(s), (
            f"{name}: only duckdb {set(d) - set(s)}, only spark {set(s) - set(d)}"
        )
        for key, finding in d.items():
            assert abs(finding.score - s[key].score) <= SCORE_TOLERANCE, (name, finding.title)
            assert finding.first_ts == s[key].first_ts and finding.last_ts == s[key].last_ts


def test_sigma_hunt_finds_the_same_on_both_engines(runs: dict[str, dict[str, Any]]) -> None:
    duck, spark = runs["duckdb"], runs["spark"]
    assert duck["hunt"].rules_fired >= 4 and not duck["hunt"].skipped
    assert not spark["hunt"].skipped, [s.reason for s in spark["hunt"].skipped]
    assert duck["hunt"].fired == spark["hunt"].fired  # findings per rule id
    d = {(f["finding_id"], f["kind"]): f for f in duck["sigma"]}
    s = {(f["finding_id"], f["kind"]): f for f in spark["sigma"]}
    assert set(d) == set(s)
    for key, finding in d.items():
        assert finding["score"] == pytest.approx(s[key]["score"], abs=SCORE_TOLERANCE)
        assert finding["evidence"] == s[key]["evidence"] or finding["kind"] != "sigma"


def test_sigma_hunt_reads_evtx_userdata_on_both_engines(tmp_path: Path, spark_session: Any) -> None:
    """A field found in EventData or in UserData's child (1102 "log cleared"): the child is an
    object's first member, a JSON wildcard Spark's paths have none of (``spark_sql`` maps it)."""
    data = Path(__file__).parent / "data" / "evtx"
    ingest(tmp_path / "case", [data / "log-cleared-104-1102.evtx",
                               data / "psexec-4688-4697-5140-5145.evtx"])  # fmt: skip
    rules = write_rules(tmp_path / "rules", {"admmig": rule_yaml("admmig", SECURITY, {
        "sel": {"EventID": [1102, 4697, 4688], "SubjectUserName": "admmig"},
        "condition": "sel"})})  # fmt: skip
    found = {}
    for engine in ENGINES:
        summary = hunt(Case.open(tmp_path / "case"), [rules], cache_dir=tmp_path / "cache",
                       engine=engine)  # fmt: skip
        assert not summary.skipped, [s.reason for s in summary.skipped]
        found[engine] = matched_records(Case.open(tmp_path / "case"))
    # 1102 names the account in UserData, 4697 in EventData
    assert found["duckdb"] == found["spark"] == {rule_id("admmig"): {109054, 349343}}


def test_trace_finds_the_same_incidents_on_both_engines(
    investigated: dict[str, dict[str, Any]],
) -> None:
    duck, spark = investigated["duckdb"]["incidents"], investigated["spark"]["incidents"]
    assert duck and duck[0]["routes"] and len(duck[0]["entry_points"]) >= 2  # a real incident
    assert len(duck) == len(spark)
    for d, s in zip(duck, spark, strict=True):
        assert d["entry_points"] == s["entry_points"]  # hosts, sources, times, reasons
        for dr, sr in zip(d["routes"], s["routes"], strict=True):
            assert dr["hops"] == sr["hops"], dr["route_id"]  # hop by hop, evidence too
        assert d["hosts"] == s["hosts"] and d["accounts"] == s["accounts"]
        assert d == s  # and everything else: timeline, dwell, C2, gaps, containment
    unattached = [i["trace"]["unattached_findings"] for i in investigated.values()]
    assert unattached[0] == unattached[1]


def test_scope_exposes_the_same_data_on_both_engines(
    investigated: dict[str, dict[str, Any]],
) -> None:
    duck = investigated["duckdb"]["scope"].document
    spark = investigated["spark"]["scope"].document
    assert duck["union"] and all(r["owners"] for r in duck["routes"])  # owners were found
    assert [(r["route_id"], r["owners"], r["files"]) for r in duck["routes"]] == [
        (r["route_id"], r["owners"], r["files"]) for r in spark["routes"]
    ]
    assert duck["overlaps"] == spark["overlaps"] and duck["owners"] == spark["owners"]
    assert duck["unowned_files"] == spark["unowned_files"]
    assert {k: v for k, v in duck.items() if k not in ("run_id", "created")} == {
        k: v for k, v in spark.items() if k not in ("run_id", "created")
    }


def test_trace_and_scope_commands_take_the_spark_engine(
    runs: dict[str, dict[str, Any]], investigated: dict[str, dict[str, Any]]
) -> None:
    """``--engine spark`` on the commands (the test session's SparkSession is reused)."""
    from typer.testing import CliRunner

    from breachtrace.cli import app

    case_dir = Path(runs["spark"]["case"])
    runner = CliRunner()
    spark = ["--case", str(case_dir), "--engine", "spark", "--spark-master", "local[2]"]
    traced = runner.invoke(app, ["trace", *spark])
    assert traced.exit_code == 0, traced.output
    document = json.loads((case_dir / "trace" / "incidents.json").read_text())
    assert document["incidents"] == investigated["duckdb"]["incidents"]
    scoped = runner.invoke(app, ["scope", *spark, "--diff"])
    assert scoped.exit_code == 0, scoped.output
    assert "changes since" in scoped.output and scoped.output.rstrip().endswith(": 0")
    for command in ("investigate", "trace", "scope"):
        assert "--spark-master" in runner.invoke(app, [command, "--help"]).output
