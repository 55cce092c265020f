"""Event row schemas (numeric columns) and a container collecting rows of every kind.

Times are int64 microseconds since the epoch (UTC). String columns hold ``StringPool`` ids
(0 = "-"), addresses uint32 (0 = unset), and ``mal`` marks rows the attacker caused.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from breachtrace.simulate.columns import Rows, RowSchema

I4, I8, I1, U4, B = np.int32, np.int64, np.int8, np.uint32, np.bool_

# Windows channels.
SECURITY, SYSTEM, SYSMON = 0, 1, 2
CHANNELS = ("Security", "System", "Microsoft-Windows-Sysmon/Operational")

WIN = RowSchema(
    "win",
    {
        "ts": (I8, 0), "host": (I4, 0), "chan": (I1, SECURITY), "eid": (I4, 0), "mal": (B, False),
        "subj": (I4, 0), "sdom": (I4, 0), "slogon": (I8, 0), "user": (I4, 0), "dom": (I4, 0),
        "logon": (I8, 0), "ltype": (I1, 0), "ip": (U4, 0), "port": (I4, -1), "wks": (I4, 0),
        "auth": (I4, 0), "proc": (I4, 0), "pproc": (I4, 0), "cmd": (I4, 0), "obj": (I4, 0),
        "rel": (I4, 0), "share": (I4, 0), "status": (I4, 0), "dip": (U4, 0), "dport": (I4, -1),
        "dhost": (I4, 0), "pid": (I4, 4),
    },
)  # fmt: skip

# Zeek conn rows; a row with a ``query`` is a DNS transaction and also yields a dns.log row.
TCP, UDP = 0, 1
PROTOS = ("tcp", "udp")
SERVICES = ("-", "ssl", "http", "dns", "smb", "krb", "ssh", "rdp", "ldap", "dce_rpc")
SVC = {name: i for i, name in enumerate(SERVICES)}
STATES = ("SF", "S0", "REJ", "RSTO", "S1")
SF, S0, REJ, RSTO = 0, 1, 2, 3
CONN = RowSchema(
    "conn",
    {
        "ts": (I8, 0), "orig": (U4, 0), "oport": (I4, 0), "resp": (U4, 0), "rport": (I4, 0),
        "proto": (I1, TCP), "service": (I1, 0), "dur": (I8, 0), "obytes": (I8, 0),
        "rbytes": (I8, 0), "state": (I1, SF), "mal": (B, False), "query": (I4, 0),
        "answer": (U4, 0), "rcode": (I1, 0),
    },
)  # fmt: skip

# SMB seen by the Zeek sensor: one row per file opened over a share (smb_files.log) and one per
# tree connect (smb_mapping.log, ``mapping`` set); ``conn_ts``/``orig``/``oport``/``resp`` name
# the SMB connection's conn.log row, whose uid the rows carry.
SMB = RowSchema(
    "smb",
    {
        "ts": (I8, 0), "conn_ts": (I8, 0), "orig": (U4, 0), "oport": (I4, 0), "resp": (U4, 0),
        "fs": (I4, 0), "share": (I4, 0), "rel": (I4, 0), "size": (I8, 0), "mapping": (B, False),
        "mal": (B, False),
    },
)  # fmt: skip

# auth.log line kinds (templates live in writers/syslog.py).
(ACCEPTED_PASSWORD, ACCEPTED_KEY, FAILED_PASSWORD, FAILED_INVALID, INVALID_USER, SESSION_OPEN,
 SESSION_CLOSE, SUDO, CRON_OPEN, CRON_CLOSE, DISCONNECT, CLOSED_PREAUTH) = range(12)  # fmt: skip
AUTH = RowSchema(
    "auth",
    {
        "ts": (I8, 0), "host": (I4, 0), "kind": (I1, 0), "user": (I4, 0), "ip": (U4, 0),
        "port": (I4, 0), "pid": (I4, 0), "cmd": (I4, 0), "mal": (B, False),
    },
)  # fmt: skip

CONNECT, DISCONNECT_VPN = 0, 1
SUCCESS, FAILURE = 0, 1
VPN = RowSchema(
    "vpn",
    {
        "ts": (I8, 0), "user": (I4, 0), "client": (U4, 0), "assigned": (U4, 0), "device": (I4, 0),
        "managed": (B, True), "event": (I1, CONNECT), "result": (I1, SUCCESS), "mal": (B, False),
    },
)  # fmt: skip

SCHEMAS = (WIN, CONN, SMB, AUTH, VPN)


class Events:
    """Rows of every schema, collected in parts and concatenated on demand."""

    def __init__(self) -> None:
        self.parts: dict[str, list[Rows]] = {s.name: [] for s in SCHEMAS}

    def add(self, rows: Rows) -> None:
        if rows.n:
            self.parts[rows.schema.name].append(rows)

    def extend(self, other: Events) -> None:
        for name, parts in other.parts.items():
            self.parts[name].extend(parts)

    def rows(self, schema: RowSchema) -> Rows:
        return Rows.concat(schema, self.parts[schema.name])

    def count(self) -> int:
        return sum(p.n for parts in self.parts.values() for p in parts)

    @staticmethod
    def of(rows: Iterable[Rows]) -> Events:
        out = Events()
        for r in rows:
            out.add(r)
        return out
