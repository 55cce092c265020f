"""The same analytics on DuckDB and on Spark (local mode) give the same findings.

One simulated case (the cached telecom-2020 case the detect tests use), every behavioural
analytic and a Sigma hunt with a handful of rules written for it, run once per engine; the
findings must have the same ids and counts, and scores within a tolerance. The SQL Spark runs
is the DuckDB SQL transpiled (breachtrace.engines.spark_sql); nothing is re-implemented.
"""

from __future__ import annotations

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

from detect_support import fresh_copy, simulated

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
    """Per engine: detect's findings per analytic and the hunt's findings table."""
    built = simulated(request, "telecom-2020", 60, 21, 1)
    sim = built / "sim"
    tmp = tmp_path_factory.mktemp("engines")
    out: dict[str, dict[str, Any]] = {}
    for engine in ENGINES:
        case_dir = fresh_copy(built / "case", tmp / engine)
        summary = detect(
            case_dir, assets=sim / "assets.csv", networks=sim / "networks.csv",
            identities=sim / "identities.csv", write=False, engine=engine,
        )  # fmt: skip
        hunted = hunt(Case.open(case_dir), [RULES], cache_dir=tmp / "cache", engine=engine)
        sigma = pq.read_table(Path(case_dir) / "findings" / "sigma.parquet").to_pylist()
        out[engine] = {
            "analytics": {a.name: a.items for a in summary.analytics},
            "hunt": hunted,
            "sigma": sigma,
        }
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
