"""Helpers for the Sigma tests: hand-written rules as YAML, and which events a hunt matched."""

from __future__ import annotations

import atexit
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import yaml

from breachtrace.case import Case
from breachtrace.ingest.runner import ingest

DATA = Path(__file__).parent / "data" / "sigma"
EVENTS = DATA / "events.jsonl"
PROCESS = {"product": "windows", "category": "process_creation"}
SECURITY = {"product": "windows", "service": "security"}


def rule_id(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"breachtrace-test/{name}"))


def rule_yaml(key: str, logsource: dict[str, str], detection: dict[str, Any], **extra: Any) -> str:
    """A Sigma rule written for a test (not taken from any rule set); ``key`` makes its id."""
    doc = {
        "title": f"test {key}",
        "id": rule_id(key),
        "status": extra.pop("status", "test"),
        "logsource": logsource,
        "detection": detection,
        "level": extra.pop("level", "medium"),
        **extra,
    }
    return yaml.safe_dump(doc, sort_keys=False)


def write_rules(directory: Path, rules: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in rules.items():
        (directory / f"{name}.yml").write_text(text)
    return directory


def matched_records(case: Case) -> dict[str, set[int]]:
    """rule id -> RecordNumbers of the events in its findings' evidence."""
    con = case.connect()
    try:
        rows = con.execute(
            "SELECT f.rule_id, e.record_id FROM (SELECT rule_id, unnest(evidence) AS uid FROM findings) f "
            "JOIN events e ON e.event_uid = f.uid"
        ).fetchall()
    finally:
        con.close()
    out: dict[str, set[int]] = {}
    for rid, record in rows:
        out.setdefault(rid, set()).add(record)
    return out


_TEMPLATE: list[Path] = []


def fresh_case(destination: Path) -> Case:
    """A case holding the fixture events at ``destination``: ingested once per test session,
    then copied (ingest is the slow part and is tested elsewhere)."""
    if not _TEMPLATE:
        root = Path(tempfile.mkdtemp(prefix="bt-sigma-template-"))
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        ingest(root / "case", [EVENTS])
        _TEMPLATE.append(root / "case")
    shutil.copytree(_TEMPLATE[0], destination)
    return Case.open(destination)
