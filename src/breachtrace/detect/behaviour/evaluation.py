"""Scoring behavioural findings against a simulation's truth.json (tests and benchmarks).

- ``inject_sprays``: the simulator injects no password sprays, so this writes two in real
  formats beside a simulation's logs (NXLog JSON 4625s against a domain controller from an
  internal address, then a success; sshd failures from an outside address against an exposed
  Linux server, then "Accepted password"), and records them in ``sprays.json``.
- ``malicious_uids``: the event_uid of every record truth.json lists as malicious (and of every
  injected spray record), found again in the case.
- ``evaluate``: per analytic, precision (findings whose evidence holds a malicious record, or
  that match a truth item) and recall of the truth items: hops (by lateral findings; and by any
  finding: credential findings whose sessions reached the host and bulk reads by the account
  on it for VPN hops, log-gap findings naming who connected while the hop's logon records were
  deleted), entry points, accounts, hosts, beacons, log gaps and
  sprays; and the never-seen-edge baseline's alerts per day against the path analytic's.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from breachtrace.case import Case

PATH_KINDS = {"lateral_chain", "lateral_hop", "lateral_remote_exec", "lateral_admin_share"}
BASELINE_KINDS = {"lateral_new_edge"}
INJECTED_DIR = "injected"


# -- injected sprays ------------------------------------------------------------------------------
def inject_sprays(sim_dir: Path, seed: int = 7) -> list[dict[str, Any]]:
    """Write one internal Windows spray and one external SSH spray, both ending in a success,
    under ``sim_dir/logs/injected`` (before ingest); returns and saves their truth."""
    sim_dir = Path(sim_dir)
    truth = json.loads((sim_dir / "truth.json").read_text())
    rng = np.random.default_rng(seed)
    with open(sim_dir / "assets.csv", newline="") as fh:
        assets = list(csv.DictReader(fh))
    with open(sim_dir / "identities.csv", newline="") as fh:
        users = [r["user"] for r in csv.DictReader(fh)]
    start = dt.datetime.fromisoformat(truth["period"]["start"].replace("Z", "+00:00"))
    end = dt.datetime.fromisoformat(truth["period"]["end"].replace("Z", "+00:00"))
    out_dir = sim_dir / "logs" / INJECTED_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    sprays = []
    dc = next(a for a in assets if a["role"] == "domain controller")
    linux = next(a for a in assets if a["role"] == "linux server")
    when = start + (end - start) * float(rng.uniform(0.55, 0.75))
    targets = [str(u) for u in rng.choice(users, size=min(25, len(users)), replace=False)]
    ip = f"10.{int(dc['ip'].split('.')[1])}.250.{int(rng.integers(10, 250))}"
    lines = []
    t = when
    for user in targets:
        t += dt.timedelta(seconds=float(rng.uniform(5, 60)))
        lines.append(_win_4625(dc["host"], t, user, ip))
    won = targets[-1]
    t += dt.timedelta(minutes=3)
    lines.append(_win_4624(dc["host"], t, won, ip))
    (out_dir / "spray-dc.json").write_text("\n".join(lines) + "\n")
    sprays.append({"source": ip, "host": dc["host"], "accounts": targets, "success": won,
                   "start": when.isoformat(), "end": t.isoformat()})  # fmt: skip
    when2 = start + (end - start) * float(rng.uniform(0.3, 0.5))
    ext = f"{int(rng.integers(11, 90))}.{int(rng.integers(0, 255))}.{int(rng.integers(0, 255))}.{int(rng.integers(1, 254))}"
    names = ["admin", "oracle", "deploy", "backup", "git", "jenkins", "ansible", "postgres",
             "support", "test", "ubuntu", "centos", "ftp", "www", "dev"]  # fmt: skip
    t = when2
    auth = []
    for name in names:
        t += dt.timedelta(seconds=float(rng.uniform(2, 20)))
        auth.append(
            _sshd(
                t,
                linux["host"],
                f"Failed password for invalid user {name} from {ext} port {int(rng.integers(30000, 60000))} ssh2",
            )
        )
    t += dt.timedelta(minutes=2)
    auth.append(
        _sshd(
            t,
            linux["host"],
            f"Accepted password for deploy from {ext} port {int(rng.integers(30000, 60000))} ssh2",
        )
    )
    path = out_dir / "auth-spray.log"
    path.write_text("\n".join(auth) + "\n")
    stamp = end.timestamp()
    os.utime(path, (stamp, stamp))  # classic syslog has no year: the reader takes it from mtime
    sprays.append({"source": ext, "host": linux["host"], "accounts": names, "success": "deploy",
                   "start": when2.isoformat(), "end": t.isoformat()})  # fmt: skip
    (sim_dir / "sprays.json").write_text(json.dumps(sprays, indent=1))
    return sprays


def _win_4625(host: str, t: dt.datetime, user: str, ip: str) -> str:
    return orjson.dumps({
        "EventID": 4625, "Channel": "Security", "Hostname": f"{host}.corp.example",
        "SourceName": "Microsoft-Windows-Security-Auditing", "@timestamp": _iso(t),
        "TargetUserName": user, "TargetDomainName": "CORP", "Status": "0xc000006d",
        "LogonType": "3", "IpAddress": ip, "IpPort": "50123", "WorkstationName": "-",
        "AuthenticationPackageName": "NTLM",
    }).decode()  # fmt: skip


def _win_4624(host: str, t: dt.datetime, user: str, ip: str) -> str:
    return orjson.dumps({
        "EventID": 4624, "Channel": "Security", "Hostname": f"{host}.corp.example",
        "SourceName": "Microsoft-Windows-Security-Auditing", "@timestamp": _iso(t),
        "TargetUserName": user, "TargetDomainName": "CORP", "TargetLogonId": "0x7777",
        "LogonType": "3", "IpAddress": ip, "IpPort": "50124", "WorkstationName": "-",
        "AuthenticationPackageName": "NTLM",
    }).decode()  # fmt: skip


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _sshd(t: dt.datetime, host: str, message: str) -> str:
    u = t.astimezone(dt.UTC)
    return f"{u.strftime('%b')} {u.day:2d} {u.strftime('%H:%M:%S')} {host} sshd[{4000 + u.second}]: {message}"


# -- truth ids -> event_uid --------------------------------------------------------------------------
def malicious_uids(case: Case, sim_dir: Path) -> set[str]:
    """event_uids of the records truth.json marks malicious, plus every injected record."""
    truth = json.loads((Path(sim_dir) / "truth.json").read_text())
    win, lines, zeek = [], [], []
    for rid in truth["malicious_record_ids"]:
        if rid.count("|") == 2:
            host, channel, record = rid.split("|")
            win.append((host, channel, int(record)))
        elif ":" in rid and rid.startswith("logs/"):
            rel, line = rid.rsplit(":", 1)
            lines.append((rel, int(line)))
        else:
            zeek.append(rid)
    con = case.connect()
    try:
        manifest = [(e.input_id, e.path) for e in case.manifest()]
        con.register("bt_manifest", pa.table({
            "input_id": [m[0] for m in manifest], "path": [m[1] for m in manifest]}))  # fmt: skip
        con.register("bt_win", pa.table({
            "host": [w[0] for w in win], "channel": [w[1] for w in win],
            "record_id": pa.array([w[2] for w in win], pa.int64())}))  # fmt: skip
        con.register("bt_lines", pa.table({
            "rel": [x[0] for x in lines], "line": pa.array([x[1] for x in lines], pa.int64())}))  # fmt: skip
        con.register("bt_zeek", pa.table({"uid": pa.array(zeek, pa.string())}))
        rows = con.execute(
            f"""
SELECT e.event_uid FROM events e JOIN bt_win w
  ON e.host = w.host AND e.channel = w.channel AND e.record_id = w.record_id
UNION
SELECT e.event_uid FROM events e JOIN bt_manifest m ON m.input_id = e.input_id
JOIN bt_lines l ON ends_with(m.path, '/' || l.rel) AND e.input_record = l.line
UNION
SELECT e.event_uid FROM events e JOIN bt_zeek z ON e.source_format = 'zeek' AND e.logon_id = z.uid
UNION
SELECT e.event_uid FROM events e JOIN bt_manifest m ON m.input_id = e.input_id
WHERE strpos(m.path, '/logs/{INJECTED_DIR}/') > 0
"""
        ).fetchall()
    finally:
        con.close()
    return {r[0] for r in rows}


# -- findings -----------------------------------------------------------------------------------
def load_findings(case: Case) -> list[dict[str, Any]]:
    """Every behavioural finding of the case, with details parsed."""
    con = case.connect()
    try:
        cursor = con.execute("SELECT * FROM findings WHERE source = 'behaviour'")
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]
    finally:
        con.close()
    for r in rows:
        r["details_obj"] = orjson.loads(r["details"] or "{}")
        r["analytic"] = r["rule_id"].split(".")[1]
    return rows


@dataclass
class Measure:
    found: int = 0
    total: int = 0
    missed: list[str] = field(default_factory=list)

    @property
    def recall(self) -> float | None:
        return self.found / self.total if self.total else None


@dataclass
class Evaluation:
    precision: dict[str, tuple[int, int]]  # analytic -> (true positives, findings)
    recall: dict[str, Measure]  # hops, entries, accounts, hosts, beacons, gaps, sprays
    alerts_per_day: dict[str, float]  # baseline vs path (after the learning window)
    days: float

    def precision_of(self, analytic: str) -> float | None:
        tp, n = self.precision.get(analytic, (0, 0))
        return tp / n if n else None


def _ts(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).replace(tzinfo=None)


def _near(a: Any, b: dt.datetime, minutes: float) -> bool:
    return a is not None and abs((a - b).total_seconds()) <= minutes * 60


def evaluate(
    case: Case, sim_dir: Path, *, learning_days: float = 14.0, max_fraction: float = 0.5
) -> Evaluation:
    """Precision per analytic and recall per truth item for the case's behavioural findings."""
    sim_dir = Path(sim_dir)
    truth = json.loads((sim_dir / "truth.json").read_text())
    sprays = (
        json.loads((sim_dir / "sprays.json").read_text())
        if (sim_dir / "sprays.json").exists()
        else []
    )
    bad = malicious_uids(case, sim_dir)
    findings = load_findings(case)
    gaps = truth["log_gaps"]
    precision: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for f in findings:
        key = "lateral_baseline" if f["kind"] in BASELINE_KINDS else f["analytic"]
        ok = bool(set(f["evidence"]) & bad) or (
            f["analytic"] == "tamper" and any(_gap_match(f, g) for g in gaps)
        )
        precision[key][0] += ok
        precision[key][1] += 1
    recall = {
        "hops": _hops(findings, truth, lateral_only=True),
        "hops_any": _hops(findings, truth, lateral_only=False),
        "entries": _entries(findings, truth),
        "accounts": _entities(findings, truth, bad, "users", "accounts"),
        "hosts": _entities(findings, truth, bad, "hosts", "hosts"),
        "beacons": _beacons(findings, truth),
        "gaps": _gaps(findings, gaps),
        "sprays": _sprays(findings, sprays),
    }
    start, end = _ts(truth["period"]["start"]), _ts(truth["period"]["end"])
    days = (end - start).total_seconds() / 86_400
    learn_end = start + dt.timedelta(days=min(learning_days, max_fraction * days))
    after = max((end - learn_end).total_seconds() / 86_400, 1e-9)
    base = sum(1 for f in findings if f["kind"] in BASELINE_KINDS and f["first_ts"] >= learn_end)
    path = sum(
        1
        for f in findings
        if f["kind"] in ("lateral_chain", "lateral_hop") and f["first_ts"] >= learn_end
    )
    return Evaluation(
        precision={k: (v[0], v[1]) for k, v in precision.items()},
        recall=recall,
        alerts_per_day={"baseline": base / after, "path": path / after},
        days=days,
    )


def _hops(findings: list[dict[str, Any]], truth: dict[str, Any], *, lateral_only: bool) -> Measure:
    m = Measure()
    for route in truth["routes"]:
        for hop in route["hops"]:
            if hop["method"] == "exploit":
                continue
            m.total += 1
            t = _ts(hop["time"])
            if any(_covers(f, hop, t, lateral_only) for f in findings):
                m.found += 1
            else:
                m.missed.append(f"{hop['src']}->{hop['dst']} {hop['account']} {hop['time']}")
    return m


def _covers(f: dict[str, Any], hop: dict[str, Any], t: dt.datetime, lateral_only: bool) -> bool:
    if f["kind"] in ("lateral_chain", "lateral_hop"):
        return any(
            h["src"] == hop["src"] and h["dst"] == hop["dst"] and h["account"] == hop["account"]
            and _near(_ts(h["time"]), t, 15)
            for h in f["details_obj"].get("hops", [])
        )  # fmt: skip
    hosts, users = set(f["hosts"]), set(f["users"])
    if f["kind"] == "log_gap" and not lateral_only:
        # a hop whose logon records were deleted: the gap names who the network saw connect
        return (
            hop["dst"] in hosts and hop["src"] in set(f["addresses"])
            and f["first_ts"] <= t <= f["last_ts"]
        )  # fmt: skip
    if f["kind"] in ("lateral_remote_exec", "lateral_admin_share"):
        return (
            {hop["src"], hop["dst"]} <= hosts
            and hop["account"] in users
            and _near(f["first_ts"], t, 15)
        )
    if lateral_only or f["analytic"] not in ("credentials", "bulk"):
        return False
    # a credential finding whose sessions reached dst, or a bulk read by the account on dst
    lo, hi = f["first_ts"] - dt.timedelta(hours=1), f["last_ts"] + dt.timedelta(hours=1)
    return hop["dst"] in hosts and hop["account"] in users and lo <= t <= hi


def _entries(findings: list[dict[str, Any]], truth: dict[str, Any]) -> Measure:
    m = Measure()
    for route in truth["routes"]:
        for hop in route["hops"]:
            if hop["method"] != "exploit":
                continue
            m.total += 1
            roots = [
                f for f in findings
                if f["kind"] in ("lateral_chain", "lateral_hop")
                and f["details_obj"].get("hops") and f["details_obj"]["hops"][0]["src"] == hop["dst"]
            ]  # fmt: skip
            if roots:
                m.found += 1
            else:
                m.missed.append(f"entry {hop['dst']}")
    return m


def _entities(
    findings: list[dict[str, Any]],
    truth: dict[str, Any],
    bad: set[str],
    field_name: str,
    truth_key: str,
) -> Measure:
    want = {x for r in truth["routes"] for x in r[truth_key]}
    seen = {
        x for f in findings if f["kind"] not in BASELINE_KINDS and set(f["evidence"]) & bad
        for x in f[field_name]
    }  # fmt: skip
    return Measure(len(want & seen), len(want), sorted(want - seen))


def _beacons(findings: list[dict[str, Any]], truth: dict[str, Any]) -> Measure:
    m = Measure()
    for b in truth["beacons"]:
        m.total += 1
        if any(
            f["kind"] == "beacon" and b["src"] in f["hosts"] and b["dst_ip"] in f["addresses"]
            for f in findings
        ):
            m.found += 1
        else:
            m.missed.append(f"{b['src']}->{b['dst_ip']}")
    return m


def _gap_match(f: dict[str, Any], g: dict[str, Any]) -> bool:
    if g["host"] not in f["hosts"]:
        return False
    kinds = {
        "cleared": {"log_gap", "log_cleared", "log_silence"},
        "records_removed": {"log_gap", "log_silence"},
        "silent": {"log_silence", "log_blind_spot"},
    }[g["kind"]]
    if f["kind"] not in kinds:
        return False
    lo, hi = _ts(g["start"]) - dt.timedelta(hours=2), _ts(g["end"]) + dt.timedelta(hours=2)
    return f["first_ts"] <= hi and f["last_ts"] >= lo


def _gaps(findings: list[dict[str, Any]], gaps: list[dict[str, Any]]) -> Measure:
    m = Measure()
    for g in gaps:
        m.total += 1
        if any(_gap_match(f, g) for f in findings):
            m.found += 1
        else:
            m.missed.append(f"{g['kind']} {g['host']} {g['channel']} {g['start']}")
    return m


def _sprays(findings: list[dict[str, Any]], sprays: list[dict[str, Any]]) -> Measure:
    m = Measure()
    for s in sprays:
        m.total += 1
        hit = [
            f for f in findings
            if f["kind"] in ("credential_spray", "credential_brute_force") and s["source"] in f["addresses"]
        ]  # fmt: skip
        if hit and any(s["success"] in f["users"] for f in hit):
            m.found += 1
        else:
            m.missed.append(f"spray from {s['source']}")
    return m
