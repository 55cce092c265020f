"""Context files: validated with the file and row named, stored in the case, and used to place
addresses and hosts; without them the analytics say what they could not judge."""

from __future__ import annotations

from pathlib import Path

import pytest

from breachtrace.context import ContextError, load_context
from breachtrace.detect.behaviour.config import load_config
from breachtrace.detect.behaviour.entities import ensure_addresses, ensure_hosts
from breachtrace.detect.behaviour.registry import Run
from breachtrace.engines.duckdb import DuckDBEngine

from detect_support import t, write_events

ASSETS = """host,site,country,role,managed,last_patched,lifecycle,ip
SG-APP01.corp.example,sin,Singapore,application server,true,2019-01-05,decommissioning,10.5.1.12
jp-ws01,tyo,Japan,workstation,true,2021-02-01,active,10.1.16.20
"""
NETWORKS = """cidr,site,country,internal,vpn_pool
10.1.0.0/16,tyo,Japan,true,false
10.5.0.0/16,sin,Singapore,true,false
10.9.0.0/20,tyo,Japan,true,true
81.2.0.0/16,,France,false,false
"""
IDENTITIES = """user,home_site,devices
alice,tyo,jp-ws01;alice-macbook
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_context_files_are_parsed_and_stored_in_the_case(tmp_path: Path) -> None:
    case = write_events(tmp_path / "case", [{"ts": t(0), "host": "jp-ws01", "action": "other"}])
    ctx = load_context(
        case,
        assets=_write(tmp_path, "a.csv", ASSETS),
        networks=_write(tmp_path, "n.csv", NETWORKS),
        identities=_write(tmp_path, "i.csv", IDENTITIES),
    )
    assert [a.host for a in ctx.assets] == ["sg-app01", "jp-ws01"]
    assert ctx.assets[0].lifecycle == "decommissioning" and ctx.assets[0].managed is True
    assert ctx.networks[2].vpn_pool and not ctx.networks[3].internal
    assert ctx.identities[0].devices == ("jp-ws01", "alice-macbook")
    assert ctx.limits() == []
    stored = load_context(case)  # no files given: the case's copies
    assert stored.assets == ctx.assets and stored.networks == ctx.networks
    assert (case.root / "context" / "assets.csv").exists()


@pytest.mark.parametrize(
    ("kind", "text", "message"),
    [
        (
            "assets",
            "host,managed\nweb01,perhaps\n",
            "row 2: column 'managed' must be true or false",
        ),
        ("assets", "host\nweb01\nWEB01.corp\n", "row 3: host 'web01' already listed on row 2"),
        ("assets", "name,site\nweb01,x\n", "needs a header row with a 'host' column"),
        ("assets", "host,last_patched\nweb01,last tuesday\n", "row 2: last_patched must be a date"),
        ("networks", "cidr\n10.0.0.1/8\n", "row 2: cidr '10.0.0.1/8' is not a network"),
        (
            "identities",
            "user,devices,colour\nbob,x,blue\n",
            "unknown identities columns ['colour']",
        ),
    ],
)
def test_bad_context_rows_name_the_file_and_row(
    tmp_path: Path, kind: str, text: str, message: str
) -> None:
    case = write_events(tmp_path / "case", [{"ts": t(0), "host": "x", "action": "other"}])
    path = _write(tmp_path, f"{kind}.csv", text)
    with pytest.raises(ContextError) as err:
        load_context(case, **{kind: path})
    assert message in str(err.value) and str(path) in str(err.value)
    assert not (case.root / "context" / f"{kind}.csv").exists()  # nothing stored when invalid


def test_without_context_the_limits_are_said(tmp_path: Path) -> None:
    case = write_events(tmp_path / "case", [{"ts": t(0), "host": "x", "action": "other"}])
    limits = " ".join(load_context(case).limits())
    assert "no asset inventory" in limits and "no network inventory" in limits
    assert "no identity inventory" in limits


def _run(case, ctx) -> Run:  # type: ignore[no-untyped-def]
    return Run(case, DuckDBEngine(case.connect()), load_config(), ctx, t(0), t(3), 10)


def test_addresses_are_placed_from_inventory_or_inferred(tmp_path: Path) -> None:
    rows = [
        # Sysmon names the host's own address; a VPN log hands out 10.200.0.7
        {"ts": t(0, 9), "host": "ws7", "event_code": 3, "action": "network_connection",
         "src_ip": "10.1.16.77", "dst_ip": "81.2.3.4", "dst_port": 443},
        {"ts": t(0, 9), "action": "remote_access", "source_format": "vpn", "channel": "vpn",
         "user": "alice", "src_ip": "198.51.100.9", "dst_ip": "10.200.0.7"},
        {"ts": t(0, 10), "host": "srv", "event_code": 4624, "action": "logon", "logon_type": 3,
         "user": "bob", "src_ip": "10.200.0.7", "src_host": "bobs-laptop"},
    ]  # fmt: skip
    case = write_events(tmp_path / "case", rows)
    ctx = load_context(case, networks=_write(tmp_path, "n.csv", NETWORKS), store=False)
    run = _run(case, ctx)
    ensure_addresses(run)
    addr = {r["ip"]: r for r in run.rows("SELECT * FROM bt_addr")}
    assert addr["10.1.16.77"]["host"] == "ws7" and addr["10.1.16.77"]["site"] == "tyo"
    assert addr["81.2.3.4"]["internal"] is False and addr["81.2.3.4"]["country"] == "France"
    assert addr["198.51.100.9"]["internal"] is False
    assert addr["10.200.0.7"]["vpn"] is True and addr["10.200.0.7"]["host"] is None
    ensure_hosts(run)
    hosts = {r["host"]: r for r in run.rows("SELECT * FROM bt_hostinfo")}
    assert hosts["srv"]["has_logs"] and not hosts["srv"]["server_like"]  # one account only
