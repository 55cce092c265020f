"""Each analytic on hand-written events in the normalized schema (one small case per test).

Cases are written straight into the store (no reader) so each rule can be pinned exactly; the
simulated and real-data tests run the same analytics through the real readers.
"""

from __future__ import annotations

import random
import string
from pathlib import Path
from typing import Any

import orjson
import pytest

from breachtrace.detect.behaviour import detect
from breachtrace.schema import Finding

from detect_support import t, write_events


def run(case_dir: Path, only: str, config: Path | None = None) -> list[Finding]:
    summary = detect(case_dir, only=[only], config_path=config, write=False)
    return [f for a in summary.analytics for f in a.items]


def kinds(findings: list[Finding]) -> dict[str, list[Finding]]:
    out: dict[str, list[Finding]] = {}
    for f in findings:
        out.setdefault(f.kind, []).append(f)
    return out


def logon(
    ts: Any, host: str, user: str, src: str | None, ltype: int = 3, **kw: Any
) -> dict[str, Any]:
    return {"ts": ts, "host": host, "event_code": 4624, "action": "logon", "outcome": "success",
            "channel": "Security", "user": user, "logon_type": ltype, "src_host": src, **kw}  # fmt: skip


# -- lateral --------------------------------------------------------------------------------------
def test_lateral_chain_with_a_credential_switch_is_an_alarm_hop_by_hop(tmp_path: Path) -> None:
    rows = []
    for d in range(20):  # alice works at ws-a and reads from srv1 every day: routine
        rows.append(logon(t(d, 8), "ws-a", "alice", "ws-a", ltype=2, src_ip="127.0.0.1"))
        rows.append(logon(t(d, 9), "srv1", "alice", "ws-a", src_ip="10.0.0.10"))
        rows.append(logon(t(d, 9), "ws-b", "bob", "ws-b", ltype=2, src_ip="127.0.0.1"))
        rows.append(logon(t(d, 10), "srv1", "bob", "ws-b", src_ip="10.0.0.11"))
        rows.append(logon(t(d, 11), "srv1", "carol", "ws-c", src_ip="10.0.0.12"))
    # day 16, 02:00: an admin credential appears on ws-a (alice's) and goes on to srv2, srv3
    rows.append(logon(t(16, 2), "srv2", "admin1", "ws-a", src_ip="10.0.0.10", logon_id="0x51"))
    rows.append(logon(t(16, 2, 40), "srv3", "admin1", "srv2", ltype=10, src_ip="10.0.0.20"))
    write_events(tmp_path / "case", rows)
    found = kinds(run(tmp_path / "case", "lateral"))
    chains = found["lateral_chain"]
    assert len(chains) == 1 and "lateral_hop" not in found
    chain = chains[0]
    hops = orjson.loads(chain.details)["hops"]
    assert [(h["src"], h["dst"], h["account"]) for h in hops] == [
        ("ws-a", "srv2", "admin1"), ("srv2", "srv3", "admin1")]  # fmt: skip
    assert hops[0]["time"] < hops[1]["time"]
    assert "hopper_alarm" in chain.tags and chain.severity in ("high", "critical")
    assert orjson.loads(chain.details)["causal_users"] == ["alice"]
    assert {"T1021.002", "T1021.001", "T1078"} <= set(chain.techniques)
    assert "alice" in chain.explanation and chain.evidence
    # the baseline flags new edges after the learning window (10 days here: half the span)
    baseline = found["lateral_new_edge"]
    assert {(f.hosts[0], f.hosts[1], f.users[0]) for f in baseline} == {
        ("ws-a", "srv2", "admin1"), ("srv2", "srv3", "admin1")}  # fmt: skip


def test_lateral_remote_exec_admin_share_and_alt_credentials(tmp_path: Path) -> None:
    rows = [
        logon(t(0, 9), "srv1", "carol", "ws-b", src_ip="10.0.0.11", logon_id="0xabc"),
        {"ts": t(0, 9, 0, 1), "host": "srv1", "event_code": 4672, "action": "privilege_assigned",
         "user": "carol", "logon_id": "0xabc"},
        {"ts": t(0, 9, 0, 20), "host": "srv1", "event_code": 4697, "action": "service_install",
         "user": "carol", "logon_id": "0xabc", "query": "PSEXESVC",
         "file_path": "%SystemRoot%\\PSEXESVC.exe"},
        {"ts": t(0, 10), "host": "srv1", "event_code": 5140, "action": "share_access",
         "user": "dave", "src_ip": "10.0.0.9", "file_path": "\\\\*\\ADMIN$", "logon_id": "0x9"},
        logon(t(0, 11), "ws-b", "eve", None, ltype=9, src_ip="::1", subject_user="eve"),
    ]  # fmt: skip
    write_events(tmp_path / "case", rows)
    found = kinds(run(tmp_path / "case", "lateral"))
    exec_ = found["lateral_remote_exec"][0]
    assert set(exec_.hosts) == {"ws-b", "srv1"} and exec_.users == ("carol",)
    assert "T1569.002" in exec_.techniques and "PSEXESVC" in exec_.explanation
    share = found["lateral_admin_share"][0]
    assert share.hosts == ("10.0.0.9", "srv1") and share.users == ("dave",)
    assert found["lateral_alt_credentials"][0].techniques[0] == "T1550.002"
    # a case shorter than min_history_hours: every edge reported, marked unjudged
    assert all("too short" in f.explanation for f in found["lateral_new_edge"])


def install(ts: Any, host: str, service: str, image: str) -> dict[str, Any]:
    """A System 7045: names the service and its program, never the logon session."""
    return {"ts": ts, "host": host, "event_code": 7045, "action": "service_install",
            "channel": "System", "user": "LocalSystem", "query": service, "file_path": image}  # fmt: skip


def privileged(ts: Any, host: str, user: str, logon_id: str) -> dict[str, Any]:
    return {"ts": ts, "host": host, "event_code": 4672, "action": "privilege_assigned",
            "user": user, "logon_id": logon_id}  # fmt: skip


def test_lateral_remote_exec_ties_a_service_install_to_the_logon_only_with_evidence(
    tmp_path: Path,
) -> None:
    rows = [
        # an admin reads a file server; 80 s later IT's agent roll-out installs a service there
        logon(t(0, 9), "fs1", "ismail", "lt1", src_ip="10.0.0.21", logon_id="0x61"),
        privileged(t(0, 9), "fs1", "ismail", "0x61"),
        install(t(0, 9, 1, 20), "fs1", "Acme VPN Client Service",
                "C:\\Program Files\\Acme\\VPN\\vpnsvc.exe"),
        # PsExec with default auditing (no 4697, no share records): its service program lands
        # in the ADMIN$ root
        logon(t(0, 10), "srv2", "admin1", "ws-b", src_ip="10.0.0.11", logon_id="0x72"),
        privileged(t(0, 10), "srv2", "admin1", "0x72"),
        install(t(0, 10, 0, 3), "srv2", "PSEXESVC", "%SystemRoot%\\PSEXESVC.exe"),
        # smbexec by an unprivileged-looking session (no 4672): the account opened the service
        # control pipe from the same address just before the install
        logon(t(0, 11), "srv3", "admin1", "ws-b", src_ip="10.0.0.11", logon_id="0x83"),
        {"ts": t(0, 11, 0, 1), "host": "srv3", "event_code": 5145, "action": "share_access",
         "user": "admin1", "src_ip": "10.0.0.11", "logon_id": "0x83",
         "file_path": "\\\\*\\IPC$\\svcctl"},
        install(t(0, 11, 0, 2), "srv3", "BTOBTO",
                "%COMSPEC% /Q /c echo dir ^> \\\\127.0.0.1\\C$\\__output 2^>^&1 > run.bat"),
    ]  # fmt: skip
    write_events(tmp_path / "case", rows)
    found = kinds(run(tmp_path / "case", "lateral"))
    execs = {f.hosts[1]: f for f in found["lateral_remote_exec"]}
    assert sorted(execs) == ["srv2", "srv3"]  # the roll-out on fs1 is not ismail's doing
    psexec, smbexec = execs["srv2"], execs["srv3"]
    assert psexec.users == ("admin1",) and "T1569.002" in psexec.techniques
    assert orjson.loads(psexec.details)["links"] == [
        "privileged service install of a program where remote tools drop it"
    ]
    assert "PSEXESVC" in psexec.explanation
    assert orjson.loads(smbexec.details)["links"] == [
        "service install after an admin share or the service control pipe was opened"
    ]


# -- credentials ---------------------------------------------------------------------------------
def fail(ts: Any, host: str, user: str, ip: str) -> dict[str, Any]:
    return {"ts": ts, "host": host, "event_code": 4625, "action": "logon_failed",
            "outcome": "failure", "user": user, "src_ip": ip, "logon_type": 3}  # fmt: skip


def test_credentials_spray_brute_force_and_failures_then_success(tmp_path: Path) -> None:
    rows = [fail(t(1, 3, m), "dc1", f"user{m:02d}", "10.0.5.5") for m in range(15)]
    rows.append(logon(t(1, 3, 20), "dc1", "user07", None, src_ip="10.0.5.5"))
    rows += [fail(t(2, 4, m / 2), "dc1", "svc_sql", "10.0.6.6") for m in range(25)]
    rows += [{"ts": t(3, 5, m), "host": "web1", "action": "logon_failed", "outcome": "failure",
              "source_format": "authlog", "user": f"u{m}", "src_ip": "198.51.100.7"}
             for m in range(15)]  # fmt: skip
    write_events(tmp_path / "case", rows)
    found = kinds(run(tmp_path / "case", "credentials"))
    spray = found["credential_spray"]
    assert len(spray) == 1 and spray[0].addresses == ("10.0.5.5",)
    assert "failures_then_success" in spray[0].tags and spray[0].severity == "critical"
    assert spray[0].users[0] == "user07"
    brute = found["credential_brute_force"]
    assert (
        len(brute) == 1
        and brute[0].users == ("svc_sql",)
        and "failures_then_success" not in brute[0].tags
    )
    # the outside scanner never got in: not reported by default ...
    assert all("198.51.100.7" not in f.addresses for f in spray + brute)
    # ... unless asked to
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("credentials:\n  external_needs_success: false\n")
    again = kinds(run(tmp_path / "case", "credentials", cfg))
    assert any("198.51.100.7" in f.addresses for f in again["credential_spray"])


def vpn(
    ts: Any, user: str, client: str, assigned: str, device: str, managed: str
) -> dict[str, Any]:
    raw = orjson.dumps({"device_managed": managed}).decode()
    return {"ts": ts, "action": "remote_access", "outcome": "success", "source_format": "vpn",
            "channel": "vpn", "user": user, "src_ip": client, "dst_ip": assigned,
            "src_host": device, "raw": raw}  # fmt: skip


def test_credentials_unusual_login_after_learning(tmp_path: Path) -> None:
    rows = []
    for d in range(20):
        rows.append(
            vpn(t(d, 8, 30), "erin", "203.0.113.5", f"10.9.0.{d + 10}", "erin-laptop", "true")
        )
        rows.append(logon(t(d, 9), "fs1", "erin", "erin-laptop", src_ip=f"10.9.0.{d + 10}"))
        rows.append(
            vpn(t(d, 8, 40), "frank", "203.0.113.6", f"10.9.1.{d + 10}", "frank-pc", "true")
        )
    # day 21, 03:00: erin from a new address, on an unmanaged device, at night; reaches fs2
    rows.append(fail(t(21, 2, 58), "vpn-gw", "erin", "192.0.2.77") | {"action": "logon_failed"})
    rows.append(vpn(t(21, 3), "erin", "192.0.2.77", "10.9.0.99", "desktop-x1", "false"))
    rows.append(logon(t(21, 3, 5), "fs2", "erin", "desktop-x1", src_ip="10.9.0.99"))
    write_events(tmp_path / "case", rows)
    found = kinds(run(tmp_path / "case", "credentials"))
    odd = found["credential_anomalous_login"]
    assert [f.users for f in odd] == [("erin",)]
    f = odd[0]
    assert "192.0.2.77" in f.explanation and "fs2" in f.hosts
    logins = orjson.loads(f.details)["logins"]
    assert logins[0]["sub_scores"]["unusual_hour"] == 1.0
    assert logins[0]["sub_scores"]["risky_source"] == 1.0


# -- bulk -----------------------------------------------------------------------------------------
def read(ts: Any, user: str, path: str, logon_id: str) -> dict[str, Any]:
    return {"ts": ts, "host": "fs1", "event_code": 5145, "action": "share_access", "user": user,
            "logon_id": logon_id, "src_ip": "10.0.0.50", "file_path": path}  # fmt: skip


def test_bulk_read_against_own_and_peer_baselines(tmp_path: Path) -> None:
    rng = random.Random(3)
    rows = []
    users = [f"user{i}" for i in range(10)] + ["mallory"]
    for d in range(15):
        for u in users:
            for k in range(5):
                folder = f"client{rng.randrange(4)}"
                rows.append(
                    read(t(d, 9 + k), u, f"\\\\*\\data\\{u}\\{folder}\\doc{k}.docx", f"{u}-{d}")
                )
    for k in range(80):  # mallory, day 15: 80 files in other people's folders, every 3 s
        rows.append(
            read(t(15, 22, 0, 3 * k), "mallory", f"\\\\*\\data\\boss\\c{k % 20}\\f{k}.pdf", "m-x")
        )
    rows.append(read(t(15, 22, 5), "mallory", "\\\\*\\data\\boss\\desktop.ini", "m-x"))
    write_events(tmp_path / "case", rows)
    found = kinds(run(tmp_path / "case", "bulk"))["bulk_read"]
    assert len(found) == 1
    f = found[0]
    details = orjson.loads(f.details)
    assert f.users == ("mallory",) and details["files"] == 80  # desktop.ini is not data
    assert "fast_enumeration" in f.tags and "new_folders" in f.tags
    assert f.first_ts == t(15, 22) and len(f.files) == 80


# -- beacon ---------------------------------------------------------------------------------------
def conn(ts: Any, src: str, dst: str, port: int, size: int) -> dict[str, Any]:
    return {"ts": ts, "source_format": "zeek", "channel": "conn", "action": "network_connection",
            "src_ip": src, "dst_ip": dst, "dst_port": port, "bytes_out": size, "duration": 0.4}  # fmt: skip


def test_beacon_regular_series_and_dns_tunnel(tmp_path: Path) -> None:
    rng = random.Random(5)
    rows = []
    ts = t(0)
    while ts < t(3):
        rows.append(conn(ts, "10.1.1.5", "93.184.216.34", 443, 500 + rng.randrange(-20, 20)))
        ts = ts + (t(0, 0, 10) - t(0)) * (1 + rng.uniform(-0.1, 0.1))
    for _ in range(150):  # a browsing-like series: irregular times and sizes
        rows.append(
            conn(t(rng.uniform(0, 3)), "10.1.1.6", "93.184.216.35", 443, rng.randrange(200, 90000))
        )
    for i in range(120):
        label = "".join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(40))
        rows.append(
            {
                "ts": t(1, 0, i),
                "source_format": "zeek",
                "channel": "dns",
                "action": "dns_query",
                "src_ip": "10.1.1.7",
                "query": f"{label}.t.evil-dns.net",
            }
        )
        rows.append({"ts": t(1, 0, i), "source_format": "zeek", "channel": "dns",
                     "action": "dns_query", "src_ip": "10.1.1.8", "query": "www.example.com"})  # fmt: skip
    write_events(tmp_path / "case", rows)
    found = kinds(run(tmp_path / "case", "beacon"))
    beacons = found["beacon"]
    assert [b.addresses[0] for b in beacons] == ["93.184.216.34"]
    parts = orjson.loads(beacons[0].details)["sub_scores"]
    assert parts["timestamp"] > 0.8 and parts["data_size"] > 0.8
    tunnel = found["dns_tunnel"]
    assert len(tunnel) == 1 and "evil-dns.net" in tunnel[0].title


# -- tamper ---------------------------------------------------------------------------------------
def rec(
    record: int, ts: Any, host: str = "dc1", channel: str = "Security", **kw: Any
) -> dict[str, Any]:
    return {"ts": ts, "host": host, "channel": channel, "event_code": 4624, "action": "logon",
            "record_id": record, **kw}  # fmt: skip


def test_tamper_gaps_clears_reversals_and_clear_commands(tmp_path: Path) -> None:
    rows = [rec(i, t(0, 0, i)) for i in range(1, 301) if not 101 <= i <= 150]
    rows[-1] = rec(300, t(0, 0, 200))  # dated before its predecessor (record 299)
    rows.append(
        {
            "ts": t(0, 3),
            "host": "dc1",
            "channel": "Security",
            "event_code": 1102,
            "action": "log_cleared",
            "user": "mallory",
            "query": "Security",
        }
    )
    rows += [rec(i, t(0, 1, i), host="ws9", channel="Application") for i in (1, 50, 100, 150)]
    rows.append({"ts": t(0, 4), "host": "ws9", "event_code": 4688, "action": "process_start",
                 "user": "mallory", "command_line": '"C:\\Windows\\system32\\wevtutil.exe" cl Security'})  # fmt: skip
    write_events(tmp_path / "case", rows)
    summary = detect(tmp_path / "case", only=["tamper"], write=False)
    found = kinds(summary.analytics[0].items)
    gap = found["log_gap"]
    assert len(gap) == 1
    details = orjson.loads(gap[0].details)
    assert (details["first_missing_record"], details["last_missing_record"]) == (101, 150)
    assert gap[0].first_ts == t(0, 0, 100) and gap[0].last_ts == t(0, 0, 151)
    assert found["log_cleared"][0].users == ("mallory",)
    assert found["log_time_reversal"][0].hosts == ("dc1",)
    assert found["log_clear_command"][0].hosts == ("ws9",)
    assert any("sparse" in n and "ws9/Application" in n for n in summary.analytics[0].not_judged)


def test_credentials_impossible_travel_and_fanout(tmp_path: Path) -> None:
    nets = tmp_path / "networks.csv"
    nets.write_text("cidr,site,country,internal,vpn_pool\n10.1.0.0/16,tyo,Japan,true,false\n"
                    "10.5.0.0/16,sin,Singapore,true,false\n")  # fmt: skip
    rows = []
    for d in range(8):  # gina reaches one or two servers a day ...
        rows.append(logon(t(d, 9), "srv1", "gina", "ws-g", src_ip="10.1.16.5"))
        rows.append(logon(t(d, 10), "srv2", "gina", "ws-g", src_ip="10.1.16.5"))
    for k in range(14):  # ... then fourteen in one day
        rows.append(logon(t(8, 1, k), f"host{k:02d}", "gina", "ws-g", src_ip="10.1.16.5"))
    for d in range(8):  # ivan tends twelve servers, two or three a day ...
        for k in (d * 2 % 12, (d * 2 + 1) % 12):
            rows.append(logon(t(d, 11), f"app{k:02d}", "ivan", "ws-i", src_ip="10.1.16.7"))
    for k in range(12):  # ... and sweeps all twelve one day: none new to him, no spread
        rows.append(logon(t(8, 2, k), f"app{k:02d}", "ivan", "ws-i", src_ip="10.1.16.7"))
    # kim is bursty by trade: two servers most days, nine or ten on some; twelve new ones on
    # day 8 is three times her median day but not improbable for her
    for d, n in enumerate((2, 2, 9, 2, 10, 2, 2, 9, 12)):
        for k in range(n):
            rows.append(logon(t(d, 12, k), f"k{d}-{k:02d}", "kim", "ws-k", src_ip="10.1.16.8"))
    # henry in Tokyo, then from Singapore forty minutes later
    rows.append(logon(t(3, 9), "srv1", "henry", None, src_ip="10.1.16.9"))
    rows.append(logon(t(3, 9, 40), "srv2", "henry", None, src_ip="10.5.16.9"))
    case = write_events(tmp_path / "case", rows)
    from breachtrace.context import load_context

    load_context(case, networks=nets)  # stored in the case, used by detect
    found = kinds(run(tmp_path / "case", "credentials"))
    travel = found["credential_impossible_travel"]
    assert [f.users for f in travel] == [("henry",)] and "Singapore" in travel[0].title
    fan = found["credential_fanout"]
    assert [f.users for f in fan] == [("gina",)] and len(fan[0].hosts) == 14
    assert "14 of them never before" in fan[0].explanation


def test_beacon_long_connections(tmp_path: Path) -> None:
    rows = [
        conn(t(0, h), "10.1.1.9", "203.0.113.50", 8443, 2000) | {"duration": 5400.0}
        for h in (1, 3, 5)
    ]
    rows.append(conn(t(0, 2), "10.1.1.9", "203.0.113.51", 443, 900))
    write_events(tmp_path / "case", rows)
    found = kinds(run(tmp_path / "case", "beacon"))
    long = found["beacon_long_connection"]
    assert [f.addresses[0] for f in long] == ["203.0.113.50"]
    assert "4.5 hours" in long[0].explanation


def test_beacon_domain_allowlist_applies_to_long_connections(tmp_path: Path) -> None:
    rows = []
    for dst, name in (("203.0.113.50", "sync.vendor.example"), ("203.0.113.60", "c2.evil.example")):
        rows += [conn(t(0, h), "10.1.1.9", dst, 443, 2000) | {"duration": 5400.0} for h in (1, 3)]
        raw = orjson.dumps({"query": name, "answers": [dst]}).decode()
        rows.append({"ts": t(0, 0, 59), "source_format": "zeek", "channel": "dns",
                     "action": "dns_query", "src_ip": "10.1.1.9", "query": name, "raw": raw})  # fmt: skip
    write_events(tmp_path / "case", rows)
    every = kinds(run(tmp_path / "case", "beacon"))["beacon_long_connection"]
    assert sorted(f.addresses[0] for f in every) == ["203.0.113.50", "203.0.113.60"]
    assert "(sync.vendor.example)" in every[0].explanation + every[1].explanation
    config = tmp_path / "allow.yaml"
    config.write_text("beacon:\n  allowlist:\n    domains: ['*.vendor.example']\n")
    kept = kinds(run(tmp_path / "case", "beacon", config))["beacon_long_connection"]
    assert [f.addresses[0] for f in kept] == ["203.0.113.60"]
    assert orjson.loads(kept[0].details)["destination_names"] == ["c2.evil.example"]


# -- remote access opened ---------------------------------------------------------------------------
def test_remote_access_opened_shares_services_winrm_and_remote_dcom(tmp_path: Path) -> None:
    ps = {"channel": "Microsoft-Windows-PowerShell/Operational", "event_code": 4104,
          "action": "process_start", "outcome": "success"}  # fmt: skip
    rows = [
        {"ts": t(1, 9), "host": "fs1", "event_code": 5142, "action": "share_change",
         "channel": "Security", "user": "mallory", "query": "\\\\*\\loot$",
         "file_path": "C:\\loot"},
        {"ts": t(1, 10), "host": "ws1", **ps,
         "command_line": "Add-WindowsCapability -Online -Name OpenSSH.Server~~~~0.0.1.0"},
        {"ts": t(1, 11), "host": "jump", **ps, "command_line":
         '$a = [activator]::CreateInstance([type]::GetTypeFromProgID("MMC20.Application", "fs1"))'},
        # a local COM object (no server argument) is no lateral movement
        {"ts": t(1, 12), "host": "jump", **ps, "command_line":
         '$x = [activator]::CreateInstance([type]::GetTypeFromProgID("Excel.Application"))'},
        {"ts": t(1, 13), "host": "dc1", "event_code": 4656, "action": "file_access",
         "channel": "Security", "user": "mallory", "query": "WS-Management Listener"},
        {"ts": t(1, 14), "host": "ws2", "event_code": 7045, "action": "service_install",
         "channel": "System", "user": "mallory", "query": "OpenSSH SSH Server",
         "file_path": "C:\\Windows\\System32\\OpenSSH\\sshd.exe"},
        {"ts": t(1, 15), "host": "ws2", "event_code": 7045, "action": "service_install",
         "channel": "System", "user": "admin", "query": "Print Spooler Helper",
         "file_path": "C:\\Windows\\helper.exe"},
    ]  # fmt: skip
    write_events(tmp_path, rows)
    found = kinds(run(tmp_path, "remote_access"))
    assert sorted(found) == [
        "dcom_remote_activation", "remote_service_enabled", "share_opened",
        "winrm_listener_session",
    ]  # fmt: skip
    assert [f.hosts for f in found["share_opened"]] == [("fs1",)]
    assert "loot$" in found["share_opened"][0].explanation
    assert sorted(f.hosts[0] for f in found["remote_service_enabled"]) == ["ws1", "ws2"]
    (dcom,) = found["dcom_remote_activation"]
    assert dcom.hosts == ("jump",) and "MMC20" in dcom.explanation
    assert dcom.techniques == ("T1021.003",)
    assert found["winrm_listener_session"][0].users == ("mallory",)


def test_count_tail_matches_poisson_and_widens_for_bursty_series() -> None:
    from math import exp, factorial

    from breachtrace.detect.behaviour.tails import count_tail

    poisson = 1 - sum(exp(-2.0) * 2.0**j / factorial(j) for j in range(10))
    assert count_tail(10, 2.0, 2.0) == pytest.approx(poisson, rel=1e-9)
    assert count_tail(10, 2.0, 1.0) == pytest.approx(poisson, rel=1e-9)  # under-dispersed
    assert count_tail(10, 2.0, 8.0) > 100 * poisson  # same mean, four times the spread
    assert count_tail(0, 3.0, 3.0) == 1.0


def test_tamper_silence_at_the_start_of_a_case_judged_from_the_days_after(
    tmp_path: Path,
) -> None:
    # The case starts on a Monday (day 0). ws7's Sysmon log records five events an hour, day
    # and night, and goes silent on Friday 13:00 until Saturday 03:00: the Saturday hours have
    # no weekend before them, only the weekends after. ws8 logs on weekdays in office hours
    # only: its quiet first weekend is its usual level, no silence.
    rows: list[dict[str, Any]] = []
    for d in range(21):
        for h in range(24):
            silent = (d == 4 and h >= 13) or (d == 5 and h < 3)
            for k in range(0 if silent else 5):
                rows.append({"ts": t(d, h, 10 * k + 1), "host": "ws7", "event_code": 1,
                             "channel": "Microsoft-Windows-Sysmon/Operational",
                             "action": "process_start"})  # fmt: skip
            if t(d).weekday() < 5 and 8 <= h < 18:
                for k in range(5):
                    rows.append({"ts": t(d, h, 10 * k + 2), "host": "ws8", "event_code": 4688,
                                 "channel": "Security", "action": "process_start"})  # fmt: skip
    write_events(tmp_path / "case", rows)
    found = kinds(run(tmp_path / "case", "tamper"))
    silences = found.get("log_silence", [])
    assert [(f.hosts, f.first_ts, f.last_ts) for f in silences] == [(("ws7",), t(4, 13), t(5, 3))]


def test_tamper_silence_weekends_in_a_zone_far_east_of_utc(tmp_path: Path) -> None:
    # A domain controller in Melbourne (UTC+11) logs a logon burst at 06-09 local on weekdays,
    # a little through the working day and a trickle at night and on weekends. Its busiest
    # hours put its clock at UTC+14, which is also UTC-10 a day apart: read as UTC-10, each
    # quiet Saturday morning was judged against the weekday burst and reported as a silence.
    # The one real silence is Wednesday 09:00-13:00 local, when it logged nothing.
    rows: list[dict[str, Any]] = []
    weekday = {6: 100, 7: 300, 8: 200} | {h: 6 for h in range(9, 18)}
    for day in range(21):
        for h in range(24):
            n = 4 if day % 7 >= 5 else weekday.get(h, 4)
            if day == 2 and 9 <= h < 13:
                n = 0
            for k in range(n):
                rows.append({"ts": t(day, h - 11, 59 * k / n), "host": "mel-dc",
                             "event_code": 4624, "channel": "Security",
                             "action": "logon"})  # fmt: skip
    write_events(tmp_path / "case", rows)
    found = kinds(run(tmp_path / "case", "tamper"))
    silences = [(f.hosts, f.first_ts, f.last_ts) for f in found.get("log_silence", [])]
    assert silences == [(("mel-dc",), t(2, 9 - 11), t(2, 13 - 11))]
