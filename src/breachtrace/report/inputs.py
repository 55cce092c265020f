"""What the later stages left in the case for the report: the traced incidents and the latest
data-exposure scope. Either may be absent (the stage has not run yet); the report says so.

Layout read here (written by ``trace`` and ``scope``)::

    CASE/trace/incidents.json                      {"generated", "lead", "incidents": [...]}
    CASE/scope/latest.json                         {"run_id", "routes", "owners", ...}
    CASE/scope/runs/<run_id>/notification_list.csv the owners to notify, one per row
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from breachtrace.case import Case


class ReportError(ValueError):
    """An input of the report that cannot be used, naming the file and what to do."""


@dataclass(frozen=True)
class StageOutputs:
    """The trace and scope outputs of a case; ``None`` where the stage has not run."""

    incidents: dict[str, Any] | None
    scope: dict[str, Any] | None
    notification_csv: Path | None
    incidents_path: Path
    scope_path: Path


def incidents_path(case: Case) -> Path:
    return case.root / "trace" / "incidents.json"


def scope_path(case: Case) -> Path:
    return case.root / "scope" / "latest.json"


def read_stage_outputs(case: Case) -> StageOutputs:
    """Load incidents.json and the latest scope, checking the top-level shape only."""
    incidents = _read_json(incidents_path(case), required=("incidents",))
    scope = _read_json(scope_path(case), required=("run_id", "routes", "owners"))
    notification = None
    if scope is not None:
        run_dir = case.root / "scope" / "runs" / str(scope["run_id"])
        candidate = run_dir / "notification_list.csv"
        # run_id comes from a file; never follow it out of the scope folder
        if candidate.is_file() and candidate.resolve().is_relative_to(case.root / "scope"):
            notification = candidate
    return StageOutputs(incidents, scope, notification, incidents_path(case), scope_path(case))


def _read_json(path: Path, *, required: tuple[str, ...]) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportError(f"{path}: cannot be read as JSON ({exc}); re-run the stage") from None
    if not isinstance(data, dict) or any(k not in data for k in required):
        raise ReportError(
            f"{path}: expected a JSON object with {', '.join(required)}; re-run the stage"
        )
    return data
