"""Every scope run kept in the case, and what changed between two runs and why.

    CASE/scope/runs/<run_id>/scope.json              the run (shape: docs/investigation.md)
    CASE/scope/runs/<run_id>/notification_list.csv   owner, routes, files, first_access,
                                                     last_access, classification, individuals
    CASE/scope/runs/<run_id>/notification_list.json  the same rows as JSON
    CASE/scope/runs/<run_id>/diff.json               with --diff: changes since the previous run
    CASE/scope/latest.json                           a copy of the latest scope.json

Routes are matched across runs by their entry point (route ids follow the incident, which can
change when a new route joins it). CSV cells that a spreadsheet would evaluate (owner and file
names come from the inventory and the logs) are neutralised.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from breachtrace import atomic_write
from breachtrace.case import Case

NOTIFICATION_COLUMNS = ("owner", "routes", "files", "first_access", "last_access",
                        "classification", "individuals")  # fmt: skip


def runs_dir(case: Case) -> Path:
    return case.root / "scope" / "runs"


def previous_run(case: Case) -> dict[str, Any] | None:
    """The latest kept run, if any."""
    runs = sorted(runs_dir(case).glob("*/scope.json")) if runs_dir(case).is_dir() else []
    return json.loads(runs[-1].read_text()) if runs else None


def write_run(case: Case, document: dict[str, Any]) -> Path:
    """Keep the run (scope.json, notification list CSV and JSON) and point latest.json at it."""
    run_dir = runs_dir(case) / document["run_id"]
    run_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(document, indent=1, ensure_ascii=False)
    (run_dir / "scope.json").write_text(text)
    rows = notification_rows(document)
    (run_dir / "notification_list.json").write_text(json.dumps(rows, indent=1, ensure_ascii=False))
    (run_dir / "notification_list.csv").write_text(notification_csv(rows), encoding="utf-8")
    latest = case.root / "scope" / "latest.json"
    atomic_write.write_text(latest, text)
    return run_dir


def notification_rows(document: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per exposed owner: who to notify, through which routes, how much, since when."""
    return [
        {
            "owner": o["owner"],
            "routes": ";".join(o["routes"]),
            "files": o["files"],
            "first_access": o["first_access"],
            "last_access": o["last_access"],
            "classification": o["classification"],
            "individuals": o["individuals"] or None,
            "evidence": o["evidence"],
        }
        for o in document["owners"]
    ]


def notification_csv(rows: list[dict[str, Any]]) -> str:
    from breachtrace.cli_output import safe_cell  # cli_output imports the pipeline: import late

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(NOTIFICATION_COLUMNS)
    for row in rows:
        writer.writerow([safe_cell(row[c]) for c in NOTIFICATION_COLUMNS])
    return out.getvalue()


@dataclass
class Change:
    owner: str
    change: str  # added | removed
    route: str  # the route's name
    why: str
    files: list[str] = field(default_factory=list)
    sessions: list[str] = field(default_factory=list)
    new_inputs: list[str] = field(default_factory=list)


@dataclass
class Diff:
    previous: str | None
    current: str
    changes: list[Change]
    new_inputs: list[str]

    def as_json(self) -> dict[str, Any]:
        return {"previous": self.previous, "current": self.current,
                "new_inputs": self.new_inputs, "changes": [c.__dict__ for c in self.changes]}  # fmt: skip


def _by_entry(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["entry"]: r for r in document.get("routes", [])}


def diff_runs(before: dict[str, Any] | None, after: dict[str, Any]) -> Diff:
    """Owners added or removed per route (matched by entry), each explained by the route, the
    files and sessions that expose it, and the input files ingested since the earlier run."""
    old_inputs = set(before.get("inputs", [])) if before else set()
    owners = {o["owner"]: o for o in after["owners"]}
    old_owners = {o["owner"]: o for o in before["owners"]} if before else {}
    new_inputs = sorted(set(after.get("inputs", [])) - old_inputs)
    old_routes = _by_entry(before) if before else {}
    changes: list[Change] = []
    for entry, route in _by_entry(after).items():
        was = set(old_routes.get(entry, {}).get("owners", []))
        is_new_route = entry not in old_routes
        for name in sorted(set(route["owners"]) - was):
            o = owners[name]
            pairs = zip(o["input_ids"], o["input_files"], strict=True)
            fresh = [path for i, path in pairs if i not in old_inputs]
            why = (
                f"route {route['name']} is new in this run" if is_new_route
                else f"newly found read in the sessions of route {route['name']}"
            )  # fmt: skip
            if fresh:
                why += f"; evidence from newly ingested input(s): {', '.join(fresh[:3])}"
            changes.append(
                Change(name, "added", route["name"], why, o["sample_files"], o["sessions"][:5], fresh)
            )  # fmt: skip
    for entry, route in old_routes.items():
        now = _by_entry(after).get(entry)
        gone = set(route["owners"]) - set(now["owners"] if now else [])
        for name in sorted(gone):
            why = (
                f"route {route['name']} is no longer traced" if now is None
                else f"no longer read in the sessions of route {route['name']}"
            )  # fmt: skip
            old = old_owners.get(name, {})
            changes.append(
                Change(name, "removed", route["name"], why, old.get("sample_files", []),
                       old.get("sessions", [])[:5])
            )  # fmt: skip
    return Diff(before["run_id"] if before else None, after["run_id"], changes, new_inputs)
