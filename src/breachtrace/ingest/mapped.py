"""Generic CSV or JSON-lines sources described by a small YAML mapping (VPN, proxy, file-server
audit exports, ...). See docs/formats.md for the mapping format; an example::

    name: vpn
    format: csv
    match: [timestamp, username, client_ip]     # header columns that identify the source
    channel: vpn
    timestamp: {column: timestamp}               # optional: format: "%d/%m/%Y %H:%M:%S" | epoch
    action: {column: event, map: {connect: remote_access}, default: other}   # or a constant
    outcome: {column: result, map: {success: success, failure: failure}}
    fields: {user: username, src_ip: client_ip}
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import orjson
import pyarrow as pa
import yaml

from breachtrace.engines.duckdb import sql_literal
from breachtrace.ingest.base import FormatError, Reader, RejectLog, line_batches
from breachtrace.ingest.sources import InputFile
from breachtrace.ingest.windows_json import first_json_object
from breachtrace.schema import COLUMNS
from breachtrace.yaml_files import load_yaml

_TYPED = {c.name: c.sql_type for c in COLUMNS}
_TEXT_POST = {"user": "bt_user({v})", "subject_user": "bt_user({v})", "src_ip": "bt_ip({v})",
              "dst_ip": "bt_ip({v})", "src_host": "bt_host({v})", "dst_host": "bt_host({v})",
              "host": "bt_host({v})"}  # fmt: skip
_MAPPABLE = {c.name for c in COLUMNS} - {
    "ts", "source_format", "raw", "event_uid", "input_sha256", "input_record", "action",
    "outcome",
}  # fmt: skip
BATCH_ROWS = 100_000


class MappingError(Exception):
    """A mapping file that cannot be used, with the file and what is wrong."""


@dataclass(frozen=True)
class SourceMapping:
    name: str
    format: str
    match: tuple[str, ...]
    spec: dict[str, Any]
    path: str

    @classmethod
    def load(cls, path: Path) -> SourceMapping:
        try:
            spec = load_yaml(path.read_text())
        except yaml.YAMLError as exc:
            raise MappingError(f"{path}: not valid YAML: {exc}") from exc
        if not isinstance(spec, dict) or not {"name", "match", "fields"} <= set(spec):
            raise MappingError(f"{path}: a mapping needs 'name', 'match' and 'fields'")
        unknown = set(spec["fields"]) - _MAPPABLE
        if unknown:
            raise MappingError(
                f"{path}: unknown schema columns in fields: {sorted(unknown)}; "
                f"choose from {sorted(_MAPPABLE)}"
            )
        fmt = spec.get("format", "csv")
        if fmt not in ("csv", "json"):
            raise MappingError(f"{path}: format must be csv or json, not {fmt!r}")
        return cls(spec["name"], fmt, tuple(spec["match"]), spec, str(path))


def is_mapping_file(path: Path) -> bool:
    """Whether a YAML file looks like a source mapping (cheap check before loading)."""
    if path.suffix.lower() not in (".yaml", ".yml"):
        return False
    try:
        head = path.read_text(errors="replace")[:4096]
    except OSError:
        return False
    return "match:" in head and "fields:" in head and "name:" in head


def _csv_header(head: bytes, delimiter: str) -> list[str]:
    first = head.split(b"\n", 1)[0].decode("utf-8", "replace").lstrip("\ufeff").rstrip("\r")
    return next(csv.reader([first], delimiter=delimiter), [])


class MappedReader(Reader):
    """A CSV or JSON source read through one user-supplied mapping."""

    def __init__(self, mapping: SourceMapping) -> None:
        self.mapping = mapping
        self.name = mapping.name
        self.description = mapping.spec.get("description", f"mapped {mapping.format} source")
        self.delimiter = str(mapping.spec.get("delimiter", ","))

    def sniff(self, head: bytes, src: InputFile) -> bool:
        if self.mapping.format == "json":
            obj = first_json_object(head)
            return obj is not None and all(k in obj for k in self.mapping.match)
        header = _csv_header(head, self.delimiter)
        return bool(header) and all(k in header for k in self.mapping.match)

    def batches(self, stream: BinaryIO, src: InputFile, rejects: RejectLog) -> Iterator[pa.Table]:
        if self.mapping.format == "json":
            for table in line_batches(stream, rejects):
                yield table.rename_columns(["input_record", "raw"])
            return
        yield from self._csv_batches(stream, src, rejects)

    def _csv_batches(
        self, stream: BinaryIO, src: InputFile, rejects: RejectLog
    ) -> Iterator[pa.Table]:
        last_line = [0]
        reader = csv.reader(_decoded_lines(stream, rejects, last_line), delimiter=self.delimiter)
        try:
            header = [h.lstrip("\ufeff") for h in next(reader)]
        except StopIteration as exc:
            raise FormatError(f"{src.display}: empty CSV") from exc
        numbers: list[int] = []
        raws: list[str] = []
        for row in reader:
            if not row:
                continue
            if len(row) != len(header):
                rejects.add(
                    last_line[0], f"expected {len(header)} columns, found {len(row)}", ",".join(row)
                )
                continue
            numbers.append(last_line[0])
            raws.append(orjson.dumps(dict(zip(header, row, strict=True))).decode())
            if len(raws) >= BATCH_ROWS:
                yield _table(numbers, raws)
                numbers, raws = [], []
        if raws:
            yield _table(numbers, raws)

    def normalize_sql(self, table: str) -> str:
        spec = self.mapping.spec

        names: list[str] = []

        def col(name: str) -> str:
            # Every column lands in one multi-path extraction (one JSON parse per record).
            if name not in names:
                names.append(name)
            return f"bt_null(c[{names.index(name) + 1}])"

        def choose(value: Any, default: str | None = None) -> str:
            if isinstance(value, dict) and "column" in value:
                base = col(value["column"])
                if "map" in value:
                    whens = " ".join(
                        f"WHEN {sql_literal(str(k).lower())} THEN {sql_literal(str(v))}"
                        for k, v in value["map"].items()
                    )
                    fallback = value.get("default", default)
                    other = sql_literal(str(fallback)) if fallback is not None else "NULL"
                    return f"CASE lower({base}) {whens} ELSE {other} END"
                return base
            if isinstance(value, list):
                return "coalesce(" + ", ".join(choose(v) for v in value) + ")"
            if value is None:
                return sql_literal(default) if default is not None else "NULL"
            if isinstance(value, str) and value in self._constants_allowed():
                return sql_literal(value)
            return col(str(value))

        selected = []
        for column, value in spec["fields"].items():
            expr = choose(value)
            sql_type = _TYPED[column]
            if sql_type in ("INTEGER", "BIGINT"):
                expr = f"CAST(bt_int({expr}) AS {sql_type})"
            elif sql_type == "DOUBLE":
                expr = f"try_cast({expr} AS DOUBLE)"
            else:
                expr = _TEXT_POST.get(column, "{v}").format(v=expr)
            selected.append(f"{expr} AS {column}")
        ts_spec = spec.get("timestamp", {"column": "timestamp"})
        ts_col = col(ts_spec["column"])
        fmt = ts_spec.get("format")
        if fmt == "epoch":
            ts = f"bt_epoch({ts_col})"
        elif fmt == "epoch_ms":
            ts = f"bt_epoch(try_cast({ts_col} AS DOUBLE) / 1000)"
        elif fmt:
            ts = f"bt_local(try_strptime({ts_col}, {sql_literal(fmt)}))"
        else:
            ts = f"coalesce(bt_ts({ts_col}), bt_epoch({ts_col}))"
        action = spec.get("action", "other")
        action_sql = choose(action, "other") if isinstance(action, dict) else sql_literal(action)
        outcome = spec.get("outcome")
        outcome_sql = (
            choose(outcome)
            if isinstance(outcome, dict)
            else (sql_literal(outcome) if outcome else "NULL")
        )
        channel = sql_literal(str(spec.get("channel", self.name)))
        valid = "json_valid(raw)" if self.mapping.format == "json" else "true"
        paths = ", ".join(sql_literal('$."' + n.replace('"', '\\"') + '"') for n in names)
        return f"""
WITH src AS (SELECT input_id, input_record, raw, {valid} AS ok FROM {table}),
good AS (SELECT *, json_extract_string(raw, [{paths}]) AS c FROM src WHERE ok),
mapped AS (
    SELECT {ts} AS ts, {sql_literal(self.name)} AS source_format, {channel} AS channel,
        {action_sql} AS action, {outcome_sql} AS outcome, {", ".join(selected)},
        input_id, input_record, raw
    FROM good
)
SELECT *, CASE WHEN ts IS NULL THEN 'missing or unparseable timestamp in column '
    || {sql_literal(ts_spec["column"])} END AS reject_reason FROM mapped
UNION ALL BY NAME
SELECT input_id, input_record, raw, 'malformed JSON' AS reject_reason FROM src WHERE NOT ok
"""

    @staticmethod
    def _constants_allowed() -> set[str]:
        return set()


def _decoded_lines(stream: BinaryIO, rejects: RejectLog, last_line: list[int]) -> Iterator[str]:
    """Text lines of a byte stream; a line that is not UTF-8 is rejected, its neighbours kept.

    ``last_line[0]`` holds the physical number of the line most recently handed out.
    """
    for number, raw in enumerate(stream, start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            rejects.add(number, f"undecodable bytes (not UTF-8) at column {exc.start + 1}", raw)
            continue
        last_line[0] = number
        yield line


def _table(numbers: list[int], raws: list[str]) -> pa.Table:
    return pa.table({"input_record": pa.array(numbers, pa.int64()), "raw": pa.array(raws)})
