"""Windows events as NXLog-style flat JSON lines, one file per (site, host group, month).

Each line: ``EventID``, ``Channel``, ``Hostname`` (FQDN), ``SourceName``, ``@timestamp``,
``RecordNumber`` (per host and channel, +1 per event), then the EventData fields flat with their
Windows names. Log gaps are applied here: a *silent* window drops events before numbering (the
log never recorded them); *records_removed* and *cleared* windows drop them after numbering, so
the removed RecordNumber range shows as a hole, which is recorded for truth.json.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from breachtrace.simulate import events as ev
from breachtrace.simulate.columns import Rows, hex_id, ints, ipv4, iso_ms, join, write_lines
from breachtrace.simulate.org import WORKSTATION, Org

SLICE = 200_000  # rows formatted at a time (bounds the text held in memory)

# JSON-escaped, as Windows writes it: privileges separated by "\r\n\t\t\t".
PRIVILEGES = "\\r\\n\\t\\t\\t".join(
    (
        "SeSecurityPrivilege",
        "SeBackupPrivilege",
        "SeRestorePrivilege",
        "SeTakeOwnershipPrivilege",
        "SeDebugPrivilege",
    )
)

# EventData per event id: (field name, kind, column). Kinds: s = string id, hex = logon id,
# int = number as text, port = number or "-", ip = IPv4 or "-", const = literal (JSON-escaped),
# utc = the event time as Sysmon's UtcTime.
_SUBJECT = [
    ("SubjectUserName", "s", "subj"),
    ("SubjectDomainName", "s", "sdom"),
    ("SubjectLogonId", "hex", "slogon"),
]
TEMPLATES: dict[int, list[tuple[str, str, str]]] = {
    4624: [
        *_SUBJECT,
        ("TargetUserName", "s", "user"),
        ("TargetDomainName", "s", "dom"),
        ("TargetLogonId", "hex", "logon"),
        ("LogonType", "int", "ltype"),
        ("IpAddress", "ip", "ip"),
        ("IpPort", "port", "port"),
        ("WorkstationName", "s", "wks"),
        ("AuthenticationPackageName", "s", "auth"),
        ("ProcessName", "s", "proc"),
    ],
    4625: [
        ("SubjectUserName", "s", "subj"),
        ("TargetUserName", "s", "user"),
        ("TargetDomainName", "s", "dom"),
        ("Status", "s", "status"),
        ("FailureReason", "const", "%%2313"),
        ("LogonType", "int", "ltype"),
        ("IpAddress", "ip", "ip"),
        ("IpPort", "port", "port"),
        ("WorkstationName", "s", "wks"),
        ("AuthenticationPackageName", "s", "auth"),
        ("ProcessName", "s", "proc"),
    ],
    4634: [
        ("TargetUserName", "s", "user"),
        ("TargetDomainName", "s", "dom"),
        ("TargetLogonId", "hex", "logon"),
        ("LogonType", "int", "ltype"),
    ],
    4648: [
        *_SUBJECT,
        ("TargetUserName", "s", "user"),
        ("TargetDomainName", "s", "dom"),
        ("TargetServerName", "s", "dhost"),
        ("IpAddress", "ip", "ip"),
        ("IpPort", "port", "port"),
        ("ProcessName", "s", "proc"),
    ],
    4672: [*_SUBJECT, ("PrivilegeList", "const", PRIVILEGES)],
    4688: [
        *_SUBJECT,
        ("NewProcessId", "hex", "pid"),
        ("NewProcessName", "s", "proc"),
        ("TokenElevationType", "const", "%%1936"),
        ("ParentProcessName", "s", "pproc"),
        ("CommandLine", "s", "cmd"),
    ],
    4663: [
        *_SUBJECT,
        ("ObjectServer", "const", "Security"),
        ("ObjectType", "const", "File"),
        ("ObjectName", "s", "obj"),
        ("ProcessId", "hex", "pid"),
        ("ProcessName", "s", "proc"),
        ("AccessList", "const", "%%4416"),
        ("AccessMask", "const", "0x1"),
    ],
    5140: [
        *_SUBJECT,
        ("ObjectType", "const", "File"),
        ("IpAddress", "ip", "ip"),
        ("IpPort", "port", "port"),
        ("ShareName", "s", "share"),
        ("ShareLocalPath", "s", "obj"),
        ("AccessMask", "const", "0x1"),
        ("AccessList", "const", "%%4416"),
    ],
    5145: [
        *_SUBJECT,
        ("ObjectType", "const", "File"),
        ("IpAddress", "ip", "ip"),
        ("IpPort", "port", "port"),
        ("ShareName", "s", "share"),
        ("ShareLocalPath", "s", "obj"),
        ("RelativeTargetName", "s", "rel"),
        ("AccessMask", "const", "0x1"),
        ("AccessList", "const", "%%4416"),
    ],
    4768: [
        ("TargetUserName", "s", "user"),
        ("TargetDomainName", "s", "dom"),
        ("ServiceName", "s", "obj"),
        ("TicketOptions", "const", "0x40810010"),
        ("Status", "const", "0x0"),
        ("TicketEncryptionType", "const", "0x12"),
        ("PreAuthType", "const", "2"),
        ("IpAddress", "ip", "ip"),
        ("IpPort", "port", "port"),
    ],
    7045: [
        ("ServiceName", "s", "obj"),
        ("ImagePath", "s", "proc"),
        ("ServiceType", "const", "user mode service"),
        ("StartType", "const", "auto start"),
        ("AccountName", "s", "user"),
    ],
    1102: _SUBJECT,
    104: [
        ("SubjectUserName", "s", "subj"),
        ("SubjectDomainName", "s", "sdom"),
        ("Channel", "const", "System"),
        ("BackupPath", "const", ""),
    ],
    3: [
        ("RuleName", "const", "-"),
        ("UtcTime", "utc", "ts"),
        ("ProcessId", "int", "pid"),
        ("Image", "s", "proc"),
        ("User", "s", "user"),
        ("Protocol", "const", "tcp"),
        ("Initiated", "const", "true"),
        ("SourceIsIpv6", "const", "false"),
        ("SourceIp", "ip", "ip"),
        ("SourceHostname", "s", "wks"),
        ("SourcePort", "port", "port"),
        ("DestinationIsIpv6", "const", "false"),
        ("DestinationIp", "ip", "dip"),
        ("DestinationHostname", "s", "dhost"),
        ("DestinationPort", "port", "dport"),
    ],
}
PROVIDERS = {
    1102: "Microsoft-Windows-Eventlog",
    104: "Microsoft-Windows-Eventlog",
    7045: "Service Control Manager",
    3: "Microsoft-Windows-Sysmon",
}
SECURITY_PROVIDER = "Microsoft-Windows-Security-Auditing"


@dataclass
class LogGap:
    """A window of one host's channel that the logs will not contain."""

    host: int
    channel: int
    kind: str  # "cleared", "records_removed" or "silent"
    start: int  # µs, inclusive
    end: int  # µs, exclusive
    first_record: int = 0  # filled while writing
    last_record: int = 0
    records: int = 0


class WindowsWriter:
    def __init__(self, out: Path, org: Org, gaps: Sequence[LogGap]) -> None:
        self.root = out / "logs" / "windows"
        self.out = out
        self.org = org
        self.gaps = list(gaps)
        n_hosts = len(org.hosts)
        self.next_record = np.ones(n_hosts * len(ev.CHANNELS), dtype=np.int64)
        group = np.where(org.hosts.role == WORKSTATION, "workstations", "servers")
        self.group = list(group)
        self.fqdn = org.strings.ids(f"{n}.{org.dns_suffix}" for n in org.hosts.name)
        self.events_by_file: dict[str, int] = {}
        self.malicious: list[str] = []
        self.first_malicious: int | None = None

    def write(self, rows: Rows) -> None:
        """Write rows (sorted by time) that are final: nothing earlier will follow."""
        if rows.n == 0:
            return
        rows = self._drop(rows, silent=True)
        key = rows["host"].astype(np.int64) * len(ev.CHANNELS) + rows["chan"]
        order = np.argsort(key, kind="stable")
        counts = np.bincount(key, minlength=len(self.next_record))
        first_of = np.concatenate([[0], np.cumsum(counts)[:-1]])
        rank = np.empty(rows.n, dtype=np.int64)
        rank[order] = np.arange(rows.n) - first_of[key[order]]
        record = self.next_record[key] + rank
        self.next_record += counts
        rows.cols["record"] = record
        rows = self._drop(rows, silent=False)
        self._note_malicious(rows)
        self._write_files(rows)

    def _drop(self, rows: Rows, *, silent: bool) -> Rows:
        keep = np.ones(rows.n, dtype=bool)
        for gap in self.gaps:
            if (gap.kind == "silent") != silent:
                continue
            hit = (rows["host"] == gap.host) & (rows["chan"] == gap.channel)
            hit &= (rows["ts"] >= gap.start) & (rows["ts"] < gap.end)
            if not hit.any():
                continue
            if not silent:
                rec = rows["record"][hit]
                gap.first_record = int(rec.min()) if not gap.records else gap.first_record
                gap.last_record = int(rec.max())
            gap.records += int(hit.sum())
            keep &= ~hit
        if keep.all():
            return rows
        return rows.take(keep)

    def _note_malicious(self, rows: Rows) -> None:
        mal = np.flatnonzero(rows["mal"])
        if not len(mal):
            return
        names = self.org.hosts.name
        for i in mal:
            self.malicious.append(
                f"{names[rows['host'][i]]}|{ev.CHANNELS[rows['chan'][i]]}|{rows['record'][i]}"
            )
        first = int(rows["ts"][mal].min())
        self.first_malicious = (
            first if self.first_malicious is None else min(first, self.first_malicious)
        )

    def _write_files(self, rows: Rows) -> None:
        org = self.org
        site = org.hosts.site[rows["host"]].astype(np.int64)
        ws = (org.hosts.role[rows["host"]] == WORKSTATION).astype(np.int64)
        month = rows["ts"].astype("datetime64[us]").astype("datetime64[M]").astype(np.int64)
        file_key = (month * len(org.sites) + site) * 2 + ws
        order = np.argsort(file_key, kind="stable")
        keys = file_key[order]
        bounds = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1], True])
        for a, b in pairwise(bounds):
            idx = order[a:b]
            k = int(keys[a])
            m, rest = divmod(k, len(org.sites) * 2)
            s, w = divmod(rest, 2)
            label = str(np.datetime64(m, "M"))
            group = "workstations" if w else "servers"
            rel = f"logs/windows/{org.sites[s].prefix}/{group}-{label}.json"
            path = self.out / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "ab") as fh:
                for lo in range(0, len(idx), SLICE):
                    part = idx[lo : lo + SLICE]
                    write_lines(fh, self.format(rows.take(part), rows["record"][part]))
            self.events_by_file[rel] = self.events_by_file.get(rel, 0) + len(idx)

    def format(self, rows: Rows, record: np.ndarray) -> pa.Array:
        """The JSON lines (newline-terminated) for ``rows``, in row order."""
        pieces: list[pa.Array] = []
        positions: list[np.ndarray] = []
        for eid in np.unique(rows["eid"]):
            idx = np.flatnonzero(rows["eid"] == eid)
            pieces.append(self._format_event(int(eid), rows.take(idx), record[idx]))
            positions.append(idx)
        lines = pa.concat_arrays(pieces)
        where = np.concatenate(positions)
        inverse = np.empty_like(where)
        inverse[where] = np.arange(len(where))
        return lines.take(pa.array(inverse))

    def _format_event(self, eid: int, rows: Rows, record: np.ndarray) -> pa.Array:
        pool = self.org.strings
        chan = int(rows["chan"][0])
        provider = PROVIDERS.get(eid, SECURITY_PROVIDER)
        if chan == ev.SYSMON:
            provider = PROVIDERS[3]
        parts: list[pa.Array | str] = [
            f'{{"EventID":{eid},"Channel":"{ev.CHANNELS[chan]}","Hostname":"',
            pool.json(self.fqdn[rows["host"]]),
            f'","SourceName":"{provider}","@timestamp":"',
            iso_ms(rows["ts"]),
            '","RecordNumber":',
            ints(record),
        ]
        for name, kind, column in TEMPLATES[eid]:
            parts.append(f',"{name}":"')
            parts.append(self._value(kind, column, rows))
            parts.append('"')
        parts.append("}\n")
        return join(parts)

    def _value(self, kind: str, column: str, rows: Rows) -> pa.Array | str:
        if kind == "const":
            return column
        if kind == "s":
            return self.org.strings.json(rows[column])
        if kind == "hex":
            return hex_id(rows[column])
        if kind == "int":
            return ints(rows[column])
        if kind == "port":
            return ints(rows[column], dash_below=0)
        if kind == "ip":
            return ipv4(rows[column])
        if kind == "utc":
            text = iso_ms(rows[column])
            return pc.replace_substring(pc.utf8_slice_codeunits(text, 0, 23), "T", " ")
        raise ValueError(f"unknown field kind {kind}")
