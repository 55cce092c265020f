"""Activity kernels: one vectorised function per kind of thing people (or attackers) do.

Ordinary behaviour and the injected incidents call the same kernels, so an attacker's logon or
file read is recorded exactly like an employee's; only the ``mal`` flag (kept out of the logs)
tells them apart. Every argument may be an array (one value per activity) or a scalar.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from breachtrace.simulate import events as ev
from breachtrace.simulate.events import SYSMON, SYSTEM, Events
from breachtrace.simulate.org import US, Org

Arr = Any  # numpy array or scalar, broadcast to the activity count

LOCALHOST = (127 << 24) | 1
SYSTEM_LOGON = 0x3E7


class Activity:
    """Kernels writing into one ``Events`` container, drawing from one generator."""

    def __init__(self, org: Org, rng: np.random.Generator, out: Events | None = None) -> None:
        self.org = org
        self.rng = rng
        self.out = out if out is not None else Events()
        s = org.strings.id
        self.s = s
        self.dom = org.domain_id
        self.acct = org.strings.ids(f"{org.netbios}\\{u}" for u in org.users.name)
        self.system_acct = s("NT AUTHORITY\\SYSTEM")
        self.sid = {
            "system": s("SYSTEM"),
            "nt": s("NT AUTHORITY"),
            "negotiate": s("Negotiate"),
            "kerberos": s("Kerberos"),
            "ntlm": s("NTLM"),
            "winlogon": s("C:\\Windows\\System32\\winlogon.exe"),
            "services": s("C:\\Windows\\System32\\services.exe"),
            "svchost": s("C:\\Windows\\System32\\svchost.exe"),
            "explorer": s("C:\\Windows\\explorer.exe"),
            "lsass": s("C:\\Windows\\System32\\lsass.exe"),
            "localsystem": s("LocalSystem"),
            "proc_system": s("System"),
            "krbtgt": s("krbtgt"),
            "bad_password": s("0xc000006a"),
            "no_user": s("0xc0000064"),
            "bad_creds": s("0xc000006d"),
        }

    # --- helpers ---------------------------------------------------------------------------
    def logon_ids(self, n: int) -> np.ndarray:
        return self.rng.integers(0x10000, 0x7FFFFFFF, size=n, dtype=np.int64)

    def ports(self, n: int) -> np.ndarray:
        return self.rng.integers(49152, 65535, size=n, dtype=np.int32)

    def pids(self, n: int) -> np.ndarray:
        return self.rng.integers(300, 65000, size=n, dtype=np.int32)

    def _n(self, ts: np.ndarray) -> int:
        return len(np.atleast_1d(ts))

    def win(self, **cols: Any) -> None:
        self.out.add(ev.WIN.make(self._n(cols["ts"]), **cols))

    # --- Windows logons --------------------------------------------------------------------
    def interactive(
        self,
        ts_on: np.ndarray,
        ts_off: np.ndarray,
        host: Arr,
        user: np.ndarray,
        admin: Arr,
        ltype: Arr = 2,
        mal: Arr = False,
    ) -> np.ndarray:
        """A console logon (4624 type 2/7/11, 4672 for admins) and its logoff (4634)."""
        n = self._n(ts_on)
        h = self.org.hosts
        logon = self.logon_ids(n)
        name = self.org.users.name_id[user]
        self.win(
            ts=ts_on,
            host=host,
            eid=4624,
            mal=mal,
            subj=h.machine_id[host],
            sdom=self.dom,
            slogon=SYSTEM_LOGON,
            user=name,
            dom=self.dom,
            logon=logon,
            ltype=ltype,
            ip=LOCALHOST,
            port=0,
            wks=h.upper_id[host],
            auth=self.sid["negotiate"],
            proc=self.sid["winlogon"],
        )
        self._privileges(ts_on, host, name, logon, admin, mal)
        self.win(
            ts=ts_off,
            host=host,
            eid=4634,
            mal=mal,
            user=name,
            dom=self.dom,
            logon=logon,
            ltype=ltype,
        )
        return logon

    def network_logon(
        self,
        ts: np.ndarray,
        ts_end: np.ndarray,
        dst: Arr,
        user_name: Arr,
        src_ip: Arr,
        src_wks: Arr,
        admin: Arr,
        ltype: Arr = 3,
        ntlm: Arr = False,
        mal: Arr = False,
        port: Arr | None = None,
    ) -> np.ndarray:
        """A remote logon on ``dst`` (4624 type 3 or 10, 4672 for admins) and its 4634;
        ``port``, the client's source port, defaults to a fresh ephemeral one."""
        n = self._n(ts)
        logon = self.logon_ids(n)
        auth = np.where(ntlm, self.sid["ntlm"], self.sid["kerberos"])
        rdp = np.asarray(ltype) == 10
        self.win(
            ts=ts,
            host=dst,
            eid=4624,
            mal=mal,
            user=user_name,
            dom=self.dom,
            logon=logon,
            ltype=ltype,
            ip=src_ip,
            port=self.ports(n) if port is None else port,
            wks=src_wks,
            auth=auth,
            proc=np.where(rdp, self.sid["svchost"], 0),
            subj=np.where(rdp, self.org.hosts.machine_id[dst], 0),
            sdom=np.where(rdp, self.dom, 0),
            slogon=np.where(rdp, SYSTEM_LOGON, 0),
        )
        self._privileges(ts, dst, user_name, logon, admin, mal)
        self.win(
            ts=ts_end,
            host=dst,
            eid=4634,
            mal=mal,
            user=user_name,
            dom=self.dom,
            logon=logon,
            ltype=ltype,
        )
        return logon

    def _privileges(
        self, ts: np.ndarray, host: Arr, name: Arr, logon: np.ndarray, admin: Arr, mal: Arr
    ) -> None:
        n = self._n(ts)
        keep = np.broadcast_to(np.asarray(admin, dtype=bool), (n,))
        if not keep.any():
            return

        def sel(x: Arr) -> Arr:
            a = np.asarray(x)
            return a[keep] if a.ndim else a

        self.win(
            ts=sel(ts) + 1000,
            host=sel(host),
            eid=4672,
            mal=sel(mal),
            subj=sel(name),
            sdom=self.dom,
            slogon=sel(logon),
        )

    def explicit_credentials(
        self,
        ts: np.ndarray,
        src: Arr,
        subject: Arr,
        subject_logon: Arr,
        target_user: Arr,
        target_server: Arr,
        dst_ip: Arr,
        proc: Arr,
        mal: Arr = False,
    ) -> None:
        """4648 on ``src``: a logon with explicitly supplied credentials to another server."""
        self.win(
            ts=ts,
            host=src,
            eid=4648,
            mal=mal,
            subj=subject,
            sdom=self.dom,
            slogon=subject_logon,
            user=target_user,
            dom=self.dom,
            dhost=target_server,
            ip=dst_ip,
            port=445,
            proc=proc,
        )

    def kerberos_tgt(
        self, ts: np.ndarray, dc: Arr, user_name: Arr, ip: Arr, mal: Arr = False
    ) -> None:
        self.win(
            ts=ts,
            host=dc,
            eid=4768,
            mal=mal,
            user=user_name,
            dom=self.dom,
            ip=ip,
            port=self.ports(self._n(ts)),
            obj=self.sid["krbtgt"],
        )

    def failed_logon(
        self,
        ts: np.ndarray,
        host: Arr,
        user_name: Arr,
        ltype: Arr,
        ip: Arr,
        wks: Arr,
        status: Arr,
        ntlm: Arr = True,
        mal: Arr = False,
    ) -> None:
        n = self._n(ts)
        self.win(
            ts=ts,
            host=host,
            eid=4625,
            mal=mal,
            user=user_name,
            dom=self.dom,
            ltype=ltype,
            ip=ip,
            port=np.where(np.asarray(ip) == LOCALHOST, 0, self.ports(n)),
            wks=wks,
            status=status,
            auth=np.where(ntlm, self.sid["ntlm"], self.sid["negotiate"]),
            subj=np.where(np.asarray(ltype) == 2, self.org.hosts.machine_id[host], 0),
        )

    # --- processes, services, logs ---------------------------------------------------------
    def processes(
        self,
        ts: np.ndarray,
        host: Arr,
        subject: Arr,
        logon: Arr,
        proc: Arr,
        parent: Arr,
        cmd: Arr,
        mal: Arr = False,
    ) -> None:
        self.win(
            ts=ts,
            host=host,
            eid=4688,
            mal=mal,
            subj=subject,
            sdom=self.dom,
            slogon=logon,
            proc=proc,
            pproc=parent,
            cmd=cmd,
            pid=self.pids(self._n(ts)),
        )

    def service_install(
        self, ts: np.ndarray, host: Arr, service: Arr, image: Arr, mal: Arr = False
    ) -> None:
        self.win(
            ts=ts,
            host=host,
            chan=SYSTEM,
            eid=7045,
            mal=mal,
            obj=service,
            proc=image,
            user=self.sid["localsystem"],
            pid=self.rng.integers(500, 900),
        )

    def security_log_cleared(
        self, ts: np.ndarray, host: Arr, user_name: Arr, logon: Arr, mal: Arr = False
    ) -> None:
        self.win(ts=ts, host=host, eid=1102, mal=mal, subj=user_name, sdom=self.dom, slogon=logon)

    def system_log_cleared(
        self, ts: np.ndarray, host: Arr, user_name: Arr, mal: Arr = False
    ) -> None:
        self.win(ts=ts, host=host, chan=SYSTEM, eid=104, mal=mal, subj=user_name, sdom=self.dom)

    # --- files -----------------------------------------------------------------------------
    def share_session(
        self,
        ts: np.ndarray,
        ts_end: np.ndarray,
        fs: Arr,
        user_name: Arr,
        src_ip: Arr,
        src_wks: Arr,
        admin: Arr,
        files_per_session: np.ndarray,
        read_ts: np.ndarray,
        files: np.ndarray,
        ntlm: Arr = False,
        mal: Arr = False,
    ) -> None:
        """SMB sessions reading files: 4624/4634, 5140 per session, 5145 + 4663 per file, the
        SMB flow, and what Zeek's SMB analyser logs of it (smb_mapping per session, smb_files
        per file). ``read_ts``/``files`` list every read, session by session."""
        n = self._n(ts)
        if n == 0:
            return
        fs = np.broadcast_to(np.asarray(fs), (n,))
        user_name = np.broadcast_to(np.asarray(user_name), (n,))
        src_ip = np.broadcast_to(np.asarray(src_ip, dtype=np.uint32), (n,))
        mal_s = np.broadcast_to(np.asarray(mal, dtype=bool), (n,))
        # one TCP connection per session: the logon, share records and flow share its port
        port = self.ports(n)
        logon = self.network_logon(
            ts, ts_end, fs, user_name, src_ip, src_wks, admin, 3, ntlm, mal_s, port
        )
        cat = self.org.catalog
        first_share = cat.share_id[files[np.cumsum(files_per_session) - files_per_session]]
        self.win(
            ts=ts + 2000,
            host=fs,
            eid=5140,
            mal=mal_s,
            subj=user_name,
            sdom=self.dom,
            slogon=logon,
            ip=src_ip,
            port=port,
            share=first_share,
            obj=cat.share_local_id[files[np.cumsum(files_per_session) - files_per_session]],
        )
        sess = np.repeat(np.arange(n), files_per_session)
        common = dict(
            host=fs[sess], mal=mal_s[sess], subj=user_name[sess], sdom=self.dom, slogon=logon[sess]
        )
        self.win(
            ts=read_ts,
            eid=5145,
            ip=src_ip[sess],
            port=port[sess],
            share=cat.share_id[files],
            obj=cat.share_local_id[files],
            rel=cat.rel_id[files],
            **common,
        )
        self.win(
            ts=read_ts + 150,
            eid=4663,
            obj=cat.local_id[files],
            proc=self.sid["proc_system"],
            pid=4,
            **common,
        )
        file_size = self.rng.lognormal(11, 1.2, len(files))
        size = np.bincount(sess, weights=file_size, minlength=n)
        resp = self.org.hosts.ip[fs]
        # what the network sensor sees of the session: the tree connect and every file opened
        self.out.add(
            ev.SMB.make(
                n, ts=ts + 2000, conn_ts=ts, orig=src_ip, oport=port, resp=resp, fs=fs,
                share=first_share, mapping=True, mal=mal_s,
            )
        )  # fmt: skip
        self.out.add(
            ev.SMB.make(
                len(files), ts=read_ts, conn_ts=ts[sess], orig=src_ip[sess], oport=port[sess],
                resp=resp[sess], fs=fs[sess], share=cat.share_id[files], rel=cat.rel_id[files],
                size=file_size.astype(np.int64), mal=mal_s[sess],
            )
        )  # fmt: skip
        self.flows(
            ts=ts,
            orig=src_ip,
            oport=port,
            resp=resp,
            rport=445,
            service=ev.SVC["smb"],
            dur=ts_end - ts,
            obytes=(size * 0.02).astype(np.int64) + 2000,
            rbytes=size.astype(np.int64) + 5000,
            mal=mal_s,
        )

    def local_reads(
        self,
        ts: np.ndarray,
        host: Arr,
        user_name: Arr,
        logon: Arr,
        files: np.ndarray,
        proc: Arr,
        mal: Arr = False,
    ) -> None:
        """4663 for files opened by a process on the file server itself (console/RDP)."""
        self.win(
            ts=ts,
            host=host,
            eid=4663,
            mal=mal,
            subj=user_name,
            sdom=self.dom,
            slogon=logon,
            obj=self.org.catalog.local_id[files],
            proc=proc,
            pid=self.pids(1)[0],
        )

    # --- network ---------------------------------------------------------------------------
    def flows(self, ts: np.ndarray, **cols: Any) -> None:
        n = self._n(ts)
        if "oport" not in cols:
            cols["oport"] = self.ports(n)
        self.out.add(ev.CONN.make(n, ts=ts, **cols))

    def dns(
        self, ts: np.ndarray, client: Arr, server: Arr, query: Arr, answer: Arr, mal: Arr = False
    ) -> None:
        n = self._n(ts)
        rtt = self.rng.integers(300, 40_000, size=n)
        self.flows(
            ts=ts,
            orig=client,
            resp=server,
            rport=53,
            proto=ev.UDP,
            service=ev.SVC["dns"],
            dur=rtt,
            obytes=self.rng.integers(30, 60, size=n),
            rbytes=self.rng.integers(46, 200, size=n),
            query=query,
            answer=answer,
            rcode=np.where(np.asarray(answer) == 0, 3, 0),
            mal=mal,
        )

    def sysmon_connect(
        self,
        ts: np.ndarray,
        host: Arr,
        account: Arr,
        image: Arr,
        dst_ip: Arr,
        dst_port: Arr,
        dst_name: Arr,
        mal: Arr = False,
    ) -> np.ndarray:
        """Sysmon event 3 for an outbound connection; returns the source ports used."""
        n = self._n(ts)
        port = self.ports(n)
        self.win(
            ts=ts,
            host=host,
            chan=SYSMON,
            eid=3,
            mal=mal,
            user=account,
            proc=image,
            ip=self.org.hosts.ip[host],
            port=port,
            wks=self.org.hosts.name_id[host],
            dip=dst_ip,
            dport=dst_port,
            dhost=dst_name,
            pid=self.pids(n),
        )
        return port

    # --- Linux -----------------------------------------------------------------------------
    def ssh_session(
        self,
        ts: np.ndarray,
        ts_end: np.ndarray,
        host: Arr,
        user_name: Arr,
        src_ip: Arr,
        key: Arr,
        mal: Arr = False,
    ) -> None:
        """sshd accepted + pam session opened/closed, and the SSH flow."""
        n = self._n(ts)
        pid, port = self.pids(n), self.ports(n)
        kind = np.where(key, ev.ACCEPTED_KEY, ev.ACCEPTED_PASSWORD)
        common = dict(host=host, user=user_name, ip=src_ip, port=port, pid=pid, mal=mal)
        self.out.add(ev.AUTH.make(n, ts=ts, kind=kind, **common))
        self.out.add(ev.AUTH.make(n, ts=ts + 20_000, kind=ev.SESSION_OPEN, **common))
        self.out.add(ev.AUTH.make(n, ts=ts_end, kind=ev.DISCONNECT, **common))
        self.out.add(ev.AUTH.make(n, ts=ts_end + 5_000, kind=ev.SESSION_CLOSE, **common))
        dur = np.asarray(ts_end) - np.asarray(ts)
        self.flows(
            ts=ts,
            orig=src_ip,
            oport=port,
            resp=self.org.hosts.ip[host],
            rport=22,
            service=ev.SVC["ssh"],
            dur=dur,
            obytes=self.rng.integers(3000, 90_000, n),
            rbytes=self.rng.integers(3000, 400_000, n),
            mal=mal,
        )

    def ssh_failures(
        self, ts: np.ndarray, host: Arr, user_name: Arr, src_ip: Arr, invalid: Arr, mal: Arr = False
    ) -> None:
        n = self._n(ts)
        invalid = np.broadcast_to(np.asarray(invalid, dtype=bool), (n,))
        pid, port = self.pids(n), self.ports(n)
        common = dict(host=host, user=user_name, ip=src_ip, port=port, pid=pid, mal=mal)
        rows = ev.AUTH.make(n, ts=ts, kind=ev.INVALID_USER, **common)
        self.out.add(rows.take(invalid))
        kind = np.where(invalid, ev.FAILED_INVALID, ev.FAILED_PASSWORD)
        self.out.add(ev.AUTH.make(n, ts=ts + 2 * US, kind=kind, **common))
        self.out.add(
            ev.AUTH.make(n, ts=ts + 3 * US, kind=ev.CLOSED_PREAUTH, **common).take(invalid)
        )
        self.flows(
            ts=ts,
            orig=src_ip,
            oport=port,
            resp=self.org.hosts.ip[host],
            rport=22,
            service=ev.SVC["ssh"],
            dur=3 * US + self.rng.integers(0, US, n),
            obytes=self.rng.integers(1200, 2500, n),
            rbytes=self.rng.integers(1500, 3000, n),
            state=ev.RSTO,
            mal=mal,
        )

    def sudo(self, ts: np.ndarray, host: Arr, user_name: Arr, cmd: Arr, mal: Arr = False) -> None:
        n = self._n(ts)
        self.out.add(
            ev.AUTH.make(
                n,
                ts=ts,
                host=host,
                kind=ev.SUDO,
                user=user_name,
                cmd=cmd,
                port=self.rng.integers(0, 4, n),
                mal=mal,
            )
        )

    def cron(self, ts: np.ndarray, host: Arr) -> None:
        n = self._n(ts)
        pid = self.pids(n)
        root = self.s("root")
        self.out.add(ev.AUTH.make(n, ts=ts, host=host, kind=ev.CRON_OPEN, user=root, pid=pid))
        self.out.add(
            ev.AUTH.make(n, ts=ts + 400_000, host=host, kind=ev.CRON_CLOSE, user=root, pid=pid)
        )

    # --- VPN -------------------------------------------------------------------------------
    def vpn_session(
        self,
        ts_on: np.ndarray,
        ts_off: np.ndarray,
        user_name: Arr,
        client: Arr,
        assigned: Arr,
        device: Arr,
        managed: Arr,
        mal: Arr = False,
    ) -> None:
        n = self._n(ts_on)
        common = dict(
            user=user_name,
            client=client,
            assigned=assigned,
            device=device,
            managed=managed,
            mal=mal,
        )
        self.out.add(ev.VPN.make(n, ts=ts_on, event=ev.CONNECT, **common))
        self.out.add(ev.VPN.make(n, ts=ts_off, event=ev.DISCONNECT_VPN, **common))

    def vpn_failure(
        self,
        ts: np.ndarray,
        user_name: Arr,
        client: Arr,
        device: Arr,
        managed: Arr,
        mal: Arr = False,
    ) -> None:
        n = self._n(ts)
        self.out.add(
            ev.VPN.make(
                n,
                ts=ts,
                user=user_name,
                client=client,
                device=device,
                managed=managed,
                result=ev.FAILURE,
                mal=mal,
            )
        )
