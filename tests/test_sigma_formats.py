"""One rule set over every source format the store holds: EVTX (EventData and UserData),
Winlogbeat, Zeek, auth.log keywords; and a hunt over an empty case."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import duckdb
import pytest

from breachtrace.case import Case
from breachtrace.detect.sigma import hunt, scan
from breachtrace.detect.sigma.columns import field_column
from breachtrace.detect.sigma.logsources import EventSource, FieldAccess, load_logsources
from breachtrace.detect.sigma.records import CompiledRule, RuleMeta
from breachtrace.detect.sigma.scan import RuleGroup, extract_sql
from breachtrace.ingest.runner import ingest

from sigma_helpers import SECURITY, matched_records, rule_id, rule_yaml, write_rules

DATA = Path(__file__).parent / "data"
RULES = {
    "ssh_invalid_user": rule_yaml(
        "ssh_invalid_user", {"product": "linux", "service": "sshd"},
        {"keywords": ["Invalid user", "failed password for invalid"], "condition": "keywords"},
    ),
    "zeek_servfail": rule_yaml(
        "zeek_servfail", {"product": "zeek", "service": "dns"},
        {"sel": {"rcode_name": "SERVFAIL", "id.resp_p": 53}, "condition": "sel"},
    ),
    "winlogbeat_logon": rule_yaml(
        "winlogbeat_logon", SECURITY,
        {"sel": {"EventID": 4624, "LogonType": 3, "IpAddress|cidr": "10.0.0.0/8"}, "condition": "sel"},
    ),
    "evtx_userdata": rule_yaml(
        "evtx_userdata", SECURITY,
        {"sel": {"EventID": 1102, "SubjectUserName|exists": True}, "condition": "sel"},
    ),
}  # fmt: skip


def test_every_format(tmp_path: Path) -> None:
    inputs = [DATA / "authlog" / "auth.log", DATA / "zeek" / "dns.log",
              DATA / "winlogbeat" / "winlogbeat-sample.json", DATA / "evtx" / "log-cleared-104-1102.evtx"]  # fmt: skip
    ingest(tmp_path / "case", inputs)
    case = Case.open(tmp_path / "case")
    summary = hunt(case, [write_rules(tmp_path / "rules", RULES)], cache_dir=tmp_path / "cache")
    assert not summary.skipped and not summary.unmapped
    con = case.connect()
    formats = dict(
        con.execute(
            "SELECT f.rule_id, any_value(e.source_format) FROM "
            "(SELECT rule_id, unnest(evidence) AS uid FROM findings) f "
            "JOIN events e ON e.event_uid = f.uid GROUP BY ALL"
        ).fetchall()
    )
    con.close()
    assert formats == {
        rule_id("ssh_invalid_user"): "authlog",
        rule_id("zeek_servfail"): "zeek",
        rule_id("winlogbeat_logon"): "winlogbeat",
        rule_id("evtx_userdata"): "evtx",
    }
    assert summary.fired[rule_id("ssh_invalid_user")] == 2  # "Invalid user" lines, any case


def test_empty_case(tmp_path: Path) -> None:
    case = Case.open(tmp_path / "case", create=True)
    summary = hunt(case, [write_rules(tmp_path / "rules", RULES)], cache_dir=tmp_path / "cache")
    assert summary.findings == 0 and summary.events_total == 0
    assert matched_records(case) == {}


def test_wrapped_values_are_read_as_text_and_only_where_they_occur(tmp_path: Path) -> None:
    """Unnamed EVTX Data items are stored as {"#text": [...]}: read as their lines of text.
    Extraction unwraps only the classes whose records hold such values."""
    inputs = [DATA / "sigma" / "wrapped", DATA / "evtx" / "psexec-4688-4697-5140-5145.evtx"]
    ingest(tmp_path / "case", inputs)
    case = Case.open(tmp_path / "case")
    application = {"product": "windows", "service": "application"}
    rules = {
        "xp_cmdshell": rule_yaml("xp_cmdshell", application, {
            "sel": {"EventID": 15457, "Data|startswith": "xp_cmdshell\n0"}, "condition": "sel"}),
        "service_installed": rule_yaml("service_installed", SECURITY, {
            "sel": {"EventID": 4697, "ServiceFileName|contains": "PSEXESVC"}, "condition": "sel"}),
    }  # fmt: skip
    summary = hunt(case, [write_rules(tmp_path / "rules", rules)], cache_dir=tmp_path / "cache")
    assert not summary.skipped
    assert set(matched_records(case)) == {rule_id("xp_cmdshell"), rule_id("service_installed")}


def test_userdata_fields_are_read_only_where_the_object_occurs(tmp_path: Path) -> None:
    """A field is read from EventData, or from UserData's child element (1102 "log cleared"):
    one rule over both kinds of event in one group. Only the classes whose records hold
    UserData read it (the others are a branch of their own without that fallback)."""
    inputs = [DATA / "evtx" / "log-cleared-104-1102.evtx",
              DATA / "evtx" / "psexec-4688-4697-5140-5145.evtx"]  # fmt: skip
    ingest(tmp_path / "case", inputs)
    case = Case.open(tmp_path / "case")
    rules = {
        "admmig": rule_yaml(
            "admmig",
            SECURITY,
            {
                "sel": {"EventID": [1102, 4697, 4688], "SubjectUserName": "admmig"},
                "condition": "sel",
            },
        )
    }
    summary = hunt(case, [write_rules(tmp_path / "rules", rules)], cache_dir=tmp_path / "cache")
    assert not summary.skipped
    # 1102 has the name in UserData, 4697 in EventData; 4688's subject is the machine account
    assert matched_records(case) == {rule_id("admmig"): {109054, 349343}}

    group = RuleGroup(0, "security", (EventSource(formats=("evtx",)),), classes={0: [1, 2]})
    group.rules.append((0, CompiledRule(
        RuleMeta("r", "r", "f"), "windows", None, "security", "TRUE",
        ("SubjectUserName",), (), ())))  # fmt: skip
    sql = extract_sql(group, {1: "evtx", 2: "evtx"}, load_logsources(), set(), {2})
    reads_object = [part for part in sql.split(" MATERIALIZED ") if "$.Event.UserData" in part]
    assert len(reads_object) == 1 and "IN (2)" in reads_object[0]


# Security fields of the fixtures' events (EventData, 1102's UserData, Winlogbeat's event_data)
# and some no event has: more than ``scan.STRUCT_MIN_PATHS``, so records are parsed into structs.
WIDE_FIELDS = [
    "SubjectUserSid", "SubjectUserName", "SubjectDomainName", "SubjectLogonId", "NewProcessId",
    "NewProcessName", "TokenElevationType", "ProcessId", "CommandLine", "TargetUserSid",
    "TargetUserName", "TargetDomainName", "TargetLogonId", "ParentProcessName", "MandatoryLabel",
    "ServiceName", "ServiceFileName", "ServiceType", "ServiceStartType", "ServiceAccount",
    "ObjectType", "IpAddress", "IpPort", "ShareName", "ShareLocalPath", "RelativeTargetName",
    "AccessMask", "AccessList", "LogonType", "LogonProcessName", "AuthenticationPackageName",
    "WorkstationName", "LogonGuid", "KeyLength", "ProcessName", "Absent1", "Absent2", "Absent3",
    "Absent4", "Absent5",
]  # fmt: skip


def test_many_fields_are_read_alike_from_structs_and_path_lists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A branch reading many fields parses each record into a struct (``scan._Slots``): every
    value the findings show must be what the multi-path extraction reads, from EventData,
    UserData and Winlogbeat records alike."""
    inputs = [DATA / "evtx" / "log-cleared-104-1102.evtx",
              DATA / "evtx" / "psexec-4688-4697-5140-5145.evtx",
              DATA / "winlogbeat" / "winlogbeat-sample.json"]  # fmt: skip
    ingest(tmp_path / "case", inputs)
    case = Case.open(tmp_path / "case")
    never = {name: "never-this-value" for name in WIDE_FIELDS}
    rules = {"wide": rule_yaml("wide", SECURITY, {
        "sel": {"EventID|gt": 0}, "filter": never, "condition": "sel and not filter"})}  # fmt: skip
    rule_dir = write_rules(tmp_path / "rules", rules)
    sql_seen: list[str] = []
    real_extract = scan.extract_sql

    def spy(*args: Any, **kwargs: Any) -> str:
        sql_seen.append(real_extract(*args, **kwargs))
        return sql_seen[-1]

    monkeypatch.setattr(scan, "extract_sql", spy)
    shown = {}
    for struct_from in (scan.STRUCT_MIN_PATHS, 10**6):
        monkeypatch.setattr(scan, "STRUCT_MIN_PATHS", struct_from)
        summary = hunt(case, [rule_dir], cache_dir=tmp_path / "cache")
        assert not summary.skipped and summary.findings > 0
        with contextlib.closing(case.connect()) as con:
            shown[struct_from] = sorted(con.execute(
                "SELECT evidence[1], json_extract(details, '$.fields') FROM findings").fetchall())  # fmt: skip
    assert "json_transform" in sql_seen[0] and "json_transform" not in sql_seen[-1]
    assert shown[scan.STRUCT_MIN_PATHS] == shown[10**6]
    values = [json.loads(fields) for _, fields in shown[10**6]]
    # the events' own values were read: names from EventData, UserData (1102) and Winlogbeat
    assert any(v.get("SubjectUserName") == "admmig" for v in values)
    assert sum(1 for v in values for value in v.values() if value is not None) > 5 * len(values)


def test_struct_spec_falls_back_where_one_struct_cannot_hold_the_paths() -> None:
    paths = ['$.Event.EventData."A"', '$.Event.EventData."B"']
    assert scan._struct_spec(paths, ["$.Event.UserData"]) == {
        "Event": {"EventData": {"A": "VARCHAR", "B": "VARCHAR"}, "UserData": "JSON"}
    }
    # a path inside another's value; keys differing only in case (DuckDB's struct fields)
    assert scan._struct_spec([*paths, '$.Event.EventData."A".x'], []) is None
    assert scan._struct_spec(paths, ["$.Event.EventData"]) is None
    assert scan._struct_spec([*paths, '$.Event.EventData."a"'], []) is None
    # a text and an object at one path
    assert scan._struct_spec(paths, [paths[0]]) is None


def test_a_field_name_with_a_backslash_is_read_alike_from_structs_and_path_lists() -> None:
    """A quoted key's backslash is escaped in its path; the struct's key is unescaped as DuckDB
    reads the path, so both ways of parsing read the same value."""
    access = load_logsources().access("evtx", "a\\b")
    assert access.paths == ('$.Event.EventData."a\\\\b"',)
    fillers = [FieldAccess(paths=(f'$.Event.EventData."F{i}"',)) for i in range(40)]
    record = json.dumps({"Event": {"EventData": {"a\\b": "one backslash"}}})
    read = []
    for structs in (False, True):
        slots = scan._Slots.of([*fillers, access], False, structs)
        assert (slots.spec is not None) == structs
        value = scan._value_sql(access, slots, False)
        read.append(duckdb.connect().execute(
            f"SELECT {value} FROM (SELECT {slots.parsed('raw')} AS f, f AS t "
            "FROM (SELECT ?::VARCHAR AS raw))", [record]).fetchone())  # fmt: skip
    assert read == [("one backslash",), ("one backslash",)]


def test_userdata_that_is_not_an_object_is_passed_over() -> None:
    """A crafted EVTX record whose UserData is plain text: extraction reads its other places and
    nothing from UserData, where ``json_extract`` failed the group's whole statement (and with
    it the hunt). Both ways of parsing records (a path list, and a struct for many fields)."""
    good = {"Event": {"UserData": {"LogFileCleared": {"SubjectUserName": "admmig"}}}}
    crafted = {"Event": {"UserData": "plain text", "EventData": {"SubjectUserName": "x"}}}
    scalar = {"Event": {"UserData": 7}}
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE hunt_events (cls INTEGER, event_code INTEGER, channel VARCHAR, "
        "provider VARCHAR, raw VARCHAR)"
    )
    for record in (good, crafted, scalar):
        con.execute("INSERT INTO hunt_events VALUES (1, 1102, 'Security', 'p', ?)",
                    [json.dumps(record)])  # fmt: skip
    for fields, structs in ((("SubjectUserName",), False), (tuple(WIDE_FIELDS), True)):
        group = RuleGroup(0, "security", (EventSource(formats=("evtx",)),), classes={0: [1]})
        group.rules.append((0, CompiledRule(
            RuleMeta("r", "r", "f"), "windows", None, "security", "TRUE", fields, (), ())))  # fmt: skip
        sql = extract_sql(group, {1: "evtx"}, load_logsources(), set(), {1}, structs=structs)
        assert ("json_transform" in sql) == structs
        con.execute(sql)
        column = field_column("SubjectUserName")
        found = con.execute(f"SELECT {column}, eids FROM {group.table}").fetchall()
        assert sorted(found, key=lambda row: row[1]) == [("admmig", [0]), ("x", [1]), (None, [2])]
