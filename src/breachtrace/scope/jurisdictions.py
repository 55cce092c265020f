"""Notification thresholds (data/jurisdictions.yaml): which are crossed, and by when to notify."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from breachtrace.trace.records import iso
from breachtrace.yaml_files import load_yaml


class JurisdictionError(ValueError):
    """A jurisdictions file that cannot be used."""


@dataclass(frozen=True)
class Threshold:
    jurisdiction: str
    rule: str
    crossed: bool
    deadline: str | None  # ISO time, from detection
    final_report: str | None = None


def load_rules(path: Path | None = None) -> list[dict[str, Any]]:
    """The jurisdictions list from ``path`` or the packaged data/jurisdictions.yaml."""
    if path is None:
        text = resources.files("breachtrace.data").joinpath("jurisdictions.yaml").read_text()
    else:
        text = Path(path).read_text(encoding="utf-8")
    document = load_yaml(text) or {}
    items = document.get("jurisdictions")
    if not isinstance(items, list):
        raise JurisdictionError(f"{path or 'jurisdictions.yaml'}: needs a 'jurisdictions' list")
    return items


def check(
    rules: list[dict[str, Any]],
    *,
    individuals: int,
    classifications: set[str],
    intrusion: bool,
    detection: datetime | None,
) -> list[Threshold]:
    """Every rule of every jurisdiction, crossed or not, with its deadline from detection."""
    out = []
    for j in rules:
        for r in j.get("rules", []):
            crossed = True
            if "individuals_over" in r:
                crossed &= individuals > int(r["individuals_over"])
            if "classifications" in r:
                wanted = {str(c).lower() for c in r["classifications"]}
                crossed &= bool(wanted & {c.lower() for c in classifications})
            if r.get("intrusion"):
                crossed &= intrusion
            out.append(
                Threshold(
                    jurisdiction=str(j.get("jurisdiction", "?")),
                    rule=str(r.get("rule", "?")),
                    crossed=bool(crossed),
                    deadline=_after(detection, r.get("deadline_hours")) if crossed else None,
                    final_report=_after(detection, r.get("final_report_hours"))
                    if crossed
                    else None,
                )
            )
    return out


def _after(start: datetime | None, hours: Any) -> str | None:
    if start is None or hours is None:
        return None
    return iso(start + timedelta(hours=float(hours)))
