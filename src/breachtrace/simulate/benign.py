"""Ordinary behaviour, one local day at a time, for the whole organisation at once.

Daily and weekly rhythm follow each site's local time: people arrive around 08:00-10:00 local
on workdays (a few work weekends), log on, start programs, browse, read the files of the
clients their team serves, sometimes work from home over the VPN (some from a personal
device). Administrators log on to servers across sites. Servers run scheduled service logons,
monitoring and update checks (benign beacons); IT rolls out services; internet-facing servers
are scanned; Linux hosts run cron and automation over SSH.
"""

from __future__ import annotations

import numpy as np

from breachtrace.simulate import events as ev
from breachtrace.simulate import names
from breachtrace.simulate.activity import LOCALHOST, Activity
from breachtrace.simulate.events import Events
from breachtrace.simulate.org import (
    APP_SERVER,
    LINUX,
    US,
    VPN_GATEWAY,
    WORKSTATION,
    Org,
)

HOUR = 3600
UPDATE_PERIOD = 3600  # benign update check, seconds
MONITOR_PERIOD = 600  # monitoring agent poll, seconds
SERVICE_LOGON_PERIOD = 2 * HOUR


class Benign:
    """Generates the ordinary events of one local day (all sites) per call."""

    def __init__(self, org: Org) -> None:
        self.org = org
        h, pool = org.hosts, org.strings
        rng = np.random.default_rng([org.seed, 2])
        self.servers = np.flatnonzero((h.role != WORKSTATION) & (h.role != VPN_GATEWAY))
        self.win_servers = self.servers[h.windows[self.servers]]
        self.linux = h.of(LINUX)
        self.monitor = int(h.of(LINUX, 0)[0])
        self.phase = rng.integers(0, UPDATE_PERIOD, size=len(h))
        self.monitor_phase = rng.integers(0, MONITOR_PERIOD, size=len(h))
        self.update_vendor = rng.integers(0, len(org.update_ips), size=len(h))
        self.app_path = pool.ids(a[0] for a in names.APPS)
        self.app_cmd = pool.ids(
            f'"{a[0]}" {a[1].split(" ", 1)[1] if " " in a[1] else ""}'.strip() for a in names.APPS
        )
        vendor = names.pick(rng, names.VENDOR_WORDS)
        self.updater = [
            pool.id(f"C:\\Program Files (x86)\\{names.VENDOR_WORDS[int(v)]}\\Update\\updater.exe")
            for v in rng.choice(len(names.VENDOR_WORDS), size=len(org.update_ips), replace=False)
        ]
        self.update_name = pool.ids(org.update_domains)
        self.web_name = pool.ids(org.web_domains)
        self.services = [
            (pool.id(f"{vendor} {n}"), pool.id(p.format(v=vendor)))
            for n, p in names.BENIGN_SERVICES
        ]
        self.browser = pool.id(names.APPS[3][0])
        self.sudo_cmds = pool.ids(
            (
                "/usr/bin/systemctl restart nginx",
                "/usr/bin/apt-get update",
                "/usr/bin/journalctl -xe",
                "/bin/systemctl status sshd",
                "/usr/bin/tail -n 200 /var/log/syslog",
                "/usr/bin/df -h",
                "/usr/sbin/reboot",
                "/usr/bin/vi /etc/hosts",
            )
        )
        self.scanned = pool.ids(names.SCANNED_USERS)
        self.win_scanned = pool.ids(("administrator", "admin", "user", "test", "scanner", "guest"))
        self.root = pool.id("root")
        self.automation = pool.id(org.automation_user)
        self._team_files()

    def _team_files(self) -> None:
        cat = self.org.catalog
        n_teams = len(self.org.team_site)
        client_files = np.flatnonzero(cat.client >= 0)
        order = client_files[np.argsort(cat.team[client_files], kind="stable")]
        counts = np.bincount(cat.team[order], minlength=n_teams)
        self.team_files, self.team_count = order, counts
        self.team_start = np.concatenate([[0], np.cumsum(counts)[:-1]])
        dept = np.flatnonzero(cat.client < 0)
        dept = dept[np.argsort(cat.team[dept], kind="stable")]
        self.dept_files = dept
        self.dept_count = np.bincount(cat.team[dept], minlength=n_teams)
        self.dept_start = np.concatenate([[0], np.cumsum(self.dept_count)[:-1]])
        self.client_files = client_files

    # --- one day ---------------------------------------------------------------------------
    def day(self, d: int) -> Events:
        org = self.org
        rng = np.random.default_rng([org.seed, 3, d])
        act = Activity(org, rng)
        workday = org.weekday(d) < 5
        people = self._people(rng, d, workday)
        self._console(act, people)
        self._processes(act, people)
        self._web(act, people)
        self._file_reads(act, people)
        self._vpn(act, people)
        self._admins(act, people, d)
        self._servers(act, d)
        self._updates(act, people, d)
        self._linux(act, d)
        self._internet_noise(act, d)
        self._it_changes(act, d, workday)
        return act.out

    def _people(self, rng: np.random.Generator, d: int, workday: bool) -> dict[str, np.ndarray]:
        org, u = self.org, self.org.users
        n = len(u)
        present = (rng.random(n) < (0.93 if workday else 0.04)) & (u.start_day <= d)
        remote = present & (rng.random(n) < (0.12 if workday else 0.6))
        has_personal = np.array([p != "" for p in u.personal])
        personal = remote & has_personal & (rng.random(n) < 0.35)
        idx = np.flatnonzero(present)
        site = u.site[idx].astype(np.int64)
        mid = org.local_midnight(d)[site]
        arrive = np.clip(rng.normal(8.9, 0.6, len(idx)), 6.5, 12) * HOUR
        stay = np.clip(rng.normal(9.0, 0.8, len(idx)), 4, 13) * HOUR
        on = (mid + arrive).astype(np.int64) * US + rng.integers(0, US, len(idx))
        off = on + (stay * US).astype(np.int64)
        ws = u.workstation_on(d)[idx]
        rem, pers = remote[idx], personal[idx]
        assigned = org.vpn_ip(rng.integers(0, 4000, len(idx)))
        ip = np.where(rem, assigned, org.hosts.ip[ws])
        wks = np.where(pers, u.personal_wks_id[idx], org.hosts.upper_id[ws])
        return {
            "user": idx,
            "site": site,
            "on": on,
            "off": off,
            "ws": ws,
            "remote": rem,
            "personal": pers,
            "ip": ip,
            "wks": wks,
            "admin": u.admin[idx],
        }

    def _console(self, act: Activity, p: dict[str, np.ndarray]) -> None:
        keep = ~p["personal"]
        user, ws, on, off = p["user"][keep], p["ws"][keep], p["on"][keep], p["off"][keep]
        ltype = np.where(p["remote"][keep], 11, 2)
        logon = act.interactive(on, off, ws, user, p["admin"][keep], ltype)
        p["logon"] = np.zeros(len(p["user"]), dtype=np.int64)
        p["logon"][keep] = logon
        name = self.org.users.name_id[user]
        dc = self.org.dc_of(p["site"][keep])
        act.kerberos_tgt(on - 2 * US, dc, name, p["ip"][keep])
        act.flows(
            ts=on - 2 * US,
            orig=p["ip"][keep],
            resp=self.org.hosts.ip[dc],
            rport=88,
            service=ev.SVC["krb"],
            dur=act.rng.integers(2000, 30000, len(on)),
            obytes=1400,
            rbytes=1600,
        )
        typo = act.rng.random(len(on)) < 0.03
        act.failed_logon(
            on[typo] - 25 * US,
            ws[typo],
            name[typo],
            2,
            LOCALHOST,
            self.org.hosts.upper_id[ws[typo]],
            act.sid["bad_password"],
            ntlm=False,
        )

    def _processes(self, act: Activity, p: dict[str, np.ndarray]) -> None:
        keep = np.flatnonzero(~p["personal"])
        count = act.rng.poisson(5, len(keep))
        who = np.repeat(keep, count)
        ts = _between(act.rng, p["on"][who], p["off"][who])
        app = act.rng.integers(0, len(self.app_path), len(who))
        name = self.org.users.name_id[p["user"][who]]
        act.processes(
            ts,
            p["ws"][who],
            name,
            p["logon"][who],
            self.app_path[app],
            act.sid["explorer"],
            self.app_cmd[app],
        )

    def _web(self, act: Activity, p: dict[str, np.ndarray]) -> None:
        org, rng = self.org, act.rng
        onsite = np.flatnonzero(~p["remote"])
        count = rng.poisson(25, len(onsite))
        who = np.repeat(onsite, count)
        n = len(who)
        ts = _between(rng, p["on"][who], p["off"][who])
        site = rng.zipf(1.6, n) % len(org.web_ips)
        src = p["ip"][who]
        dns = org.hosts.ip[org.dc_of(p["site"][who])]
        looked = rng.random(n) < 0.5
        act.dns(
            ts[looked] - 30_000,
            src[looked],
            dns[looked],
            self.web_name[site[looked]],
            org.web_ips[site[looked]],
        )
        http = rng.random(n) < 0.1
        act.flows(
            ts=ts,
            orig=src,
            resp=org.web_ips[site],
            rport=np.where(http, 80, 443),
            service=np.where(http, ev.SVC["http"], ev.SVC["ssl"]),
            dur=rng.integers(50_000, 120 * US, n),
            obytes=rng.integers(500, 30_000, n),
            rbytes=(rng.lognormal(10, 1.5, n)).astype(np.int64),
        )
        seen = rng.random(n) < 0.15
        acct = act.acct[p["user"][who[seen]]]
        act.sysmon_connect(
            ts[seen] - 1000,
            p["ws"][who[seen]],
            acct,
            self.browser,
            org.web_ips[site[seen]],
            443,
            self.web_name[site[seen]],
        )

    def _file_reads(self, act: Activity, p: dict[str, np.ndarray]) -> None:
        org, rng, cat = self.org, act.rng, self.org.catalog
        team = org.users.team[p["user"]]
        readers = np.flatnonzero(team >= 0)
        count = rng.poisson(12, len(readers))
        who = np.repeat(readers, count)
        n = len(who)
        if n == 0:
            return
        t = team[who]
        kind = rng.random(n)
        own = _pick(rng, self.team_files, self.team_start[t], self.team_count[t])
        dept = _pick(rng, self.dept_files, self.dept_start[t], self.dept_count[t])
        other = self.client_files[rng.integers(0, len(self.client_files), n)]
        files = np.where(kind < 0.85, own, np.where(kind < 0.95, dept, other))
        files = np.where(self.team_count[t] > 0, files, dept)
        ts = _between(rng, p["on"][who] + 60 * US, p["off"][who] - 60 * US)
        fs = cat.host[files]
        key = who.astype(np.int64) * len(org.hosts) + fs
        order = np.lexsort((ts, key))
        key, ts, files, who = key[order], ts[order], files[order], who[order]
        first = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
        per = np.diff(np.r_[first, n])
        last = first + per - 1
        s_who = who[first]
        start = ts[first] - rng.integers(1, 30, len(first)) * US
        end = ts[last] + rng.integers(60, 1800, len(first)) * US
        name = org.users.name_id[p["user"][s_who]]
        # Personal (non-domain) devices authenticate with NTLM, domain laptops with Kerberos.
        act.share_session(
            start,
            end,
            fs[first],
            name,
            p["ip"][s_who],
            p["wks"][s_who],
            False,
            per,
            ts,
            files,
            ntlm=p["personal"][s_who],
        )

    def _vpn(self, act: Activity, p: dict[str, np.ndarray]) -> None:
        org, rng = self.org, act.rng
        rem = np.flatnonzero(p["remote"])
        user = p["user"][rem]
        device = np.where(
            p["personal"][rem], org.users.personal_id[user], org.hosts.name_id[p["ws"][rem]]
        )
        home = org.users.home_ip[user]
        act.vpn_session(
            p["on"][rem] - 4 * 60 * US,
            p["off"][rem] + 3 * 60 * US,
            org.users.name_id[user],
            home,
            p["ip"][rem],
            device,
            ~p["personal"][rem],
        )
        oops = rng.random(len(rem)) < 0.04
        act.vpn_failure(
            p["on"][rem][oops] - 6 * 60 * US,
            org.users.name_id[user[oops]],
            home[oops],
            device[oops],
            ~p["personal"][rem][oops],
        )

    def _admins(self, act: Activity, p: dict[str, np.ndarray], d: int) -> None:
        org, rng, h = self.org, act.rng, self.org.hosts
        adm = np.flatnonzero(p["admin"] & ~p["personal"])
        count = rng.poisson(3, len(adm))
        who = np.repeat(adm, count)
        n = len(who)
        if n == 0:
            return
        site = p["site"][who]
        cross = rng.random(n) < 0.25
        target_site = np.where(cross, rng.integers(0, len(org.sites), n), site)
        targets = self.servers[h.active_from[self.servers] <= d]
        by_site = [targets[h.site[targets] == s] for s in range(len(org.sites))]
        dst = np.array(
            [by_site[s][rng.integers(len(by_site[s]))] for s in target_site], dtype=np.int64
        )
        ts = _between(rng, p["on"][who] + 600 * US, p["off"][who] - 1800 * US)
        end = ts + rng.integers(300, 3600, n) * US
        name = org.users.name_id[p["user"][who]]
        src_ip = p["ip"][who]
        win = h.windows[dst]
        rdp = win & (rng.random(n) < 0.6)
        wi = np.flatnonzero(win)
        act.network_logon(
            ts[wi],
            end[wi],
            dst[wi],
            name[wi],
            src_ip[wi],
            p["wks"][who[wi]],
            True,
            np.where(rdp[wi], 10, 3),
        )
        act.flows(
            ts=ts[wi] - 300_000,
            orig=src_ip[wi],
            resp=h.ip[dst[wi]],
            rport=np.where(rdp[wi], 3389, 445),
            service=np.where(rdp[wi], ev.SVC["rdp"], ev.SVC["smb"]),
            dur=end[wi] - ts[wi],
            obytes=rng.integers(20_000, 3_000_000, len(wi)),
            rbytes=rng.integers(50_000, 20_000_000, len(wi)),
        )
        explicit = wi[rng.random(len(wi)) < 0.3]
        act.explicit_credentials(
            ts[explicit] - 500_000,
            p["ws"][who[explicit]],
            name[explicit],
            p["logon"][who[explicit]],
            name[explicit],
            h.name_id[dst[explicit]],
            h.ip[dst[explicit]],
            act.sid["lsass"],
        )
        li = np.flatnonzero(~win)
        act.ssh_session(ts[li], end[li], dst[li], name[li], src_ip[li], rng.random(len(li)) < 0.7)
        k = rng.poisson(1.2, len(li))
        sud = np.repeat(li, k)
        act.sudo(
            _between(rng, ts[sud] + US, end[sud] - US),
            dst[sud],
            name[sud],
            self.sudo_cmds[rng.integers(0, len(self.sudo_cmds), len(sud))],
        )

    def _servers(self, act: Activity, d: int) -> None:
        org, rng, h = self.org, act.rng, self.org.hosts
        day0 = org.day_start(d)
        per_day = 86_400 // SERVICE_LOGON_PERIOD
        srv = np.repeat(self.win_servers, per_day)
        slot = np.tile(np.arange(per_day), len(self.win_servers))
        ts = (day0 + slot * SERVICE_LOGON_PERIOD + self.phase[srv] % SERVICE_LOGON_PERIOD) * US
        ts += rng.integers(0, 5 * US, len(ts))
        logon = act.logon_ids(len(ts))
        act.win(
            ts=ts,
            host=srv,
            eid=4624,
            subj=h.machine_id[srv],
            sdom=act.dom,
            slogon=0x3E7,
            user=h.service_account[srv],
            dom=act.dom,
            logon=logon,
            ltype=5,
            ip=0,
            port=-1,
            auth=act.sid["negotiate"],
            proc=act.sid["services"],
        )
        act.win(
            ts=ts + rng.integers(1, 40, len(ts)) * US,
            host=srv,
            eid=4634,
            user=h.service_account[srv],
            dom=act.dom,
            logon=logon,
            ltype=5,
        )
        # Monitoring agent polls every server (Zeek only).
        per = 86_400 // MONITOR_PERIOD
        polled = np.repeat(self.servers, per)
        slot = np.tile(np.arange(per), len(self.servers))
        ts = (day0 + slot * MONITOR_PERIOD + self.monitor_phase[polled]) * US
        ts += rng.integers(0, US // 2, len(ts))
        act.flows(
            ts=ts,
            orig=h.ip[self.monitor],
            resp=h.ip[polled],
            rport=10050,
            dur=rng.integers(1000, 20_000, len(ts)),
            obytes=rng.integers(80, 200, len(ts)),
            rbytes=rng.integers(200, 2000, len(ts)),
        )

    def _updates(self, act: Activity, p: dict[str, np.ndarray], d: int) -> None:
        """Hourly update checks: servers all day, workstations while their user is in."""
        org, rng = self.org, act.rng
        day0 = org.day_start(d)
        hours = np.arange(24)
        srv = np.repeat(self.win_servers, 24)
        ts = (day0 + np.tile(hours, len(self.win_servers)) * UPDATE_PERIOD + self.phase[srv]) * US
        onsite = np.flatnonzero(~p["personal"] & ~p["remote"])
        ws = np.repeat(p["ws"][onsite], 24)
        wts = (day0 + np.tile(hours, len(onsite)) * UPDATE_PERIOD + self.phase[ws]) * US
        # the grid may belong to the previous/next UTC day for far time zones: shift by a day
        lo, hi = np.repeat(p["on"][onsite], 24), np.repeat(p["off"][onsite], 24)
        wts = np.where(wts < lo, wts + 86_400 * US, wts)
        wts = np.where(wts > hi, wts - 86_400 * US, wts)
        inside = (wts >= lo) & (wts <= hi)
        host = np.concatenate([srv, ws[inside]])
        ts = np.concatenate([ts, wts[inside]]) + rng.integers(-30 * US, 30 * US, len(host))
        vendor = self.update_vendor[host]
        image = np.array(self.updater, dtype=np.int32)[vendor]
        act.sysmon_connect(
            ts, host, act.system_acct, image, org.update_ips[vendor], 443, self.update_name[vendor]
        )
        act.flows(
            ts=ts + 2000,
            orig=org.hosts.ip[host],
            resp=org.update_ips[vendor],
            rport=443,
            service=ev.SVC["ssl"],
            dur=rng.integers(100_000, 900_000, len(ts)),
            obytes=rng.integers(600, 1400, len(ts)),
            rbytes=rng.integers(2000, 9000, len(ts)),
        )

    def _linux(self, act: Activity, d: int) -> None:
        org, rng, h = self.org, act.rng, self.org.hosts
        day0 = org.day_start(d)
        host = np.repeat(self.linux, 24)
        ts = (
            day0 + np.tile(np.arange(24), len(self.linux)) * HOUR + 60 * (self.phase[host] % 7)
        ) * US
        act.cron(ts + rng.integers(0, 2 * US, len(ts)), host)
        count = rng.poisson(4, len(self.linux))
        host = np.repeat(self.linux, count)
        ts = (day0 + rng.integers(0, 86_400, len(host))) * US
        act.ssh_session(
            ts,
            ts + rng.integers(5, 120, len(host)) * US,
            host,
            self.automation,
            h.ip[self.monitor],
            True,
        )
        sudo = rng.random(len(host)) < 0.5
        act.sudo(
            ts[sudo] + 3 * US,
            host[sudo],
            self.automation,
            self.sudo_cmds[rng.integers(0, 4, int(sudo.sum()))],
        )

    def _internet_noise(self, act: Activity, d: int) -> None:
        """Scanners against internet-facing servers, and ordinary inbound web traffic."""
        org, rng, h = self.org, act.rng, self.org.hosts
        day0 = org.day_start(d)
        exposed = np.flatnonzero(h.exposed)
        lin = exposed[h.role[exposed] == LINUX]
        count = rng.poisson(20, len(lin))
        host = np.repeat(lin, count)
        n = len(host)
        src = names.public_ipv4(rng, max(1, n // 6) + 1)[rng.integers(0, max(1, n // 6) + 1, n)]
        invalid = rng.random(n) < 0.8
        user = np.where(invalid, self.scanned[rng.integers(0, len(self.scanned), n)], self.root)
        act.ssh_failures((day0 + rng.integers(0, 86_400, n)) * US, host, user, src, invalid)
        win = exposed[h.role[exposed] == APP_SERVER]
        count = rng.poisson(12, len(win))
        host = np.repeat(win, count)
        n = len(host)
        src = names.public_ipv4(rng, n + 1)[:n]
        act.failed_logon(
            (day0 + rng.integers(0, 86_400, n)) * US,
            host,
            self.win_scanned[rng.integers(0, len(self.win_scanned), n)],
            3,
            src,
            0,
            np.where(rng.random(n) < 0.5, act.sid["no_user"], act.sid["bad_creds"]),
        )
        count = rng.poisson(60, len(exposed))
        host = np.repeat(exposed, count)
        n = len(host)
        act.flows(
            ts=(day0 + rng.integers(0, 86_400, n)) * US,
            orig=names.public_ipv4(rng, n),
            resp=h.ip[host],
            rport=443,
            service=ev.SVC["ssl"],
            dur=rng.integers(20_000, 5 * US, n),
            obytes=rng.integers(300, 5000, n),
            rbytes=rng.integers(1000, 200_000, n),
        )

    def _it_changes(self, act: Activity, d: int, workday: bool) -> None:
        """Service roll-outs, one-off installs and the odd System log clear by IT."""
        org, rng, h = self.org, act.rng, self.org.hosts
        day0 = org.day_start(d)
        windows = np.flatnonzero(h.windows & (h.active_from <= d) & (h.active_until > d))
        if workday and rng.random() < 0.15:
            service, image = self.services[int(rng.integers(len(self.services)))]
            hit = windows[rng.random(len(windows)) < 0.2]
            act.service_install(
                (day0 + rng.integers(0, 86_400, len(hit))) * US, hit, service, image
            )
        if workday and rng.random() < 0.3:
            service, image = self.services[int(rng.integers(len(self.services)))]
            host = self.win_servers[rng.integers(len(self.win_servers))]
            act.service_install(
                np.array([(day0 + int(rng.integers(0, 86_400))) * US]), host, service, image
            )
        if rng.random() < 0.02:
            admins = np.flatnonzero(org.users.admin)
            host = self.win_servers[rng.integers(len(self.win_servers))]
            who = org.users.name_id[admins[rng.integers(len(admins))]]
            act.system_log_cleared(
                np.array([(day0 + int(rng.integers(0, 86_400))) * US]), host, who
            )


def _pick(
    rng: np.random.Generator, items: np.ndarray, start: np.ndarray, count: np.ndarray
) -> np.ndarray:
    """One random item per row from the slice items[start:start+count] (-1 where empty)."""
    index = start + (rng.random(len(start)) * count).astype(np.int64)
    return np.where(count > 0, items[np.minimum(index, max(len(items) - 1, 0))], -1)


def _between(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Uniform random times in [lo, hi] (hi clipped to at least lo)."""
    hi = np.maximum(hi, lo)
    return lo + (rng.random(len(lo)) * (hi - lo)).astype(np.int64)
