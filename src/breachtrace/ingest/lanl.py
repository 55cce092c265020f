"""LANL-style comma-separated authentication events and network flows.

auth:  time,src_user@domain,dst_user@domain,src_computer,dst_computer,auth_type,logon_type,
       orientation,success|failure
flows: time,duration,src_computer,src_port,dst_computer,dst_port,protocol,packets,bytes

LANL times are seconds from the start of the collection; they are placed after a configurable
epoch (BREACHTRACE_LANL_EPOCH, ISO-8601, default 1970-01-01T00:00:00Z).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import BinaryIO

import pyarrow as pa

from breachtrace.engines.duckdb import sql_literal
from breachtrace.ingest.base import Reader, RejectLog, line_batches
from breachtrace.ingest.sources import InputFile

_AUTH_LINE = re.compile(rb"^\d+,[^,]*@[^,]*,[^,]*@[^,]*,[^,]*,[^,]*,[^,]*,[^,]*,[^,]*,[^,]*$")
_FLOW_LINE = re.compile(rb"^\d+,\d+,[^,]+,[^,]+,[^,]+,[^,]+,\d+,\d+,\d+$")
_LOGON_TYPES = {
    "interactive": 2, "network": 3, "batch": 4, "service": 5, "unlock": 7,
    "networkcleartext": 8, "newcredentials": 9, "remoteinteractive": 10,
    "cachedinteractive": 11,
}  # fmt: skip
_ORIENTATION = {"logon": "logon", "logoff": "logoff", "tgt": "kerberos_tgt",
                "tgs": "kerberos_service_ticket"}  # fmt: skip


def lanl_epoch_sql() -> str:
    epoch = os.environ.get("BREACHTRACE_LANL_EPOCH", "1970-01-01T00:00:00Z")
    return f"bt_ts({sql_literal(epoch)})"


def _data_lines(head: bytes) -> list[bytes]:
    return [ln.rstrip(b"\r") for ln in head.split(b"\n")[:-1][:20] if ln.strip()]


def _split_sql(table: str, n: int) -> str:
    return (
        f"SELECT input_id, input_record, line, c, len(c) = {n} AS ok FROM "
        f"(SELECT input_id, input_record, line, string_split(line, ',') AS c FROM {table})"
    )


class LanlAuthReader(Reader):
    name = "lanl_auth"
    description = "LANL-style authentication CSV (time,src user@dom,dst user@dom,...)"

    def sniff(self, head: bytes, src: InputFile) -> bool:
        lines = _data_lines(head)
        return bool(lines) and all(_AUTH_LINE.match(ln) for ln in lines)

    def batches(self, stream: BinaryIO, src: InputFile, rejects: RejectLog) -> Iterator[pa.Table]:
        return line_batches(stream, rejects)

    def normalize_sql(self, table: str) -> str:
        logon_types = " ".join(f"WHEN {sql_literal(k)} THEN {v}" for k, v in _LOGON_TYPES.items())
        orientation = " ".join(
            f"WHEN {sql_literal(k)} THEN {sql_literal(v)}" for k, v in _ORIENTATION.items()
        )
        return f"""
WITH s AS ({_split_sql(table, 9)})
SELECT
    CASE WHEN ok THEN {lanl_epoch_sql()} + to_seconds(try_cast(c[1] AS BIGINT)) END AS ts,
    'lanl_auth' AS source_format, 'auth' AS channel, 'lanl' AS provider,
    CASE WHEN ok THEN bt_host(c[5]) END AS host,
    CAST(NULL AS INTEGER) AS event_code,
    CASE WHEN ok THEN coalesce(CASE lower(c[8]) {orientation} END, 'other') END AS action,
    CASE WHEN ok THEN CASE lower(c[9]) WHEN 'success' THEN 'success'
         WHEN 'fail' THEN 'failure' WHEN 'failure' THEN 'failure' END END AS outcome,
    CASE WHEN ok THEN bt_user(split_part(c[3], '@', 1)) END AS user,
    CASE WHEN ok THEN lower(bt_null(split_part(c[3], '@', 2))) END AS domain,
    CASE WHEN ok THEN bt_user(split_part(c[2], '@', 1)) END AS subject_user,
    CASE WHEN ok THEN bt_host(nullif(c[4], '?')) END AS src_host,
    CASE WHEN ok THEN bt_host(nullif(c[5], '?')) END AS dst_host,
    CASE WHEN ok THEN CASE lower(c[7]) {logon_types} END END AS logon_type,
    CASE WHEN ok THEN bt_null(nullif(c[6], '?')) END AS auth_package,
    input_id, input_record, line AS raw,
    CASE WHEN NOT ok THEN 'expected 9 comma-separated fields'
         WHEN try_cast(c[1] AS BIGINT) IS NULL THEN 'time is not a whole number of seconds'
    END AS reject_reason
FROM s
"""


class LanlFlowsReader(Reader):
    name = "lanl_flows"
    description = "LANL-style network flows CSV (time,duration,src,sport,dst,dport,proto,...)"

    def sniff(self, head: bytes, src: InputFile) -> bool:
        lines = _data_lines(head)
        return bool(lines) and all(_FLOW_LINE.match(ln) for ln in lines)

    def batches(self, stream: BinaryIO, src: InputFile, rejects: RejectLog) -> Iterator[pa.Table]:
        return line_batches(stream, rejects)

    def normalize_sql(self, table: str) -> str:
        return f"""
WITH s AS ({_split_sql(table, 9)})
SELECT
    CASE WHEN ok THEN {lanl_epoch_sql()} + to_seconds(try_cast(c[1] AS BIGINT)) END AS ts,
    'lanl_flows' AS source_format, 'flows' AS channel, 'lanl' AS provider,
    CAST(NULL AS VARCHAR) AS host, 'network_connection' AS action,
    CASE WHEN ok THEN try_cast(c[2] AS DOUBLE) END AS duration,
    CASE WHEN ok THEN bt_host(c[3]) END AS src_host,
    CASE WHEN ok THEN CAST(bt_int(c[4]) AS INTEGER) END AS src_port,
    CASE WHEN ok THEN bt_host(c[5]) END AS dst_host,
    CASE WHEN ok THEN CAST(bt_int(c[6]) AS INTEGER) END AS dst_port,
    CASE WHEN ok THEN CASE c[7] WHEN '6' THEN 'tcp' WHEN '17' THEN 'udp' WHEN '1' THEN 'icmp'
         ELSE c[7] END END AS protocol,
    CASE WHEN ok THEN bt_int(c[9]) END AS bytes_out,
    input_id, input_record, line AS raw,
    CASE WHEN NOT ok THEN 'expected 9 comma-separated fields'
         WHEN try_cast(c[1] AS BIGINT) IS NULL THEN 'time is not a whole number of seconds'
    END AS reject_reason
FROM s
"""
