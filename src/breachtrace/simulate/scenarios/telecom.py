"""telecom-2020 (incident A): a chain of overseas servers, and a stolen employee credential.

Route 1, "overseas-servers": an unpatched application server being decommissioned at one
overseas site is exploited from the internet; a service implant beacons out. The attacker
moves with harvested admin credentials to a server at a second overseas site, weeks later
(scaled: about a third of the period) to a third site, then into the headquarters file server
holding defence-related client folders, which it browses over RDP during long quiet periods.
Near the end it reads 100+ files in two days straight from the entry server over SMB.

Route 2, "stolen-credential": an employee's password is used over the VPN from their personal
(unmanaged) device, from unfamiliar addresses in the evening, reading client folders on the
headquarters file servers. The two routes' client sets overlap partially.

Times scale with the simulated period (the real incident spanned about eight months).
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from breachtrace.simulate import names
from breachtrace.simulate.org import (
    APP_SERVER,
    DAY,
    FILE_SERVER,
    LINUX,
    US,
    Org,
    _personal_device,
    intern_personal,
)
from breachtrace.simulate.scenarios.common import (
    CREDS,
    LINUX_CMDS,
    RECON,
    STAGING,
    Attacker,
    files_of_clients,
)
from breachtrace.simulate.truth import Plan, Route

W3WP = "C:\\Windows\\System32\\inetsrv\\w3wp.exe"
EXPLORER = "C:\\Windows\\explorer.exe"


def plan(org: Org) -> Plan:
    result = Plan()
    atk = Attacker(org, 50, result)
    rng, h, n_days = atk.rng, org.hosts, org.days
    site_a, site_b, site_c = (
        int(x) for x in rng.choice(np.arange(1, len(org.sites)), 3, replace=False)
    )
    entry = int(rng.choice(h.of(APP_SERVER, site_a)))
    h.lifecycle[entry] = "decommissioning"
    stale = org.start - int(rng.integers(200, 420)) * DAY
    h.last_patched[entry] = dt.datetime.fromtimestamp(stale, dt.UTC).strftime("%Y-%m-%d")
    h.exposed[entry] = True
    ips = names.public_ipv4(rng, 8)
    scan_ip, op_ips, c2_ip = int(ips[0]), [int(x) for x in ips[1:4]], int(ips[4])
    vpn_ips = [int(x) for x in ips[5:8]]
    c2_name = names.web_domains(rng, 1)[0]
    admins = np.flatnonzero(org.users.admin)
    hq_admins = admins[org.users.site[admins] == 0]
    adm2 = int(rng.choice(hq_admins if len(hq_admins) else admins))
    others = admins[admins != adm2]
    adm1 = int(rng.choice(others)) if len(others) else adm2

    # Day schedule, scaled to the period; each step at least a day after the previous.
    entry_day = max(1, int(n_days * rng.uniform(0.05, 0.1)))
    b_day = entry_day + max(1, int(n_days * rng.uniform(0.01, 0.03)))
    c_day = max(b_day + 1, entry_day + int(n_days * rng.uniform(0.3, 0.38)))
    hq_day = c_day + max(1, int(n_days * rng.uniform(0.03, 0.06)))
    burst_day = max(hq_day + 2, n_days - 2 - int(n_days * rng.uniform(0.0, 0.03)))
    if burst_day + 1 > n_days - 1:
        raise ValueError(f"telecom-2020 needs more days to unfold (got {n_days}; use --days 10+)")

    route1 = Route(
        "overseas-servers",
        entry=h.name[entry],
        source_ips=[names.ip_text(x) for x in [scan_ip, *op_ips, c2_ip]],
    )
    t_entry = _entry(atk, route1, entry, entry_day, site_a, scan_ip, op_ips[0], c2_ip, c2_name)
    result.first_compromise = t_entry
    hq_fs, defence, hq_clients = _hq_targets(org)
    s1_other = rng.choice(
        hq_clients,
        size=min(len(hq_clients), max(6, round(0.08 * len(org.client_code)))),
        replace=False,
    )
    s1_files_def = files_of_clients(org, defence, rng, (3, 8))
    s1_files_oth = files_of_clients(org, s1_other, rng, (1, 3))

    # The attacker keeps one clock (site A's local night) for every hop, so hops stay ordered.
    hb = _hop_b(atk, route1, entry, site_b, b_day, site_a, adm1)
    hc = _hop_c(atk, route1, hb, site_c, c_day, site_a, adm2)
    visited = set(_hq_visits(atk, route1, hc, hq_fs, hq_day, burst_day, site_a, adm2, s1_files_def))
    rest = [f for f in s1_files_def + s1_files_oth if f not in visited]
    _burst(atk, route1, entry, hq_fs, burst_day, site_a, adm2, rest, defence, c2_ip)

    route2, first_vpn = _stolen_credential(atk, s1_other, vpn_ips, entry_day, burst_day)
    result.routes = [route1, route2]
    result.detected = atk.clamp(atk.at(burst_day + 1, 0, 20, 23) + 36 * 3600 * US)
    result.first_compromise = min(t_entry, first_vpn)
    return result


def _entry(
    atk: Attacker,
    route: Route,
    entry: int,
    day: int,
    site: int,
    scan_ip: int,
    op_ip: int,
    c2_ip: int,
    c2_name: str,
) -> int:
    """Scan, exploit, commands as the web service account, service implant, beacon."""
    org, rng, act = atk.org, atk.rng, atk.act
    h = org.hosts
    scan_t = atk.clamp(atk.at(day - 1, site, 10, 22))
    ports = rng.choice([21, 22, 23, 80, 443, 445, 1433, 3389, 5985, 8080, 8443], size=40)
    ts = scan_t + np.sort(rng.integers(0, 900, 40)) * US
    act.flows(
        ts=ts,
        orig=scan_ip,
        resp=h.ip[entry],
        rport=ports,
        state=np.where(ports == 443, 0, np.where(rng.random(40) < 0.5, 1, 2)),
        dur=rng.integers(1000, 90_000, 40),
        obytes=0,
        rbytes=0,
        mal=True,
    )
    t = atk.at(day, site, 1, 4)
    act.flows(
        ts=np.array([t]),
        orig=op_ip,
        resp=h.ip[entry],
        rport=443,
        service=1,
        dur=int(rng.integers(2, 20)) * US,
        obytes=int(rng.integers(8000, 40_000)),
        rbytes=int(rng.integers(2000, 9000)),
        mal=True,
    )
    svc = int(h.service_account[entry])
    logon = int(act.logon_ids(1)[0])
    cmds = [atk.command(RECON) for _ in range(int(rng.integers(3, 6)))] + [atk.command(CREDS)]
    last = atk.run(t + 20 * US, entry, svc, logon, W3WP, cmds)
    image = atk.implant_path()
    service = names.pick(rng, names.IMPLANT_SERVICES)
    act.service_install(np.array([last + 120 * US]), entry, atk.s(service), atk.s(image), mal=True)
    interval = int(rng.choice([900, 1200, 1800]))
    end = (org.start + org.days * DAY) * US - 3 * 3600 * US
    dns = int(h.ip[org.dc_of(site)])
    atk.plan.beacons.append(
        atk.beacon(
            entry,
            image,
            c2_ip,
            c2_name,
            last + 300 * US,
            end,
            interval,
            float(rng.uniform(0.1, 0.3)),
            act.system_acct,
            dns,
        )
    )
    atk.hop(route, names.ip_text(op_ip), h.name[entry], t, org.strings.text(svc), "exploit")
    return t


def _hq_targets(org: Org) -> tuple[int, np.ndarray, np.ndarray]:
    """The HQ file server holding the most defence clients, its defence and other clients."""
    fs_of_client = org.team_fs[org.client_team]
    defence = np.array([c for c, k in enumerate(org.client_class) if k == "defence"])
    counts = np.bincount(fs_of_client[defence], minlength=len(org.hosts))
    hq_fs = int(np.argmax(counts))
    on_fs = fs_of_client[defence] == hq_fs
    others = np.array(
        [c for c in np.flatnonzero(fs_of_client == hq_fs) if org.client_class[c] != "defence"]
    )
    return hq_fs, defence[on_fs], others


def _hop_b(
    atk: Attacker, route: Route, src: int, site: int, day: int, src_site: int, adm: int
) -> int:
    """Entry server -> a server at the second overseas site, with a harvested admin password."""
    org, rng, act = atk.org, atk.rng, atk.act
    h = org.hosts
    linux = h.of(LINUX, site)
    windows = np.concatenate([h.of(APP_SERVER, site), h.of(FILE_SERVER, site)])
    use_linux = len(linux) and rng.random() < 0.5
    dst = int(rng.choice(linux if use_linux else windows))
    t = atk.at(day, src_site, 0, 5)
    name = int(org.users.name_id[adm])
    end = t + int(rng.integers(10, 40)) * 60 * US
    if use_linux:
        act.ssh_session(np.array([t]), np.array([end]), dst, name, h.ip[src], False, mal=True)
        cmds = [atk.command(LINUX_CMDS, ip=names.ip_text(h.ip[src])) for _ in range(3)]
        act.sudo(t + np.arange(1, 4) * 60 * US, dst, name, org.strings.ids(cmds), mal=True)
        atk.hop(route, h.name[src], h.name[dst], t, org.users.name[adm], "ssh")
        return dst
    act.explicit_credentials(
        np.array([t - 2 * US]),
        src,
        h.machine_id[src],
        0x3E7,
        name,
        h.name_id[dst],
        h.ip[dst],
        atk.s("C:\\Windows\\System32\\net.exe"),
        mal=True,
    )
    logon = act.network_logon(
        np.array([t]),
        np.array([end]),
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
        dur=end - t,
        obytes=int(rng.integers(50_000, 400_000)),
        rbytes=int(rng.integers(20_000, 90_000)),
        mal=True,
    )
    service, image = atk.tag().upper(), f"%SystemRoot%\\{atk.tag()}.exe"
    act.service_install(np.array([t + 30 * US]), dst, atk.s(service), atk.s(image), mal=True)
    atk.run(
        t + 60 * US,
        dst,
        name,
        int(logon[0]),
        "C:\\Windows\\System32\\services.exe",
        [atk.command(RECON) for _ in range(3)] + [atk.command(CREDS)],
    )
    atk.hop(route, h.name[src], h.name[dst], t, org.users.name[adm], "smb")
    return dst


def _hop_c(
    atk: Attacker, route: Route, src: int, site: int, day: int, src_site: int, adm: int
) -> int:
    """Second site -> a Windows server at the third site over RDP, months later."""
    org, rng, act = atk.org, atk.rng, atk.act
    h = org.hosts
    dst = int(rng.choice(np.concatenate([h.of(APP_SERVER, site), h.of(FILE_SERVER, site)])))
    t = atk.at(day, src_site, 0, 5)
    end = t + int(rng.integers(20, 90)) * 60 * US
    name = int(org.users.name_id[adm])
    if h.windows[src]:
        act.explicit_credentials(
            np.array([t - 3 * US]),
            src,
            name,
            0,
            name,
            h.name_id[dst],
            h.ip[dst],
            atk.s("C:\\Windows\\System32\\mstsc.exe"),
            mal=True,
        )
    logon = act.network_logon(
        np.array([t]),
        np.array([end]),
        dst,
        name,
        h.ip[src],
        h.upper_id[src],
        True,
        10,
        True,
        mal=True,
    )
    _rdp_flow(atk, src, dst, t, end)
    atk.run(
        t + 90 * US,
        dst,
        name,
        int(logon[0]),
        EXPLORER,
        [atk.command(RECON) for _ in range(3)] + [atk.command(CREDS)],
    )
    atk.hop(route, h.name[src], h.name[dst], t, org.users.name[adm], "rdp")
    return dst


def _rdp_flow(atk: Attacker, src: int, dst: int, t: int, end: int) -> None:
    h = atk.org.hosts
    atk.act.flows(
        ts=np.array([t - US]),
        orig=h.ip[src],
        resp=h.ip[dst],
        rport=3389,
        service=7,
        dur=end - t,
        obytes=int(atk.rng.integers(200_000, 3_000_000)),
        rbytes=int(atk.rng.integers(1_000_000, 30_000_000)),
        mal=True,
    )


def _hq_visits(
    atk: Attacker,
    route: Route,
    src: int,
    fs: int,
    first_day: int,
    burst_day: int,
    src_site: int,
    adm: int,
    files: list[int],
) -> list[int]:
    """RDP sessions into the HQ file server browsing defence folders, weeks apart."""
    org, rng, act = atk.org, atk.rng, atk.act
    h = org.hosts
    name = int(org.users.name_id[adm])
    between = np.arange(first_day + 1, burst_day)
    later = rng.choice(between, size=min(3, len(between)), replace=False)
    days = [first_day, *sorted(int(d) for d in later)]
    order = [int(x) for x in rng.permutation(files)]
    per = max(5, min(20, len(order) // (len(days) + 1)))
    read: list[int] = []
    for i, day in enumerate(days):
        t = atk.at(day, src_site, 0, 5)
        chunk = order[i * per : (i + 1) * per]
        end = t + (len(chunk) * 40 + int(rng.integers(600, 2400))) * US
        logon = act.network_logon(
            np.array([t]),
            np.array([end]),
            fs,
            name,
            h.ip[src],
            h.upper_id[src],
            True,
            10,
            True,
            mal=True,
        )
        _rdp_flow(atk, src, fs, t, end)
        if chunk:
            ts = t + 120 * US + np.cumsum(rng.integers(5, 40, len(chunk))) * US
            act.local_reads(ts, fs, name, int(logon[0]), np.array(chunk), atk.s(EXPLORER), mal=True)
            read.extend(chunk)
        if i == 0:
            atk.hop(route, h.name[src], h.name[fs], t, org.users.name[adm], "rdp")
    route.files.extend(read)
    return read


def _burst(
    atk: Attacker,
    route: Route,
    src: int,
    fs: int,
    day: int,
    src_site: int,
    adm2: int,
    files: list[int],
    defence: np.ndarray,
    c2_ip: int,
) -> None:
    """Two days of bulk SMB reads from the entry server, then uploads to the C2 address."""
    org, rng, act = atk.org, atk.rng, atk.act
    h, cat = org.hosts, org.catalog
    want = int(rng.integers(110, 181))
    chosen = set(files)
    pool = [int(cat.starts[c] + k) for c in defence for k in range(int(cat.counts[c]))]
    extra = [f for f in rng.permutation(pool) if int(f) not in chosen][: max(0, want - len(files))]
    todo = [int(x) for x in rng.permutation(files + [int(f) for f in extra])]
    half = len(todo) // 2
    name = int(org.users.name_id[adm2])
    for k, chunk in enumerate((todo[:half], todo[half:])):
        t = atk.at(day + k, src_site, 0, 3)
        ts = t + 30 * US + np.cumsum(rng.integers(1, 9, len(chunk))) * US
        end = int(ts[-1]) + 60 * US
        act.explicit_credentials(
            np.array([t - 2 * US]),
            src,
            h.machine_id[src],
            0x3E7,
            name,
            h.name_id[fs],
            h.ip[fs],
            atk.s("C:\\Windows\\System32\\net.exe"),
            mal=True,
        )
        act.share_session(
            np.array([t]),
            np.array([end]),
            fs,
            name,
            h.ip[src],
            h.upper_id[src],
            True,
            np.array([len(chunk)]),
            ts,
            np.array(chunk),
            ntlm=True,
            mal=True,
        )
        atk.run(
            end + 30 * US,
            src,
            int(h.machine_id[src]),
            0x3E7,
            "C:\\Windows\\System32\\services.exe",
            [atk.command(STAGING)],
        )
        atk.exfiltrate(end + 300 * US, src, c2_ip, int(rng.integers(40, 400)) * 1_000_000)
        if k == 0:
            atk.hop(route, h.name[src], h.name[fs], t, org.users.name[adm2], "smb")
    route.files.extend(todo)


def _stolen_credential(
    atk: Attacker, s1_other: np.ndarray, vpn_ips: list[int], entry_day: int, burst_day: int
) -> tuple[Route, int]:
    """VPN sessions from the victim's personal device reading client folders; returns the
    route and the time of the first VPN attempt."""
    org, rng, act = atk.org, atk.rng, atk.act
    u, h = org.users, org.hosts
    team_site = org.team_site[np.maximum(u.team, 0)]
    ok = (~u.admin) & (u.team >= 0) & (team_site == 0) & (u.start_day == 0) & (u.ws_new < 0)
    victim = int(rng.choice(np.flatnonzero(ok)))
    if not u.personal[victim]:
        u.personal[victim] = _personal_device(rng, u.name[victim])
        intern_personal(org)
    device = u.personal[victim]
    route = Route(
        "stolen-credential",
        entry=device,
        devices=[device],
        source_ips=[names.ip_text(x) for x in vpn_ips],
    )
    s2 = _route2_clients(org, rng, victim, s1_other)
    files = files_of_clients(org, s2, rng, (1, 3))
    first = entry_day + max(1, int(org.days * rng.uniform(0.1, 0.25)))
    span = np.arange(first, max(first + 1, burst_day))
    n_sess = int(np.clip(org.days // 5, 3, 12))
    days = rng.choice(span, size=n_sess, replace=len(span) < n_sess)
    starts = sorted(atk.at(int(day), 0, 19, 24.5) for day in days)
    chunks = np.array_split(np.array(rng.permutation(files)), n_sess)
    name = int(u.name_id[victim])
    seen_fs: set[int] = set()
    for i, (t, chunk) in enumerate(zip(starts, chunks, strict=True)):
        client = vpn_ips[int(rng.integers(len(vpn_ips)))]
        assigned = int(org.vpn_ip(rng.integers(0, 4000, 1))[0])
        if i == 0:
            act.vpn_failure(
                np.array([t - 90 * US]), name, client, u.personal_id[victim], False, mal=True
            )
        cur = t + 120 * US
        for fs in np.unique(org.catalog.host[chunk]):
            part = chunk[org.catalog.host[chunk] == fs]
            ts = cur + 20 * US + np.cumsum(rng.integers(2, 30, len(part))) * US
            end = int(ts[-1]) + 30 * US
            act.share_session(
                np.array([cur]),
                np.array([end]),
                int(fs),
                name,
                assigned,
                u.personal_wks_id[victim],
                False,
                np.array([len(part)]),
                ts,
                part,
                ntlm=True,
                mal=True,
            )
            if int(fs) not in seen_fs:
                seen_fs.add(int(fs))
                atk.hop(route, device, h.name[int(fs)], cur, u.name[victim], "vpn")
            cur = end + 60 * US
        act.vpn_session(
            np.array([t]),
            np.array([cur + 300 * US]),
            name,
            client,
            assigned,
            u.personal_id[victim],
            False,
            mal=True,
        )
        route.files.extend(int(f) for f in chunk)
    if not route.accounts:
        route.accounts.append(u.name[victim])
    return route, starts[0] - 90 * US


def _route2_clients(
    org: Org, rng: np.random.Generator, victim: int, s1_other: np.ndarray
) -> np.ndarray:
    """Clients read with the stolen credential: some also taken via route 1 (partial overlap),
    the victim's team's clients, and other clients on HQ file servers."""
    hq_fs = {int(x) for x in org.hosts.of(FILE_SERVER, 0)}
    taken = {int(x) for x in s1_other}
    fs_of_client = org.team_fs[org.client_team]
    candidates = np.array(
        [
            c
            for c in range(len(org.client_code))
            if int(fs_of_client[c]) in hq_fs and org.client_class[c] != "defence" and c not in taken
        ],
        dtype=np.int64,
    )
    k_overlap = max(1, min(len(s1_other) - 1, round(0.3 * len(s1_other))))
    overlap = rng.choice(s1_other, size=k_overlap, replace=False)
    team = org.client_team == org.users.team[victim]
    own = np.array([c for c in candidates if team[c]], dtype=np.int64)
    want = max(k_overlap + 3, round(0.18 * len(org.client_code)))
    rest = rng.permutation(np.setdiff1d(candidates, own))[: max(0, want - k_overlap - len(own))]
    return np.unique(np.concatenate([overlap, own, rest]).astype(np.int64))
