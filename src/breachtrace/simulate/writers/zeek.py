"""Zeek conn.log, dns.log, smb_files.log and smb_mapping.log in Zeek's TSV format, one set per
(sensor, month).

A flow is logged by the sensor of the site its originator sits in (the HQ for the VPN pool);
flows from outside are logged at the responder's site. A conn row carrying a DNS query also
yields a dns.log row with the same uid, and the SMB rows of a share session carry the uid of
their connection: a uid is a hash of the connection's (ts, orig, oport, resp), so rows written
apart still join.
"""

from __future__ import annotations

from collections.abc import Iterator
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
SMB_FILES_FIELDS = [
    "ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "fuid", "action", "path",
    "name", "size", "prev_name", "times.modified", "times.accessed", "times.created",
    "times.changed",
]  # fmt: skip
SMB_FILES_TYPES = [
    "time", "string", "addr", "port", "addr", "port", "string", "enum", "string", "string",
    "count", "string", "time", "time", "time", "time",
]  # fmt: skip
SMB_MAPPING_FIELDS = [
    "ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "path", "service",
    "native_file_system", "share_type",
]  # fmt: skip
SMB_MAPPING_TYPES = [
    "time", "string", "addr", "port", "addr", "port", "string", "string", "string", "string",
]  # fmt: skip
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
        if rows.schema is ev.SMB:
            self._write_smb(rows)
            return
        uid = self._uids(rows["ts"], rows["orig"], rows["oport"], rows["resp"])
        mal = np.flatnonzero(rows["mal"])
        if len(mal):
            self.malicious.extend(uid.take(pa.array(mal)).to_pylist())
            first = int(rows["ts"][mal].min())
            self.first_malicious = (
                first if self.first_malicious is None else min(first, self.first_malicious)
            )
        for folder, idx in self._by_sensor_month(rows):
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

    def _by_sensor_month(self, rows: Rows) -> Iterator[tuple[str, np.ndarray]]:
        """(folder, row indices) per sensor and month, indices in time order."""
        site = self.org.site_of_ip(rows["orig"])
        site = np.where(site < 0, self.org.site_of_ip(rows["resp"]), site)
        site = np.where(site < 0, 0, site).astype(np.int64)
        month = rows["ts"].astype("datetime64[us]").astype("datetime64[M]").astype(np.int64)
        key = month * len(self.org.sites) + site
        order = np.argsort(key, kind="stable")
        keys = key[order]
        bounds = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1], True])
        for a, b in pairwise(bounds):
            m, s = divmod(int(keys[a]), len(self.org.sites))
            yield f"logs/zeek/zeek-{self.org.sites[s].prefix}/{np.datetime64(m, 'M')}", order[a:b]

    def _uids(
        self, ts: np.ndarray, orig: np.ndarray, oport: np.ndarray, resp: np.ndarray
    ) -> pa.Array:
        """Zeek-style connection uids ("C" + 17 characters), a hash of the connection."""
        key = _mix(ts.astype(np.uint64) ^ np.uint64(self.org.seed))
        key = _mix(key ^ (orig.astype(np.uint64) << np.uint64(32) | resp.astype(np.uint64)))
        return join(["C", _token(_mix(key ^ oport.astype(np.uint64)), key, 17)])

    def _write_smb(self, rows: Rows) -> None:
        conn_uid = self._uids(rows["conn_ts"], rows["orig"], rows["oport"], rows["resp"])
        for folder, idx in self._by_sensor_month(rows):
            part = rows.take(idx)
            uid = conn_uid.take(pa.array(idx))
            mapping = part["mapping"]
            if mapping.any():
                self._append(
                    f"{folder}/smb_mapping.log",
                    "smb_mapping",
                    SMB_MAPPING_FIELDS,
                    SMB_MAPPING_TYPES,
                    part.take(mapping),
                    self._smb_mapping_lines(part.take(mapping), uid.filter(pa.array(mapping))),
                )
            if not mapping.all():
                self._append(
                    f"{folder}/smb_files.log",
                    "smb_files",
                    SMB_FILES_FIELDS,
                    SMB_FILES_TYPES,
                    part.take(~mapping),
                    self._smb_files_lines(part.take(~mapping), uid.filter(pa.array(~mapping))),
                )

    def _share_path(self, r: Rows) -> pa.Array:
        """The tree's path as the client named it (SERVER, share); share ids read "*", share."""
        strings = self.org.strings
        share = pc.utf8_slice_codeunits(strings.plain(r["share"]), 3)
        return join(["\\\\", strings.plain(self.org.hosts.upper_id[r["fs"]]), share])

    def _smb_mapping_lines(self, r: Rows, uid: pa.Array) -> pa.Array:
        return join(
            [epoch_text(r["ts"]), "\t", uid, "\t", *_endpoints(r), "\t", self._share_path(r),
             "\t-\tNTFS\tDISK\n"]
        )  # fmt: skip

    def _smb_files_lines(self, r: Rows, uid: pa.Array) -> pa.Array:
        # file times: created some weeks to a year before, modified since, both before the read
        key = _mix(r["rel"].astype(np.uint64) ^ np.uint64(self.org.seed))
        age = (key % np.uint64(365 * 86_400)).astype(np.int64) * 1_000_000 + 86_400_000_000
        created = r["ts"] - age
        modified = created + age // 256 * (key >> np.uint64(40) & np.uint64(255)).astype(np.int64)
        fuid = join(["F", _token(_mix(key ^ r["ts"].astype(np.uint64)), key, 17)])
        return join(
            [epoch_text(r["ts"]), "\t", uid, "\t", *_endpoints(r), "\t", fuid,
             "\tSMB::FILE_OPEN\t", self._share_path(r), "\t",
             self.org.strings.plain(r["rel"]), "\t", ints(r["size"]), "\t-\t",
             epoch_text(modified), "\t", epoch_text(r["ts"]), "\t", epoch_text(created), "\t",
             epoch_text(modified), "\n"]
        )  # fmt: skip

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


def _endpoints(r: Rows) -> list[pa.Array | str]:
    return [ipv4(r["orig"]), "\t", ints(r["oport"]), "\t", ipv4(r["resp"]), "\t445"]


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a well-spread 64-bit hash of each value."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _token(a: np.ndarray, b: np.ndarray, length: int) -> pa.Array:
    """``length`` characters of UID_ALPHABET drawn from two 64-bit hashes (10 from ``a``)."""
    table = np.frombuffer(UID_ALPHABET.encode(), dtype=np.uint8)
    codes = np.empty((len(a), length), dtype=np.uint8)
    for i in range(length):
        src = a if i < 10 else b
        k = i if i < 10 else i - 10
        codes[:, i] = table[(src // np.uint64(62**k)) % np.uint64(62)]
    return pa.array(np.ascontiguousarray(codes).view(f"S{length}").ravel()).cast(pa.string())


def _interval(us: np.ndarray) -> pa.Array:
    return join([ints(us // 1_000_000), ".", pc.utf8_lpad(ints(us % 1_000_000), 6, "0")])


def _close(fh: BinaryIO, last_ts: int) -> None:
    fh.write(f"#close\t{zeek_time(last_ts)}\n".encode())
