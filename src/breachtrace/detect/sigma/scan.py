"""The SQL of a logsource group's scan: extract its fields once, skip the rules that cannot
match, then match the others in batches.

A group is every rule sharing a resolved logsource. Its scan is three steps:

1. *extract*: one ``CREATE TABLE`` over the hunt's events holding the value of every field any
   of the group's rules reads (``"v:F"``) and, where needed, its lower-cased copy (``"l:F"``),
   once per *distinct* combination of those values, with the list of events (``eids``) that
   have it and the first of them naming the row (``first_eid``): events repeat (the same
   process opening the same handle thousands of times), and a rule need only be evaluated once
   per combination. Each (event source, source format) pair is one branch; each branch parses a
   record once (a multi-path ``json_extract_string(raw, [paths])`` or one ``json_transform``) in
   a MATERIALIZED CTE, so no field is extracted twice; the branches are unioned by position. A
   group with keyword rules searches whole records, which are unique and large: with one rule it
   is a view over the records, with more a table of its other fields and a view joining the
   records to it.
2. *prefilter*: which of the rules' anchor texts (see ``backend.rule_anchors``) occur in the
   group's lower-cased values. A rule whose anchor clauses cannot all hold in one same row
   (event) is never planned, and one whose clauses hold together in at most ``ROW_FILTER_MAX``
   rows is evaluated on those rows only. Groups too large for that row check, and views of a
   single keyword rule, are checked value by value (a rule whose anchors occur nowhere is
   skipped); a view joining the records is checked row by row on the table of its other
   fields.
3. *match*: ``INSERT INTO hunt_matches`` one ``UNION ALL`` of per-rule ``SELECT ... WHERE <rule>``
   over that table, for a batch of rules at a time (one statement per rule would pay DuckDB's
   planning once per rule; one statement for a thousand rules is slow to plan too); then, for
   the rules that matched, their events and fields into ``hunt_hits`` (``fields_sql``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import ahocorasick

from breachtrace.detect.sigma.columns import KEYWORD_FIELD, column_name, field_column, quoted
from breachtrace.detect.sigma.logsources import EventSource, FieldAccess, LogsourceMap
from breachtrace.detect.sigma.records import CompiledRule
from breachtrace.engines.duckdb import sql_literal
from breachtrace.ingest.windows_mapping import declare_path, path_keys, struct_field

RULES_PER_QUERY = 48
# How an EVTX value with attributes (e.g. an unnamed Data item) is stored in a record's JSON:
# {"#text": ...} (see ``_as_text``; ``wrapped_test`` finds the records that may hold one).
WRAPPED_TEXT = '"#text"'


@dataclass
class RuleGroup:
    """Rules sharing a logsource, the event classes they see, and the fields they read."""

    number: int
    key: str
    sources: tuple[EventSource, ...]
    rules: list[tuple[int, CompiledRule]] = field(default_factory=list)  # (rule_no, rule)
    extra_fields: dict[int, tuple[str, ...]] = field(default_factory=dict)  # for correlations
    classes: dict[int, list[int]] = field(default_factory=dict)  # source index -> class ids
    events: int = 0

    @property
    def table(self) -> str:
        return f"hunt_g{self.number}"

    @property
    def searches_records(self) -> bool:
        """Whether some rule of the group searches whole records (keywords)."""
        return any(KEYWORD_FIELD in rule.fields for _, rule in self.rules)

    @property
    def joins_records(self) -> bool:
        """Whether the group's view joins the records to a table of its other fields: a group
        that searches records with several rules (each rule reads the view; re-parsing every
        record's JSON per rule was most of such a group's time)."""
        return self.searches_records and len(self.rules) > 1

    @property
    def values_table(self) -> str:
        """Where the group's extracted field values are read from (prefilter, decisions)."""
        return f"{self.table}_values" if self.joins_records else self.table

    @property
    def row_keyed(self) -> bool:
        """Whether ``values_table`` names each row by ``first_eid`` (a group's table, and the
        table of a group whose view joins the records): the prefilter can check it row by row."""
        return not self.searches_records or self.joins_records

    def rule_fields(self, rule_no: int, rule: CompiledRule) -> tuple[str, ...]:
        return tuple(dict.fromkeys(rule.fields + self.extra_fields.get(rule_no, ())))

    def fields(self) -> tuple[list[str], set[str]]:
        """Every field read by the group's rules (in first-use order) and those read lowered."""
        names: dict[str, None] = {}
        lower: set[str] = set()
        for rule_no, rule in self.rules:
            names.update(dict.fromkeys(self.rule_fields(rule_no, rule)))
            lower.update(rule.lower_fields)
        return list(names), lower


def extract_sql(
    group: RuleGroup,
    formats_of: dict[int, str],
    mapping: LogsourceMap,
    wrapped: set[int] | None = None,
    holders: set[int] | None = None,
    *,
    structs: bool = False,
) -> str:
    """CREATE TABLE (or VIEW) of the group's events with one column per field (see the module
    doc); for a group that ``joins_records``, a table of its other fields and a view adding the
    records. ``wrapped``: the classes with some record holding a ``{"#text": ...}`` value
    (None: any may); a branch without them skips unwrapping its values. ``holders``: the
    classes with some record holding an object whose child's fields are read (EVTX UserData,
    ``holds_objects_test``; None: any may); the others are a branch of their own, which reads
    no such object (its fallback for every field was a third of the Security group's
    extraction on evtx-mitre, for the few events that have one). ``structs``: records may be
    parsed into DuckDB structs (see ``_Slots``)."""
    names, lower = group.fields()
    if group.joins_records:
        names = [n for n in names if n != KEYWORD_FIELD]
    branches: list[str] = []
    ctes: list[str] = []
    for index, source in enumerate(group.sources):
        by_format: dict[tuple[str, bool], list[int]] = {}
        for cls in group.classes.get(index, []):
            holds = holders is None or cls in holders
            by_format.setdefault((formats_of[cls], holds), []).append(cls)
        for (fmt, objects), classes in sorted(by_format.items()):
            n = len(ctes) // 2
            unwrap = wrapped is None or not wrapped.isdisjoint(classes)
            base, values = _branch(n, source, fmt, classes, names, mapping, unwrap, objects,
                                   structs)  # fmt: skip
            ctes += [base, values]
            branches.append(f"SELECT * FROM v{n}")
    lowered = [
        f"lower({field_column(f)}) AS {field_column(f, lower=True)}" for f in names if f in lower
    ]
    # Every branch selects eid and the same names in the same order (``_branch``): a positional
    # union, as matching columns by name cost 5-15% of the extraction's CPU (its planning).
    union = " UNION ALL ".join(branches)
    select = ", ".join(["*", *lowered])
    if group.joins_records:
        # Records are all distinct and the widest thing there is: not copied, joined by row id
        # (eid) to the one extraction of the other fields.
        records = [f"e.raw AS {field_column(KEYWORD_FIELD)}"]
        if KEYWORD_FIELD in lower:
            records.append(f"lower(e.raw) AS {field_column(KEYWORD_FIELD, lower=True)}")
        return (
            f"CREATE OR REPLACE TABLE {group.values_table} AS WITH {', '.join(ctes)} "
            f"SELECT {select} FROM (SELECT *, [eid] AS eids, eid AS first_eid FROM ({union}));\n"
            f"CREATE OR REPLACE VIEW {group.table} AS SELECT x.*, {', '.join(records)} "
            f"FROM {group.values_table} x JOIN hunt_events e ON e.rowid = x.eid"
        )
    if group.searches_records:
        # One rule reads the records once: a view, neither grouped nor copied.
        distinct, kind = f"SELECT * EXCLUDE (eid), [eid] AS eids FROM ({union})", "VIEW"
    else:
        # first_eid names a row for the prefilter (rows hold disjoint events)
        distinct = (
            f"SELECT * EXCLUDE (eid), list(eid) AS eids, min(eid) AS first_eid "
            f"FROM ({union}) GROUP BY ALL"
        )
        kind = "TABLE"
    return (
        f"CREATE OR REPLACE {kind} {group.table} AS WITH {', '.join(ctes)} "
        f"SELECT {select} FROM ({distinct})"
    )


def _branch(
    n: int,
    source: EventSource,
    fmt: str,
    classes: list[int],
    names: list[str],
    mapping: LogsourceMap,
    unwrap: bool = True,
    objects: bool = True,
    structs: bool = False,
) -> tuple[str, str]:
    """The two CTEs of one (event source, format) branch: parse once, then name the values
    (``unwrap``: some record may hold a ``{"#text": ...}`` value; ``objects``: some record may
    hold an object whose child's fields are read, see ``_value_sql``; ``structs``: parse into
    a struct, see ``_Slots``)."""
    accesses = {
        name: mapping.access(fmt, source.source_field(name))
        for name in names
        if name != KEYWORD_FIELD
    }
    slots = _Slots.of(accesses.values(), objects, structs and not unwrap)
    values = []
    for name in names:
        expr = "raw" if name == KEYWORD_FIELD else _value_sql(accesses[name], slots, objects)
        values.append(f"{expr} AS {field_column(name)}")
    where = [f"cls IN ({', '.join(str(c) for c in classes)})"]
    for name, allowed in source.where:
        access = mapping.access(fmt, source.source_field(name))
        if access.paths:
            options = ", ".join(sql_literal(v) for v in allowed)
            where.append(
                f"lower(json_extract_string(raw, {sql_literal(access.paths[0])})) IN ({options})"
            )
    columns = ["eid", "event_code", "channel", "provider"]  # header values fields may read
    if slots.paths:
        columns.append(f"{slots.parsed('raw')} AS f")
    if KEYWORD_FIELD in names:
        columns.append("raw")
    base = (
        f"b{n} AS MATERIALIZED (SELECT {', '.join(columns)} FROM (SELECT rowid AS eid, * "
        f"FROM hunt_events WHERE {' AND '.join(where)}))"
    )
    # Read once (by the union), so not materialized: storing it cost about a tenth of the
    # extraction's CPU (evtx-mitre, OTRF), for the same rows.
    value_cte = (
        f"v{n} AS (SELECT eid, {', '.join(values) or 'NULL AS none'} "
        f"FROM {slots.unwrapped(f'b{n}', unwrap)})"
    )
    return base, value_cte


# A branch reading this many paths or more parses records into a struct (``_Slots``): on
# evtx-mitre's Security records a list was faster up to about 24 paths, a struct from 32.
STRUCT_MIN_PATHS = 32


class _Slots:
    """Where a branch's JSON paths land in its one parse of each record, ``f``: first the direct
    paths, whose values are read as text from ``t``, then the objects whose child element holds
    fields (EVTX UserData). Each object's fields are read in one more multi-path extraction
    ``uN``, from its child, on the rows that have the object: one expression per object instead
    of one per field (those cost a third of the Security group's extraction on evtx-mitre).

    ``f`` is one multi-path ``json_extract_string`` (a list), with ``t`` its items unwrapped by
    ``_as_text``; or, with a ``spec``, one ``json_transform`` into a struct mirroring the paths,
    each text read from its field: a struct is filled in one walk of each object's keys, where
    each path of a list looks its key up again (the Security group's 78 paths: its extraction
    a third faster on evtx-mitre), though building the struct costs more than a few lookups
    (``STRUCT_MIN_PATHS``). Structs are DuckDB's own: not for Spark, nor for values to unwrap
    (one lambda over a list unwraps them all)."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.objects: dict[str, list[str]] = {}  # object path -> paths inside its child
        self.spec: dict[str, Any] | None = None  # json_transform's structure, if parsed so
        self.prefix: list[str] = []  # keys every path starts with: ``f`` is the struct there

    @classmethod
    def of(cls, accesses: Iterable[FieldAccess], objects: bool, structs: bool) -> _Slots:
        """The slots of every path the accesses read (their objects' too, with ``objects``),
        in the order ``_value_sql`` reads them; parsed into a struct with ``structs`` where
        the paths allow it (``_struct_spec``)."""
        slots = cls()
        for access in accesses:
            if access.column:
                continue
            for path in access.paths:
                slots.text(path)
            for obj, inner in access.object_paths if objects else ():
                slots.object(obj, inner)
        if structs and len(slots.texts) >= STRUCT_MIN_PATHS:
            slots.spec = _struct_spec(slots.texts, list(slots.objects))
            # f is the struct of the keys all paths share (Event, EventData): each field then
            # costs one struct_extract to plan instead of one per key
            level = slots.spec
            while level is not None and len(level) == 1:
                key, inner = next(iter(level.items()))
                if not isinstance(inner, dict):  # a path's value: f stays above it
                    break
                slots.prefix.append(key)
                level = inner
        return slots

    @property
    def paths(self) -> list[str]:
        return self.texts + list(self.objects)

    def parsed(self, record: str) -> str:
        """The SQL of ``f``: every path read from ``record`` (JSON text) in one parse."""
        if self.spec is not None:
            prefix = "".join(f"[{sql_literal(k)}]" for k in self.prefix)
            return f"json_transform({record}, {sql_literal(json.dumps(self.spec))}){prefix}"
        return f"json_extract_string({record}, [{', '.join(sql_literal(p) for p in self.paths)}])"

    def text(self, path: str) -> str:
        if path not in self.texts:
            self.texts.append(path)
        if self.spec is not None:
            return _struct_field("f", path, len(self.prefix))
        return f"t[{self.texts.index(path) + 1}]"

    def object(self, path: str, inner: str) -> str:
        inners = self.objects.setdefault(path, [])
        if inner not in inners:
            inners.append(inner)
        return f"u{list(self.objects).index(path) + 1}[{inners.index(inner) + 1}]"

    def unwrapped(self, base: str, unwrap: bool = True) -> str:
        """``base`` with ``t`` and each ``uN``. ``t`` is one lambda over the list instead of
        one CASE per field, and no slice of ``f`` (copying the lists cost as much as the
        unwrapping saved); without ``unwrap`` (no record holds a wrapped value) it is ``f``:
        the lambda was a third of the Security group's extraction on evtx-mitre. An object's
        child is the first of its members: EVTX UserData holds one element. A value that is not
        JSON (UserData as plain text, in a crafted record) is passed over: ``json_extract``
        would fail the whole statement on it."""
        columns = []
        if self.texts and self.spec is None:
            unwrapped = f"list_transform(f, lambda v: {_as_text('v')})" if unwrap else "f"
            columns.append(f"{unwrapped} AS t")
        for m, (path, inners) in enumerate(self.objects.items(), 1):
            obj = (
                _struct_field("f", path, len(self.prefix)) if self.spec is not None
                else f"f[{len(self.texts) + m}]"
            )  # fmt: skip
            paths = ", ".join(sql_literal(p) for p in inners)
            columns.append(
                f"CASE WHEN json_valid({obj}) THEN "
                f"json_extract_string(json_extract({obj}, '$.*')[1], [{paths}]) END AS u{m}"
            )
        return f"(SELECT *, {', '.join(columns)} FROM {base})" if columns else base


def _struct_spec(texts: list[str], objects: list[str]) -> dict[str, Any] | None:
    """``json_transform``'s structure for these paths: nested objects of their keys, a text
    ``VARCHAR`` (what ``json_extract_string`` gives: a string's value, any other value's JSON,
    but for a fraction below 1e-4 or from 1e16, which reads as DuckDB casts a double: 0.00001
    becomes 1e-05, 1e21 1e+21) and an object ``JSON``. None where one struct cannot hold them
    all (``declare_path``)."""
    spec: dict[str, Any] = {}
    for path, kind in [*((p, "VARCHAR") for p in texts), *((p, "JSON") for p in objects)]:
        try:
            keys = path_keys(path)
        except ValueError:
            return None
        if not keys or not declare_path(spec, keys, kind):
            return None
    return spec


def _struct_field(struct: str, path: str, skip: int = 0) -> str:
    """The SQL reading a path's value from the struct ``json_transform`` made of a record
    (``skip``: the struct is that of the path's first keys)."""
    return struct_field(struct, path_keys(path)[skip:])


def _value_sql(access: FieldAccess, slots: _Slots, objects: bool = True) -> str:
    """A field's text: the first of its paths present, else (``objects``) its place in the
    child of an object (UserData): ``uN`` is NULL on the rows without the object, and coalesce
    stops at the first value found."""
    if access.column:
        return f"CAST({access.column} AS VARCHAR)"
    parts = [slots.text(p) for p in access.paths]
    if objects:
        parts += [slots.object(obj, inner) for obj, inner in access.object_paths]
    if not parts:
        return "CAST(NULL AS VARCHAR)"
    return parts[0] if len(parts) == 1 else f"coalesce({', '.join(parts)})"


def wrapped_test(record: str) -> str:
    """SQL true for a record (JSON text) that may hold a wrapped value: it has the text #text
    anywhere (looser than the quoted key; a key spelled with a JSON escape, which no EVTX
    reader writes, would escape it)."""
    return f"contains({record}, '#text')"


def holds_objects_test(record: str, fmt: str, keys: Mapping[str, Sequence[str]]) -> str:
    """SQL true for a record (JSON text) of format ``fmt`` (a column) that may hold one of the
    objects of ``keys`` (per format, ``LogsourceMap.object_keys``): it has a key's quoted name
    anywhere (looser than the path; a key spelled with a JSON escape, which no EVTX reader
    writes, would escape it). Records of other formats are not searched."""
    cases = [
        f"WHEN {sql_literal(f)} THEN "
        + " OR ".join(f"contains({record}, {sql_literal(json.dumps(k, ensure_ascii=False))})"
                      for k in names)
        for f, names in sorted(keys.items())
        if names
    ]  # fmt: skip
    return f"CASE {fmt} {' '.join(cases)} ELSE false END" if cases else "false"


def _as_text(v: str) -> str:
    """An EVTX value rendered as {"#text": ...} (e.g. unnamed Data items) as plain text."""
    return (
        f"CASE WHEN starts_with({v}, {sql_literal('{' + WRAPPED_TEXT)}) THEN coalesce("
        f"array_to_string(json_extract_string({v}, '$.\"#text\"[*]'), chr(10)), "
        f"json_extract_string({v}, '$.\"#text\"')) ELSE {v} END"
    )


def anchor_texts(group: RuleGroup) -> list[tuple[str, str]]:
    """Every distinct (field, text) anchor of the group's rules, keywords aside (searching
    whole records for them costs about what the rules do)."""
    texts: dict[tuple[str, str], None] = {}
    for _no, rule in group.rules:
        for clause in rule.anchors or ():
            for anchor in clause:
                if anchor[0] != KEYWORD_FIELD:
                    texts[anchor] = None
    return list(texts)


def anchored_fields(texts: list[tuple[str, str]]) -> list[str]:
    return sorted({f for f, _ in texts})


def prefilter_columns(group: RuleGroup, fields: list[str]) -> dict[str, str | None]:
    """Per field, the extraction's lower-cased column the prefilter reads its values from
    (``column_name``), or None where the extraction made none and the values are lowered on
    the way. The rules decided in Python reuse the values read from those columns."""
    lowered = group.fields()[1]
    return {f: column_name(f, lower=True) if f in lowered else None for f in fields}


def _lowered_values(group: RuleGroup, fields: list[str]) -> tuple[str, str]:
    """The fields' names and lower-cased values, side by side, to unnest."""
    names = ", ".join(sql_literal(f) for f in fields)
    columns = ", ".join(
        field_column(f, lower=True) if column else f"lower(CAST({field_column(f)} AS VARCHAR))"
        for f, column in prefilter_columns(group, fields).items()
    )
    return f"unnest([{names}]) AS field", f"unnest([{columns}]) AS value"


def rows_sql(groups: list[tuple[RuleGroup, list[str]]]) -> str:
    """SELECT (group number, field, lower-cased value, rows having it) of the given groups'
    anchored fields, over their non-null values (``first_eid`` names a row): Python then
    searches each distinct value once."""
    parts = []
    for group, fields in groups:
        field, value = _lowered_values(group, fields)
        parts.append(
            f"SELECT {group.number} AS grp, first_eid AS row, {field}, {value} "
            f"FROM {group.values_table}"
        )
    return (
        f"SELECT grp, field, value, list(row) AS rows FROM ({' UNION ALL '.join(parts)}) "
        "WHERE value IS NOT NULL GROUP BY ALL"
    )


def row_values_sql(jobs: list[tuple[RuleGroup, list[str], list[int]]]) -> str:
    """SELECT (group number, row, column, value) of the given columns (names as in
    ``logic.py``) on the given rows (``first_eid``) of each group's table: what the rules
    decided in Python read."""
    parts = []
    for group, names, rows in jobs:
        labels = ", ".join(sql_literal(n) for n in names)
        columns = ", ".join(quoted(n) for n in names)
        parts.append(
            f"SELECT {group.number} AS grp, first_eid AS row, unnest([{labels}]) AS col, "
            f"unnest([{columns}]) AS value FROM {group.values_table} "
            f"WHERE first_eid IN ({', '.join(map(str, rows))})"
        )
    return " UNION ALL ".join(parts)


def sizes_sql(groups: list[RuleGroup]) -> str:
    """SELECT (group number, rows) of the given groups' tables."""
    return " UNION ALL ".join(
        f"SELECT {g.number} AS grp, count(*) AS n FROM {g.values_table}" for g in groups
    )


def values_sql(groups: list[tuple[RuleGroup, list[str]]]) -> str:
    """SELECT the distinct lower-cased (group number, field, value) of the fields that carry
    anchor texts: the aggregate the prefilter searches. One pass per group reads all of its
    anchored fields (a group that searches records is a view: each pass re-parses them)."""
    parts = []
    for group, fields in groups:
        field, value = _lowered_values(group, fields)
        parts.append(f"SELECT {group.number} AS grp, {field}, {value} FROM {group.values_table}")
    return (
        f"SELECT DISTINCT grp, field, value FROM ({' UNION ALL '.join(parts)}) "
        "WHERE value IS NOT NULL"
    )


def _automata(texts: list[tuple[str, str]]) -> dict[str, ahocorasick.Automaton]:
    """One Aho-Corasick automaton per field over its texts, each text's value the index of its
    (field, text) anchor (``texts`` are distinct: one index per text of a field)."""
    automata: dict[str, ahocorasick.Automaton] = {}
    for n, (name, text) in enumerate(texts):
        automaton = automata.get(name)
        if automaton is None:
            automaton = automata[name] = ahocorasick.Automaton()
        automaton.add_word(text, n)
    for automaton in automata.values():
        automaton.make_automaton()
    return automata


@dataclass
class Anchors:
    """A group's distinct (field, text) anchors (``anchor_texts``) and one Aho-Corasick
    automaton per field over them: built once, while the engine is busy elsewhere."""

    texts: list[tuple[str, str]]
    automata: dict[str, ahocorasick.Automaton]

    @classmethod
    def of(cls, group: RuleGroup) -> Anchors:
        texts = anchor_texts(group)
        return cls(texts, _automata(texts))


def present_texts(
    texts: list[tuple[str, str]],
    values: dict[str, list[str]],
    automata: dict[str, ahocorasick.Automaton] | None = None,
) -> set[int]:
    """Indices of the (field, text) anchors occurring in some value of their field
    (``automata``: those of ``texts``, if already built).

    One Aho-Corasick automaton per field scans each distinct value once for all of its texts;
    a join of texts by values with ``contains`` costs texts x values.
    """
    found: set[int] = set()
    for name, automaton in (automata if automata is not None else _automata(texts)).items():
        wanted = len(automaton)
        seen: set[int] = set()
        for value in values.get(name, ()):
            seen.update(n for _end, n in automaton.iter(value))
            if len(seen) == wanted:
                break
        found |= seen
    return found


def unconditional(rule: CompiledRule) -> bool:
    """Whether the prefilter keeps the rule on every row whatever the values: it has no
    anchors, or a keyword text (not checked) in each clause. ``candidates`` and
    ``row_candidates`` keep such a rule and never limit it."""
    return rule.anchors is None or all(
        any(a[0] == KEYWORD_FIELD for a in clause) for clause in rule.anchors
    )


def candidates(
    group: RuleGroup, texts: list[tuple[str, str]], present: set[int]
) -> list[tuple[int, CompiledRule]]:
    """The group's rules that can match: each anchor clause has a text present (see backend;
    keyword texts count as present, they are not checked)."""
    found = {texts[n] for n in present}
    return [
        (no, r) for no, r in group.rules
        if r.anchors is None
        or all(any(a in found or a[0] == KEYWORD_FIELD for a in clause) for clause in r.anchors)
    ]  # fmt: skip


# A rule whose anchors co-occur in at most this many rows is matched on those rows only (an IN
# list costs planning; evaluating a rule on a row costs about a microsecond).
ROW_FILTER_MAX = 32


@dataclass
class RowCandidates:
    """The rules of a group that can match some row, and the rows some of them are limited to."""

    rules: list[tuple[int, CompiledRule]]
    rows: dict[int, tuple[int, ...]]  # rule_no -> the only rows (first_eid) it can match


def row_candidates(
    group: RuleGroup,
    texts: list[tuple[str, str]],
    values: list[tuple[str, str, list[int]]],
    automata: dict[str, ahocorasick.Automaton] | None = None,
) -> RowCandidates:
    """The group's rules whose anchor clauses all hold in one same row (a rule matches an event
    only where each clause has a text in that event's values), from its (field, lower-cased
    value, rows having it). Sharper than ``candidates``: texts in different events do not
    count. ``automata``: those of ``texts``, if already built."""
    automata = automata if automata is not None else _automata(texts)
    rows_with: dict[int, set[int]] = {}  # anchor index -> rows where it occurs
    for name, value, rows in values:
        automaton = automata.get(name)
        if automaton is None:
            continue
        for n in {n for _end, n in automaton.iter(value)}:
            rows_with.setdefault(n, set()).update(rows)
    rows_of = {texts[n]: rows for n, rows in rows_with.items()}  # present anchors only
    kept: list[tuple[int, CompiledRule]] = []
    limited: dict[int, tuple[int, ...]] = {}
    for no, rule in group.rules:
        possible: set[int] | None = None  # None: every row
        for clause in rule.anchors or ():
            if any(a[0] == KEYWORD_FIELD for a in clause):
                continue  # keywords are not checked: the clause may hold anywhere
            present = [rows_of[a] for a in clause if a in rows_of]
            if not present:
                possible = set()
                break
            holding = present[0].union(*present[1:]) if len(present) > 1 else present[0]
            possible = holding if possible is None else possible & holding
            if not possible:
                break
        if possible is None:
            kept.append((no, rule))
        elif possible:
            kept.append((no, rule))
            if len(possible) <= ROW_FILTER_MAX:
                limited[no] = tuple(sorted(possible))
    return RowCandidates(kept, limited)


def match_sql(
    group: RuleGroup,
    batch: Sequence[tuple[int, CompiledRule]],
    rows: Mapping[int, tuple[int, ...]] | None = None,
) -> str:
    """INSERT the hits of a batch of the group's rules; a rule with ``rows`` (first_eid values,
    see ``row_candidates``) is evaluated on those rows only.

    A table's hits go to ``hunt_matches`` as (rule_no, first_eid), and ``fields_sql`` adds
    their events and fields for the rules that matched: building each rule's JSON and unnesting
    its events in the match itself cost a fifth of its planning, for every rule planned. A view
    (records searched) would be re-read: its hits go to ``hunt_hits`` whole; its rules that
    search no record read the table of its other fields instead (no join to the records).
    """
    selects = []
    for rule_no, rule in batch:
        only = (rows or {}).get(rule_no)
        where = f"first_eid IN ({', '.join(map(str, only))}) AND ({rule.sql})" if only else rule.sql
        if group.searches_records:
            source = group.table if KEYWORD_FIELD in rule.fields else group.values_table
            selects.append(
                f"SELECT {rule_no} AS rule_no, unnest(eids) AS eid, "
                f"{_fields_json(group, rule_no, rule)} AS fields FROM {source} WHERE {where}"
            )
        else:
            selects.append(
                f"SELECT {rule_no} AS rule_no, first_eid FROM {group.table} WHERE {where}"
            )
    target = "hunt_hits" if group.searches_records else "hunt_matches"
    return f"INSERT INTO {target} " + " UNION ALL ".join(selects)


def fields_sql(jobs: Sequence[tuple[RuleGroup, Sequence[tuple[int, CompiledRule]]]]) -> str:
    """INSERT into ``hunt_hits`` the events and fields of the rules' rows in ``hunt_matches``
    (a table's rules, and the rules decided in Python), for several groups in one statement
    (one per group cost DuckDB's fixed cost of a statement each time)."""
    selects = []
    for group, matched in jobs:
        numbers = ", ".join(str(no) for no, _ in matched)
        cases = " ".join(f"WHEN {no} THEN {_fields_json(group, no, rule)}" for no, rule in matched)
        selects.append(
            f"SELECT m.rule_no, unnest(t.eids) AS eid, CASE m.rule_no {cases} END AS fields "
            f"FROM hunt_matches m JOIN {group.values_table} t ON t.first_eid = m.first_eid "
            f"WHERE m.rule_no IN ({numbers})"
        )
    return "INSERT INTO hunt_hits " + " UNION ALL ".join(selects)


def _fields_json(group: RuleGroup, rule_no: int, rule: CompiledRule) -> str:
    """The value of every field the rule reads, as a JSON object (text)."""
    shown = [f for f in group.rule_fields(rule_no, rule) if f != KEYWORD_FIELD]
    pairs = ", ".join(f"{sql_literal(f)}, {field_column(f)}" for f in shown)
    return f"CAST(json_object({pairs}) AS VARCHAR)" if pairs else "'{}'"


def batches(
    rules: list[tuple[int, CompiledRule]], size: int = RULES_PER_QUERY
) -> list[list[tuple[int, CompiledRule]]]:
    return [rules[i : i + size] for i in range(0, len(rules), size)]
