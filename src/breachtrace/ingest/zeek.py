"""Zeek logs (conn, dns, http, ssl, files, smb_files, kerberos, ...) in TSV or JSON.

TSV files describe themselves in their ``#fields`` header; JSON lines name their fields. Each
Zeek TSV row is stored as a JSON object keyed by its field names, so Sigma rules and analysts
can address any field by name whichever form the log came in.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import BinaryIO

import pyarrow as pa

from breachtrace.engines.duckdb import sql_literal
from breachtrace.ingest.base import FormatError, Reader, RejectLog, line_batches
from breachtrace.ingest.sources import InputFile
from breachtrace.ingest.windows_json import first_json_object

# Per log type: normalized column -> Zeek field(s) (first present wins).
_COMMON = {"src_ip": "id.orig_h", "src_port": "id.orig_p", "dst_ip": "id.resp_h",
           "dst_port": "id.resp_p"}  # fmt: skip
LOG_TYPES: dict[str, tuple[str, dict[str, str | list[str]]]] = {
    "conn": ("network_connection", {**_COMMON, "protocol": ["service", "proto"],
             "bytes_out": "orig_bytes", "bytes_in": "resp_bytes", "duration": "duration"}),
    "dns": ("dns_query", {**_COMMON, "query": "query", "protocol": "proto"}),
    "http": ("http_request", {**_COMMON, "query": "uri", "dst_host": "host",
             "bytes_out": "request_body_len", "bytes_in": "response_body_len",
             "user": "username"}),
    "ssl": ("tls_handshake", {**_COMMON, "query": "server_name", "dst_host": "server_name"}),
    "files": ("file_transfer", {"src_ip": ["id.resp_h", "tx_hosts"],
              "dst_ip": ["id.orig_h", "rx_hosts"], "file_path": "filename",
              "protocol": "source", "bytes_in": ["total_bytes", "seen_bytes"],
              "query": "mime_type", "duration": "duration"}),
    "smb_files": ("file_access", {**_COMMON, "file_path": ["path", "name"], "query": "name",
                  "protocol": "action", "bytes_in": "size"}),
    "smb_mapping": ("share_access", {**_COMMON, "file_path": "path", "query": "share_type"}),
    "kerberos": ("kerberos_tgt", {**_COMMON, "user": "client", "query": "service"}),
    "ntlm": ("logon", {**_COMMON, "user": "username", "domain": "domainname",
             "src_host": "hostname"}),
    "rdp": ("remote_access", {**_COMMON, "user": "cookie", "protocol": "security_protocol"}),
    "ssh": ("remote_access", {**_COMMON, "query": "client", "auth_package": "auth_success"}),
}  # fmt: skip
_INT_COLUMNS = {"src_port", "dst_port"}
_BIGINT_COLUMNS = {"bytes_in", "bytes_out"}
_SCHEMA_COLUMNS = (
    "user", "domain", "src_ip", "src_host", "src_port", "dst_ip", "dst_host", "dst_port",
    "protocol", "auth_package", "file_path", "query", "bytes_in", "bytes_out", "duration",
)  # fmt: skip


def _log_type_from_name(display: str) -> str | None:
    stem = PurePath(display.split("!")[-1]).name.split(".")[0]
    return stem if stem in LOG_TYPES else None


def _guess_log_type(keys: set[str]) -> str:
    if ("query" in keys and "qtype" in keys) or "qtype_name" in keys:
        return "dns"
    if "fuid" in keys and ("mime_type" in keys or "tx_hosts" in keys or "source" in keys):
        return "files"
    if {"method", "uri"} <= keys:
        return "http"
    if "server_name" in keys and "version" in keys:
        return "ssl"
    if "conn_state" in keys or "orig_bytes" in keys:
        return "conn"
    return "other"


@dataclass
class ZeekReader(Reader):
    name: str = "zeek"
    description: str = "Zeek logs (conn, dns, http, ssl, files, ...) as TSV with #fields, or JSON"
    log_type: str = "other"
    tsv_fields: list[str] = field(default_factory=list)

    def sniff(self, head: bytes, src: InputFile) -> bool:
        if head.startswith(b"#separator"):
            return True
        obj = first_json_object(head)
        if obj is None:
            return False
        return (
            "_path" in obj
            or ("uid" in obj and "id.orig_h" in obj)
            or ("ts" in obj and ("id.orig_h" in obj or "fuid" in obj))
        )

    def prepare(self, src: InputFile, head: bytes) -> ZeekReader:
        if head.startswith(b"#separator"):
            header: dict[str, str] = {}
            for line in head.split(b"\n"):
                if not line.startswith(b"#"):
                    break
                key, _, value = line.decode("utf-8", "replace").partition("\t")
                header[key] = value
            if "#fields" not in header:
                raise FormatError("Zeek TSV header has no #fields line")
            fields = header["#fields"].split("\t")
            log_type = header.get("#path") or _log_type_from_name(src.display) or "other"
            if log_type not in LOG_TYPES:
                log_type = _guess_log_type(set(fields))
            return ZeekReader(log_type=log_type, tsv_fields=fields)
        obj = first_json_object(head) or {}
        log_type = str(obj.get("_path") or _log_type_from_name(src.display) or "")
        if log_type not in LOG_TYPES:
            log_type = _guess_log_type(set(obj))
        return ZeekReader(log_type=log_type)

    def batches(self, stream: BinaryIO, src: InputFile, rejects: RejectLog) -> Iterator[pa.Table]:
        return line_batches(stream, rejects, skip_prefix=b"#" if self.tsv_fields else None)

    def normalize_sql(self, table: str) -> str:
        action, columns = LOG_TYPES.get(self.log_type, ("network_connection", _COMMON))
        if self.tsv_fields:
            n = len(self.tsv_fields)
            names = list(self.tsv_fields)
            pairs = ", ".join(
                f"{sql_literal(name)}, CASE WHEN c[{i}] = '-' THEN NULL ELSE c[{i}] END"
                for i, name in enumerate(names, start=1)
            )
            source = (
                f"SELECT input_id, input_record, c, len(c) = {n} AS ok, "
                f"CASE WHEN len(c) = {n} THEN CAST(json_object({pairs}) AS VARCHAR) "
                f"ELSE line END AS raw FROM (SELECT input_id, input_record, line, "
                f"string_split(line, chr(9)) AS c FROM {table})"
            )
            bad = f"'wrong number of fields (expected {n} per #fields)'"
        else:
            # One parse per line: every field this log type uses, extracted as a list.
            names = ["ts", "uid"]
            for spec in columns.values():
                for name in spec if isinstance(spec, list) else [spec]:
                    if name not in names:
                        names.append(name)
            paths = ", ".join(sql_literal('$."' + name + '"') for name in names)
            source = (
                f"SELECT input_id, input_record, line AS raw, ok, "
                f"CASE WHEN ok THEN json_extract_string(line, [{paths}]) END AS c FROM "
                f"(SELECT input_id, input_record, line, json_valid(line) AS ok FROM {table})"
            )
            bad = "'malformed JSON'"
        index = {name: i for i, name in enumerate(names, start=1)}

        def get(name: str) -> str:
            return f"bt_null(c[{index[name]}])" if name in index else "NULL"

        def value(spec: str | list[str]) -> str:
            if isinstance(spec, list):
                return "coalesce(" + ", ".join(get(s) for s in spec) + ")"
            return get(spec)

        selected = []
        for column in _SCHEMA_COLUMNS:
            expr = value(columns[column]) if column in columns else "NULL"
            if column in _INT_COLUMNS:
                expr = f"CAST(bt_int({expr}) AS INTEGER)"
            elif column in _BIGINT_COLUMNS:
                expr = f"bt_int({expr})"
            elif column == "duration":
                expr = f"try_cast({expr} AS DOUBLE)"
            elif column in ("src_ip", "dst_ip"):
                expr = f"bt_ip({expr})"
            elif column in ("user", "src_host", "dst_host"):
                expr = f"lower({expr})"
            selected.append(f"CASE WHEN ok THEN {expr} END AS {column}")
        ts = f"coalesce(bt_epoch({get('ts')}), bt_ts({get('ts')}))"
        return f"""
WITH src AS ({source}), timed AS (SELECT *, CASE WHEN ok THEN {ts} END AS ts FROM src)
SELECT
    ts, 'zeek' AS source_format, {sql_literal(self.log_type)} AS channel, 'zeek' AS provider,
    CAST(NULL AS VARCHAR) AS host, CAST(NULL AS INTEGER) AS event_code,
    {sql_literal(action)} AS action, CAST(NULL AS VARCHAR) AS outcome,
    {", ".join(selected)},
    CAST(NULL AS VARCHAR) AS subject_user, CASE WHEN ok THEN {get("uid")} END AS logon_id,
    CAST(NULL AS INTEGER) AS logon_type,
    CAST(NULL AS VARCHAR) AS process, CAST(NULL AS VARCHAR) AS parent_process,
    CAST(NULL AS VARCHAR) AS command_line,
    CAST(NULL AS BIGINT) AS record_id, input_id, input_record, raw,
    CASE WHEN NOT ok THEN {bad} WHEN ts IS NULL THEN 'missing or unparseable ts' END
        AS reject_reason
FROM timed
"""
