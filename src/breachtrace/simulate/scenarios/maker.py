"""maker-2016 (incident B): beaconing malware, slow collection, deleted logs.

A phishing attachment starts an implant on one workstation; with a harvested admin password
the attacker installs it on a handful of other workstations (at several sites) over the
following weeks. Every implant beacons with jitter to one external address for the rest of the
period (Sysmon 3 + Zeek conn). From the implants the attacker reads thousands of client files
across several file servers, a session every few nights, uploading after each. To hide, it
clears the Security log on some hosts (1102), removes record ranges from others (a hole in
RecordNumber) and stops Sysmon on one workstation for a while (a silent window).
"""

from __future__ import annotations

import numpy as np

from breachtrace.simulate import names
from breachtrace.simulate.events import SECURITY, SYSMON
from breachtrace.simulate.org import DAY, FILE_SERVER, US, WORKSTATION, Org
from breachtrace.simulate.scenarios.common import CREDS, RECON, STAGING, Attacker
from breachtrace.simulate.truth import Beacon, Plan, Route
from breachtrace.simulate.writers.windows import LogGap

OUTLOOK = "C:\\Program Files\\Microsoft Office\\root\\Office16\\OUTLOOK.EXE"
SERVICES = "C:\\Windows\\System32\\services.exe"


def plan(org: Org) -> Plan:
    result = Plan()
    atk = Attacker(org, 60, result)
    rng, u, h, n_days = atk.rng, org.users, org.hosts, org.days
    if n_days < 10:
        raise ValueError(f"maker-2016 needs more days to unfold (got {n_days}; use --days 10+)")
    ok = np.flatnonzero((~u.admin) & (u.team >= 0) & (u.start_day == 0) & (u.ws_new < 0))
    stations = np.array([u.ws[i] for i in ok])
    _, first = np.unique(stations, return_index=True)  # one user per workstation
    ok = ok[np.sort(first)]
    n_ws = int((h.role == WORKSTATION).sum())
    k = int(np.clip(n_ws // 40, 3, 8))
    victims = [int(x) for x in rng.choice(ok, size=min(k, len(ok)), replace=False)]
    admins = np.flatnonzero(u.admin)
    adm = int(rng.choice(admins))
    c2_ip = int(names.public_ipv4(rng, 1)[0])
    c2_name = names.web_domains(rng, 1)[0]
    end = (org.start + n_days * DAY) * US - 2 * 3600 * US
    route = Route("implant", entry=h.name[u.ws[victims[0]]], source_ips=[names.ip_text(c2_ip)])

    d0 = max(1, int(n_days * rng.uniform(0.02, 0.06)))
    infected: list[tuple[int, int]] = []  # (workstation, infection time)
    t0 = _phish(atk, route, victims[0], d0, c2_ip, c2_name, end)
    infected.append((int(u.ws[victims[0]]), t0))
    result.first_compromise = t0
    spread_days = np.sort(
        rng.integers(d0 + 1, d0 + 1 + max(2, int(n_days * 0.35)), len(victims) - 1)
    )
    for victim, day in zip(victims[1:], spread_days, strict=True):
        src, since = infected[int(rng.integers(len(infected)))]
        infected.append(_spread(atk, route, src, since, victim, int(day), adm, c2_ip, c2_name, end))
    sessions = _collect(atk, route, infected, adm, d0 + 2, c2_ip)
    _tamper(atk, infected, sessions, adm)
    result.routes = [route]
    result.detected = end
    return result


def _phish(
    atk: Attacker, route: Route, victim: int, day: int, c2_ip: int, c2_name: str, end: int
) -> int:
    org, act = atk.org, atk.act
    u, h = org.users, org.hosts
    ws, site = int(u.ws[victim]), int(u.site[victim])
    t = atk.at(day, site, 10, 16)
    image = (
        f"C:\\Users\\{u.name[victim]}\\AppData\\Roaming\\{atk.tag().capitalize()}\\{atk.tag()}.exe"
    )
    name = int(u.name_id[victim])
    logon = int(act.logon_ids(1)[0])
    act.processes(
        np.array([t]), ws, name, logon, atk.s(image), atk.s(OUTLOOK), atk.s(f'"{image}"'), mal=True
    )
    atk.run(t + 60 * US, ws, name, logon, image, [atk.command(RECON) for _ in range(3)])
    atk.plan.beacons.append(
        _beacon(atk, ws, image, c2_ip, c2_name, t + 90 * US, end, int(act.acct[victim]))
    )
    route.accounts.append(u.name[victim])
    route.hosts.append(h.name[ws])
    return t


def _beacon(
    atk: Attacker, ws: int, image: str, c2_ip: int, c2_name: str, start: int, end: int, account: int
) -> Beacon:
    org, rng = atk.org, atk.rng
    dns = int(org.hosts.ip[org.dc_of(int(org.hosts.site[ws]))])
    interval = int(rng.integers(5, 16)) * 60
    return atk.beacon(
        ws, image, c2_ip, c2_name, start, end, interval, float(rng.uniform(0.1, 0.35)), account, dns
    )


def _spread(
    atk: Attacker,
    route: Route,
    src: int,
    since: int,
    victim: int,
    day: int,
    adm: int,
    c2_ip: int,
    c2_name: str,
    end: int,
) -> tuple[int, int]:
    """Admin share + service install from an infected workstation (infected at ``since``) to
    the next one."""
    org, rng, act = atk.org, atk.rng, atk.act
    u, h = org.users, org.hosts
    dst = int(u.ws[victim])
    t = atk.at(day, int(h.site[src]), 11, 17)
    # the same day at another site can fall before the source's own infection (local times
    # differ): the attacker spreads from it only once it runs there
    t = max(t, since + int(rng.integers(30, 180)) * 60 * US)
    name = int(u.name_id[adm])
    act.explicit_credentials(
        np.array([t - 2 * US]),
        src,
        name,
        0,
        name,
        h.name_id[dst],
        h.ip[dst],
        atk.s("C:\\Windows\\System32\\net.exe"),
        mal=True,
    )
    session_end = t + int(rng.integers(2, 10)) * 60 * US
    logon = act.network_logon(
        np.array([t]),
        np.array([session_end]),
        dst,
        name,
        h.ip[src],
        h.upper_id[src],
        True,
        3,
        True,
        mal=True,
    )
    act.flows(
        ts=np.array([t - US]),
        orig=h.ip[src],
        resp=h.ip[dst],
        rport=445,
        service=4,
        dur=session_end - t,
        obytes=int(rng.integers(200_000, 900_000)),
        rbytes=int(rng.integers(10_000, 60_000)),
        mal=True,
    )
    image = atk.implant_path()
    service = names.pick(rng, names.IMPLANT_SERVICES)
    act.service_install(np.array([t + 40 * US]), dst, atk.s(service), atk.s(image), mal=True)
    atk.run(t + 50 * US, dst, int(h.machine_id[dst]), 0x3E7, SERVICES, [f'"{image}"'])
    atk.run(t + 200 * US, dst, name, int(logon[0]), image, [atk.command(CREDS)])
    atk.plan.beacons.append(
        _beacon(atk, dst, image, c2_ip, c2_name, t + 300 * US, end, act.system_acct)
    )
    atk.hop(route, h.name[src], h.name[dst], t, u.name[adm], "smb")
    return dst, t


def _collect(
    atk: Attacker,
    route: Route,
    infected: list[tuple[int, int]],
    adm: int,
    first_day: int,
    c2_ip: int,
) -> list[tuple[int, int, int, int]]:
    """Night-time SMB sessions from implants crawling client folders on several file servers.
    Returns (workstation, file server, start, end) per session."""
    org, rng, act = atk.org, atk.rng, atk.act
    h, cat = org.hosts, org.catalog
    servers = _target_servers(org, rng)
    pool = np.flatnonzero(np.isin(cat.host, servers) & (cat.client >= 0))
    total = int(min(len(pool), 27_445, max(1000, 45 * org.days)))
    files = np.sort(rng.choice(pool, size=total, replace=False))  # crawl in folder order
    n_sess = int(np.clip(org.days // 2, 4, 300))
    days = np.sort(rng.integers(first_day, org.days - 1, n_sess))
    target = servers[rng.integers(0, len(servers), n_sess)]
    target[: len(servers)] = servers[: min(len(servers), n_sess)]  # every server is visited
    name = int(org.users.name_id[adm])
    sessions = []
    seen: set[tuple[int, int]] = set()
    for fs in servers:
        mine = np.flatnonzero(target == fs)
        own_files = files[cat.host[files] == fs]
        for s_idx, chunk in zip(mine, np.array_split(own_files, len(mine)), strict=True):
            if not len(chunk):
                continue
            day = int(days[s_idx])
            ready = [w for w, t in infected if t < org.local_midnight(day).min() * US] or [
                infected[0][0]
            ]
            ws = int(ready[int(rng.integers(len(ready)))])
            t = max(atk.at(day, int(h.site[ws]), 0.5, 4.5), infected[0][1] + 3600 * US)
            ts = t + 40 * US + np.cumsum(rng.integers(3, 25, len(chunk))) * US
            end = int(ts[-1]) + 120 * US
            act.share_session(
                np.array([t]),
                np.array([end]),
                int(fs),
                name,
                h.ip[ws],
                h.upper_id[ws],
                True,
                np.array([len(chunk)]),
                ts,
                chunk,
                ntlm=True,
                mal=True,
            )
            atk.run(end + 30 * US, ws, name, 0, SERVICES, [atk.command(STAGING)])
            atk.exfiltrate(
                end + 600 * US, ws, c2_ip, int(len(chunk) * rng.integers(100_000, 400_000))
            )
            sessions.append((ws, int(fs), t, end))
            route.files.extend(int(f) for f in chunk)
    for ws, fs, t, _ in sorted(sessions, key=lambda s: s[2]):
        if (ws, fs) not in seen:
            seen.add((ws, fs))
            atk.hop(route, h.name[ws], h.name[fs], t, org.users.name[adm], "smb")
    route.hops.sort(key=lambda hop: hop.time)
    return sorted(sessions, key=lambda s: s[2])


def _target_servers(org: Org, rng: np.random.Generator) -> np.ndarray:
    """Up to four file servers, one per site first (the HQ always among them)."""
    h = org.hosts
    per_site = [h.of(FILE_SERVER, s.index) for s in org.sites]
    chosen = [int(rng.choice(per_site[0]))]
    for s in rng.permutation(np.arange(1, len(org.sites)))[:3]:
        chosen.append(int(rng.choice(per_site[int(s)])))
    return np.array(chosen, dtype=np.int64)


def _tamper(
    atk: Attacker,
    infected: list[tuple[int, int]],
    sessions: list[tuple[int, int, int, int]],
    adm: int,
) -> None:
    """Clear Security on some hosts, cut record ranges on others, silence Sysmon on one."""
    org, rng, act = atk.org, atk.rng, atk.act
    name = int(org.users.name_id[adm])
    gaps = atk.plan.gaps
    n_clear = max(1, len(infected) // 3)
    for ws, t in infected[1 : 1 + n_clear]:
        start, stop = t - 600 * US, t + int(rng.integers(2, 6)) * 3600 * US
        gaps.append(LogGap(ws, SECURITY, "cleared", start, stop))
        act.security_log_cleared(np.array([stop + 60 * US]), ws, name, act.logon_ids(1), mal=True)
    servers = sorted({s[1] for s in sessions})
    by_server = {fs: [s for s in sessions if s[1] == fs] for fs in servers}
    order = [int(x) for x in rng.permutation(servers)]
    fs = order[0]
    _, _, t, end = by_server[fs][int(rng.integers(len(by_server[fs])))]
    gaps.append(LogGap(fs, SECURITY, "cleared", t - 300 * US, end + 300 * US))
    act.security_log_cleared(np.array([end + 360 * US]), fs, name, act.logon_ids(1), mal=True)
    for fs in order[1:3]:
        _, _, t, end = by_server[fs][int(rng.integers(len(by_server[fs])))]
        gaps.append(LogGap(fs, SECURITY, "records_removed", t - 120 * US, end + 120 * US))
    # Sysmon goes quiet days after the implant settled (the implant's own volume is by then
    # the workstation's usual level, against which a silence shows)
    ws, t = infected[0]
    quiet = t + int(rng.integers(72, 120)) * 3600 * US
    gaps.append(LogGap(ws, SYSMON, "silent", quiet, quiet + int(rng.integers(6, 20)) * 3600 * US))
