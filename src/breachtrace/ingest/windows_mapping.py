"""Windows events of any origin -> the normalized schema, as one generated SQL SELECT.

The mapping lives in ``data/windows.yaml`` (which field fills which column, per event id and
channel; where each source dialect keeps its fields). This module only turns it into SQL, so
EVTX, NXLog, Winlogbeat and flat JSON share the same per-event logic.

Shape of the SQL, chosen by measurement: stacked projections that DuckDB streams (each
computes its values once per row; a column referenced by the next step is not re-evaluated
there, so nothing needs to be materialized, which cost a third of the time):

1. ``ex``: each record parsed once; every System value and every event field any rule reads
   land in ``s`` and ``f`` (one STRUCT for JSON lines, lists for EVTX).
2. ``cl``: event id, channel, time and the number of the matching rule.
3. ``ix``: per column, which of its distinct values the rule takes (a constant list indexed
   by the rule number).
4. the SELECT: per column, ``CASE i_column WHEN k THEN <cleaned field>``.

The original record is passed along by reference (never copied by these steps) and comes out
as ``raw``, as the runner stores it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from breachtrace.engines.duckdb import HELPERS, sql_literal
from breachtrace.yaml_files import load_yaml

# Cleaning per normalized column: a helper that starts with bt_null, or a template over {v}.
_HELPER_COLUMNS = {
    "user": "bt_user", "subject_user": "bt_user", "src_ip": "bt_ip", "dst_ip": "bt_ip",
    "src_host": "bt_host", "dst_host": "bt_host",
}  # fmt: skip
_COLUMN_SQL: dict[str, str] = {
    "domain": "lower({v})",
    "logon_id": "lower({v})",
    "src_port": "CAST(bt_int({v}) AS INTEGER)",
    "dst_port": "CAST(bt_int({v}) AS INTEGER)",
    "logon_type": "CAST(bt_int({v}) AS INTEGER)",
    "protocol": "lower({v})",
}
_COLUMN_TYPES = {"src_port": "INTEGER", "dst_port": "INTEGER", "logon_type": "INTEGER"}
MAPPED_COLUMNS = (
    "user", "domain", "subject_user", "logon_id", "src_ip", "src_host", "src_port", "dst_ip",
    "dst_host", "dst_port", "protocol", "logon_type", "auth_package", "process",
    "parent_process", "command_line", "file_path", "query",
)  # fmt: skip
_SYSTEM_KEYS = ("event_id", "channel", "provider", "computer", "time", "record_id")
# what ``normalize_sql``'s SELECT gives, in its order
OUTPUT_COLUMNS = (
    "row_no", "input_id", "input_record", "ts", "source_format", "channel", "provider", "host",
    "event_code", "action", "outcome", *MAPPED_COLUMNS, "record_id", "raw", "reject_reason",
)  # fmt: skip
_LITERAL = re.compile(r"'(?:[^']|'')*'")
_PATH_ESCAPE = re.compile(r'\\(["\\])')  # what DuckDB's JSON paths unescape in a quoted key


@dataclass(frozen=True)
class WindowsDialect:
    """Where one source format keeps a Windows event's System and event fields."""

    name: str
    system: dict[str, tuple[str, ...]]  # key -> JSON paths (first present wins)
    system_object: str | None  # System paths are relative to this object, if set
    field_prefixes: tuple[str, ...]  # event fields are <prefix>."Name" (flat dialects)
    event_data: str | None  # object dialects: EventData object path
    user_data: str | None  # object dialects: UserData object path (fields of its child)


def after_null(helper: str) -> str:
    """The template of a helper that starts with ``bt_null``, minus that step, for values that
    already went through it (a field read): ``bt_null``'s lambda is the costliest cleaning
    step, and nested helpers repeated it."""
    template = HELPERS[helper]
    if "bt_null({x})" not in template:
        raise ValueError(f"{helper} does not start with bt_null")
    return template.replace("bt_null({x})", "{x}")


def _plain(spec: Any) -> bool:
    """Whether a field spec reads fields as they are (so its value is already nulled)."""
    return isinstance(spec, str) or (isinstance(spec, list) and all(map(_plain, spec)))


def _paths(value: Any) -> tuple[str, ...]:
    return tuple(value) if isinstance(value, list) else (value,)


@cache
def load_mapping() -> dict[str, Any]:
    text = resources.files("breachtrace.data").joinpath("windows.yaml").read_text()
    mapping: dict[str, Any] = load_yaml(text)
    return mapping


@cache
def dialect(name: str) -> WindowsDialect:
    spec = load_mapping()["dialects"][name]
    return WindowsDialect(
        name=name,
        system={key: _paths(spec[key]) for key in _SYSTEM_KEYS},
        system_object=spec.get("system_object"),
        field_prefixes=_paths(spec.get("field_prefixes", [])) if "field_prefixes" in spec else (),
        event_data=spec.get("event_data"),
        user_data=spec.get("user_data"),
    )


def field_path(prefix: str, name: str) -> str:
    """JSON path of an event field under a prefix; the name is quoted (it may hold dots)."""
    quoted = '"' + name.replace('"', '\\"') + '"'
    return f"{prefix}.{quoted}" if prefix != "$" else f"$.{quoted}"


class _Slots:
    """Values read from each record by one multi-path extraction into a list ``var``."""

    def __init__(self, var: str) -> None:
        self.var = var
        self.paths: list[str] = []

    def ref(self, path: str, var: str | None = None) -> str:
        """SQL for the value at a JSON path (``var`` names the list if it was renamed)."""
        if path not in self.paths:
            self.paths.append(path)
        return f"{var or self.var}[{self.paths.index(path) + 1}]"

    def sql_list(self) -> str:
        return (
            "[" + ", ".join(sql_literal(p) for p in self.paths) + "]" if self.paths else "['$.x']"
        )


class _StructSlots:
    """Values read from each record by one ``json_transform`` into a STRUCT ``var``.

    The transform walks a record's keys once, where a list of paths looks each path up on its
    own (measured: a fifth less time for the whole normalization). Keys match exactly, as
    paths do; but STRUCT member names are case-insensitive, so a key that differs from a
    declared one only in case (param1, Param1) is read by its own ``json_extract_string``,
    evaluated only for the rows of the rules that use it.
    """

    def __init__(self, var: str, raw: str) -> None:
        self.var, self.raw = var, raw
        self.tree: dict[str, Any] = {}

    def ref(self, path: str, var: str | None = None) -> str:
        """SQL for the value at a JSON path (text, as ``json_extract_string`` gives it)."""
        keys = path_keys(path)
        if not declare_path(self.tree, keys):
            return f"json_extract_string({self.raw}, {sql_literal(path)})"
        return struct_field(var or self.var, keys)

    def spec(self) -> str:
        return sql_literal(json.dumps(self.tree))


def declare_path(tree: dict[str, Any], keys: list[str], kind: str = "VARCHAR") -> bool:
    """Declare a path's keys in a ``json_transform`` structure, its value of type ``kind``;
    False where the structure cannot hold it: a key that differs from a declared one only in
    case (STRUCT member names are case-insensitive), a path inside another's value, or one
    declared with another type."""
    level = tree
    for depth, key in enumerate(keys, start=1):
        leaf = depth == len(keys)
        declared = next((k for k in level if k.lower() == key.lower()), None)
        if declared is None:
            level[key] = kind if leaf else {}
        elif (
            declared != key or isinstance(level[key], dict) == leaf or (leaf and level[key] != kind)
        ):
            return False
        if not leaf:
            level = level[key]
    return True


def struct_field(var: str, keys: Sequence[str]) -> str:
    """SQL reading the value at these keys from the STRUCT ``var``."""
    return var + "".join(f"[{sql_literal(k)}]" for k in keys)


def path_keys(path: str) -> list[str]:
    """The object keys of a JSON path such as ``$.winlog."event_data".Name``: a quoted key's
    ``\\"`` and ``\\\\`` read as DuckDB reads them (a quote, a backslash)."""
    keys: list[str] = []
    rest = path.removeprefix("$")
    while rest:
        if not rest.startswith("."):
            raise ValueError(f"windows.yaml: unsupported JSON path {path!r}")
        rest = rest[1:]
        if rest.startswith('"'):
            end = 1
            while rest[end] != '"':
                end += 2 if rest[end] == "\\" else 1
            keys.append(_PATH_ESCAPE.sub(r"\1", rest[1:end]))
            rest = rest[end + 1 :]
        else:
            key = rest.split(".", 1)[0]
            if not key or "[" in key or key == "*":
                raise ValueError(f"windows.yaml: unsupported JSON path {path!r}")
            keys.append(key)
            rest = rest[len(key) :]
    return keys


class _Fields:
    """Event fields the rules read: each a slot per prefix, coalesced."""

    def __init__(self, d: WindowsDialect, slots: _Slots | _StructSlots) -> None:
        self.d, self.slots = d, slots

    def ref(self, name: str) -> str:
        prefixes = self.d.field_prefixes or ("$",)
        refs = [self.slots.ref(field_path(p, name), "f") for p in prefixes]
        inner = refs[0] if len(refs) == 1 else "coalesce(" + ", ".join(refs) + ")"
        return f"bt_null({inner})"


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
            # DOMAIN\\user -> DOMAIN, user@domain -> domain, plain user -> none (one reference)
            v = _value_sql(spec["account_domain"], fields)
            return (
                f"nullif(regexp_replace({v}, '^(?:([^\\\\]*)\\\\.*|[^@]*@(.*)|.*)$', '\\1\\2'), '')"
            )
    raise ValueError(f"windows.yaml: cannot read field spec {spec!r}")


def _extraction_ctes(
    d: WindowsDialect, table: str, raw: str, sys_slots: _Slots | _StructSlots, f_slots: _Slots
) -> str:
    """The steps that parse each record once into ``s`` (System values) and ``f`` (event
    fields); the record itself is passed along for the values read on their own."""
    if isinstance(sys_slots, _StructSlots):  # flat dialects: one STRUCT holds every value
        return f"""ex AS (
    SELECT row_no, input_id, input_record, {raw}, s IS NOT NULL AS ok, s, s AS f
    FROM (SELECT row_no, input_id, input_record, {raw},
                 try(json_transform({raw}, {sys_slots.spec()})) AS s FROM {table})
)"""
    # Object dialects (EVTX): one parse per record reads the System values, the EventData
    # fields and UserData's text; only UserData events (a minority) are parsed a second time.
    prefix = d.system_object.removesuffix("$") if d.system_object else ""
    system_paths = [prefix + p.removeprefix("$") for p in sys_slots.paths]
    data_paths = [(d.event_data or "$.none") + p.removeprefix("$") for p in f_slots.paths]
    every = [*system_paths, *data_paths, d.user_data or "$.none"]
    n_sys, n_all = len(system_paths), len(every)
    listed = "[" + ", ".join(sql_literal(p) for p in every) + "]"
    return f"""ob AS (
    SELECT row_no, input_id, input_record, {raw}, try(json_extract_string({raw}, {listed})) AS a
    FROM {table}
), ex AS (
    SELECT row_no, input_id, input_record, {raw}, a IS NOT NULL AS ok, a[1:{n_sys}] AS s,
           CASE WHEN a[{n_all}] IS NULL THEN a[{n_sys + 1}:{n_all - 1}]
                ELSE json_extract_string(CAST(json_extract(a[{n_all}], '$.*')[1] AS VARCHAR),
                                         {f_slots.sql_list()}) END AS f
    FROM ob
)"""


@cache
def normalize_sql(table: str, dialect_name: str, source_format: str, raw_column: str) -> str:
    """The SELECT that normalizes a table of raw Windows event JSON texts (see module doc)."""
    mapping = load_mapping()
    d = dialect(dialect_name)
    channels: dict[str, str] = mapping["channels"]
    rules: list[dict[str, Any]] = mapping["events"]
    # flat dialects: one STRUCT for System values and event fields; object dialects (EVTX,
    # whose UserData fields sit under an element of any name): lists
    flat = d.system_object is None
    sys_slots: _Slots | _StructSlots = _StructSlots("s", raw_column) if flat else _Slots("s")
    f_slots = _Slots("f")
    fields = _Fields(d, sys_slots if isinstance(sys_slots, _StructSlots) else f_slots)

    def first(key: str) -> str:
        refs = [sys_slots.ref(p) for p in d.system[key]]
        return refs[0] if len(refs) == 1 else "coalesce(" + ", ".join(refs) + ")"

    event_id = "coalesce(" + ", ".join(
        f"try_cast({sys_slots.ref(p)} AS INTEGER)" for p in d.system["event_id"]
    ) + ")"  # fmt: skip
    rule_whens: list[str] = []
    # per output column: the value for each rule number that sets it
    values: dict[str, dict[int, str]] = {c: {} for c in ("action", "outcome", *MAPPED_COLUMNS)}
    for number, rule in enumerate(rules, start=1):
        ids = ", ".join(str(int(i)) for i in rule["ids"])
        pattern = channels.get(rule["channel"], rule["channel"])
        rule_whens.append(
            f"WHEN event_code IN ({ids}) AND channel_lc LIKE {sql_literal(pattern)} THEN {number}"
        )
        values["action"][number] = sql_literal(rule["action"])
        if "outcome" in rule:
            values["outcome"][number] = sql_literal(rule["outcome"])
        elif "outcome_from" in rule:
            spec = rule["outcome_from"]
            ok = ", ".join(sql_literal(str(s).lower()) for s in spec["success"])
            values["outcome"][number] = (
                f"CASE WHEN lower({_value_sql(spec['field'], fields)}) "
                f"IN ({ok}) THEN 'success' ELSE 'failure' END"
            )
        for column, spec in (rule.get("fields") or {}).items():
            if column not in MAPPED_COLUMNS:
                raise ValueError(f"windows.yaml: unknown column {column!r} in rule {number}")
            value = _value_sql(spec, fields)
            helper = _HELPER_COLUMNS.get(column)
            if helper and _plain(spec):
                values[column][number] = after_null(helper).format(x=value)
            elif helper:
                values[column][number] = f"{helper}({value})"
            else:
                values[column][number] = _COLUMN_SQL.get(column, "{v}").format(v=value)

    choices = {c: _by_rule(c, v, len(rules)) for c, v in values.items()}
    indexes = "".join(f", {index}" for index, _ in choices.values() if index)
    mapped = ",\n    ".join(f"{choices[c][1]} AS {c}" for c in MAPPED_COLUMNS)
    # System values are referenced before the extraction list is written out
    system = {key: first(key) for key in _SYSTEM_KEYS if key != "event_id"}
    time_text = system["time"]
    extraction = _extraction_ctes(d, table, raw_column, sys_slots, f_slots)
    return f"""
WITH {extraction}, cl AS (
    SELECT row_no, input_id, input_record, {raw_column}, ok, f, event_code,
        {system["channel"]} AS channel,
        {system["provider"]} AS provider,
        bt_host({system["computer"]}) AS host,
        {time_text} AS time_text,
        bt_ts({time_text}) AS ts,
        bt_int({system["record_id"]}) AS record_id,
        CASE {" ".join(rule_whens)} END AS rule_no
    -- event id and channel are computed once here, not once per rule
    FROM (SELECT *, {event_id} AS event_code, lower({system["channel"]}) AS channel_lc FROM ex)
), ix AS (
    SELECT *{indexes} FROM cl
)
SELECT
    row_no, input_id, input_record, ts,
    {sql_literal(source_format)} AS source_format,
    channel, provider, host, event_code,
    coalesce({choices["action"][1]}, 'other') AS action,
    {choices["outcome"][1]} AS outcome,
    {mapped},
    record_id, {raw_column} AS raw,
    CASE WHEN NOT ok THEN 'malformed JSON'
         WHEN event_code IS NULL THEN 'no EventID in record'
         WHEN ts IS NULL THEN 'missing or unparseable timestamp: ' || coalesce(time_text, '(none)')
    END AS reject_reason
FROM ix
"""


def _by_rule(column: str, values: dict[int, str], rules: int) -> tuple[str | None, str]:
    """SQL giving ``column`` its value for the row's rule: an index column to add to the rows
    first (or None), and the value.

    Rules share few distinct values (many read TargetUserName), so the value is chosen among
    the distinct ones by an index looked up from the rule number in a constant list: fewer
    branches to test per row, and a much smaller plan than one branch per rule.
    """
    distinct = list(dict.fromkeys(values.values()))
    if not distinct:
        return None, f"CAST(NULL AS {_COLUMN_TYPES.get(column, 'VARCHAR')})"
    if all(_LITERAL.fullmatch(v) for v in distinct):  # constants: looked up directly
        listed = ", ".join(values.get(k, "NULL") for k in range(1, rules + 1))
        return None, f"[{listed}][rule_no]"
    index = ", ".join(
        str(distinct.index(values[k]) + 1) if k in values else "NULL" for k in range(1, rules + 1)
    )
    whens = " ".join(f"WHEN {i} THEN {v}" for i, v in enumerate(distinct, start=1))
    return f"[{index}][rule_no] AS i_{column}", f"CASE i_{column} {whens} END"
