"""Windows events as JSON lines: NXLog (as in OTRF's datasets), Winlogbeat/ECS, flat JSON."""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

import orjson
import pyarrow as pa

from breachtrace.ingest import windows_mapping
from breachtrace.ingest.base import Reader, RejectLog, line_batches
from breachtrace.ingest.sources import InputFile


def first_json_object(head: bytes) -> dict[str, object] | None:
    """The first complete JSON object line in ``head``, if any."""
    for line in head.split(b"\n")[:20]:
        line = line.strip()
        if not line.startswith(b"{"):
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return None


class _WindowsJsonReader(Reader):
    dialect = ""

    def batches(self, stream: BinaryIO, src: InputFile, rejects: RejectLog) -> Iterator[pa.Table]:
        return line_batches(stream, rejects)

    def normalize_sql(self, table: str) -> str:
        return windows_mapping.normalize_sql(table, self.dialect, self.name, "line")

    def normalize_columns(self) -> tuple[str, ...]:
        return windows_mapping.OUTPUT_COLUMNS


class NxlogReader(_WindowsJsonReader):
    name = "nxlog"
    description = "Windows events as flat JSON lines (NXLog, OTRF datasets, flat exports)"
    dialect = "nxlog"

    def sniff(self, head: bytes, src: InputFile) -> bool:
        obj = first_json_object(head)
        if obj is None or "winlog" in obj:
            return False
        has_id = "EventID" in obj or "EventRecordID" in obj
        return has_id and any(k in obj for k in ("Hostname", "Computer", "Channel"))


class WinlogbeatReader(_WindowsJsonReader):
    name = "winlogbeat"
    description = "Windows events shipped by Winlogbeat (ECS JSON lines)"
    dialect = "winlogbeat"

    def sniff(self, head: bytes, src: InputFile) -> bool:
        obj = first_json_object(head)
        return obj is not None and isinstance(obj.get("winlog"), dict)
