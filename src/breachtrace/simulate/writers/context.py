"""Context files a responder would be handed: asset, network, data and identity inventories."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from breachtrace.simulate.names import ip_text
from breachtrace.simulate.org import ROLE_NAMES, Org


def _write(path: Path, header: list[str], rows: Sequence[Sequence[object]]) -> int:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return len(rows)


def write_context(out: Path, org: Org) -> dict[str, int]:
    """Write assets.csv, networks.csv, data_inventory.csv and identities.csv; rows per file."""
    h, u = org.hosts, org.users
    assets = [
        [
            h.name[i],
            org.sites[h.site[i]].prefix,
            org.sites[h.site[i]].country.name,
            ROLE_NAMES[h.role[i]],
            "true" if h.managed[i] else "false",
            h.last_patched[i],
            h.lifecycle[i],
            ip_text(h.ip[i]),
        ]
        for i in range(len(h))
    ]
    networks = [
        [f"10.{s.net}.0.0/16", s.prefix, s.country.name, "true", "false"] for s in org.sites
    ]
    networks.append(
        [f"10.{org.vpn_pool}.0.0/20", org.hq.prefix, org.hq.country.name, "true", "true"]
    )
    inventory = [list(row) for row in org.inventory]
    identities = []
    for i, name in enumerate(u.name):
        devices = [h.name[u.ws[i]]]
        if u.ws_new[i] >= 0:
            devices.append(h.name[u.ws_new[i]])
        if u.personal[i]:
            devices.append(u.personal[i])
        identities.append([name, org.sites[u.site[i]].prefix, ";".join(devices)])
    return {
        "assets.csv": _write(
            out / "assets.csv",
            ["host", "site", "country", "role", "managed", "last_patched", "lifecycle", "ip"],
            assets,
        ),
        "networks.csv": _write(
            out / "networks.csv", ["cidr", "site", "country", "internal", "vpn_pool"], networks
        ),
        "data_inventory.csv": _write(
            out / "data_inventory.csv",
            ["path_prefix", "owner", "classification", "individuals"],
            inventory,
        ),
        "identities.csv": _write(
            out / "identities.csv", ["user", "home_site", "devices"], identities
        ),
    }
