"""Windows events of any origin -> the normalized schema, as one generated SQL SELECT.

The mapping lives in ``data/windows.yaml`` (which field fills which column, per event id and
channel; where each source dialect keeps its fields). This module only turns it into SQL, so
EVTX, NXLog, Winlogbeat and flat JSON share the same per-event logic.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml

from breachtrace.engines.duckdb import sql_literal

# Post-processing per normalized column (SQL with {v} for the mapped value).
_COLUMN_SQL: dict[str, str] = {
    "user": "bt_user({v})",
    "domain": "lower(bt_null({v}))",
    "subject_user": "bt_user({v})",
    "logon_id": "lower(bt_null({v}))",
    "src_ip": "bt_ip({v})",
    "dst_ip": "bt_ip({v})",
    "src_host": "bt_host({v})",
    "dst_host": "bt_host({v})",
    "src_port": "CAST(bt_int({v}) AS INTEGER)",
    "dst_port": "CAST(bt_int({v}) AS INTEGER)",
    "logon_type": "CAST(bt_int({v}) AS INTEGER)",
    "protocol": "lower(bt_null({v}))",
}
MAPPED_COLUMNS = (
    "user", "domain", "subject_user", "logon_id", "src_ip", "src_host", "src_port", "dst_ip",
    "dst_host", "dst_port", "protocol", "logon_type", "auth_package", "process",
    "parent_process", "command_line", "file_path", "query",
)  # fmt: skip


@dataclass(frozen=True)
class WindowsDialect:
    """Where one source format keeps a Windows event's System and EventData fields."""

    name: str
    event_id: tuple[str, ...]
    channel: tuple[str, ...]
    provider: tuple[str, ...]
    computer: tuple[str, ...]
    time: tuple[str, ...]
    record_id: tuple[str, ...]
    event_data: tuple[str, ...]


def _paths(value: Any) -> tuple[str, ...]:
    return tuple(value) if isinstance(value, list) else (value,)


@cache
def load_mapping() -> dict[str, Any]:
    text = resources.files("breachtrace.data").joinpath("windows.yaml").read_text()
    mapping: dict[str, Any] = yaml.safe_load(text)
    return mapping


@cache
def dialect(name: str) -> WindowsDialect:
    spec = load_mapping()["dialects"][name]
    event_id = _paths(spec["event_id"]) + _paths(spec.get("event_id_alt", []))
    return WindowsDialect(
        name=name,
        event_id=event_id,
        channel=_paths(spec["channel"]),
        provider=_paths(spec["provider"]),
        computer=_paths(spec["computer"]),
        time=_paths(spec["time"]),
        record_id=_paths(spec["record_id"]),
        event_data=_paths(spec["event_data"]),
    )


def _quote_field(name: str) -> str:
    return "$." + '"' + name.replace('"', '\\"') + '"'


class _Fields:
    """The fields one rule reads, extracted together in one JSON parse per record."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def ref(self, name: str) -> str:
        if name not in self.names:
            self.names.append(name)
        return f"bt_null(f[{self.names.index(name) + 1}])"

    def extraction(self) -> str:
        paths = ", ".join(sql_literal(_quote_field(n)) for n in self.names) or "'$.x'"
        return f"json_extract_string(ed, [{paths}])"


def _value_sql(spec: Any, fields: _Fields) -> str:
    if isinstance(spec, str):
        return fields.ref(spec)
    if isinstance(spec, list):
        return "coalesce(" + ", ".join(_value_sql(s, fields) for s in spec) + ")"
    if isinstance(spec, dict):
        if "const" in spec:
            return sql_literal(str(spec["const"]))
        if "join" in spec:
            parts = ", ".join(_value_sql(s, fields) for s in spec["join"])
            return f"nullif(concat_ws({sql_literal(spec.get('sep', ''))}, {parts}), '')"
        if "account" in spec:
            # split_part of a value without the separator returns it whole: DOMAIN\user,
            # user@domain and plain user all give the user part.
            v = _value_sql(spec["account"], fields)
            return f"split_part(split_part({v}, '@', 1), '\\', -1)"
        if "account_domain" in spec:
            v = _value_sql(spec["account_domain"], fields)
            return (
                f"nullif(CASE WHEN strpos({v}, '\\') > 0 THEN split_part({v}, '\\', 1) "
                f"ELSE split_part({v}, '@', 2) END, '')"
            )
    raise ValueError(f"windows.yaml: cannot read field spec {spec!r}")


def _first(paths: tuple[str, ...], slot: dict[str, int]) -> str:
    return "coalesce(" + ", ".join(f"sysf[{slot[p]}]" for p in paths) + ")"


def _rule_branch(number: int, rule: dict[str, Any]) -> str:
    """SELECT for the events one mapping rule covers: only the fields that rule names."""
    fields = rule.get("fields") or {}
    unknown = set(fields) - set(MAPPED_COLUMNS)
    if unknown:
        raise ValueError(f"windows.yaml: unknown columns {sorted(unknown)} in rule {number}")
    extracted = _Fields()
    columns = [f"{_value_sql(spec, extracted)} AS v_{column}" for column, spec in fields.items()]
    if "outcome" in rule:
        outcome = sql_literal(rule["outcome"])
    elif "outcome_from" in rule:
        spec = rule["outcome_from"]
        ok = ", ".join(sql_literal(str(s).lower()) for s in spec["success"])
        outcome = (
            f"CASE WHEN lower({_value_sql(spec['field'], extracted)}) IN ({ok}) "
            "THEN 'success' ELSE 'failure' END"
        )
    else:
        outcome = "NULL"
    columns += [f"{sql_literal(rule['action'])} AS v_action", f"{outcome} AS v_outcome"]
    return (
        f"SELECT * EXCLUDE (f), {', '.join(columns)} FROM "
        f"(SELECT *, {extracted.extraction()} AS f FROM base WHERE rule_no = {number})"
    )


def normalize_sql(table: str, dialect_name: str, source_format: str, raw_column: str) -> str:
    """The SELECT that normalizes a table of raw Windows event JSON texts.

    Shape: one materialized base (each record parsed once for its System fields and its
    event-data object), then one small SELECT per mapping rule reading only that rule's fields,
    glued with UNION ALL BY NAME, then cleaning over plain columns. (Giant CASE expressions,
    or macros over them, made DuckDB re-evaluate the JSON extraction many times per row.)
    """
    mapping = load_mapping()
    d = dialect(dialect_name)
    channels: dict[str, str] = mapping["channels"]
    rules: list[dict[str, Any]] = mapping["events"]

    sys_paths: list[str] = []
    for group in (d.event_id, d.channel, d.provider, d.computer, d.time, d.record_id):
        for p in group:
            if p not in sys_paths:
                sys_paths.append(p)
    slot = {p: i + 1 for i, p in enumerate(sys_paths)}
    event_id_sql = (
        "coalesce(" + ", ".join(f"try_cast(sysf[{slot[p]}] AS INTEGER)" for p in d.event_id) + ")"
    )
    rule_whens = []
    for number, rule in enumerate(rules, start=1):
        ids = ", ".join(str(int(i)) for i in rule["ids"])
        pattern = channels.get(rule["channel"], rule["channel"])
        rule_whens.append(
            f"WHEN event_code IN ({ids}) AND lower(channel) LIKE {sql_literal(pattern)} "
            f"THEN {number}"
        )
    branches = [_rule_branch(n, r) for n, r in enumerate(rules, start=1)]
    branches.append("SELECT *, 'other' AS v_action FROM base WHERE rule_no IS NULL")
    cleaned = [_COLUMN_SQL.get(c, "{v}").format(v=f"v_{c}") + f" AS {c}" for c in MAPPED_COLUMNS]
    sys_list = ", ".join(sql_literal(p) for p in sys_paths)
    return f"""
WITH extracted AS (
    SELECT input_id, input_record, {raw_column} AS raw, json_valid({raw_column}) AS ok,
           CASE WHEN json_valid({raw_column}) THEN json_extract_string({raw_column}, [{sys_list}])
           END AS sysf
    FROM {table}
), base AS MATERIALIZED (
    SELECT input_id, input_record, raw, ok,
        CASE WHEN ok THEN {_event_data_sql(d)} END AS ed,
        {event_id_sql} AS event_code,
        {_first(d.channel, slot)} AS channel,
        {_first(d.provider, slot)} AS provider,
        {_first(d.computer, slot)} AS computer,
        {_first(d.time, slot)} AS time_text,
        bt_ts({_first(d.time, slot)}) AS ts,
        bt_int({_first(d.record_id, slot)}) AS record_id,
        CASE {" ".join(rule_whens)} END AS rule_no
    FROM extracted
), mapped AS (
    {chr(10).join(b + " UNION ALL BY NAME" for b in branches[:-1])}
    {branches[-1]}
)
SELECT
    ts,
    {sql_literal(source_format)} AS source_format,
    channel,
    provider,
    bt_host(computer) AS host,
    event_code,
    v_action AS action,
    v_outcome AS outcome,
    {", ".join(cleaned)},
    record_id,
    input_id,
    input_record,
    raw,
    CASE WHEN NOT ok THEN 'malformed JSON'
         WHEN event_code IS NULL THEN 'no EventID in record'
         WHEN ts IS NULL THEN 'missing or unparseable timestamp: ' || coalesce(time_text, '(none)')
    END AS reject_reason
FROM mapped
"""


def _event_data_sql(d: WindowsDialect) -> str:
    """SQL yielding the event's flat field object (EventData, or UserData's child)."""
    parts = []
    for path in d.event_data:
        if path == "$":
            parts.append("raw")
        elif path.endswith(".*"):
            parts.append(f"CAST(json_extract(raw, {sql_literal(path)})[1] AS VARCHAR)")
        else:
            parts.append(
                f"CASE WHEN json_type(raw, {sql_literal(path)}) = 'OBJECT' "
                f"THEN CAST(json_extract(raw, {sql_literal(path)}) AS VARCHAR) END"
            )
    return "coalesce(" + ", ".join(parts) + ")"
