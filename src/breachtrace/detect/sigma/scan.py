"""The SQL of a logsource group's scan: extract its fields once, skip the rules that cannot
match, then match the others in batches.

A group is every rule sharing a resolved logsource. Its scan is three steps:

1. *extract*: one ``CREATE TABLE`` over the hunt's events holding the value of every field any
   of the group's rules reads (``"v:F"``) and, where needed, its lower-cased copy (``"l:F"``),
   once per *distinct* combination of those values, with the list of events (``eids``) that
   have it: events repeat (the same process opening the same handle thousands of times), and
   a rule need only be evaluated once per combination. Each (event source, source format) pair
   is one branch; each branch parses a record once with a single multi-path
   ``json_extract_string(raw, [paths])`` in a MATERIALIZED CTE, so no field is extracted twice
   (inlined CTEs would re-parse per use). A group with keyword rules is a view instead: its
   records are unique and large, so copying them would cost more than re-reading.
2. *prefilter* (one query for all groups): which of the rules' anchor texts (see
   ``backend.rule_anchors``) occur in the group's distinct lower-cased values; a rule whose
   anchors are absent cannot match and is never planned.
3. *match*: ``INSERT INTO hunt_hits`` one ``UNION ALL`` of per-rule ``SELECT ... WHERE <rule>``
   over that table, for a batch of rules at a time (one statement per rule would pay DuckDB's
   planning once per rule; one statement for a thousand rules is slow to plan too).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import ahocorasick

from breachtrace.detect.sigma.columns import KEYWORD_FIELD, field_column
from breachtrace.detect.sigma.logsources import EventSource, FieldAccess, LogsourceMap
from breachtrace.detect.sigma.records import CompiledRule
from breachtrace.engines.duckdb import sql_literal

RULES_PER_QUERY = 48


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


def extract_sql(group: RuleGroup, formats_of: dict[int, str], mapping: LogsourceMap) -> str:
    """CREATE TABLE of the group's events with one column per field (see the module doc)."""
    names, lower = group.fields()
    branches: list[str] = []
    ctes: list[str] = []
    for index, source in enumerate(group.sources):
        by_format: dict[str, list[int]] = {}
        for cls in group.classes.get(index, []):
            by_format.setdefault(formats_of[cls], []).append(cls)
        for fmt, classes in sorted(by_format.items()):
            n = len(ctes) // 2
            base, values = _branch(n, source, fmt, classes, names, mapping)
            ctes += [base, values]
            branches.append(f"SELECT * FROM v{n}")
    lowered = [
        f"lower({field_column(f)}) AS {field_column(f, lower=True)}" for f in names if f in lower
    ]
    union = " UNION ALL BY NAME ".join(branches)
    if group.searches_records:
        # Records are all distinct and the widest thing there is: neither grouped nor copied;
        # the group is a view, its few other fields re-read by each batch that needs them.
        distinct, kind = f"SELECT * EXCLUDE (eid), [eid] AS eids FROM ({union})", "VIEW"
    else:
        distinct = f"SELECT * EXCLUDE (eid), list(eid) AS eids FROM ({union}) GROUP BY ALL"
        kind = "TABLE"
    select = ", ".join(["*", *lowered])
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
) -> tuple[str, str]:
    """The two CTEs of one (event source, format) branch: parse once, then name the values."""
    slots = _Slots()
    values = []
    for name in names:
        if name == KEYWORD_FIELD:
            expr = "raw"
        else:
            expr = _value_sql(mapping.access(fmt, source.source_field(name)), slots)
        values.append(f"{expr} AS {field_column(name)}")
    where = [f"cls IN ({', '.join(str(c) for c in classes)})"]
    for name, allowed in source.where:
        access = mapping.access(fmt, source.source_field(name))
        if access.paths:
            options = ", ".join(sql_literal(v) for v in allowed)
            where.append(
                f"lower(json_extract_string(raw, {sql_literal(access.paths[0])})) IN ({options})"
            )
    # Header values (event_code, channel, provider) are the event class's: from hunt_classes.
    columns = ["e.eid", "c.event_code", "c.channel", "c.provider"]
    if slots.paths:
        columns.append(
            f"json_extract_string(raw, [{', '.join(sql_literal(p) for p in slots.paths)}]) AS f"
        )
    if KEYWORD_FIELD in names:
        columns.append("raw")
    events = f"(SELECT rowid AS eid, cls, raw FROM hunt_events WHERE {' AND '.join(where)}) e"
    base = (
        f"b{n} AS MATERIALIZED (SELECT {', '.join(columns)} FROM {events} "
        f"JOIN hunt_classes c ON c.cls = e.cls)"
    )
    value_cte = (
        f"v{n} AS MATERIALIZED (SELECT eid, {', '.join(values) or 'NULL AS none'} FROM b{n})"
    )
    return base, value_cte


class _Slots:
    """Positions of JSON paths in a branch's one multi-path extraction list ``f``."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    def ref(self, path: str) -> str:
        if path not in self.paths:
            self.paths.append(path)
        return f"f[{self.paths.index(path) + 1}]"


def _value_sql(access: FieldAccess, slots: _Slots) -> str:
    """A field's text: the first of its paths present, else its place in a UserData child."""
    if access.column:
        return f"CAST({access.column} AS VARCHAR)"
    parts = [_text(slots.ref(p)) for p in access.paths]
    # The object arrives as JSON text in the same parse; it is only re-read for events that
    # lack the field at the direct paths (UserData events), as coalesce stops at the first hit.
    parts += [
        f"json_extract_string({slots.ref(obj)}, {sql_literal(inner)})[1]"
        for obj, inner in access.object_paths
    ]
    if not parts:
        return "CAST(NULL AS VARCHAR)"
    return parts[0] if len(parts) == 1 else f"coalesce({', '.join(parts)})"


def _text(v: str) -> str:
    """An EVTX value rendered as {"#text": ...} (e.g. unnamed Data items) as plain text."""
    return (
        f"CASE WHEN starts_with({v}, '{{\"#text\"') THEN coalesce("
        f"array_to_string(json_extract_string({v}, '$.\"#text\"[*]'), chr(10)), "
        f"json_extract_string({v}, '$.\"#text\"')) ELSE {v} END"
    )


def anchor_texts(group: RuleGroup) -> list[tuple[str, str]]:
    """Every distinct (field, text) anchor of the group's rules, keywords aside (searching
    whole records for them costs about what the rules do)."""
    texts: dict[tuple[str, str], None] = {}
    for _no, rule in group.rules:
        for clause in rule.anchors or ():
            texts.update(dict.fromkeys(a for a in clause if a[0] != KEYWORD_FIELD))
    return list(texts)


def anchored_fields(group: RuleGroup) -> list[str]:
    return sorted({f for f, _ in anchor_texts(group)})


def values_sql(groups: list[RuleGroup]) -> str:
    """SELECT the distinct lower-cased (group number, field, value) of the fields that carry
    anchor texts: the aggregate the prefilter searches. One pass per group reads all of its
    anchored fields (a group that searches records is a view: each pass re-parses them)."""
    values = []
    for group in groups:
        fields = anchored_fields(group)
        names = ", ".join(sql_literal(f) for f in fields)
        columns = ", ".join(f"lower(CAST({field_column(f)} AS VARCHAR))" for f in fields)
        values.append(
            f"SELECT {group.number} AS grp, unnest([{names}]) AS field, "
            f"unnest([{columns}]) AS value FROM {group.table}"
        )
    return (
        f"SELECT DISTINCT grp, field, value FROM ({' UNION ALL '.join(values)}) "
        "WHERE value IS NOT NULL"
    )


def present_texts(texts: list[tuple[str, str]], values: dict[str, list[str]]) -> set[int]:
    """Indices of the (field, text) anchors occurring in some value of their field.

    One Aho-Corasick automaton per field scans each distinct value once for all of its texts;
    a join of texts by values with ``contains`` costs texts x values.
    """
    by_field: dict[str, list[int]] = {}
    for n, (name, _text) in enumerate(texts):
        by_field.setdefault(name, []).append(n)
    found: set[int] = set()
    for name, numbers in by_field.items():
        automaton = ahocorasick.Automaton()
        for n in numbers:
            text = texts[n][1]
            automaton.add_word(text, (*automaton.get(text, ()), n))
        automaton.make_automaton()
        wanted, seen = len(numbers), set()
        for value in values.get(name, ()):
            for _end, hits in automaton.iter(value):
                seen.update(hits)
            if len(seen) == wanted:
                break
        found |= seen
    return found


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


def match_sql(group: RuleGroup, batch: Sequence[tuple[int, CompiledRule]]) -> str:
    """INSERT the hits of a batch of the group's rules: (rule_no, eid, fields as JSON)."""
    selects = []
    for rule_no, rule in batch:
        shown = [f for f in group.rule_fields(rule_no, rule) if f != KEYWORD_FIELD]
        pairs = ", ".join(f"{sql_literal(f)}, {field_column(f)}" for f in shown)
        fields = f"CAST(json_object({pairs}) AS VARCHAR)" if pairs else "'{}'"
        selects.append(
            f"SELECT {rule_no} AS rule_no, unnest(eids) AS eid, {fields} AS fields "
            f"FROM {group.table} WHERE {rule.sql}"
        )
    return "INSERT INTO hunt_hits " + " UNION ALL ".join(selects)


def batches(
    rules: list[tuple[int, CompiledRule]], size: int = RULES_PER_QUERY
) -> list[list[tuple[int, CompiledRule]]]:
    return [rules[i : i + size] for i in range(0, len(rules), size)]
