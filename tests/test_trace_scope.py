"""trace and scope on small simulated incidents read by the real readers, scored against
truth.json (routes, entry points, owners per route, overlap, dwell); --from leads; a scope
revision after a second batch of logs; and scope's own rules on hand-written events."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from breachtrace.detect.behaviour import detect
from breachtrace.ingest.runner import ingest
from breachtrace.scope import scope
from breachtrace.scope.jurisdictions import check, load_rules
from breachtrace.scope.revisions import notification_csv
from breachtrace.trace import trace
from breachtrace.trace.evaluation import score
from breachtrace.trace.lead import LeadError, parse_lead

from detect_support import cached_dir, fresh_copy, simulated, t, write_events

HOSTS, DAYS, SEED = 60, 21, 1


def _investigated(request: pytest.FixtureRequest, tmp: Path, scenario: str) -> tuple[Path, Path]:
    built = simulated(request, scenario, HOSTS, DAYS, SEED)
    case_dir = fresh_copy(built / "case", tmp / "case")
    sim = built / "sim"
    detect(case_dir, assets=sim / "assets.csv", networks=sim / "networks.csv",
           identities=sim / "identities.csv")  # fmt: skip
    trace(case_dir)
    scope(case_dir, inventory=sim / "data_inventory.csv")
    return case_dir, sim


@pytest.fixture(scope="module")
def telecom(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return _investigated(request, tmp_path_factory.mktemp("trace-telecom"), "telecom-2020")


@pytest.fixture(scope="module")
def maker(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return _investigated(request, tmp_path_factory.mktemp("trace-maker"), "maker-2016")


def test_telecom_routes_owners_and_overlap_equal_truth(telecom: tuple[Path, Path]) -> None:
    case_dir, sim = telecom
    s = score(case_dir, sim)
    assert s.entries == (2, 2) and s.entry_sources == (1, 1), s.missed
    assert s.hops[0] == s.hops[1], s.missed
    assert s.accounts_recall[0] == s.accounts_recall[1], s.missed
    assert s.hosts_recall[0] == s.hosts_recall[1], s.missed
    assert s.accounts_precision[0] / s.accounts_precision[1] >= 0.95, s.missed
    assert s.hosts_precision[0] / s.hosts_precision[1] >= 0.95, s.missed
    assert s.owners_exact == (2, 2) and s.overlap_exact == (1, 1), s.missed
    assert s.dwell_error_days is not None and s.dwell_error_days <= 1.0
    incidents = json.loads((case_dir / "trace" / "incidents.json").read_text())["incidents"]
    assert len(incidents) == 1 and incidents[0]["severity"] == "critical"
    actions = {c["action"] for c in incidents[0]["containment"]}
    assert actions == {"isolate_host", "disable_account", "reset_credentials", "block_address",
                       "close_access_path"}  # fmt: skip
    assert incidents[0]["c2"] and incidents[0]["c2"][0]["dst_port"] == 443


def test_scope_exports_are_kept_in_the_case(telecom: tuple[Path, Path]) -> None:
    case_dir, _ = telecom
    latest = json.loads((case_dir / "scope" / "latest.json").read_text())
    run_dir = case_dir / "scope" / "runs" / latest["run_id"]
    rows = list(csv.DictReader((run_dir / "notification_list.csv").open()))
    assert list(rows[0])[:7] == ["owner", "routes", "files", "first_access", "last_access",
                                 "classification", "individuals"]  # fmt: skip
    assert {r["owner"] for r in rows} == set(latest["union"])
    assert len(json.loads((run_dir / "notification_list.json").read_text())) == len(rows)
    assert any(t["crossed"] for t in latest["thresholds"])
    assert latest["individuals"] > 1000


def test_maker_hops_under_deleted_logs_and_the_gaps(maker: tuple[Path, Path]) -> None:
    case_dir, sim = maker
    s = score(case_dir, sim)
    assert s.entries == (1, 1) and s.hops[0] == s.hops[1], s.missed
    assert s.accounts_recall[0] == s.accounts_recall[1], s.missed
    assert s.hosts_recall[0] == s.hosts_recall[1], s.missed
    assert s.first_compromise_error_days is not None and s.first_compromise_error_days < 1
    incident = json.loads((case_dir / "trace" / "incidents.json").read_text())["incidents"][0]
    assert len(incident["c2"]) >= 3
    assert any(g["may_hide"] for g in incident["log_gaps"])


def test_from_a_host_lead_traces_backward_and_forward(telecom: tuple[Path, Path]) -> None:
    case_dir, sim = telecom
    truth = json.loads((sim / "truth.json").read_text())
    target = truth["routes"][0]["hops"][-1]["dst"]  # the file server both routes read
    result = trace(case_dir, lead=f"host:{target}")
    entries = {e.host for i in result.incidents for e in i.entry_points}
    assert {r["entry"] for r in truth["routes"]} <= entries
    forward = trace(case_dir, lead=f"host:{truth['routes'][0]['entry']}")
    reached = {h.dst for i in forward.incidents for r in i.routes for h in r.hops}
    assert set(truth["routes"][0]["hosts"]) <= reached | {truth["routes"][0]["entry"]}
    trace(case_dir)  # leave the full trace for the other tests
    with pytest.raises(LeadError):
        parse_lead("router:x")


def _first_batch(sim: Path) -> list[Path]:
    return [p for p in sorted((sim / "logs").iterdir()) if p.name != "vpn"]


@pytest.fixture(scope="module")
def revised(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A telecom case scoped before and after its VPN logs are ingested."""
    built = simulated(request, "telecom-2020", HOSTS, DAYS, SEED)
    sim = built / "sim"

    def build(target: Path) -> None:
        ingest(target / "case", _first_batch(sim))

    first = cached_dir(request, f"telecom-novpn-{HOSTS}-{DAYS}-{SEED}", build)
    case_dir = fresh_copy(first / "case", tmp_path_factory.mktemp("revised") / "case")
    context = {k: sim / f"{k}.csv" for k in ("assets", "networks", "identities")}
    detect(case_dir, **context)
    trace(case_dir)
    before = scope(case_dir, inventory=sim / "data_inventory.csv")
    ingest(case_dir, [sim / "logs" / "vpn"], mappings=[sim / "mappings" / "vpn.yaml"])
    detect(case_dir)
    trace(case_dir)
    after = scope(case_dir, diff=True)
    return before, after, sim


def test_scope_diff_explains_owners_added_by_new_logs(revised: Any) -> None:
    before, after, sim = revised
    truth = json.loads((sim / "truth.json").read_text())
    vpn_route = next(r for r in truth["routes"] if r["devices"])
    added = {c.owner for c in after.diff.changes if c.change == "added"}
    assert set(before.document["union"]) | added >= set(vpn_route["exposed_clients"])
    new_only = set(vpn_route["exposed_clients"]) - set(before.document["union"])
    assert new_only and new_only <= added
    explained = [c for c in after.diff.changes if c.owner in new_only]
    assert all(c.files and c.sessions for c in explained)
    assert any("vpn" in p for c in explained for p in c.new_inputs)
    assert len(after.diff.new_inputs) == len(list((sim / "logs" / "vpn").iterdir()))
    assert (after.run_dir / "diff.json").exists()


# -- scope's rules on hand-written events -----------------------------------------------------
def _small_case(tmp_path: Path) -> Path:
    rows = [
        {"ts": t(1, 2), "host": "fs1", "action": "logon", "user": "mallory", "logon_id": "0x1",
         "src_ip": "10.0.0.5", "src_host": "ws1", "logon_type": 3, "event_code": 4624},
        {"ts": t(1, 2, 1), "host": "fs1", "action": "share_access", "user": "mallory",
         "logon_id": "0x1", "file_path": "\\\\*\\projects\\=ACME\\plan.docx", "event_code": 5145},
        {"ts": t(1, 2, 1, 0.001), "host": "fs1", "action": "file_access", "user": "mallory",
         "logon_id": "0x1", "file_path": "D:\\shares\\projects\\=ACME\\plan.docx",
         "event_code": 4663},
        {"ts": t(1, 2, 2), "host": "fs1", "action": "file_access", "user": "mallory",
         "logon_id": "0x1", "file_path": "D:\\shares\\misc\\notes.txt", "event_code": 4663},
        # the same account on the same host from its own workstation: not the route's session
        {"ts": t(1, 9), "host": "fs1", "action": "logon", "user": "mallory", "logon_id": "0x2",
         "src_ip": "10.0.0.9", "src_host": "ws9", "logon_type": 3, "event_code": 4624},
        {"ts": t(1, 9, 1), "host": "fs1", "action": "file_access", "user": "mallory",
         "logon_id": "0x2", "file_path": "D:\\shares\\projects\\Beta\\x.docx", "event_code": 4663},
        # a file the network saw move from ws1 to fs2 (whose logs were never collected)
        {"ts": t(2, 3), "host": "zeek-1", "source_format": "zeek", "channel": "smb_files",
         "action": "file_access", "src_ip": "10.0.0.5", "dst_ip": "10.0.0.20",
         "file_path": "\\\\fs2\\hr", "query": "people\\staff.xlsx"},
        # ws1's own user on fs1 by day: the server names her on that connection, so the
        # network's record of it is hers, not the route's
        {"ts": t(2, 10), "host": "fs1", "action": "share_access", "user": "alice",
         "logon_id": "0x7", "src_ip": "10.0.0.5", "src_port": 50001,
         "file_path": "\\\\*\\projects", "event_code": 5140},
        {"ts": t(2, 10, 1), "source_format": "zeek", "channel": "smb_files",
         "action": "file_access", "src_ip": "10.0.0.5", "src_port": 50001,
         "dst_ip": "10.0.0.10", "file_path": "\\\\FS1\\projects", "query": "Gamma\\a.docx"},
        # a night read whose fs1 records were deleted: only the network saw it
        {"ts": t(2, 2), "source_format": "zeek", "channel": "smb_files",
         "action": "file_access", "src_ip": "10.0.0.5", "src_port": 50002,
         "dst_ip": "10.0.0.10", "file_path": "\\\\FS1\\projects", "query": "Delta\\d.docx"},
    ]  # fmt: skip
    case_dir = tmp_path / "case"
    write_events(case_dir, rows)
    route = {
        "route_id": "INC-1-R1", "name": "from ws1", "entry": "ws1", "first": "2021-03-02T02:00:00.000Z",
        "last": "2021-03-03T03:00:00.000Z", "accounts": ["mallory"], "hosts": ["ws1", "fs1", "fs2"],
        "devices": [], "source_addresses": [],
        "hops": [
            {"src": "ws1", "dst": "fs1", "time": "2021-03-02T02:00:00.000Z", "account": "mallory",
             "method": "network", "evidence": [], "finding_ids": []},
            {"src": "ws1", "dst": "fs2", "time": "2021-03-03T02:00:00.000Z", "account": "",
             "method": "port 445 (logon records missing)", "evidence": [], "finding_ids": []},
        ],
    }  # fmt: skip
    (case_dir / "trace").mkdir()
    (case_dir / "trace" / "incidents.json").write_text(json.dumps({"incidents": [
        {"routes": [route], "dwell": {"detection": "2021-03-05T00:00:00.000Z"}}]}))  # fmt: skip
    (tmp_path / "assets.csv").write_text(
        "host,ip\nws1,10.0.0.5\nws9,10.0.0.9\nfs1,10.0.0.10\nfs2,10.0.0.20\n"
    )
    (case_dir / "context").mkdir(exist_ok=True)
    shutil.copy(tmp_path / "assets.csv", case_dir / "context" / "assets.csv")
    (tmp_path / "inventory.csv").write_text(
        "path_prefix,owner,classification,individuals\n"
        "\\\\fs1\\projects\\=ACME\\,=ACME Corp,confidential,0\n"
        "D:\\shares\\projects\\=ACME\\,=ACME Corp,confidential,0\n"
        "D:\\shares\\projects\\Beta\\,Beta Ltd,confidential,0\n"
        "\\\\fs2\\hr\\,Staff,personal-data,1200\n"
        "\\\\fs1\\projects\\Gamma\\,Gamma plc,confidential,0\n"
        "\\\\fs1\\projects\\Delta\\,Delta AG,confidential,0\n"
    )
    return case_dir


def test_scope_sessions_network_evidence_and_neutralised_csv(tmp_path: Path) -> None:
    case_dir = _small_case(tmp_path)
    result = scope(case_dir, inventory=tmp_path / "inventory.csv")
    owners = {o["owner"]: o for o in result.document["owners"]}
    # Beta was read from ws9, not the route; Gamma by ws1's own user (the server says so)
    assert set(owners) == {"=ACME Corp", "Staff", "Delta AG"}
    assert owners["Delta AG"]["evidence"] == "network"
    assert owners["=ACME Corp"]["files"] == 1  # share path and local path are one file
    assert owners["=ACME Corp"]["evidence"] == "host"
    assert owners["Staff"]["evidence"] == "network" and owners["Staff"]["individuals"] == 1200
    assert result.document["unowned_files"] == ["D:\\shares\\misc\\notes.txt"]
    text = (result.run_dir / "notification_list.csv").read_text()
    assert "\n'=ACME Corp," in text
    crossed = {(x["jurisdiction"], x["crossed"]) for x in result.document["thresholds"]}
    assert ("Japan (APPI)", True) in crossed


def test_notification_csv_neutralises_formulas() -> None:
    rows = [{"owner": "=HYPERLINK(\"http://x\")", "routes": "R1", "files": 1,
             "first_access": None, "last_access": None, "classification": "+1",
             "individuals": None}]  # fmt: skip
    parsed = list(csv.reader(io.StringIO(notification_csv(rows))))
    assert parsed[1][0].startswith("'=") and parsed[1][5] == "'+1"


def test_jurisdiction_thresholds_and_deadlines(tmp_path: Path) -> None:
    rules = load_rules()
    at = t(0)
    below = check(rules, individuals=1000, classifications=set(), intrusion=False, detection=at)
    above = check(rules, individuals=1001, classifications=set(), intrusion=False, detection=at)
    appi = "personal data of more than 1,000 people"
    assert not next(x for x in below if x.rule.startswith(appi)).crossed
    hit = next(x for x in above if x.rule.startswith(appi))
    assert hit.crossed and hit.deadline == "2021-03-04T00:00:00.000Z"
    own = tmp_path / "rules.yaml"
    own.write_text("jurisdictions:\n  - jurisdiction: X\n    rules:\n"
                   "      - rule: any defence data\n        classifications: [defence]\n"
                   "        deadline_hours: 1\n")  # fmt: skip
    got = check(load_rules(own), individuals=0, classifications={"Defence"}, intrusion=True,
                detection=at)  # fmt: skip
    assert got[0].crossed and got[0].deadline == "2021-03-01T01:00:00.000Z"


def test_cli_trace_from_a_lead_and_scope_diff(telecom: tuple[Path, Path]) -> None:
    from typer.testing import CliRunner

    from breachtrace.cli import app

    case_dir, sim = telecom
    truth = json.loads((sim / "truth.json").read_text())
    runner = CliRunner()
    lead = f"user:{truth['routes'][1]['accounts'][0]}"
    done = runner.invoke(app, ["trace", "--case", str(case_dir), "--from", lead])
    assert done.exit_code == 0, done.output
    assert "1 incident(s) from " + lead in done.output
    assert json.loads((case_dir / "trace" / "incidents.json").read_text())["lead"] == lead
    bad = runner.invoke(app, ["trace", "--case", str(case_dir), "--from", "router:x"])
    assert bad.exit_code == 2
    runner.invoke(app, ["trace", "--case", str(case_dir)])
    scoped = runner.invoke(app, ["scope", "--case", str(case_dir), "--diff"])
    assert scoped.exit_code == 0, scoped.output
    assert "overlap" in scoped.output and "changes since" in scoped.output


def test_an_incident_on_one_kind_of_evidence_is_titled_a_lead() -> None:
    from datetime import datetime

    from breachtrace.trace.incidents import _words
    from breachtrace.trace.records import Dwell, Route

    when = datetime(2020, 5, 7, 1, 0)
    route = Route(
        "R1", "stolen credential", "laptop-x", when, when, ("ana",), (), ("laptop-x",), ()
    )
    dwell = Dwell(when, when, when, 0.0)
    lead_title, lead_text = _words([route], [], [], [], [], [], dwell, "medium")
    title, text = _words([route], [], [], [], [], [], dwell, "critical")
    assert lead_title == "Lead: possible intrusion through laptop-x" and "confirm" in lead_text
    assert title == "Intrusion through laptop-x" and "confirm" not in text
