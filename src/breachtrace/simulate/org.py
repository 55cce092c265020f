"""The synthetic organisation: sites, hosts, people, teams, clients and their files.

Everything is drawn from one seeded generator, so a seed fixes the whole organisation. Tables
are column arrays (numpy) indexed by host, user, team, client and file number.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import numpy as np

from breachtrace.simulate import names
from breachtrace.simulate.columns import StringPool, draw_strings
from breachtrace.simulate.names import Country

DAY = 86_400
US = 1_000_000  # microseconds per second; event times are int64 microseconds since the epoch

# Host roles.
WORKSTATION, DC, FILE_SERVER, APP_SERVER, LINUX, VPN_GATEWAY = range(6)
ROLE_NAMES = (
    "workstation",
    "domain controller",
    "file server",
    "application server",
    "linux server",
    "vpn gateway",
)
NEVER = 1 << 30  # a day index no simulation reaches


@dataclass(frozen=True)
class Site:
    index: int
    prefix: str  # host-name prefix, e.g. "sg" or "sin"
    country: Country
    city: str
    tz: str
    hq: bool
    net: int  # second octet of the site's 10.x.0.0/16


@dataclass
class Hosts:
    name: list[str]  # lower-case short names
    site: np.ndarray
    role: np.ndarray
    ip: np.ndarray  # uint32
    managed: np.ndarray
    exposed: np.ndarray  # reachable from the internet
    lifecycle: list[str]
    last_patched: list[str]
    active_from: np.ndarray  # first day with activity
    active_until: np.ndarray  # first day without activity
    name_id: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    upper_id: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))  # NETBIOS name
    machine_id: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))  # NAME$
    service_account: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))

    def __len__(self) -> int:
        return len(self.name)

    @property
    def windows(self) -> np.ndarray:
        return (self.role != LINUX) & (self.role != VPN_GATEWAY)

    def of(self, role: int, site: int | None = None) -> np.ndarray:
        mask = self.role == role
        if site is not None:
            mask &= self.site == site
        return np.flatnonzero(mask)


@dataclass
class Users:
    name: list[str]
    site: np.ndarray
    team: np.ndarray
    admin: np.ndarray
    ws: np.ndarray  # managed workstation (host index)
    ws_new: np.ndarray  # replacement workstation or -1
    replace_day: np.ndarray
    start_day: np.ndarray
    personal: list[str]  # personal device name or ""
    home_ip: np.ndarray  # uint32, the address they connect to the VPN from
    name_id: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    personal_id: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))  # device id
    personal_wks_id: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))  # NETBIOS

    def __len__(self) -> int:
        return len(self.name)

    def workstation_on(self, day: int) -> np.ndarray:
        return np.where((self.ws_new >= 0) & (day >= self.replace_day), self.ws_new, self.ws)


@dataclass
class Catalog:
    """Every file on the file servers' shares, one row per file."""

    client: np.ndarray  # client index, or -1 for internal team data
    team: np.ndarray
    host: np.ndarray  # file server
    share_id: np.ndarray  # "\\*\clients"
    share_local_id: np.ndarray  # "\??\D:\shares\clients"
    rel_id: np.ndarray  # "C04211\2019\contract_003.docx"
    local_id: np.ndarray  # "D:\shares\clients\C04211\2019\contract_003.docx"
    unc: list[str]  # "\\jp-fs01\clients\C04211\2019\contract_003.docx"
    starts: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))  # per client
    counts: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))  # per client


@dataclass
class Org:
    seed: int
    start: int  # epoch seconds, UTC midnight of day 0
    days: int
    name: str
    netbios: str
    dns_suffix: str
    sites: list[Site]
    hosts: Hosts
    users: Users
    team_site: np.ndarray
    team_fs: np.ndarray
    team_name: list[str]
    client_code: list[str]
    client_name: list[str]
    client_class: list[str]
    client_team: np.ndarray
    client_individuals: np.ndarray
    catalog: Catalog
    inventory: list[tuple[str, str, str, int]]  # path_prefix, owner, classification, individuals
    vpn_pool: int  # second octet of the VPN pool 10.x.0.0/20
    offsets: np.ndarray  # [site, day] local UTC offset in seconds
    web_domains: list[str]
    web_ips: np.ndarray
    update_domains: list[str]
    update_ips: np.ndarray
    automation_user: str
    strings: StringPool
    domain_id: int = 0

    @property
    def hq(self) -> Site:
        return self.sites[0]

    def day_start(self, day: int) -> int:
        return self.start + day * DAY

    def local_midnight(self, day: int) -> np.ndarray:
        """Per site: the UTC epoch second at which local day ``day`` begins."""
        return self.start + day * DAY - self.offsets[:, day]

    def weekday(self, day: int) -> int:
        return (self.start // DAY + day + 3) % 7  # Monday = 0

    def dc_of(self, site: np.ndarray | int) -> np.ndarray:
        dcs = self.hosts.of(DC)
        first = np.full(len(self.sites), -1, dtype=np.int64)
        for h in dcs[::-1]:
            first[self.hosts.site[h]] = h
        return first[site]

    def site_of_ip(self, ips: np.ndarray) -> np.ndarray:
        """Site index of internal addresses; the HQ for the VPN pool; -1 outside."""
        table = np.full(256, -1, dtype=np.int16)
        for s in self.sites:
            table[s.net] = s.index
        table[self.vpn_pool] = 0
        ips = ips.astype(np.uint32)
        internal = (ips >> 24) == 10
        return np.where(internal, table[(ips >> 16) & 255], -1).astype(np.int16)

    def vpn_ip(self, n: np.ndarray) -> np.ndarray:
        base = (10 << 24) | (self.vpn_pool << 16)
        return (base + 10 + (n % 4000)).astype(np.uint32)

    def unc_of_file(self, files: np.ndarray) -> list[str]:
        return [self.catalog.unc[int(f)] for f in files]


def build_org(seed: int, start: int, days: int, hosts: int, users: int | None) -> Org:
    """The organisation for one seed: ``hosts`` hosts and ``users`` people (default ~0.95 per
    workstation)."""
    if hosts < 30:
        raise ValueError(f"--hosts must be at least 30 (got {hosts}): every site needs servers")
    rng = np.random.default_rng([seed, 1])
    pool = StringPool()
    word = names.pick(rng, names.ORG_WORDS)
    netbios = word.upper()[:15]
    dns_suffix = f"{names.pick(rng, ('corp', 'ad', 'int', 'office'))}.{word}.example"
    sites = _sites(rng, hosts)
    if users is not None and users < 5 * len(sites):
        raise ValueError(
            f"--users must be at least {5 * len(sites)} for {len(sites)} sites (got {users}):"
            " every site needs an administrator and a team"
        )
    offsets = _offsets(sites, start, days)
    host_table, ws_by_site = _hosts(rng, sites, hosts, start)
    user_table = _users(rng, sites, ws_by_site, host_table, users, days)
    team_site, team_fs, team_name, team_of_user = _teams(rng, sites, host_table, user_table)
    user_table.team = team_of_user
    org = Org(
        seed=seed,
        start=start,
        days=days,
        name=word.capitalize(),
        netbios=netbios,
        dns_suffix=dns_suffix,
        sites=sites,
        hosts=host_table,
        users=user_table,
        team_site=team_site,
        team_fs=team_fs,
        team_name=team_name,
        client_code=[],
        client_name=[],
        client_class=[],
        client_team=np.empty(0, np.int64),
        client_individuals=np.empty(0, np.int64),
        catalog=_empty_catalog(),
        inventory=[],
        vpn_pool=0,
        offsets=offsets,
        web_domains=[],
        web_ips=np.empty(0, np.uint32),
        update_domains=[],
        update_ips=np.empty(0, np.uint32),
        automation_user=names.pick(rng, ("ansible", "deploy", "automation", "svc_ops")),
        strings=pool,
    )
    used_nets = {s.net for s in sites}
    org.vpn_pool = int(rng.choice([n for n in range(20, 250) if n not in used_nets]))
    _clients(rng, org)
    _external(rng, org)
    _intern(org)
    return org


def _sites(rng: np.random.Generator, hosts: int) -> list[Site]:
    n_sites = min(4 + hosts // 1500, 1 + len(names.OVERSEAS))
    countries = [names.HQ_COUNTRY] + [
        names.OVERSEAS[i] for i in rng.permutation(len(names.OVERSEAS))[: n_sites - 1]
    ]
    style = int(rng.integers(3))
    nets = rng.permutation(np.arange(20, 250))[:n_sites]
    sites = []
    for i, country in enumerate(countries):
        city, tz = country.cities[int(rng.integers(len(country.cities)))]
        prefix = (country.code, city, f"{country.code}{city}")[style]
        sites.append(Site(i, prefix, country, city, tz, i == 0, int(nets[i])))
    return sites


def _offsets(sites: list[Site], start: int, days: int) -> np.ndarray:
    out = np.zeros((len(sites), days + 2), dtype=np.int64)
    for s in sites:
        zone = ZoneInfo(s.tz)
        for d in range(days + 2):
            noon = dt.datetime.fromtimestamp(start + d * DAY + DAY // 2, dt.UTC)
            delta = noon.astimezone(zone).utcoffset()
            out[s.index, d] = int(delta.total_seconds()) if delta else 0
    return out


def _hosts(
    rng: np.random.Generator, sites: list[Site], hosts: int, start: int
) -> tuple[Hosts, list[list[int]]]:
    weights = np.concatenate([[0.4], rng.dirichlet(np.ones(len(sites) - 1)) * 0.6])
    per_site = np.maximum(np.floor(weights * hosts).astype(int), 8)
    per_site[0] += hosts - per_site.sum()
    tokens = {
        WORKSTATION: names.pick(rng, ("pc", "ws", "nb", "lt")),
        DC: names.pick(rng, ("dc", "ad")),
        FILE_SERVER: names.pick(rng, ("fs", "file", "nas")),
        APP_SERVER: names.pick(rng, ("app", "ap", "srv")),
    }
    linux_tokens = ("web", "db", "lx", "etl", "app")
    rows: list[tuple[str, int, int, int]] = []  # name, site, role, ip
    ws_by_site: list[list[int]] = []
    for s in sites:
        n = int(per_site[s.index])
        roles = [DC] * (2 if s.hq else 1)
        roles += [FILE_SERVER] * (1 + n // 120 + (1 if s.hq else 0))
        roles += [APP_SERVER] * (1 + n // 90)
        roles += [LINUX] * (1 + n // 70)
        if s.hq:
            roles += [VPN_GATEWAY]
        n_ws = max(n - len(roles), 2)
        counters: dict[str, int] = {}
        base = (10 << 24) | (s.net << 16)
        for k, role in enumerate(roles):
            token = tokens.get(role) or (
                "vpn" if role == VPN_GATEWAY else names.pick(rng, linux_tokens)
            )
            counters[token] = counters.get(token, 0) + 1
            rows.append(
                (f"{s.prefix}-{token}{counters[token]:02d}", s.index, role, base + 256 + 10 + k)
            )
        numbers = np.sort(rng.choice(np.arange(1, 10000), size=n_ws, replace=False))
        ws_by_site.append(list(range(len(rows), len(rows) + n_ws)))
        for k, num in enumerate(numbers):
            ip = base + (16 << 8) + 10 + k
            rows.append((f"{s.prefix}-{tokens[WORKSTATION]}{num:04d}", s.index, WORKSTATION, ip))
    n = len(rows)
    role_of = np.array([r[2] for r in rows], dtype=np.int8)
    exposed = np.zeros(n, dtype=bool)
    servers = np.flatnonzero((role_of == APP_SERVER) | (role_of == LINUX))
    exposed[rng.choice(servers, size=max(2, len(servers) // 5), replace=False)] = True
    lifecycle = ["active"] * n
    # A few servers are being retired, so "decommissioning" alone never marks the entry point.
    for h in rng.choice(servers, size=max(1, len(servers) // 15), replace=False):
        lifecycle[int(h)] = "decommissioning"
    patched_days = rng.integers(3, 60, size=n)
    patched_days[[i for i in range(n) if lifecycle[i] == "decommissioning"]] += rng.integers(
        90, 300
    )
    last_patched = [_date(start - int(p) * DAY) for p in patched_days]
    table = Hosts(
        name=[r[0] for r in rows],
        site=np.array([r[1] for r in rows], dtype=np.int16),
        role=role_of,
        ip=np.array([r[3] for r in rows], dtype=np.uint32),
        managed=np.ones(n, dtype=bool),
        exposed=exposed,
        lifecycle=lifecycle,
        last_patched=last_patched,
        active_from=np.zeros(n, dtype=np.int64),
        active_until=np.full(n, NEVER, dtype=np.int64),
    )
    return table, ws_by_site


def _users(
    rng: np.random.Generator,
    sites: list[Site],
    ws_by_site: list[list[int]],
    hosts: Hosts,
    users: int | None,
    days: int,
) -> Users:
    n_ws = sum(len(w) for w in ws_by_site)
    total = users if users is not None else max(len(sites) * 3, round(n_ws * 0.95))
    share = np.array([len(w) for w in ws_by_site], dtype=float)
    per_site = np.maximum(np.floor(share / share.sum() * total).astype(int), 2)
    per_site[0] += total - per_site.sum()
    style = int(rng.integers(4))
    name_list: list[str] = []
    seen: set[str] = set()
    site_of, ws, ws_new, replace_day, start_day, admin = [], [], [], [], [], []
    for s in sites:
        n = int(per_site[s.index])
        stations = list(rng.permutation(ws_by_site[s.index]))
        n_assigned = min(n, max(1, int(len(stations) * 0.95)))
        spares = stations[n_assigned:]
        n_admin = max(1, n // 25) + (1 if s.hq else 0)
        for i in range(n):
            name = _username(rng, s.country.people, style, seen)
            name_list.append(name)
            site_of.append(s.index)
            admin.append(i < n_admin)
            begin = 0
            if i >= n_admin and rng.random() < 0.04 and days > 4:
                begin = int(rng.integers(1, days - 1))
            station = int(stations[i % n_assigned])
            if begin and spares:
                station = int(spares.pop())
                hosts.active_from[station] = begin
            new, when = -1, NEVER
            if not begin and spares and rng.random() < 0.02 and days > 4:
                new, when = int(spares.pop()), int(rng.integers(1, days - 1))
                hosts.active_from[new] = when
                hosts.active_until[station] = when
                hosts.lifecycle[station] = "retired"
            ws.append(station)
            ws_new.append(new)
            replace_day.append(when)
            start_day.append(begin)
        for spare in spares:  # still in stock: listed, never used
            hosts.active_from[spare] = NEVER
            hosts.lifecycle[spare] = "in stock"
    n = len(name_list)
    personal = [""] * n
    for owner in np.flatnonzero(rng.random(n) < 0.15):
        personal[int(owner)] = _personal_device(rng, name_list[int(owner)])
    return Users(
        name=name_list,
        site=np.array(site_of, dtype=np.int16),
        team=np.zeros(n, np.int64),
        admin=np.array(admin, dtype=bool),
        ws=np.array(ws, dtype=np.int64),
        ws_new=np.array(ws_new, dtype=np.int64),
        replace_day=np.array(replace_day, np.int64),
        start_day=np.array(start_day, np.int64),
        personal=personal,
        home_ip=names.public_ipv4(rng, n),
    )


def _username(rng: np.random.Generator, people: str, style: int, seen: set[str]) -> str:
    given = names.pick(rng, names.GIVEN[people])
    family = names.pick(rng, names.SURNAMES[people])
    base = (
        f"{given}.{family}",
        f"{given[0]}{family}",
        f"{given}{family[0]}",
        f"{family}{given[0]}",
    )[style]
    name, k = base, 1
    while name in seen:
        k += 1
        name = f"{base}{k}"
    seen.add(name)
    return name


def _personal_device(rng: np.random.Generator, user: str) -> str:
    kind = int(rng.integers(3))
    if kind == 0:
        return "desktop-" + draw_strings(rng, 1, 7, "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789")[0].lower()
    if kind == 1:
        return f"{user.split('.')[0]}s-macbook-" + draw_strings(rng, 1, 4, "0123456789abcdef")[0]
    return "laptop-" + draw_strings(rng, 1, 6, "abcdefghjkmnpqrstuvwxyz0123456789")[0]


def _teams(
    rng: np.random.Generator, sites: list[Site], hosts: Hosts, users: Users
) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
    team_site: list[int] = []
    team_fs: list[int] = []
    team_name: list[str] = []
    team_of_user = np.full(len(users), -1, dtype=np.int64)
    for s in sites:
        members = np.flatnonzero((users.site == s.index) & ~users.admin)
        servers = hosts.of(FILE_SERVER, s.index)
        n_teams = max(1, round(len(members) / 10))
        first = len(team_site)
        for k in range(n_teams):
            team_site.append(s.index)
            team_fs.append(int(servers[k % len(servers)]))
            team_name.append(f"{s.prefix}-team{k + 1:02d}")
        if len(members):
            team_of_user[members] = first + rng.integers(0, n_teams, size=len(members))
    return (
        np.array(team_site, dtype=np.int64),
        np.array(team_fs, dtype=np.int64),
        team_name,
        team_of_user,
    )


def _clients(rng: np.random.Generator, org: Org) -> None:
    n_clients = int(rng.integers(900, 1101))
    n_defence = int(rng.integers(8, 16))
    n_teams = len(org.team_site)
    hq_teams = np.flatnonzero(org.team_site == 0)
    team_size = np.bincount(org.users.team[org.users.team >= 0], minlength=n_teams) + 1.0
    client_team = rng.choice(n_teams, size=n_clients, p=team_size / team_size.sum())
    client_team[:n_defence] = rng.choice(hq_teams, size=n_defence)
    numbers = rng.choice(np.arange(1000, 99999), size=n_clients, replace=False)
    letter = names.pick(rng, ("C", "K", "CL", "CU", "A"))
    org.client_code = [f"{letter}{int(x):05d}" for x in numbers]
    org.client_name = names.defence_names(rng, n_defence) + names.company_names(
        rng, n_clients - n_defence
    )
    org.client_class = ["defence"] * n_defence + [
        names.pick(rng, ("confidential", "confidential", "internal-use", "personal-data"))
        for _ in range(n_clients - n_defence)
    ]
    org.client_team = client_team
    org.client_individuals = rng.integers(0, 5000, size=n_clients)
    org.client_individuals[:n_defence] = 0
    _catalog(rng, org)


def _catalog(rng: np.random.Generator, org: Org) -> None:
    share = names.pick(rng, names.SHARE_NAMES)
    dept = names.pick(rng, names.DEPT_SHARES)
    bases = {int(h): names.pick(rng, names.LOCAL_BASES) for h in org.hosts.of(FILE_SERVER)}
    year = dt.datetime.fromtimestamp(org.start, dt.UTC).year
    rows: list[tuple[int, int, int, str, str]] = []  # client, team, host, share, rel
    starts, counts = [], []
    for c, code in enumerate(org.client_code):
        defence = org.client_class[c] == "defence"
        n = int(rng.integers(25, 70)) if defence else int(3 + rng.geometric(1 / 14))
        docs = names.DEFENCE_DOCS if defence else names.CLIENT_DOCS
        team = int(org.client_team[c])
        host = int(org.team_fs[team])
        starts.append(len(rows))
        counts.append(n)
        for k in range(n):
            sub = year - int(rng.integers(0, 3))
            doc = names.pick(rng, docs)
            ext = names.pick(rng, names.DOC_EXT)
            rows.append((c, team, host, share, f"{code}\\{sub}\\{doc}_{k + 1:03d}{ext}"))
        org.inventory.append(
            (
                f"\\\\{org.hosts.name[host]}\\{share}\\{code}\\",
                org.client_name[c],
                org.client_class[c],
                int(org.client_individuals[c]),
            )
        )
        org.inventory.append(
            (
                f"{bases[host]}\\{share}\\{code}\\",
                org.client_name[c],
                org.client_class[c],
                int(org.client_individuals[c]),
            )
        )
    for t, tname in enumerate(org.team_name):
        host = int(org.team_fs[t])
        for k in range(20):
            doc = names.pick(rng, ("minutes", "plan", "budget", "roster", "handbook", "report"))
            rows.append((-1, t, host, dept, f"{tname}\\{doc}_{k + 1:02d}.docx"))
        owner = f"{org.name} (internal)"
        org.inventory.append(
            (f"\\\\{org.hosts.name[host]}\\{dept}\\{tname}\\", owner, "internal", 0)
        )
        org.inventory.append((f"{bases[host]}\\{dept}\\{tname}\\", owner, "internal", 0))
    pool = org.strings
    hostname = org.hosts.name
    org.catalog = Catalog(
        client=np.array([r[0] for r in rows], dtype=np.int64),
        team=np.array([r[1] for r in rows], dtype=np.int64),
        host=np.array([r[2] for r in rows], dtype=np.int64),
        share_id=pool.ids(f"\\\\*\\{r[3]}" for r in rows),
        share_local_id=pool.ids(f"\\??\\{bases[r[2]]}\\{r[3]}" for r in rows),
        rel_id=pool.ids(r[4] for r in rows),
        local_id=pool.ids(f"{bases[r[2]]}\\{r[3]}\\{r[4]}" for r in rows),
        unc=[f"\\\\{hostname[r[2]]}\\{r[3]}\\{r[4]}" for r in rows],
        starts=np.array(starts, dtype=np.int64),
        counts=np.array(counts, dtype=np.int64),
    )


def _empty_catalog() -> Catalog:
    e = np.empty(0, np.int64)
    return Catalog(e, e, e, e, e, e, e, [])


def _external(rng: np.random.Generator, org: Org) -> None:
    org.web_domains = names.web_domains(rng, 400)
    org.web_ips = names.public_ipv4(rng, 400)
    vendors = rng.choice(len(names.VENDOR_WORDS), size=2, replace=False)
    org.update_domains = [
        f"update.{names.VENDOR_WORDS[v].lower().replace(' ', '')}.{names.pick(rng, names.TLDS)}"
        for v in vendors
    ]
    org.update_ips = names.public_ipv4(rng, 2)


def _intern(org: Org) -> None:
    pool, h, u = org.strings, org.hosts, org.users
    h.name_id = pool.ids(h.name)
    h.upper_id = pool.ids(n.upper() for n in h.name)
    h.machine_id = pool.ids(f"{n.upper()}$" for n in h.name)
    svc_words = ("app", "web", "sql", "erp", "crm", "bi", "mail", "print", "sync", "batch")
    h.service_account = pool.ids(
        f"svc_{svc_words[i % len(svc_words)]}{i // len(svc_words) or ''}" for i in range(len(h))
    )
    u.name_id = pool.ids(u.name)
    intern_personal(org)
    org.domain_id = pool.id(org.netbios)


def intern_personal(org: Org) -> None:
    """(Re)intern the users' personal device names (after a scenario hands one out)."""
    u, pool = org.users, org.strings
    u.personal_id = pool.ids(p if p else "-" for p in u.personal)
    u.personal_wks_id = pool.ids(p.upper() if p else "-" for p in u.personal)


def _date(epoch: int) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%d")
