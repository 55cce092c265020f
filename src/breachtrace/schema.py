"""The normalized event schema: one definition that every reader writes and every stage reads.

Every event keeps its complete original record in ``raw`` (text: the JSON line, the EVTX record
rendered as JSON, the syslog line, the Zeek row as JSON), so nothing is ever lost and Sigma rules
can match any original field. The other columns are the normalized view of that record.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    sql_type: str
    doc: str


_TS = pa.timestamp("us")

COLUMNS: tuple[Column, ...] = (
    Column("ts", _TS, "TIMESTAMP", "event time, UTC (naive timestamps in the store are UTC)"),
    Column(
        "source_format", pa.string(), "VARCHAR", "reader that produced the event (evtx, nxlog, ...)"
    ),
    Column(
        "channel", pa.string(), "VARCHAR", "log channel or log type (Security, Sysmon, conn, auth)"
    ),
    Column(
        "provider",
        pa.string(),
        "VARCHAR",
        "event provider or program (sshd, Microsoft-Windows-...)",
    ),
    Column("host", pa.string(), "VARCHAR", "host that recorded the event, lower case, short name"),
    Column("event_code", pa.int32(), "INTEGER", "Windows EventID or other numeric event code"),
    Column("action", pa.string(), "VARCHAR", "action category, one of ACTIONS"),
    Column("outcome", pa.string(), "VARCHAR", "success or failure where known"),
    Column("user", pa.string(), "VARCHAR", "account acted as (target account for logons)"),
    Column("domain", pa.string(), "VARCHAR", "account domain"),
    Column(
        "subject_user", pa.string(), "VARCHAR", "account that performed the action, if different"
    ),
    Column("logon_id", pa.string(), "VARCHAR", "logon session id (ties later events to the logon)"),
    Column("src_ip", pa.string(), "VARCHAR", "source address"),
    Column("src_host", pa.string(), "VARCHAR", "source host or workstation name, lower case"),
    Column("src_port", pa.int32(), "INTEGER", "source port"),
    Column("dst_ip", pa.string(), "VARCHAR", "destination address"),
    Column("dst_host", pa.string(), "VARCHAR", "destination host, lower case"),
    Column("dst_port", pa.int32(), "INTEGER", "destination port"),
    Column("protocol", pa.string(), "VARCHAR", "network protocol or service (tcp, dns, ssh, smb)"),
    Column(
        "logon_type", pa.int32(), "INTEGER", "Windows logon type (2 interactive, 3 network, 10 rdp)"
    ),
    Column(
        "auth_package", pa.string(), "VARCHAR", "authentication package (NTLM, Kerberos, publickey)"
    ),
    Column("process", pa.string(), "VARCHAR", "process image path or name"),
    Column("parent_process", pa.string(), "VARCHAR", "parent process image path or name"),
    Column("command_line", pa.string(), "VARCHAR", "process command line"),
    Column(
        "file_path", pa.string(), "VARCHAR", "file or object path (file reads, shares, services)"
    ),
    Column("query", pa.string(), "VARCHAR", "DNS query name, URL or service name"),
    Column("bytes_in", pa.int64(), "BIGINT", "bytes received by the source"),
    Column("bytes_out", pa.int64(), "BIGINT", "bytes sent by the source"),
    Column("duration", pa.float64(), "DOUBLE", "duration in seconds"),
    Column("record_id", pa.int64(), "BIGINT", "EventRecordID or the source's own record number"),
    Column("event_uid", pa.string(), "VARCHAR", "stable reference: <input_id>:<input_record>"),
    Column("input_id", pa.string(), "VARCHAR", "the input file's id in the case manifest"),
    Column("input_record", pa.int64(), "BIGINT", "record index or line number in the input file"),
    Column("raw", pa.string(), "VARCHAR", "the complete original record"),
)

EVENT_SCHEMA = pa.schema([pa.field(c.name, c.type) for c in COLUMNS])
COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)

# Action categories: the vocabulary every reader maps into and every analytic filters on.
ACTIONS: dict[str, str] = {
    "logon": "successful authentication or session start",
    "logon_failed": "failed authentication",
    "logoff": "session end",
    "explicit_credentials": "logon with explicitly supplied credentials (4648, runas)",
    "privilege_assigned": "special privileges assigned to a new logon (4672)",
    "kerberos_tgt": "Kerberos ticket-granting ticket requested (4768)",
    "kerberos_service_ticket": "Kerberos service ticket requested (4769)",
    "credential_validation": "NTLM credential validation on a DC (4776)",
    "process_start": "process created",
    "file_access": "file or object read/written",
    "file_create": "file created",
    "share_access": "network share accessed",
    "network_connection": "network connection or flow",
    "dns_query": "DNS query",
    "http_request": "HTTP request",
    "tls_handshake": "TLS/SSL session",
    "file_transfer": "file seen moving over the network",
    "share_change": "file share created, changed or deleted",
    "service_install": "service installed",
    "service_state": "service started/stopped",
    "scheduled_task": "scheduled task created or changed",
    "account_change": "account created, changed, enabled or deleted",
    "privilege_escalation": "sudo, su or similar",
    "remote_access": "remote-access / VPN session",
    "log_cleared": "an event log was cleared",
    "logging_stopped": "the event logging service was shut down",
    "other": "recorded, not categorised",
}

OUTCOMES = ("success", "failure")


def empty_table() -> pa.Table:
    """A zero-row table in the event schema."""
    return EVENT_SCHEMA.empty_table()


# -- findings ------------------------------------------------------------------------------
SEVERITIES = ("informational", "low", "medium", "high", "critical")


@dataclass(frozen=True)
class Finding:
    """One detection, from a Sigma rule or a behavioural analytic: the common currency of the
    later stages (trace, scope, report).

    ``evidence`` holds event_uid references into the case's events; ``explanation`` is one
    sentence a responder can read; ``details`` carries analytic-specific values as JSON text.
    """

    finding_id: str
    source: str  # sigma | behaviour
    kind: str  # e.g. sigma, lateral_new_edge, beacon, log_cleared
    rule_id: str
    title: str
    severity: str  # one of SEVERITIES
    score: float  # 0..1, how strongly the evidence supports it
    techniques: tuple[str, ...]  # ATT&CK ids, e.g. ("T1021.002",)
    tags: tuple[str, ...]
    first_ts: object  # datetime (UTC, naive)
    last_ts: object
    hosts: tuple[str, ...]
    users: tuple[str, ...]
    addresses: tuple[str, ...]
    files: tuple[str, ...]
    evidence: tuple[str, ...]  # event_uid values
    explanation: str
    details: str = "{}"


FINDING_SCHEMA = pa.schema(
    [
        pa.field("finding_id", pa.string()),
        pa.field("source", pa.string()),
        pa.field("kind", pa.string()),
        pa.field("rule_id", pa.string()),
        pa.field("title", pa.string()),
        pa.field("severity", pa.string()),
        pa.field("score", pa.float64()),
        pa.field("techniques", pa.list_(pa.string())),
        pa.field("tags", pa.list_(pa.string())),
        pa.field("first_ts", _TS),
        pa.field("last_ts", _TS),
        pa.field("hosts", pa.list_(pa.string())),
        pa.field("users", pa.list_(pa.string())),
        pa.field("addresses", pa.list_(pa.string())),
        pa.field("files", pa.list_(pa.string())),
        pa.field("evidence", pa.list_(pa.string())),
        pa.field("explanation", pa.string()),
        pa.field("details", pa.string()),
    ]
)
