"""Linux auth.log in classic syslog format, one file per (host, month).

Syslog lines carry no year, so each file covers one calendar month and its mtime is set to the
time of its last line: a reader infers the year from the mtime.
"""

from __future__ import annotations

import os
import re
from itertools import pairwise
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from breachtrace.simulate import events as ev
from breachtrace.simulate.columns import Rows, ints, ipv4, join, write_lines
from breachtrace.simulate.org import Org

TEMPLATES = {
    ev.ACCEPTED_PASSWORD: "sshd[{pid}]: Accepted password for {user} from {ip} port {port} ssh2",
    ev.ACCEPTED_KEY: "sshd[{pid}]: Accepted publickey for {user} from {ip} port {port} ssh2",
    ev.FAILED_PASSWORD: "sshd[{pid}]: Failed password for {user} from {ip} port {port} ssh2",
    ev.FAILED_INVALID: "sshd[{pid}]: Failed password for invalid user {user} from {ip} port {port}"
    " ssh2",
    ev.INVALID_USER: "sshd[{pid}]: Invalid user {user} from {ip} port {port}",
    ev.SESSION_OPEN: "sshd[{pid}]: pam_unix(sshd:session): session opened for user {user}"
    " by (uid=0)",
    ev.SESSION_CLOSE: "sshd[{pid}]: pam_unix(sshd:session): session closed for user {user}",
    ev.SUDO: "sudo:    {user} : TTY=pts/{port} ; PWD=/home/{user} ; USER=root ; COMMAND={cmd}",
    ev.CRON_OPEN: "CRON[{pid}]: pam_unix(cron:session): session opened for user {user} by (uid=0)",
    ev.CRON_CLOSE: "CRON[{pid}]: pam_unix(cron:session): session closed for user {user}",
    ev.DISCONNECT: "sshd[{pid}]: Received disconnect from {ip} port {port}:11:"
    " disconnected by user",
    ev.CLOSED_PREAUTH: "sshd[{pid}]: Connection closed by invalid user {user} {ip} port {port}"
    " [preauth]",
}
_FIELD = re.compile(r"\{(\w+)\}")


class AuthLogWriter:
    def __init__(self, out: Path, org: Org) -> None:
        self.out = out
        self.org = org
        self.events_by_file: dict[str, int] = {}
        self.last_ts: dict[str, int] = {}
        self.malicious: list[str] = []
        self.first_malicious: int | None = None

    def write(self, rows: Rows) -> None:
        if rows.n == 0:
            return
        month = rows["ts"].astype("datetime64[us]").astype("datetime64[M]").astype(np.int64)
        key = month * len(self.org.hosts) + rows["host"]
        order = np.argsort(key, kind="stable")
        keys = key[order]
        bounds = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1], True])
        lines = self._lines(rows)
        for a, b in pairwise(bounds):
            idx = order[a:b]
            m, host = divmod(int(keys[a]), len(self.org.hosts))
            rel = f"logs/linux/{self.org.hosts.name[host]}/{np.datetime64(m, 'M')}/auth.log"
            path = self.out / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "ab") as fh:
                write_lines(fh, lines.take(pa.array(idx)))
            before = self.events_by_file.get(rel, 0)
            for i in np.flatnonzero(rows["mal"][idx]):
                self.malicious.append(f"{rel}:{before + int(i) + 1}")
            self.events_by_file[rel] = before + len(idx)
            self.last_ts[rel] = int(rows["ts"][idx[-1]])
        mal = rows["mal"]
        if mal.any():
            first = int(rows["ts"][mal].min())
            self.first_malicious = (
                first if self.first_malicious is None else min(first, self.first_malicious)
            )

    def _lines(self, rows: Rows) -> pa.Array:
        stamp = pc.strftime(
            pa.array(rows["ts"].astype("datetime64[us]").astype("datetime64[s]")),
            format="%b %e %H:%M:%S",
        )
        head = join([stamp, " ", self.org.strings.plain(self.org.hosts.name_id[rows["host"]]), " "])
        pieces, positions = [], []
        for kind in np.unique(rows["kind"]):
            idx = np.flatnonzero(rows["kind"] == kind)
            part = rows.take(idx)
            values = {
                "pid": ints(part["pid"]),
                "port": ints(part["port"]),
                "ip": ipv4(part["ip"]),
                "user": self.org.strings.plain(part["user"]),
                "cmd": self.org.strings.plain(part["cmd"]),
            }
            template = TEMPLATES[int(kind)]
            parts: list[pa.Array | str] = [head.take(pa.array(idx))]
            pos = 0
            for match in _FIELD.finditer(template):
                parts.append(template[pos : match.start()])
                parts.append(values[match.group(1)])
                pos = match.end()
            parts.append(template[pos:] + "\n")
            pieces.append(join(parts))
            positions.append(idx)
        where = np.concatenate(positions)
        inverse = np.empty_like(where)
        inverse[where] = np.arange(len(where))
        return pa.concat_arrays(pieces).take(pa.array(inverse))

    def close(self) -> None:
        """Set each file's mtime to its last line's time (the reader infers the year from it)."""
        for rel, ts in self.last_ts.items():
            seconds = ts / 1_000_000
            os.utime(self.out / rel, (seconds, seconds))
