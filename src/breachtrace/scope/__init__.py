"""scope: per route, the files read within its sessions, mapped through the data inventory to
owners; overlaps, union, unowned files, people counted, notification thresholds; every run
kept in the case, the latest copied to CASE/scope/latest.json.

    from breachtrace.scope import scope
    result = scope(case_dir, inventory=Path("data_inventory.csv"))
    result = scope(case_dir, engine="spark")   # the same SQL on Spark (local[*])
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import combinations
from pathlib import Path
from typing import Any

from breachtrace.case import Case, CaseError
from breachtrace.context import load_context
from breachtrace.engines.base import Engine, open_engine, rows, tuples
from breachtrace.scope import exposure, jurisdictions
from breachtrace.scope.inventory import load_inventory, register_inventory
from breachtrace.scope.revisions import Diff, diff_runs, previous_run, write_run
from breachtrace.trace import incidents_path
from breachtrace.trace.lookups import host_addresses
from breachtrace.trace.records import iso, parse_time

__all__ = ["Diff", "ScopeResult", "scope"]


@dataclass
class ScopeResult:
    document: dict[str, Any]
    run_dir: Path
    diff: Diff | None


def scope(
    case: str | Path | Case,
    *,
    inventory: Path | None = None,
    rules: Path | None = None,
    diff: bool = False,
    engine: str = "duckdb",
    spark_master: str | None = None,
) -> ScopeResult:
    """Scope the exposed data of every traced route (trace must have run) and keep the run.

    ``inventory``: the data inventory CSV (stored in the case; default: the stored copy);
    ``rules``: a jurisdictions YAML replacing data/jurisdictions.yaml; ``diff``: compare with
    the previous run and explain each owner added or removed; ``engine``: run the SQL on
    "duckdb" (default) or "spark" (``spark_master``, default local[*]), with the same result.
    """
    opened = case if isinstance(case, Case) else Case.open(case)
    traced = _read_incidents(opened)
    inv = load_inventory(opened, inventory)
    routes = [r for i in traced["incidents"] for r in i["routes"]]
    context = load_context(opened, store=False)
    ips_of_host, _ = host_addresses(context)
    edges, addresses = _edges(routes)
    sql: Engine = open_engine(opened, engine, master=spark_master, metadata_cache=True)
    try:
        register_inventory(sql, inv)
        exposure.register_edges(sql, edges, addresses, ips_of_host)
        exposure.compute(sql)
        per_owner = rows(sql, exposure.PER_ROUTE_OWNER_SQL)
        unowned = rows(sql, exposure.UNOWNED_SQL)
        route_files = dict(tuples(sql, exposure.ROUTE_FILES_SQL))
        owner_files = dict(tuples(sql, exposure.OWNER_FILES_SQL))
    finally:
        sql.close()
    inputs = {e.input_id: e.path for e in opened.manifest()}
    detection = min(
        (t for i in traced["incidents"] if (t := parse_time(i["dwell"].get("detection")))),
        default=None,
    )
    blind = _blind_spots(traced, routes)
    document = _document(
        routes, per_owner, unowned, route_files, owner_files, inputs, inv, detection, rules
    )
    document["blind_spots"] = blind
    previous = previous_run(opened)
    run_dir = write_run(opened, document)
    found = diff_runs(previous, document) if diff else None
    if found is not None:
        (run_dir / "diff.json").write_text(json.dumps(found.as_json(), indent=1))
    return ScopeResult(document, run_dir, found)


def _read_incidents(case: Case) -> dict[str, Any]:
    path = incidents_path(case)
    if not path.exists():
        raise CaseError(f"{case.root} has no traced incidents; run: breachtrace trace --case ...")
    return json.loads(path.read_text())


def _edges(routes: list[dict[str, Any]]) -> tuple[list[exposure.RouteEdge], dict[str, list[str]]]:
    edges = []
    addresses: dict[str, list[str]] = {}
    for r in routes:
        vpn = bool(r.get("devices"))
        if vpn:
            addresses[r["route_id"]] = list(r.get("source_addresses") or [])
        for h in r["hops"]:
            when = parse_time(h["time"])
            if h["method"] == "outside_access" or when is None:
                continue
            edges.append(
                exposure.RouteEdge(
                    r["route_id"], h["src"], h["dst"], h["account"], when, h["method"] == "vpn"
                )
            )
    return edges, addresses


def _blind_spots(traced: dict[str, Any], routes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Log gaps on a route's hosts: reads in those windows left no host record, so owners
    exposed only there are missing from this scope (network evidence aside)."""
    out = []
    for incident in traced["incidents"]:
        for g in incident.get("log_gaps", []):
            on = sorted(r["route_id"] for r in routes if g["host"] in r["hosts"])
            if on:
                out.append(
                    {
                        "host": g["host"],
                        "channel": g["channel"],
                        "start": g["start"],
                        "end": g["end"],
                        "kind": g["kind"],
                        "routes": on,
                    }
                )
    return out


def _document(
    routes: list[dict[str, Any]],
    per_owner: list[dict[str, Any]],
    unowned: list[dict[str, Any]],
    route_files: dict[str, int],
    owner_files: dict[str, int],
    inputs: dict[str, str],
    inv: Any,
    detection: datetime | None,
    rules_path: Path | None,
) -> dict[str, Any]:
    by_route: dict[str, dict[str, dict[str, Any]]] = {r["route_id"]: {} for r in routes}
    owners: dict[str, dict[str, Any]] = {}
    for row in per_owner:
        by_route.setdefault(row["route_id"], {})[row["owner"]] = row
        o = owners.setdefault(row["owner"], {"rows": []})
        o["rows"].append(row)
    route_docs = []
    for r in routes:
        mine = by_route.get(r["route_id"], {})
        route_docs.append(
            {
                "route_id": r["route_id"],
                "name": r["name"],
                "entry": r["entry"],
                "owners": sorted(mine),
                "files": int(route_files.get(r["route_id"], 0)),
                "individuals": sum(int(x["individuals"] or 0) for x in mine.values()),
            }
        )
    names = {r["route_id"]: r for r in route_docs}
    overlaps = [
        {"routes": [a, b], "owners": sorted(set(names[a]["owners"]) & set(names[b]["owners"]))}
        for a, b in combinations(sorted(names), 2)
    ]
    if len(names) > 2:
        common = set.intersection(*(set(r["owners"]) for r in route_docs))
        overlaps.append({"routes": sorted(names), "owners": sorted(common)})
    owner_docs = [
        _owner(name, o["rows"], owner_files.get(name, 0), inputs)
        for name, o in sorted(owners.items())
    ]
    individuals = sum(int(o["individuals"] or 0) for o in owner_docs)
    classes = {o["classification"] for o in owner_docs if o["classification"]}
    thresholds = jurisdictions.check(
        jurisdictions.load_rules(rules_path),
        individuals=individuals,
        classifications=classes,
        intrusion=bool(routes),
        detection=detection,
    )
    return {
        "run_id": datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6],
        "created": iso(datetime.now(UTC).replace(tzinfo=None)),
        "inventory": None
        if inv is None
        else {"source": inv.source, "sha256": inv.sha256, "prefixes": len(inv.prefixes)},
        "detection": iso(detection),
        "routes": route_docs,
        "overlaps": overlaps,
        "union": sorted(owners),
        "owners": owner_docs,
        "individuals": individuals,
        "unowned_files": [u["path"] for u in unowned],
        "thresholds": [t.__dict__ for t in thresholds],
        "inputs": sorted(inputs),
        "limits": []
        if inv is not None
        else ["no data inventory (--inventory): files read are listed but owners are unknown"],
    }


def _owner(
    name: str, rows: list[dict[str, Any]], files: int, inputs: dict[str, str]
) -> dict[str, Any]:
    ids = sorted({i for r in rows for i in r["inputs"] if i})
    return {
        "owner": name,
        "routes": sorted(r["route_id"] for r in rows),
        "files": files,
        "first_access": iso(min(r["first_access"] for r in rows)),
        "last_access": iso(max(r["last_access"] for r in rows)),
        "classification": next((r["classification"] for r in rows if r["classification"]), None),
        "individuals": max((int(r["individuals"] or 0) for r in rows), default=0),
        "evidence": "host" if any(r["host_evidence"] for r in rows) else "network",
        "sessions": sorted({s for r in rows for s in r["sessions"]})[:10],
        "sample_files": sorted({s for r in rows for s in r["sample_files"]})[:5],
        "input_ids": ids,
        "input_files": [inputs.get(i, i) for i in ids],  # same order as input_ids
    }


def latest(case: Case) -> dict[str, Any] | None:
    path = case.root / "scope" / "latest.json"
    return json.loads(path.read_text()) if path.exists() else None
