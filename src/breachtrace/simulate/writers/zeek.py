"""Zeek conn.log and dns.log in Zeek's TSV format, one pair per (sensor, month).

A flow is logged by the sensor of the site its originator sits in (the HQ for the VPN pool);
flows from outside are logged at the responder's site. A conn row carrying a DNS query also
yields a dns.log row with the same uid.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from breachtrace.simulate import events as ev
from breachtrace.simulate.columns import (
    Rows,
    epoch_text,
    ints,
    ipv4,
    join,
    random_tokens,
    write_lines,
)
from breachtrace.simulate.org import Org

CONN_FIELDS = [
    "ts",
    "uid",
    "id.orig_h",
    "id.orig_p",
    "id.resp_h",
    "id.resp_p",
    "proto",
    "service",
    "duration",
    "orig_bytes",
    "resp_bytes",
    "conn_state",
    "local_orig",
    "local_resp",
    "missed_bytes",
    "history",
    "orig_pkts",
    "orig_ip_bytes",
    "resp_pkts",
    "resp_ip_bytes",
    "tunnel_parents",
]
CONN_TYPES = [
    "time",
    "string",
    "addr",
    "port",
    "addr",
    "port",
    "enum",
    "string",
    "interval",
    "count",
    "count",
    "string",
    "bool",
    "bool",
    "count",
    "string",
    "count",
    "count",
    "count",
    "count",
    "set[string]",
]
DNS_FIELDS = [
    "ts",
    "uid",
    "id.orig_h",
    "id.orig_p",
    "id.resp_h",
    "id.resp_p",
    "proto",
    "trans_id",
    "rtt",
    "query",
    "qclass",
    "qclass_name",
    "qtype",
    "qtype_name",
    "rcode",
    "rcode_name",
    "AA",
    "TC",
    "RD",
    "RA",
    "Z",
    "answers",
    "TTLs",
    "rejected",
]
DNS_TYPES = [
    "time",
    "string",
    "addr",
    "port",
    "addr",
    "port",
    "enum",
    "count",
    "interval",
    "string",
    "count",
    "string",
    "count",
    "string",
    "count",
    "string",
    "bool",
    "bool",
    "bool",
    "bool",
    "count",
    "vector[string]",
    "vector[interval]",
    "bool",
]
UID_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
HISTORY = {
    (ev.TCP, ev.SF): "ShADadFf",
    (ev.TCP, ev.S0): "S",
    (ev.TCP, ev.REJ): "Sr",
    (ev.TCP, ev.RSTO): "ShADadR",
}


def _header(path: str, opened: str, fields: list[str], types: list[str]) -> bytes:
    return (
        "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n"
        f"#path\t{path}\n#open\t{opened}\n#fields\t"
        + "\t".join(fields)
        + "\n#types\t"
        + "\t".join(types)
        + "\n"
    ).encode()


def zeek_time(ts_us: int) -> str:
    return (
        str(np.datetime64(ts_us, "us").astype("datetime64[s]")).replace("T", "-").replace(":", "-")
    )


class ZeekWriter:
    def __init__(self, out: Path, org: Org) -> None:
        self.out = out
        self.org = org
        self.events_by_file: dict[str, int] = {}
        self.last_ts: dict[str, int] = {}
        self.malicious: list[str] = []
        self.first_malicious: int | None = None
        self.chunk = 0

    def write(self, rows: Rows) -> None:
        if rows.n == 0:
            return
        rng = np.random.default_rng([self.org.seed, 7, self.chunk])
        self.chunk += 1
        uid = join(["C", random_tokens(rng, rows.n, 17, UID_ALPHABET)])
        mal = np.flatnonzero(rows["mal"])
        if len(mal):
            self.malicious.extend(uid.take(pa.array(mal)).to_pylist())
            first = int(rows["ts"][mal].min())
            self.first_malicious = (
                first if self.first_malicious is None else min(first, self.first_malicious)
            )
        site = self.org.site_of_ip(rows["orig"])
        site = np.where(site < 0, self.org.site_of_ip(rows["resp"]), site)
        site = np.where(site < 0, 0, site).astype(np.int64)
        month = rows["ts"].astype("datetime64[us]").astype("datetime64[M]").astype(np.int64)
        key = month * len(self.org.sites) + site
        order = np.argsort(key, kind="stable")
        keys = key[order]
        bounds = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1], True])
        for a, b in pairwise(bounds):
            idx = order[a:b]
            m, s = divmod(int(keys[a]), len(self.org.sites))
            folder = f"logs/zeek/zeek-{self.org.sites[s].prefix}/{np.datetime64(m, 'M')}"
            part = rows.take(idx)
            part_uid = uid.take(pa.array(idx))
            self._append(
                f"{folder}/conn.log",
                "conn",
                CONN_FIELDS,
                CONN_TYPES,
                part,
                self._conn_lines(part, part_uid),
            )
            is_dns = part["query"] != 0
            if is_dns.any():
                dns = part.take(is_dns)
                self._append(
                    f"{folder}/dns.log",
                    "dns",
                    DNS_FIELDS,
                    DNS_TYPES,
                    dns,
                    self._dns_lines(dns, part_uid.filter(pa.array(is_dns))),
                )

    def _append(
        self, rel: str, kind: str, fields: list[str], types: list[str], rows: Rows, lines: pa.Array
    ) -> None:
        path = self.out / rel
        new = rel not in self.events_by_file
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab") as fh:
            if new:
                fh.write(_header(kind, zeek_time(int(rows["ts"][0])), fields, types))
            write_lines(fh, lines)
        self.events_by_file[rel] = self.events_by_file.get(rel, 0) + rows.n
        self.last_ts[rel] = int(rows["ts"][-1])

    def close(self) -> None:
        for rel in sorted(self.events_by_file):
            with open(self.out / rel, "ab") as fh:
                _close(fh, self.last_ts[rel])

    def _conn_lines(self, r: Rows, uid: pa.Array) -> pa.Array:
        n = r.n
        proto, state = r["proto"], r["state"]
        unset = state == ev.S0
        obytes = np.maximum(r["obytes"], 0)
        rbytes = np.where(state == ev.SF, np.maximum(r["rbytes"], 0), 0)
        opkts = np.maximum(1, obytes // 1200 + 2)
        rpkts = np.where(state == ev.SF, np.maximum(1, rbytes // 1400 + 2), np.where(unset, 0, 1))
        header = 40  # IP + TCP header bytes per packet
        history = np.full(n, "Dd", dtype=object)
        for (p, s), text in HISTORY.items():
            history[(proto == p) & (state == s)] = text
        internal_o = (r["orig"] >> 24) == 10
        internal_r = (r["resp"] >> 24) == 10
        dur = _interval(np.maximum(r["dur"], 0))
        return join(
            [
                epoch_text(r["ts"]),
                "\t",
                uid,
                "\t",
                ipv4(r["orig"]),
                "\t",
                ints(r["oport"]),
                "\t",
                ipv4(r["resp"]),
                "\t",
                ints(r["rport"]),
                "\t",
                pa.array(np.array(ev.PROTOS)[proto]),
                "\t",
                pa.array(np.array(ev.SERVICES)[r["service"]]),
                "\t",
                pc.if_else(pa.array(unset), "-", dur),
                "\t",
                pc.if_else(pa.array(unset), "-", ints(obytes)),
                "\t",
                pc.if_else(pa.array(unset), "-", ints(rbytes)),
                "\t",
                pa.array(np.array(ev.STATES)[state]),
                "\t",
                pa.array(np.where(internal_o, "T", "F")),
                "\t",
                pa.array(np.where(internal_r, "T", "F")),
                "\t0\t",
                pa.array(history.astype(str)),
                "\t",
                ints(opkts),
                "\t",
                ints(obytes + opkts * header),
                "\t",
                ints(rpkts),
                "\t",
                ints(rbytes + rpkts * header),
                "\t-\n",
            ]
        )

    def _dns_lines(self, r: Rows, uid: pa.Array) -> pa.Array:
        answered = r["answer"] != 0
        rcode_name = np.where(answered, "NOERROR", "NXDOMAIN")
        trans = (r["oport"].astype(np.int64) * 7919 + r["ts"]) % 65536
        return join(
            [
                epoch_text(r["ts"]),
                "\t",
                uid,
                "\t",
                ipv4(r["orig"]),
                "\t",
                ints(r["oport"]),
                "\t",
                ipv4(r["resp"]),
                "\t",
                ints(r["rport"]),
                "\tudp\t",
                ints(trans),
                "\t",
                _interval(r["dur"]),
                "\t",
                self.org.strings.plain(r["query"]),
                "\t1\tC_INTERNET\t1\tA\t",
                ints(np.where(answered, 0, 3)),
                "\t",
                pa.array(rcode_name),
                "\tF\tF\tT\tT\t0\t",
                ipv4(r["answer"]),
                "\t",
                pc.if_else(pa.array(answered), "300.000000", "-"),
                "\tF\n",
            ]
        )


def _interval(us: np.ndarray) -> pa.Array:
    return join([ints(us // 1_000_000), ".", pc.utf8_lpad(ints(us % 1_000_000), 6, "0")])


def _close(fh: BinaryIO, last_ts: int) -> None:
    fh.write(f"#close\t{zeek_time(last_ts)}\n".encode())
