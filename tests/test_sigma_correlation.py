"""Sigma correlation rules (event_count, value_count, temporal, temporal_ordered) over the
hand-made failed-logon events of tests/data/sigma (README.md there)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from breachtrace.case import Case
from breachtrace.detect.sigma import HuntSummary, hunt

from sigma_helpers import SECURITY, fresh_case, matched_records, rule_id, rule_yaml

FAILED = rule_yaml("failed_logon", SECURITY, {"sel": {"EventID": 4625}, "condition": "sel"},
                   name="test_failed_logon")  # fmt: skip
SUCCESS = rule_yaml("good_logon", SECURITY, {"sel": {"EventID": 4624}, "condition": "sel"},
                    name="test_good_logon")  # fmt: skip


def correlation(name: str, body: dict, **extra: object) -> str:
    doc = {"title": f"test {name}", "id": rule_id(name), "status": "test", "correlation": body,
           "level": "high", **extra}  # fmt: skip
    return yaml.safe_dump(doc, sort_keys=False)


CORRELATIONS = {
    "event_count": {
        "type": "event_count", "rules": ["test_failed_logon"], "group-by": ["TargetUserName"],
        "timespan": "5m", "condition": {"gte": 5},
    },
    "value_count": {
        "type": "value_count", "rules": ["test_failed_logon"], "group-by": ["IpAddress"],
        "timespan": "5m", "condition": {"gte": 4, "field": "TargetUserName"},
    },
    "temporal": {
        "type": "temporal", "rules": ["test_failed_logon", "test_good_logon"],
        "group-by": ["account"], "timespan": "10m",
        "aliases": {"account": {"test_failed_logon": "TargetUserName", "test_good_logon": "TargetUserName"}},
    },
    "ordered": {
        "type": "temporal_ordered", "rules": ["test_failed_logon", "test_good_logon"],
        "group-by": ["TargetUserName"], "timespan": "10m",
    },
    "ordered_reverse": {
        "type": "temporal_ordered", "rules": ["test_good_logon", "test_failed_logon"],
        "group-by": ["TargetUserName"], "timespan": "10m",
    },
}  # fmt: skip


@pytest.fixture(scope="module")
def hunted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Case, HuntSummary]:
    root = tmp_path_factory.mktemp("sigma-correlation")
    case = fresh_case(root / "case")
    rules = root / "rules"
    rules.mkdir()
    # base rules and the first correlation in one multi-document file, the others apart
    (rules / "failed.yml").write_text(
        FAILED + "---\n" + correlation("event_count", CORRELATIONS["event_count"])
    )
    (rules / "good.yml").write_text(SUCCESS)
    for name in ("value_count", "temporal", "ordered", "ordered_reverse"):
        (rules / f"{name}.yml").write_text(correlation(name, CORRELATIONS[name]))
    return case, hunt(case, [rules], cache_dir=root / "cache")


def test_event_count(hunted: tuple[Case, HuntSummary]) -> None:
    case, _ = hunted
    assert matched_records(case)[rule_id("event_count")] == {10, 11, 12, 13, 14}


def test_value_count(hunted: tuple[Case, HuntSummary]) -> None:
    case, _ = hunted
    assert matched_records(case)[rule_id("value_count")] == {16, 17, 18, 19}


def test_temporal_with_aliases(hunted: tuple[Case, HuntSummary]) -> None:
    case, _ = hunted
    assert matched_records(case)[rule_id("temporal")] == {10, 11, 12, 13, 14, 15}


def test_temporal_ordered(hunted: tuple[Case, HuntSummary]) -> None:
    case, summary = hunted
    found = matched_records(case)
    assert found[rule_id("ordered")] == {10, 11, 12, 13, 14, 15}
    assert rule_id("ordered_reverse") not in found
    assert summary.correlations_run == 5 and summary.correlations_fired == 4


def test_base_rules_are_not_reported_alone(hunted: tuple[Case, HuntSummary]) -> None:
    case, summary = hunted
    found = matched_records(case)
    assert rule_id("failed_logon") not in found and rule_id("good_logon") not in found
    assert not summary.skipped


def test_correlation_finding_record(hunted: tuple[Case, HuntSummary]) -> None:
    case, _ = hunted
    con = case.connect()
    row = con.execute(
        "SELECT kind, severity, hosts, explanation, first_ts, last_ts FROM findings WHERE rule_id = ?",
        [rule_id("event_count")],
    ).fetchone()
    con.close()
    kind, severity, hosts, explanation, first, last = row
    assert kind == "sigma_correlation" and severity == "high" and hosts == ["dc01"]
    assert "TargetUserName=bob" in explanation and "5 hits" in explanation
    assert (last - first).total_seconds() == 80


def test_generate_reports_base_rules(tmp_path: Path) -> None:
    case = fresh_case(tmp_path / "case")
    body = dict(CORRELATIONS["event_count"], generate=True)
    (tmp_path / "r.yml").write_text(FAILED + "---\n" + correlation("gen", body))
    summary = hunt(case, [tmp_path / "r.yml"], cache_dir=tmp_path / "cache")
    found = matched_records(case)
    assert found[rule_id("failed_logon")] == {10, 11, 12, 13, 14, 16, 17, 18, 19, 20}
    assert found[rule_id("gen")] == {10, 11, 12, 13, 14}
    assert summary.correlations_fired == 1


def test_missing_reference_is_reported(tmp_path: Path) -> None:
    case = fresh_case(tmp_path / "case")
    body = dict(CORRELATIONS["event_count"], rules=["no_such_rule"])
    (tmp_path / "r.yml").write_text(correlation("dangling", body))
    summary = hunt(case, [tmp_path / "r.yml"], cache_dir=tmp_path / "cache")
    reasons = {s.rule_id: s.reason for s in summary.skipped}
    assert rule_id("dangling") in reasons
