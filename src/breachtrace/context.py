"""Context a responder may be handed: asset, network and identity inventories.

All three are optional CSV files with a header row:

- ``assets``: host (required), site, country, role, managed, last_patched (YYYY-MM-DD),
  lifecycle (active, decommissioning, retired, ...), ip (one or more, ``;``-separated)
- ``networks``: cidr (required), site, country, internal (true/false, default true),
  vpn_pool (true/false, default false). External ranges with a country act as geolocation.
- ``identities``: user (required), home_site, devices (``;``-separated host or device names)

Given once, they are validated (errors name the file and the row) and stored in the case under
``CASE/context/``, where later runs find them. Without them the analytics infer what can be
inferred (private vs public address ranges, VPN addresses from VPN logs, first-seen baselines)
and say in their output what they could not judge (``Context.limits``).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import ipaddress
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from breachtrace import atomic_write
from breachtrace.case import Case
from breachtrace.engines.base import Engine

KINDS = ("assets", "networks", "identities")
_REQUIRED = {"assets": "host", "networks": "cidr", "identities": "user"}
_KNOWN = {
    "assets": ("host", "site", "country", "role", "managed", "last_patched", "lifecycle", "ip"),
    "networks": ("cidr", "site", "country", "internal", "vpn_pool"),
    "identities": ("user", "home_site", "devices"),
}
_TRUE = {"true", "yes", "y", "1", "managed"}
_FALSE = {"false", "no", "n", "0", "unmanaged"}


class ContextError(ValueError):
    """A context file that cannot be used, naming the file and the row."""


@dataclass(frozen=True)
class Asset:
    host: str
    site: str | None = None
    country: str | None = None
    role: str | None = None
    managed: bool | None = None
    last_patched: dt.date | None = None
    lifecycle: str | None = None
    ips: tuple[str, ...] = ()


@dataclass(frozen=True)
class Network:
    cidr: str
    site: str | None = None
    country: str | None = None
    internal: bool = True
    vpn_pool: bool = False

    @property
    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        return ipaddress.ip_network(self.cidr, strict=False)


@dataclass(frozen=True)
class Identity:
    user: str
    home_site: str | None = None
    devices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Context:
    """The context known for a case (any part may be empty)."""

    assets: tuple[Asset, ...] = ()
    networks: tuple[Network, ...] = ()
    identities: tuple[Identity, ...] = ()
    sources: dict[str, str] = field(default_factory=dict)  # kind -> file it came from

    def has(self, kind: str) -> bool:
        return bool(getattr(self, kind))

    def limits(self) -> list[str]:
        """What cannot be judged without the missing context files, in plain words."""
        out = []
        if not self.assets:
            out.append(
                "no asset inventory (--assets): sites, countries, roles, patch state and "
                "lifecycle of hosts are unknown, so cross-site hops, unpatched or "
                "decommissioning entry points and unmanaged devices are not judged"
            )
        elif not any(a.last_patched for a in self.assets):
            out.append("the asset inventory has no last_patched dates: patch state not judged")
        if not self.networks:
            out.append(
                "no network inventory (--networks): internal means private (RFC 1918/4193) "
                "addresses, VPN addresses are inferred from VPN logs only, and the country "
                "of an address is unknown (new-country and impossible-travel checks need it)"
            )
        if not self.identities:
            out.append(
                "no identity inventory (--identities): an account's usual devices and home "
                "site are learned from the logs alone"
            )
        return out

    # -- SQL ---------------------------------------------------------------------------------
    def register(self, engine: Engine) -> None:
        """Create temp tables ctx_assets, ctx_asset_ips, ctx_networks, ctx_identities."""
        assets = pa.table(
            {
                "host": pa.array([a.host for a in self.assets], pa.string()),
                "site": pa.array([a.site for a in self.assets], pa.string()),
                "country": pa.array([a.country for a in self.assets], pa.string()),
                "role": pa.array([a.role for a in self.assets], pa.string()),
                "managed": pa.array([a.managed for a in self.assets], pa.bool_()),
                "last_patched": pa.array([a.last_patched for a in self.assets], pa.date32()),
                "lifecycle": pa.array([a.lifecycle for a in self.assets], pa.string()),
            }
        )
        asset_ips = pa.table(
            {
                "ip": pa.array([ip for a in self.assets for ip in a.ips], pa.string()),
                "host": pa.array([a.host for a in self.assets for _ in a.ips], pa.string()),
            }
        )
        v4 = [n for n in self.networks if n.network.version == 4]
        networks = pa.table(
            {
                "cidr": pa.array([n.cidr for n in v4], pa.string()),
                "lo": pa.array([int(n.network.network_address) for n in v4], pa.int64()),
                "hi": pa.array([int(n.network.broadcast_address) for n in v4], pa.int64()),
                "prefix": pa.array([n.network.prefixlen for n in v4], pa.int32()),
                "site": pa.array([n.site for n in v4], pa.string()),
                "country": pa.array([n.country for n in v4], pa.string()),
                "internal": pa.array([n.internal for n in v4], pa.bool_()),
                "vpn_pool": pa.array([n.vpn_pool for n in v4], pa.bool_()),
            }
        )
        pairs = [(i.user, i.home_site, d) for i in self.identities for d in (i.devices or (None,))]
        identities = pa.table(
            {
                "user": pa.array([p[0] for p in pairs], pa.string()),
                "home_site": pa.array([p[1] for p in pairs], pa.string()),
                "device": pa.array([p[2] for p in pairs], pa.string()),
            }
        )
        for name, table in (
            ("ctx_assets", assets),
            ("ctx_asset_ips", asset_ips),
            ("ctx_networks", networks),
            ("ctx_identities", identities),
        ):
            engine.register(f"{name}_arrow", table)
            engine.create_table(name, f"SELECT * FROM {name}_arrow")
            engine.unregister(f"{name}_arrow")

    def ipv6_networks(self) -> list[Network]:
        return [n for n in self.networks if n.network.version == 6]


# -- parsing ---------------------------------------------------------------------------------
def short_host(value: str) -> str:
    """A host name as the store keeps it: lower case, no domain, no leading backslashes."""
    text = value.strip().lstrip("\\")
    try:
        ipaddress.ip_address(text)
        return text
    except ValueError:
        return text.split(".", 1)[0].lower()


def _rows(path: Path, kind: str) -> Iterable[tuple[int, dict[str, str]]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ContextError(f"{path}: {kind} file not found") from None
    except UnicodeDecodeError as exc:
        raise ContextError(f"{path}: not UTF-8 text ({exc})") from None
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip().lower() for h in reader.fieldnames or []]
    if _REQUIRED[kind] not in header:
        raise ContextError(
            f"{path}: the {kind} file needs a header row with a {_REQUIRED[kind]!r} column "
            f"(known columns: {', '.join(_KNOWN[kind])}); found: {', '.join(header) or 'none'}"
        )
    unknown = [h for h in header if h not in _KNOWN[kind]]
    if unknown:
        raise ContextError(
            f"{path}: unknown {kind} columns {unknown}; known: {', '.join(_KNOWN[kind])}"
        )
    reader.fieldnames = header
    for number, row in enumerate(reader, start=2):
        if None in row:
            raise ContextError(f"{path}: row {number}: more fields than the header has columns")
        yield number, {k: (v or "").strip() for k, v in row.items()}


def _bool(value: str, where: str, column: str, default: bool | None) -> bool | None:
    low = value.lower()
    if not low:
        return default
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ContextError(f"{where}: column {column!r} must be true or false, got {value!r}")


def _opt(value: str) -> str | None:
    return value or None


def parse_assets(path: Path) -> tuple[Asset, ...]:
    out: list[Asset] = []
    seen: dict[str, int] = {}
    for number, row in _rows(path, "assets"):
        where = f"{path}: row {number}"
        if not row.get("host"):
            raise ContextError(f"{where}: empty host")
        host = short_host(row["host"])
        if host in seen:
            raise ContextError(f"{where}: host {host!r} already listed on row {seen[host]}")
        seen[host] = number
        patched = None
        if row.get("last_patched"):
            try:
                patched = dt.date.fromisoformat(row["last_patched"][:10])
            except ValueError:
                raise ContextError(
                    f"{where}: last_patched must be a date YYYY-MM-DD, got {row['last_patched']!r}"
                ) from None
        ips = []
        for ip in filter(None, (p.strip() for p in row.get("ip", "").replace(",", ";").split(";"))):
            try:
                ips.append(str(ipaddress.ip_address(ip)))
            except ValueError:
                raise ContextError(f"{where}: ip {ip!r} is not an IP address") from None
        out.append(
            Asset(
                host=host,
                site=_opt(row.get("site", "")),
                country=_opt(row.get("country", "")),
                role=_opt(row.get("role", "").lower()),
                managed=_bool(row.get("managed", ""), where, "managed", None),
                last_patched=patched,
                lifecycle=_opt(row.get("lifecycle", "").lower()),
                ips=tuple(ips),
            )
        )
    return tuple(out)


def parse_networks(path: Path) -> tuple[Network, ...]:
    out: list[Network] = []
    for number, row in _rows(path, "networks"):
        where = f"{path}: row {number}"
        try:
            net = ipaddress.ip_network(row["cidr"], strict=True)
        except ValueError as exc:
            raise ContextError(f"{where}: cidr {row['cidr']!r} is not a network ({exc})") from None
        out.append(
            Network(
                cidr=str(net),
                site=_opt(row.get("site", "")),
                country=_opt(row.get("country", "")),
                internal=bool(_bool(row.get("internal", ""), where, "internal", True)),
                vpn_pool=bool(_bool(row.get("vpn_pool", ""), where, "vpn_pool", False)),
            )
        )
    return tuple(out)


def parse_identities(path: Path) -> tuple[Identity, ...]:
    out: list[Identity] = []
    seen: dict[str, int] = {}
    for number, row in _rows(path, "identities"):
        where = f"{path}: row {number}"
        user = row.get("user", "").strip().lower()
        if not user:
            raise ContextError(f"{where}: empty user")
        if user in seen:
            raise ContextError(f"{where}: user {user!r} already listed on row {seen[user]}")
        seen[user] = number
        devices = tuple(
            short_host(d) for d in row.get("devices", "").replace(",", ";").split(";") if d.strip()
        )
        out.append(Identity(user=user, home_site=_opt(row.get("home_site", "")), devices=devices))
    return tuple(out)


_PARSERS = {"assets": parse_assets, "networks": parse_networks, "identities": parse_identities}


# -- the case's copy ---------------------------------------------------------------------------
def context_dir(case: Case) -> Path:
    return case.root / "context"


def store_context_file(case: Case, kind: str, path: Path) -> Path:
    """Validate ``path`` and keep a copy as CASE/context/<kind>.csv (replacing an earlier one)."""
    _PARSERS[kind](path)  # raises ContextError naming the file and row
    target_dir = context_dir(case)
    target_dir.mkdir(exist_ok=True)
    data = path.read_bytes()
    target = target_dir / f"{kind}.csv"
    atomic_write.write_bytes(target, data)
    record_path = target_dir / "context.json"
    # read, changed and written under the case's lock: two commands storing different files
    # at once would otherwise each write the record without the other's entry
    with case.writer_lock():
        record = json.loads(record_path.read_text()) if record_path.exists() else {}
        record[kind] = {
            "source": str(path.resolve()),
            "sha256": hashlib.sha256(data).hexdigest(),
            "stored": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        atomic_write.write_text(record_path, json.dumps(record, indent=1))
    return target


def load_context(
    case: Case,
    *,
    assets: Path | None = None,
    networks: Path | None = None,
    identities: Path | None = None,
    store: bool = True,
) -> Context:
    """The context for ``case``: files given here (validated, and stored in the case unless
    ``store`` is false), otherwise the copies stored earlier under CASE/context/."""
    given = {"assets": assets, "networks": networks, "identities": identities}
    parsed: dict[str, tuple[object, ...]] = {}
    sources: dict[str, str] = {}
    for kind in KINDS:
        path = given[kind]
        if path is not None:
            path = Path(path)
            parsed[kind] = _PARSERS[kind](path)
            sources[kind] = str(path)
            if store:
                store_context_file(case, kind, path)
            continue
        stored = context_dir(case) / f"{kind}.csv"
        if stored.exists():
            parsed[kind] = _PARSERS[kind](stored)
            sources[kind] = str(stored)
    return Context(
        assets=parsed.get("assets", ()),  # type: ignore[arg-type]
        networks=parsed.get("networks", ()),  # type: ignore[arg-type]
        identities=parsed.get("identities", ()),  # type: ignore[arg-type]
        sources=sources,
    )
