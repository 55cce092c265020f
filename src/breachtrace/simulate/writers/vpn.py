"""VPN gateway sessions as CSV, one file per month, and the mapping that describes them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from breachtrace.simulate import events as ev
from breachtrace.simulate.columns import Rows, ipv4, join, write_lines
from breachtrace.simulate.org import Org

HEADER = "timestamp,username,client_ip,assigned_ip,device_id,device_managed,event,result\n"

MAPPING = """\
name: vpn
description: VPN gateway sessions
format: csv
match: [timestamp, username, client_ip, assigned_ip, device_id]
channel: vpn
timestamp: {column: timestamp}
action: {column: event, map: {connect: remote_access, disconnect: logoff}, default: other}
outcome: {column: result, map: {success: success, failure: failure}}
fields:
  user: username
  src_ip: client_ip
  dst_ip: assigned_ip
  src_host: device_id
"""


class VpnWriter:
    def __init__(self, out: Path, org: Org) -> None:
        self.out = out
        self.org = org
        self.events_by_file: dict[str, int] = {}
        self.malicious: list[str] = []
        self.first_malicious: int | None = None

    def write(self, rows: Rows) -> None:
        if rows.n == 0:
            return
        month = rows["ts"].astype("datetime64[us]").astype("datetime64[M]")
        for m in np.unique(month):
            idx = np.flatnonzero(month == m)
            part = rows.take(idx)
            rel = f"logs/vpn/vpn-{m}.csv"
            path = self.out / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            before = self.events_by_file.get(rel, 0)
            with open(path, "ab") as fh:
                if rel not in self.events_by_file:
                    fh.write(HEADER.encode())
                write_lines(fh, self._lines(part))
            for i in np.flatnonzero(part["mal"]):
                self.malicious.append(f"{rel}:{before + int(i) + 2}")  # line 1 is the header
            self.events_by_file[rel] = before + part.n
        mal = rows["mal"]
        if mal.any():
            first = int(rows["ts"][mal].min())
            self.first_malicious = (
                first if self.first_malicious is None else min(first, self.first_malicious)
            )

    def _lines(self, r: Rows) -> pa.Array:
        stamp = np.datetime_as_string(
            r["ts"].astype("datetime64[us]").astype("datetime64[s]"), unit="s", timezone="UTC"
        )
        pool = self.org.strings
        return join(
            [
                pa.array(stamp),
                ",",
                pool.plain(r["user"]),
                ",",
                ipv4(r["client"]),
                ",",
                ipv4(r["assigned"], zero=""),
                ",",
                pool.plain(r["device"]),
                ",",
                pa.array(np.where(r["managed"], "true", "false")),
                ",",
                pa.array(np.where(r["event"] == ev.CONNECT, "connect", "disconnect")),
                ",",
                pa.array(np.where(r["result"] == ev.SUCCESS, "success", "failure")),
                "\n",
            ]
        )

    def write_mapping(self) -> None:
        path = self.out / "mappings" / "vpn.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(MAPPING)
