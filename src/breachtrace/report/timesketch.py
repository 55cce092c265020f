"""The timeline for Timesketch, in its documented JSONL/CSV import format: the mandatory
``message``, ``datetime`` (ISO 8601 with offset) and ``timestamp_desc``, the optional
``timestamp`` (microseconds since the epoch), and the report's columns as extra fields.
File names end in ``.jsonl`` / ``.csv`` as the importer requires."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from breachtrace.report.tabular import write_csv

EXTRA_FIELDS = ("kind", "severity", "host", "user", "finding_id", "event_uid", "origin")
COLUMNS = ("message", "datetime", "timestamp", "timestamp_desc", *EXTRA_FIELDS, "data_type")
_DESCRIPTIONS = {"trace": "Incident timeline", "finding": "Finding first seen"}


def timesketch_events(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One Timesketch event per timeline row with a parseable time."""
    out = []
    for r in rows:
        when = _parse(r.get("time"))
        if when is None:
            continue
        who = f" as {r['user']}" if r.get("user") else ""
        where = f" on {r['host']}" if r.get("host") else ""
        out.append({
            "message": f"[{r['severity']}] {r['kind']}{where}{who}: {r.get('summary') or ''}",
            "datetime": when.isoformat(timespec="microseconds"),
            "timestamp": int(when.timestamp() * 1_000_000),
            "timestamp_desc": _DESCRIPTIONS.get(r.get("origin") or "", "Event time"),
            **{k: r.get(k) for k in EXTRA_FIELDS},
            "data_type": f"breachtrace:{r.get('origin') or 'event'}",
        })  # fmt: skip
    return out


def write_timesketch(rows: list[dict[str, Any]], jsonl: Path, csv_path: Path) -> int:
    events = timesketch_events(rows)
    with open(jsonl, "wb") as fh:
        for e in events:
            fh.write(orjson.dumps(e) + b"\n")
    write_csv(csv_path, COLUMNS, ([e[c] for c in COLUMNS] for e in events))
    return len(events)


def _parse(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
