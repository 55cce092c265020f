"""One rule set over every source format the store holds: EVTX (EventData and UserData),
Winlogbeat, Zeek, auth.log keywords; and a hunt over an empty case."""

from __future__ import annotations

from pathlib import Path

from breachtrace.case import Case
from breachtrace.detect.sigma import hunt
from breachtrace.detect.sigma.logsources import EventSource, load_logsources
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
