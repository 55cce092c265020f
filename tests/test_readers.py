"""Every reader on a small real fixture, read back through the case store."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import evtx
import pyarrow as pa
import pytest

from breachtrace.case import Case
from breachtrace.engines.duckdb import connect, expand_macros
from breachtrace.ingest.formats import all_readers
from breachtrace.ingest.runner import ingest

from conftest import DATA, ingest_and_query, rows


def test_evtx_every_record_and_key_fields(tmp_path: Path) -> None:
    files = sorted((DATA / "evtx").glob("*.evtx"))
    expected = {f.name: sum(1 for _ in evtx.PyEvtxParser(str(f)).records_json()) for f in files}
    summary, con = ingest_and_query(tmp_path / "case", DATA / "evtx")
    got = {Path(f.path).name: f.records_read for f in summary.files}
    assert got == expected
    assert summary.rejected == 0
    logons = rows(con, "SELECT * FROM events WHERE event_code = 4624 ORDER BY ts")
    assert logons and all(r["action"] == "logon" and r["outcome"] == "success" for r in logons)
    assert all(r["user"] and r["logon_type"] is not None for r in logons)
    share = rows(con, "SELECT * FROM events WHERE event_code = 5145 LIMIT 1")[0]
    assert share["action"] == "share_access" and "\\" in share["file_path"]
    cleared = rows(con, "SELECT * FROM events WHERE event_code = 1102")
    assert len(cleared) == 1 and cleared[0]["action"] == "log_cleared" and cleared[0]["user"]
    system_cleared = rows(con, "SELECT count(*) AS n FROM events WHERE event_code = 104")
    assert system_cleared[0]["n"] == 90
    rdp = rows(con, "SELECT * FROM events WHERE event_code = 1149")
    assert len(rdp) == 11 and all(r["src_ip"] and r["logon_type"] == 10 for r in rdp)
    sysmon = rows(con, "SELECT * FROM events WHERE channel LIKE '%Sysmon%'")[0]
    assert sysmon["action"] == "process_start" and sysmon["command_line"]
    # the complete original record is kept; ids and record numbers line up
    one = rows(con, "SELECT raw, record_id, event_uid, input_id, input_record FROM events LIMIT 1")[
        0
    ]
    assert '"EventRecordID"' in one["raw"] and one["record_id"] is not None
    assert one["event_uid"] == f"{one['input_id']}:{one['input_record']}"


def test_nxlog_json_otrf_sample(tmp_path: Path) -> None:
    path = DATA / "nxlog" / "otrf-schtask-sample.json"
    n_lines = sum(1 for line in path.read_text().splitlines() if line.strip())
    summary, con = ingest_and_query(tmp_path / "case", path)
    assert summary.files[0].format == "nxlog"
    assert summary.events == n_lines and summary.rejected == 0
    r = rows(con, "SELECT * FROM events WHERE event_code = 4698")[0]
    assert r["action"] == "scheduled_task" and r["host"] == "workstation6" and r["query"]
    assert (
        rows(con, "SELECT count(*) AS n FROM events WHERE action = 'network_connection'")[0]["n"]
        > 0
    )


def test_winlogbeat(tmp_path: Path) -> None:
    summary, con = ingest_and_query(tmp_path / "case", DATA / "winlogbeat")
    assert summary.files[0].format == "winlogbeat" and summary.events == 5
    by_code = {r["event_code"]: r for r in rows(con, "SELECT * FROM events")}
    logon = by_code[4624]
    assert (logon["user"], logon["domain"], logon["src_ip"], logon["src_host"]) == (
        "k.sato",
        "corp",
        "10.20.4.17",
        "us-app02",
    )
    assert logon["host"] == "jp-fs01" and logon["logon_type"] == 3 and logon["record_id"] == 88121
    assert by_code[1]["user"] == "k.sato" and by_code[1]["domain"] == "corp"
    assert by_code[4663]["file_path"].endswith("naval-layout.pdf")
    failed = by_code[4625]
    assert failed["outcome"] == "failure" and failed["src_ip"] == "203.0.113.9"
    # +09:00 is converted to UTC, not dropped
    assert failed["ts"] == datetime(2020, 5, 3, 16, 19, 10)


def test_authlogs_of_different_years_in_one_ingest_keep_their_own_years(tmp_path: Path) -> None:
    """Auth logs share one normalizing query; each file's year still comes from its own
    modification time."""
    for name, year in (("a", 2018), ("b", 2021)):
        folder = tmp_path / "in" / name
        folder.mkdir(parents=True)
        text = (DATA / "authlog" / "auth.log").read_text()  # made distinct: not a duplicate
        (folder / "auth.log").write_text(
            text + f"Jan  2 00:00:0{year % 10} {name}-host CRON[1]: x\n"
        )
        stamp = datetime(year, 6, 1, tzinfo=UTC).timestamp()  # the reader's year is UTC's
        os.utime(folder / "auth.log", (stamp, stamp))
    summary, con = ingest_and_query(tmp_path / "case", tmp_path / "in")
    assert summary.events == 16 and summary.rejected == 0
    years = rows(con, "SELECT DISTINCT year(ts) AS y FROM events ORDER BY 1")
    assert [r["y"] for r in years] == [2017, 2018, 2020, 2021]  # Dec lines: the year before


def test_authlog_classic_year_rollover(tmp_path: Path) -> None:
    copy = tmp_path / "auth.log"
    shutil.copy(DATA / "authlog" / "auth.log", copy)
    reference = datetime(2020, 1, 1, 0, 10, tzinfo=UTC).timestamp()  # not the machine's zone
    os.utime(copy, (reference, reference))
    summary, con = ingest_and_query(tmp_path / "case", copy)
    assert summary.events == 7 and summary.rejected == 0
    got = rows(con, "SELECT * FROM events ORDER BY input_record")
    assert [r["ts"].year for r in got] == [2019, 2019, 2020, 2020, 2020, 2020, 2020]
    accepted = got[0]
    assert (accepted["action"], accepted["outcome"], accepted["user"], accepted["src_ip"]) == (
        "logon",
        "success",
        "alice",
        "203.0.113.7",
    )
    assert accepted["src_port"] == 51234 and accepted["host"] == "sg-app03"
    assert (got[1]["action"], got[1]["user"]) == ("logon_failed", "admin")
    assert (got[2]["action"], got[2]["user"]) == ("logon_failed", "oracle")
    sudo = got[3]
    assert sudo["action"] == "privilege_escalation" and sudo["subject_user"] == "alice"
    assert sudo["user"] == "root" and sudo["command_line"] == "/bin/cat /etc/shadow"
    assert got[4]["action"] == "privilege_escalation" and got[4]["subject_user"] == "alice"
    assert got[5]["action"] == "logoff"


def test_authlog_rfc5424_and_iso(tmp_path: Path) -> None:
    summary, con = ingest_and_query(tmp_path / "case", DATA / "authlog" / "secure-rfc5424.log")
    assert summary.events == 3
    got = rows(con, "SELECT * FROM events ORDER BY input_record")
    assert got[0]["ts"] == datetime(2020, 5, 4, 1, 15, 0, 123000)
    assert got[0]["user"] == "backup" and got[0]["auth_package"] == "publickey"
    assert got[1]["action"] == "logon_failed" and got[2]["ts"] == datetime(2020, 5, 4, 1, 17)


def test_timezone_applies_only_to_times_without_an_offset(tmp_path: Path) -> None:
    """``ingest --timezone``: classic syslog and offset-less mapped times are local time there
    (Tokyo: 9 hours ahead of UTC; New York: daylight saving honoured); times with an offset and
    EVTX times are the same whatever the zone; each file's zone is in the manifest."""
    classic = tmp_path / "auth.log"
    shutil.copy(DATA / "authlog" / "auth.log", classic)
    reference = datetime(2020, 1, 1, 0, 10, tzinfo=UTC).timestamp()  # not the machine's zone
    os.utime(classic, (reference, reference))
    mapped = tmp_path / "vpn.csv"
    mapped.write_text(
        "timestamp,username,client_ip,assigned_ip,device_id,device_managed,event,result\n"
        "2020-07-04 10:00:00,t.tanaka,198.51.100.77,10.250.0.12,PC-HOME-77,false,connect,success\n"
        "2020-07-04T10:00:00Z,t.tanaka,198.51.100.77,10.250.0.12,PC-HOME-77,false,connect,success\n"
    )
    inputs = [
        classic,
        DATA / "authlog" / "secure-rfc5424.log",
        mapped,
        DATA / "evtx" / "rdp-1149.evtx",
    ]
    times = {}
    for zone in ("UTC", "Asia/Tokyo", "America/New_York"):
        case_dir = tmp_path / zone.replace("/", "-")
        summary, con = ingest_and_query(
            case_dir, *inputs, timezone=zone, mappings=[DATA / "mapped" / "vpn.yaml"]
        )
        assert summary.rejected == 0 and summary.events > 10
        manifest = Case.open(case_dir).manifest()
        assert {e.timezone for e in manifest} == {zone}
        name = {e.input_id: Path(e.path).name for e in manifest}
        got = rows(con, "SELECT input_id, input_record, ts FROM events")
        times[zone] = {(name[r["input_id"]], r["input_record"]): r["ts"] for r in got}
    utc, tokyo, new_york = times["UTC"], times["Asia/Tokyo"], times["America/New_York"]
    classic_lines = [k for k in utc if k[0] == "auth.log"]
    assert len(classic_lines) == 7
    assert all(utc[k] - tokyo[k] == timedelta(hours=9) for k in classic_lines)
    # the first classic line, Dec 31 23:58 in New York (winter: UTC-5), is 04:58 UTC next day
    assert new_york[("auth.log", 1)] == datetime(2020, 1, 1, 4, 58, 1)
    with_offsets = [k for k in utc if k[0] in ("secure-rfc5424.log", "rdp-1149.evtx")]
    assert len(with_offsets) == 3 + 11
    assert all(utc[k] == tokyo[k] == new_york[k] for k in with_offsets)
    # CSV records are numbered by line, the header being line 1
    assert new_york[("vpn.csv", 2)] == datetime(2020, 7, 4, 14, 0)  # summer: UTC-4
    assert utc[("vpn.csv", 3)] == tokyo[("vpn.csv", 3)] == new_york[("vpn.csv", 3)]  # has Z


def test_unknown_timezone_is_refused_before_reading(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown time zone '\+09:00'.*Asia/Tokyo"):
        ingest(tmp_path / "case", [DATA / "authlog"], timezone="+09:00")
    assert not (tmp_path / "case").exists()


@pytest.mark.parametrize("name", ["conn.log", "conn.json"])
def test_zeek_conn_tsv_and_json_agree(tmp_path: Path, name: str) -> None:
    summary, con = ingest_and_query(tmp_path / "case", DATA / "zeek" / name)
    assert summary.files[0].format == "zeek" and summary.rejected == 0
    first = rows(con, "SELECT * FROM events ORDER BY ts LIMIT 1")[0]
    assert first["channel"] == "conn" and first["action"] == "network_connection"
    assert (first["src_ip"], first["dst_ip"], first["dst_port"]) == (
        "192.168.1.41",
        "192.168.1.4",
        53,
    )
    assert first["logon_id"] == "Cnsu5m395zFmE9ikp4"
    assert '"id.orig_h"' in first["raw"]


def test_zeek_dns_and_files(tmp_path: Path) -> None:
    summary, con = ingest_and_query(
        tmp_path / "case", DATA / "zeek" / "dns.log", DATA / "zeek" / "files.log"
    )
    counts = {Path(f.path).name: f.records_read for f in summary.files}
    assert counts == {"dns.log": 96, "files.log": 3}
    assert (
        rows(
            con, "SELECT count(*) AS n FROM events WHERE action='dns_query' AND query IS NOT NULL"
        )[0]["n"]
        > 0
    )
    transfers = rows(con, "SELECT * FROM events WHERE action = 'file_transfer'")
    assert len(transfers) == 3 and any(r["bytes_in"] == 7168 for r in transfers)


def test_lanl_auth_and_flows(tmp_path: Path) -> None:
    summary, con = ingest_and_query(tmp_path / "case", DATA / "lanl")
    formats = {Path(f.path).name: f.format for f in summary.files}
    assert formats == {"auth.txt": "lanl_auth", "flows.txt": "lanl_flows"}
    auth = rows(con, "SELECT * FROM events WHERE source_format='lanl_auth' ORDER BY input_record")
    assert len(auth) == 5
    net = auth[2]
    assert (
        net["user"],
        net["src_host"],
        net["dst_host"],
        net["logon_type"],
        net["auth_package"],
    ) == ("u292", "c17693", "c1003", 3, "NTLM")
    assert auth[3]["outcome"] == "failure" and auth[1]["action"] == "kerberos_service_ticket"
    flows = rows(con, "SELECT * FROM events WHERE source_format='lanl_flows' ORDER BY input_record")
    assert len(flows) == 3 and flows[2]["dst_port"] == 445 and flows[2]["bytes_out"] == 14210


def test_mapped_csv_and_json(tmp_path: Path) -> None:
    summary, con = ingest_and_query(
        tmp_path / "case",
        DATA / "mapped" / "vpn.csv",
        DATA / "mapped" / "proxy.jsonl",
        mappings=[DATA / "mapped"],
    )
    assert {f.format for f in summary.files} == {"vpn", "proxy"}
    vpn = rows(con, "SELECT * FROM events WHERE source_format='vpn' ORDER BY input_record")
    assert len(vpn) == 4
    assert (vpn[0]["action"], vpn[0]["user"], vpn[0]["src_ip"], vpn[0]["src_host"]) == (
        "remote_access",
        "t.tanaka",
        "198.51.100.77",
        "pc-home-77",
    )
    assert vpn[1]["outcome"] == "failure" and vpn[1]["dst_ip"] is None
    assert vpn[2]["action"] == "logoff"
    assert vpn[3]["user"] == "=cmd|' /c calc'!a0"  # data, kept verbatim (lower-cased account)
    assert [r["input_record"] for r in vpn] == [2, 3, 4, 5]
    proxy = rows(con, "SELECT * FROM events WHERE source_format='proxy' ORDER BY ts")
    assert len(proxy) == 2 and proxy[0]["ts"] == datetime(2020, 5, 4, 2, 0)
    assert proxy[1]["query"] == "http://203.0.113.50/b" and proxy[1]["bytes_out"] == 90


def test_mapping_discovered_beside_inputs(tmp_path: Path) -> None:
    logs = tmp_path / "export" / "logs"
    logs.mkdir(parents=True)
    shutil.copy(DATA / "mapped" / "vpn.csv", logs / "vpn-2020-05.csv")
    (tmp_path / "export" / "mappings").mkdir()
    shutil.copy(DATA / "mapped" / "vpn.yaml", tmp_path / "export" / "mappings" / "vpn.yaml")
    summary, _ = ingest_and_query(tmp_path / "case", logs)
    assert summary.files[0].format == "vpn" and summary.events == 4


def test_gz_and_zip_read_in_place(tmp_path: Path) -> None:
    import gzip
    import zipfile

    src = DATA / "winlogbeat" / "winlogbeat-sample.json"
    gz = tmp_path / "in" / "wlb.json.gz"
    gz.parent.mkdir()
    gz.write_bytes(gzip.compress(src.read_bytes()))
    with zipfile.ZipFile(tmp_path / "in" / "bundle.zip", "w") as zf:
        zf.write(DATA / "authlog" / "auth.log", "var/log/auth.log")
        zf.write(DATA / "evtx" / "sysmon-1.evtx", "Sysmon.evtx")
    summary, _ = ingest_and_query(tmp_path / "case", tmp_path / "in")
    by_name = {f.path.split("/")[-1]: f for f in summary.files}
    assert by_name["wlb.json.gz"].records_read == 5
    assert by_name["bundle.zip!Sysmon.evtx"].records_read == 1
    assert by_name["auth.log"].records_read == 7
    import hashlib

    assert by_name["wlb.json.gz"].sha256 == hashlib.sha256(gz.read_bytes()).hexdigest()


def test_every_reader_emits_only_schema_actions_and_outcomes(tmp_path: Path) -> None:
    """The analytics select events by action and outcome; a value outside the schema's lists
    (a typo in a mapping, say) would hide those events from every analytic without a word."""
    from breachtrace.schema import ACTIONS, OUTCOMES

    inputs = [DATA / d for d in ("authlog", "evtx", "lanl", "mapped", "nxlog", "windows_json",
                                 "winlogbeat", "zeek")]  # fmt: skip
    summary, con = ingest_and_query(tmp_path / "case", *inputs, mappings=[DATA / "mapped"])
    formats = {f.format for f in summary.files if f.status == "ingested"}
    assert {"authlog", "evtx", "lanl_auth", "lanl_flows", "nxlog", "winlogbeat", "zeek"} <= formats
    got = rows(con, "SELECT DISTINCT source_format, action, outcome FROM events")
    assert {r["action"] for r in got} - set(ACTIONS) == set()
    assert {r["outcome"] for r in got} - {*OUTCOMES, None} == set()
    assert len({r["action"] for r in got}) >= 15  # the fixtures exercise most categories


def test_declared_normalize_columns_are_what_the_sql_gives() -> None:
    """Readers that name their SELECT's columns spare the runner binding it; the names must
    be the ones DuckDB binds (a drift would silently NULL a column)."""
    declared = [r for r in all_readers() if r.normalize_columns() is not None]
    assert {r.name for r in declared} >= {"evtx", "nxlog", "winlogbeat"}
    con = connect()
    for reader in declared:
        con.register("batch_in", pa.table({
            "input_record": pa.array([], pa.int64()), reader.raw_column: pa.array([], pa.string()),
            "input_id": pa.array([], pa.string()), "row_no": pa.array([], pa.int64()),
        }))  # fmt: skip
        sql = expand_macros(reader.normalize_sql("batch_in"))
        bound = con.sql(f"SELECT * FROM ({sql}) LIMIT 0").columns
        assert list(reader.normalize_columns() or ()) == bound, reader.name
