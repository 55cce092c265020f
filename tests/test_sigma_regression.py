"""SigmaHQ's own regression tests: for every case under regression_data, its rule must fire on
the case's event (the EventRecordID of its JSON) in its EVTX file.

All EVTX files go into one case (ingested once), one hunt runs every referenced rule, then each
case is checked: a finding of its rule whose evidence is that record of its file (event_uid ->
events.input_id -> the manifest entry with the file's SHA-256, and events.record_id). The pass rate and every failure, with
its reason, are printed; the target is every case whose rule pySigma can parse.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from breachtrace.case import Case
from breachtrace.detect.sigma import HuntSummary, hunt
from breachtrace.ingest.runner import ingest

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
SIGMA = CORPUS / "sigma"
RULE_DIRS = ("rules", "rules-emerging-threats", "rules-threat-hunting")

pytestmark = [
    pytest.mark.corpus,
    pytest.mark.skipif(
        not (SIGMA / "regression_data").is_dir(),
        reason=f"shared corpus not present at {CORPUS}: SigmaHQ regression data unavailable",
    ),
]


@dataclass(frozen=True)
class RegressionCase:
    name: str
    rule_id: str
    evtx: Path | None  # None: the case has no EVTX test (e.g. raw network device logs)
    record_ids: frozenset[int]  # EventRecordIDs of the events in the case's JSON (one must match)


def _cases() -> list[RegressionCase]:
    cases = []
    for info in sorted((SIGMA / "regression_data").rglob("info.yml")):
        data = yaml.safe_load(info.read_text())
        evtx = sorted(info.parent.glob("*.evtx"))
        records = frozenset(r for j in sorted(info.parent.glob("*.json")) for r in _record_ids(j))
        cases.append(RegressionCase(info.parent.name, str(data["rule_metadata"][0]["id"]),
                                    evtx[0] if evtx else None, records))  # fmt: skip
    return cases


def _record_ids(path: Path) -> list[int]:
    """EventRecordIDs of the JSON events in a file (one object, or several one after another)."""
    text, decoder, ids, at = path.read_text(), json.JSONDecoder(), [], 0
    while at < len(text):
        if text[at].isspace():
            at += 1
            continue
        event, at = decoder.raw_decode(text, at)
        record = event.get("Event", {}).get("System", {}).get("EventRecordID")
        if isinstance(record, int):
            ids.append(record)
    return ids


def _rule_files(ids: set[str]) -> list[Path]:
    """The rule files (under rules*/) whose id is one of ``ids``."""
    found = []
    id_line = re.compile(r"^id:\s*['\"]?([0-9a-fA-F-]{36})", re.M)
    for directory in RULE_DIRS:
        for path in sorted((SIGMA / directory).rglob("*.yml")):
            match = id_line.search(path.read_text(errors="replace"))
            if match and match.group(1) in ids:
                found.append(path)
    return found


@pytest.fixture(scope="module")
def regression(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[list[RegressionCase], dict[str, set[tuple[str, int]]], HuntSummary]:
    cases = _cases()
    root = tmp_path_factory.mktemp("sigma-regression")
    evtx_files = sorted({c.evtx for c in cases if c.evtx})
    ingest(root / "case", evtx_files)
    case = Case.open(root / "case")
    rules = _rule_files({c.rule_id for c in cases})
    summary = hunt(case, rules, cache_dir=root / "cache")
    sha_of = {e.input_id: e.sha256 for e in case.manifest()}
    con = case.connect()
    rows = con.execute(
        "SELECT f.rule_id, e.input_id, e.record_id FROM "
        "(SELECT rule_id, unnest(evidence) AS uid FROM findings) f JOIN events e ON e.event_uid = f.uid"
    ).fetchall()
    con.close()
    fired: dict[str, set[tuple[str, int]]] = {}  # rule id -> (file SHA-256, EventRecordID) hit
    for rid, input_id, record in rows:
        fired.setdefault(rid, set()).add((sha_of[input_id], record))
    return cases, fired, summary


def test_every_parsable_rule_fires_on_its_evtx(regression) -> None:  # type: ignore[no-untyped-def]
    cases, fired, summary = regression
    skipped = {s.rule_id: s.reason for s in summary.skipped + summary.unmapped}
    passed, failures, not_applicable = 0, [], []
    for case in cases:
        if case.evtx is None:
            not_applicable.append(f"{case.name}: no EVTX test data")
            continue
        if case.rule_id in skipped:
            failures.append((case, f"rule skipped: {skipped[case.rule_id]}"))
            continue
        sha = hashlib.sha256(case.evtx.read_bytes()).hexdigest()
        hits = fired.get(case.rule_id, set())
        on_file = {record for file_sha, record in hits if file_sha == sha}
        if on_file & case.record_ids or (on_file and not case.record_ids):
            passed += 1
        elif on_file:
            failures.append(
                (case, f"fired on records {sorted(on_file)}, not {sorted(case.record_ids)}")
            )
        elif hits:
            failures.append((case, "rule fired, but not on an event of this file"))
        else:
            failures.append((case, "rule did not fire"))
    total = passed + len(failures)
    print(f"\nSigmaHQ regression: {passed}/{total} cases pass ({100 * passed / total:.1f}%); "
          f"{len(not_applicable)} without EVTX: {'; '.join(not_applicable)}")  # fmt: skip
    for case, reason in failures:
        print(f"  FAIL {case.name} ({case.rule_id}): {reason}")
    unparsable = [c for c, reason in failures if reason.startswith("rule skipped: cannot parse")]
    assert len(failures) == len(unparsable), (
        f"{len(failures) - len(unparsable)} parsable rules failed"
    )
