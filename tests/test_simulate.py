"""The simulator: determinism, seed variation, truth consistency, and the output contract."""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest

from breachtrace.simulate import SimulationSummary, simulate

HOSTS, DAYS = 60, 14


def _run(tmp_path_factory: pytest.TempPathFactory, scenario: str, seed: int) -> SimulationSummary:
    out = tmp_path_factory.mktemp(f"{scenario}-{seed}")
    return simulate(out, scenario, hosts=HOSTS, days=DAYS, seed=seed)


@pytest.fixture(scope="module")
def telecom(tmp_path_factory: pytest.TempPathFactory) -> SimulationSummary:
    return _run(tmp_path_factory, "telecom-2020", 1)


@pytest.fixture(scope="module")
def maker(tmp_path_factory: pytest.TempPathFactory) -> SimulationSummary:
    return _run(tmp_path_factory, "maker-2016", 1)


@pytest.fixture(scope="module")
def quiet(tmp_path_factory: pytest.TempPathFactory) -> SimulationSummary:
    return _run(tmp_path_factory, "quiet", 1)


def _truth(summary: SimulationSummary) -> dict[str, Any]:
    return json.loads(summary.truth.read_text())


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _record_ids(root: Path) -> set[str]:
    """Every record id of the truth.json scheme that the written files contain."""
    ids: set[str] = set()
    for path in (root / "logs" / "windows").rglob("*.json"):
        for raw in path.read_bytes().splitlines():
            e = orjson.loads(raw)
            ids.add(f"{e['Hostname'].split('.')[0].lower()}|{e['Channel']}|{e['RecordNumber']}")
    for path in (root / "logs" / "zeek").rglob("conn.log"):
        for line in path.read_text().splitlines():
            if not line.startswith("#"):
                ids.add(line.split("\t")[1])
    for kind in ("linux", "vpn"):
        for path in (root / "logs" / kind).rglob("*"):
            if path.is_file():
                rel = path.relative_to(root).as_posix()
                n = len(path.read_text().splitlines())
                ids.update(f"{rel}:{i}" for i in range(1, n + 1))
    return ids


def _inventory_owner(root: Path) -> Any:
    with open(root / "data_inventory.csv", newline="") as fh:
        rows = [(r["path_prefix"].lower(), r["owner"]) for r in csv.DictReader(fh)]
    rows.sort(key=lambda r: -len(r[0]))

    def owner(path: str) -> str | None:
        low = path.lower()
        return next((o for prefix, o in rows if low.startswith(prefix)), None)

    return owner


# --- determinism and variation -------------------------------------------------------------


def test_same_seed_gives_byte_identical_output(
    telecom: SimulationSummary, tmp_path_factory: pytest.TempPathFactory
) -> None:
    again = _run(tmp_path_factory, "telecom-2020", 1)
    assert _hashes(telecom.out) == _hashes(again.out)


def test_different_seed_changes_names_times_and_addresses(
    telecom: SimulationSummary, tmp_path_factory: pytest.TempPathFactory
) -> None:
    other = _run(tmp_path_factory, "telecom-2020", 2)
    a, b = _truth(telecom), _truth(other)
    assert a["first_compromise"] != b["first_compromise"]
    assert a["routes"][0]["entry"] != b["routes"][0]["entry"]
    assert a["routes"][0]["source_ips"] != b["routes"][0]["source_ips"]
    assert (telecom.out / "assets.csv").read_text() != (other.out / "assets.csv").read_text()
    assert (telecom.out / "networks.csv").read_text() != (other.out / "networks.csv").read_text()
    users_a = (telecom.out / "identities.csv").read_text().splitlines()[1:]
    users_b = (other.out / "identities.csv").read_text().splitlines()[1:]
    assert set(users_a) != set(users_b)


# --- truth -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["telecom", "maker", "quiet"])
def test_truth_has_the_stable_top_level(name: str, request: pytest.FixtureRequest) -> None:
    truth = _truth(request.getfixturevalue(name))
    for key in (
        "scenario",
        "seed",
        "first_compromise",
        "first_detectable",
        "routes",
        "exposed_clients",
        "beacons",
        "log_gaps",
        "malicious_record_ids",
    ):
        assert key in truth
    for route in truth["routes"]:
        for key in (
            "name",
            "entry",
            "hops",
            "accounts",
            "hosts",
            "devices",
            "files_read",
            "exposed_clients",
        ):
            assert key in route
        for hop in route["hops"]:
            assert set(hop) >= {"src", "dst", "time", "account"}


@pytest.mark.parametrize("name", ["telecom", "maker"])
def test_truth_is_internally_consistent(name: str, request: pytest.FixtureRequest) -> None:
    summary = request.getfixturevalue(name)
    truth = _truth(summary)
    assert truth["routes"] and truth["malicious_record_ids"]
    assert truth["first_compromise"] and truth["first_detectable"]
    owner = _inventory_owner(summary.out)
    union: set[str] = set()
    for route in truth["routes"]:
        times = [hop["time"] for hop in route["hops"]]
        assert times == sorted(times), f"{route['name']} hops are not time-ordered"
        owners = {owner(path) for path in route["files_read"]}
        assert None not in owners
        assert owners == set(route["exposed_clients"])
        union |= owners
        for host in route["hosts"]:
            assert host == host.lower() and "." not in host
    assert union == set(truth["exposed_clients"])
    missing = set(truth["malicious_record_ids"]) - _record_ids(summary.out)
    assert not missing, (
        f"{len(missing)} truth record ids not in the logs, e.g. {sorted(missing)[:3]}"
    )


def _smb_files(root: Path) -> list[dict[str, str]]:
    rows = []
    for path in (root / "logs" / "zeek").rglob("smb_files.log"):
        lines = path.read_text().splitlines()
        fields = next(x for x in lines if x.startswith("#fields")).split("\t")[1:]
        rows += [dict(zip(fields, x.split("\t"), strict=True)) for x in lines if x[0] != "#"]
    return rows


@pytest.mark.parametrize(
    ("name", "routes"), [("maker", {"implant"}), ("telecom", {"stolen-credential"})]
)
def test_every_smb_read_is_on_the_wire(
    name: str, routes: set[str], request: pytest.FixtureRequest
) -> None:
    """Every file a route read over SMB shows in smb_files.log (\\\\SERVER\\share + name),
    on the connection whose conn.log row has the same uid; smb_mapping has the tree connects.
    (telecom's first route reads on the server itself, over RDP: no SMB.)"""
    summary = request.getfixturevalue(name)
    root = summary.out
    smb = _smb_files(root)
    seen = {f"{r['path']}\\{r['name']}".lower() for r in smb}
    read = {
        p.lower()
        for route in _truth(summary)["routes"]
        if route["name"] in routes
        for p in route["files_read"]
    }
    assert read and read <= seen
    conns: dict[str, str] = {}
    for path in (root / "logs" / "zeek").rglob("conn.log"):
        for line in path.read_text().splitlines():
            if not line.startswith("#"):
                c = line.split("\t")
                conns[c[1]] = c[7]
    assert all(conns.get(r["uid"]) == "smb" for r in smb)
    assert {r["action"] for r in smb} == {"SMB::FILE_OPEN"}
    mapping = "".join(p.read_text() for p in (root / "logs" / "zeek").rglob("smb_mapping.log"))
    assert "\tNTFS\tDISK" in mapping
    assert summary.events_by_format["zeek_smb_files"] == len(smb)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_maker_spreads_only_from_infected_hosts(seed: int) -> None:
    """A hop leaves a host only after the route reached it, though sites' local times differ
    (300 hosts, seed 1 once spread from a workstation hours before its own infection). Only
    the plan is built: no logs written."""
    from breachtrace.simulate.org import build_org
    from breachtrace.simulate.scenarios import SCENARIOS

    spec = SCENARIOS["maker-2016"]
    plan = spec.plan(build_org(seed, spec.start(seed, 30), 30, 300, None))
    assert plan.first_compromise is not None
    for route in plan.routes:
        reached = {route.entry: plan.first_compromise}
        for hop in route.hops:
            assert hop.src in reached and reached[hop.src] < hop.time, hop
            reached.setdefault(hop.dst, hop.time)


def test_telecom_routes_overlap_partially(telecom: SimulationSummary) -> None:
    truth = _truth(telecom)
    first, second = (set(r["exposed_clients"]) for r in truth["routes"])
    assert first & second, "the two routes share no client"
    assert first - second and second - first, "one route's clients contain the other's"
    overseas, stolen = truth["routes"]
    assert overseas["hops"][0]["dst"] == overseas["entry"]
    burst = [h for h in overseas["hops"] if h["src"] == overseas["entry"] and h["method"] == "smb"]
    assert burst, "no final SMB burst from the entry server"
    assert len(overseas["files_read"]) >= 100
    assert stolen["devices"] == [stolen["entry"]]


def test_quiet_has_no_attack(quiet: SimulationSummary) -> None:
    truth = _truth(quiet)
    assert truth["routes"] == [] and truth["exposed_clients"] == []
    assert truth["malicious_record_ids"] == [] and truth["first_compromise"] is None
    assert truth["beacons"] == [] and truth["log_gaps"] == []


def test_maker_gaps_are_record_holes_or_silences(maker: SimulationSummary) -> None:
    truth = _truth(maker)
    kinds = {g["kind"] for g in truth["log_gaps"]}
    assert {"cleared", "records_removed", "silent"} <= kinds
    numbers: dict[tuple[str, str], list[int]] = defaultdict(list)
    cleared_hosts: set[str] = set()
    for path in (maker.out / "logs" / "windows").rglob("*.json"):
        for line in path.read_bytes().splitlines():
            e = orjson.loads(line)
            host = e["Hostname"].split(".")[0]
            numbers[(host, e["Channel"])].append(e["RecordNumber"])
            if e["EventID"] == 1102:
                cleared_hosts.add(host)
    holes = {}
    for key, values in numbers.items():
        values.sort()
        missing = sorted(set(range(values[0], values[-1] + 1)) - set(values))
        if missing:
            holes[key] = (missing[0], missing[-1], len(missing))
    expected = {
        (g["host"], g["channel"]): (g["first_record"], g["last_record"], g["events_missing"])
        for g in truth["log_gaps"]
        if g["kind"] != "silent"
    }
    assert holes == expected
    assert cleared_hosts == {g["host"] for g in truth["log_gaps"] if g["kind"] == "cleared"}
    assert len(truth["beacons"]) >= 3


# --- formats ---------------------------------------------------------------------------------


def test_record_counts_match_truth(telecom: SimulationSummary) -> None:
    by_file = _truth(telecom)["events"]["by_file"]
    for rel, count in by_file.items():
        lines = (telecom.out / rel).read_text().splitlines()
        data = [x for x in lines if not x.startswith("#")]
        if rel.endswith(".csv"):
            data = data[1:]
        assert len(data) == count, rel


def test_formats_follow_the_contract(telecom: SimulationSummary) -> None:
    root = telecom.out
    first = orjson.loads(
        (next((root / "logs" / "windows").rglob("*.json"))).read_bytes().split(b"\n")[0]
    )
    assert list(first)[:6] == [
        "EventID",
        "Channel",
        "Hostname",
        "SourceName",
        "@timestamp",
        "RecordNumber",
    ]
    assert first["@timestamp"].endswith("Z") and isinstance(first["EventID"], int)
    for path in (root / "logs" / "linux").rglob("auth.log"):
        last = path.read_text().splitlines()[-1]
        mtime = os.stat(path).st_mtime
        import datetime as dt

        stamp = dt.datetime.fromtimestamp(mtime, dt.UTC).strftime("%b %e %H:%M:%S")
        assert last.startswith(stamp), (path, last, stamp)
    conn = next((root / "logs" / "zeek").rglob("conn.log")).read_text().splitlines()
    assert conn[0] == "#separator \\x09" and conn[-1].startswith("#close\t")
    fields = next(x for x in conn if x.startswith("#fields")).split("\t")[1:]
    data = next(x for x in conn if not x.startswith("#")).split("\t")
    assert len(fields) == len(data) == 21
    vpn = next((root / "logs" / "vpn").glob("vpn-*.csv")).read_text().splitlines()
    assert (
        vpn[0] == "timestamp,username,client_ip,assigned_ip,device_id,device_managed,event,result"
    )
    assert (root / "mappings" / "vpn.yaml").read_text().startswith("name: vpn\n")
    for name in ("assets.csv", "networks.csv", "data_inventory.csv", "identities.csv"):
        assert (root / name).stat().st_size > 0


# --- read back by the real readers -----------------------------------------------------------


@pytest.mark.parametrize("scenario", ["telecom-2020", "maker-2016"])
def test_ingest_reads_everything_back_without_rejects(scenario: str, tmp_path: Path) -> None:
    runner = pytest.importorskip("breachtrace.ingest.runner")
    from breachtrace.case import Case

    sim = simulate(tmp_path / "sim", scenario, hosts=30, days=10, seed=4)
    result = runner.ingest(
        tmp_path / "case", [sim.out / "logs"], mappings=[sim.out / "mappings" / "vpn.yaml"]
    )
    by_file = _truth(sim)["events"]["by_file"]
    read = {Path(f.path).relative_to(sim.out).as_posix(): f for f in result.files}
    assert set(read) == set(by_file)
    for rel, f in read.items():
        assert f.status == "ingested" and f.records_rejected == 0, (rel, f.message)
        assert f.records_read == by_file[rel], rel
    con = Case.open(tmp_path / "case").connect()
    stored = {
        row[0]
        for row in con.execute(
            "SELECT host || '|' || channel || '|' || record_id FROM events WHERE event_code IS NOT NULL"
            " AND record_id IS NOT NULL AND channel IN ('Security', 'System',"
            " 'Microsoft-Windows-Sysmon/Operational')"
        ).fetchall()
    }
    windows_ids = {i for i in _truth(sim)["malicious_record_ids"] if i.count("|") == 2}
    assert windows_ids and windows_ids <= stored
