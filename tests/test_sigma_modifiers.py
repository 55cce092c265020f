"""Each Sigma modifier and construct against hand-checked events (tests/data/sigma/README.md).

All rules run in one hunt (as a real rule set would) over the NXLog fixture ingested once;
each test checks the events (by RecordNumber) one rule matched.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from breachtrace.case import Case
from breachtrace.detect.sigma import HuntSummary, hunt
from breachtrace.findings_query import FindingFilter, select_findings
from breachtrace.schema import Finding

from sigma_helpers import (
    PROCESS,
    SECURITY,
    fresh_case,
    matched_records,
    rule_id,
    rule_yaml,
    write_rules,
)

PS_SCRIPT = {"product": "windows", "category": "ps_script"}
SYSTEM = {"product": "windows", "service": "system"}

# name -> (logsource, detection, RecordNumbers expected to match)
CASES: dict[str, tuple[dict, dict, set[int]]] = {
    "contains": (PROCESS, {"sel": {"CommandLine|contains": "WHOAMI"}, "condition": "sel"}, {1}),
    "startswith": (
        PROCESS,
        {"sel": {"Image|startswith": "c:\\windows\\system32\\"}, "condition": "sel"},
        {1, 2, 3, 4, 6, 7},  # 7 is Security 4688: Image read from NewProcessName
    ),
    "endswith_4688_rename": (
        PROCESS,
        {"sel": {"Image|endswith": "\\NET1.EXE"}, "condition": "sel"},
        {7},
    ),
    "equals_list": (
        PROCESS,
        {"sel": {"OriginalFileName": ["cmd.exe", "powershell.exe"]}, "condition": "sel"},
        {1},
    ),
    "all": (
        PROCESS,
        {"sel": {"CommandLine|contains|all": ["net", "admin$", "/user:"]}, "condition": "sel"},
        {6},
    ),
    "wildcards": (
        PROCESS,
        {"sel": {"CommandLine": "net us? \\\\\\\\*\\admin$ *"}, "condition": "sel"},
        {6},
    ),
    "escaped_wildcard": (
        PROCESS,
        {"sel": {"CommandLine": "net use \\*"}, "condition": "sel"},
        set(),
    ),
    "re": (
        PROCESS,
        {"sel": {"CommandLine|re": "\\\\\\\\[a-z]+\\\\admin\\$"}, "condition": "sel"},
        {6},
    ),
    "re_case_sensitive": (
        PROCESS,
        {"sel": {"CommandLine|re": "NET1 USER"}, "condition": "sel"},
        set(),
    ),
    "re_i": (PROCESS, {"sel": {"CommandLine|re|i": "NET1 USER .* /ADD"}, "condition": "sel"}, {7}),
    "cidr": (
        SECURITY,
        {"sel": {"EventID": 4624, "IpAddress|cidr": "10.0.0.0/8"}, "condition": "sel"},
        {8, 15},
    ),
    "cidr_not": (
        SECURITY,
        {
            "sel": {"EventID": 4624},
            "private": {"IpAddress|cidr": ["10.0.0.0/8", "172.16.0.0/12"]},
            "condition": "sel and not private",
        },
        {9},
    ),
    "base64": (
        PROCESS,
        {"sel": {"CommandLine|base64|contains": "hello world"}, "condition": "sel"},
        {4},
    ),
    "base64offset_wide": (
        PROCESS,
        {"sel": {"CommandLine|wide|base64offset|contains": "DownloadString"}, "condition": "sel"},
        {2},
    ),
    "windash": (
        PROCESS,
        {"sel": {"CommandLine|windash|contains": " -s "}, "condition": "sel"},
        {3},
    ),
    "exists": (
        SECURITY,
        {"sel": {"EventID": 4624, "AuthenticationPackageName|exists": True}, "condition": "sel"},
        {8, 9, 15},
    ),
    "exists_false": (
        SECURITY,
        {"sel": {"EventID": 4625, "AuthenticationPackageName|exists": False}, "condition": "sel"},
        {10, 11, 12, 13, 14, 16, 17, 18, 19, 20},
    ),
    "expand": (
        SECURITY,
        {"sel": {"EventID": 4624, "TargetUserName|expand": "%admins%"}, "condition": "sel"},
        {8, 9},  # placeholders={"admins": ["alice", "carol"]}
    ),
    "fieldref": (PROCESS, {"sel": {"Image|fieldref": "ParentImage"}, "condition": "sel"}, {5}),
    "cased": (
        PS_SCRIPT,
        {"sel": {"ScriptBlockText|cased|contains": "Invoke-Mimikatz"}, "condition": "sel"},
        {21},
    ),
    "case_insensitive": (
        PS_SCRIPT,
        {"sel": {"ScriptBlockText|contains": "INVOKE-MIMIKATZ"}, "condition": "sel"},
        {21, 22},
    ),
    "gte": (SECURITY, {"sel": {"EventID": 4624, "LogonType|gte": 10}, "condition": "sel"}, {8}),
    "lt": (SECURITY, {"sel": {"EventID": 4624, "LogonType|lt": 10}, "condition": "sel"}, {9, 15}),
    "number_equals": (
        SECURITY,
        {"sel": {"EventID": [4624, 4688], "LogonType": 3}, "condition": "sel"},
        {9, 15},
    ),
    "keyword": (SYSTEM, {"keywords": ["C:\\Temp\\evil.exe"], "condition": "keywords"}, {23}),
    "keyword_wildcard": (SYSTEM, {"keywords": ["evil*run"], "condition": "keywords"}, {23}),
    "keyword_and_field": (
        SYSTEM,
        {"keywords": ["evilsvc"], "sel": {"EventID": 7045}, "condition": "keywords and sel"},
        {23},
    ),
    "null": (PROCESS, {"sel": {"ParentCommandLine": None}, "condition": "sel"}, {4, 7}),
    "not_on_missing_field": (
        PROCESS,
        {
            "sel": {"Image|endswith": ".exe"},
            "filter": {"ParentCommandLine|contains": "cmd"},
            "condition": "sel and not filter",
        },
        {1, 4, 5, 7},  # 4 and 7 lack ParentCommandLine: the filter does not match them
    ),
    "one_of_all_of": (
        PROCESS,
        {
            "sel_a": {"Image|endswith": "\\net.exe"},
            "sel_b": {"CommandLine|contains": "admin$"},
            "sel_c": {"User|endswith": "\\alice"},
            "other": {"Image|endswith": "\\cmd.exe"},
            "condition": "all of sel_* or 1 of other",
        },
        {1, 6},
    ),
    "header_fields": (
        SYSTEM,
        {
            "sel": {
                "Provider_Name": "Service Control Manager",
                "EventID": 7045,
                "Channel": "system",
            },
            "condition": "sel",
        },
        {23},
    ),
    "empty_value": (SECURITY, {"sel": {"EventID": 4624, "IpPort": ""}, "condition": "sel"}, set()),
}


@pytest.fixture(scope="module")
def hunted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Case, HuntSummary]:
    root = tmp_path_factory.mktemp("sigma-modifiers")
    fresh_case(root / "case")
    rules = {name: rule_yaml(name, ls, det) for name, (ls, det, _) in CASES.items()}
    rules["high_only"] = rule_yaml("high_only", PROCESS, {"sel": {"Image|endswith": "\\tool.exe"},
                                                          "condition": "sel"}, level="high")  # fmt: skip
    write_rules(root / "rules", rules)
    case = Case.open(root / "case")
    summary = hunt(case, [root / "rules"], cache_dir=root / "cache",
                   placeholders={"admins": ["alice", "carol"]})  # fmt: skip
    return case, summary


@pytest.mark.parametrize("name", sorted(CASES))
def test_modifier(hunted: tuple[Case, HuntSummary], name: str) -> None:
    case, summary = hunted
    assert not summary.skipped, summary.skipped
    expected = CASES[name][2]
    assert matched_records(case).get(rule_id(name), set()) == expected


def test_summary_counts(hunted: tuple[Case, HuntSummary]) -> None:
    _, summary = hunted
    assert summary.rules_compiled == len(CASES) + 1
    assert summary.events_total == 25
    assert summary.rules_fired == sum(1 for *_, want in CASES.values() if want) + 1
    assert summary.findings == sum(summary.fired.values())


def test_findings_are_finding_records(hunted: tuple[Case, HuntSummary]) -> None:
    case, _ = hunted
    con = case.connect()
    table = con.sql("SELECT * FROM findings").to_arrow_table()
    con.close()
    rows = table.to_pylist()
    finding = Finding(**{k: tuple(v) if isinstance(v, list) else v for k, v in rows[0].items()})
    assert finding.source == "sigma" and finding.evidence and finding.explanation
    by_rule = {r["rule_id"]: r for r in rows}
    cmd = by_rule[rule_id("contains")]
    assert cmd["hosts"] == ["ws01"] and cmd["users"] == ["alice"]
    assert "whoami" in cmd["explanation"] and "CommandLine" in cmd["details"]
    assert len({r["finding_id"] for r in rows}) == len(rows)


def test_rerun_replaces_findings(hunted: tuple[Case, HuntSummary], tmp_path: Path) -> None:
    case, summary = hunted
    write_rules(tmp_path / "one", {"contains": rule_yaml("contains", *CASES["contains"][:2])})
    again = hunt(case, [tmp_path / "one"], cache_dir=tmp_path / "cache")
    assert again.findings == 1 and matched_records(case) == {rule_id("contains"): {1}}
    # restore the module's findings for the other tests
    hunt(case, [Path(str(summary.case)).parent / "rules"], cache_dir=tmp_path / "cache",
         placeholders={"admins": ["alice", "carol"]})  # fmt: skip


def test_level_and_tag_filters(tmp_path: Path) -> None:
    rules = {
        "lvl_high": rule_yaml("lvl_high", PROCESS, {"sel": {"Image|endswith": "\\cmd.exe"}, "condition": "sel"},
                              level="high", tags=["attack.execution", "attack.t1059.003"]),
        "lvl_low": rule_yaml("lvl_low", PROCESS, {"sel": {"Image|endswith": "\\cmd.exe"}, "condition": "sel"},
                             level="low", tags=["attack.t1021.002"], status="stable"),
    }  # fmt: skip
    write_rules(tmp_path / "r", rules)
    other = fresh_case(tmp_path / "c")
    s = hunt(other, [tmp_path / "r"], min_level="medium", cache_dir=tmp_path / "cache")
    assert set(matched_records(other)) == {rule_id("lvl_high")} and s.rules_selected == 1
    s = hunt(other, [tmp_path / "r"], tags=["attack.t1021"], cache_dir=tmp_path / "cache")
    assert set(matched_records(other)) == {rule_id("lvl_low")}
    s = hunt(other, [tmp_path / "r"], statuses=["stable"], cache_dir=tmp_path / "cache")
    assert set(matched_records(other)) == {rule_id("lvl_low")}
    names, rows = select_findings(other, FindingFilter(severity="high"), full=True)
    assert rows == []
    hunt(other, [tmp_path / "r"], cache_dir=tmp_path / "cache")
    names, rows = select_findings(other, FindingFilter(severity="high"), full=True)
    assert [r[names.index("rule_id")] for r in rows] == [rule_id("lvl_high")]
    techniques = rows[0][names.index("techniques")]
    assert techniques == ["T1059.003"]
