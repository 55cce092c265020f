"""One rule set over every source format the store holds: EVTX (EventData and UserData),
Winlogbeat, Zeek, auth.log keywords; and a hunt over an empty case."""

from __future__ import annotations

from pathlib import Path

from breachtrace.case import Case
from breachtrace.detect.sigma import hunt
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
