"""Sigma correlation rules as SQL window and ASOF queries over the base rules' hits.

Each hit of a referenced rule carries the values of the correlation's group-by fields (the scan
extracts them with the rule's own fields; ``aliases`` name them per rule). Then:

- event_count:  ``count(*)`` over a window of ``timespan`` ending at each hit, per group;
- value_count:  ``count(DISTINCT field)`` over the same window;
- temporal:     ``count(DISTINCT rule)`` over the window must reach the number of rules;
- temporal_ordered: the rules' hits in the given order, found by chained ASOF joins (each
  step takes the earliest next hit at or after the previous one), within ``timespan`` of the
  first.

A group fires once, at its first window meeting the condition; its finding lists the events in
that window. Events lacking a group-by field are grouped under the empty value.
"""

from __future__ import annotations

import pyarrow as pa

from breachtrace.detect.sigma.columns import sql_string
from breachtrace.detect.sigma.records import LEVEL_SCORE, CompiledCorrelation, CompiledRule
from breachtrace.detect.sigma.scan import RuleGroup
from breachtrace.engines.base import Engine
from breachtrace.schema import FINDING_SCHEMA

_OPS = {"gte": ">=", "gt": ">", "lte": "<=", "lt": "<", "eq": "=", "neq": "<>"}
MAX_EVIDENCE = 1000


def _rule_numbers(rules: list[CompiledRule], corr: CompiledCorrelation) -> list[tuple[str, int]]:
    by_ref: dict[str, int] = {}
    for i, rule in enumerate(rules):
        by_ref.setdefault(rule.meta.rule_id, i)
        if rule.meta.name:
            by_ref.setdefault(rule.meta.name, i)
    return [(ref, by_ref[ref]) for ref in corr.rules if ref in by_ref]


def _field_for(corr: CompiledCorrelation, ref: str, name: str) -> str:
    """The field of rule ``ref`` holding group-by field (or alias) ``name``."""
    return corr.aliases.get(name, {}).get(ref, name)


def add_group_fields(
    groups: list[RuleGroup], rules: list[CompiledRule], correlations: list[CompiledCorrelation]
) -> None:
    """Make the scan extract each referenced rule's group-by and counted fields."""
    needed: dict[int, list[str]] = {}
    for corr in correlations:
        for ref, rule_no in _rule_numbers(rules, corr):
            names = [*corr.group_by, *([corr.value_field] if corr.value_field else [])]
            needed.setdefault(rule_no, []).extend(_field_for(corr, ref, n) for n in names)
    for group in groups:
        for rule_no, _rule in group.rules:
            if rule_no in needed:
                group.extra_fields[rule_no] = tuple(dict.fromkeys(needed[rule_no]))


def run(
    con: Engine,
    rules: list[CompiledRule],
    correlations: list[CompiledCorrelation],
) -> tuple[pa.Table, int]:
    """Findings of every correlation (one per firing group) and how many correlations fired."""
    tables = []
    for corr in correlations:
        refs = _rule_numbers(rules, corr)
        if not refs:
            continue
        table = con.table(_correlation_sql(corr, refs, rules)).cast(FINDING_SCHEMA)
        if table.num_rows:
            tables.append(table)
    if not tables:
        return FINDING_SCHEMA.empty_table(), 0
    return pa.concat_tables(tables), len(tables)


def _base_sql(corr: CompiledCorrelation, refs: list[tuple[str, int]]) -> str:
    def per_rule(name: str) -> str:
        whens = " ".join(
            f"WHEN {no} THEN json_extract_string(h.fields, {sql_string(_json_key(_field_for(corr, ref, name)))})"
            for ref, no in refs
        )
        return f"coalesce(CASE h.rule_no {whens} END, '')"

    keys = [f"{per_rule(g)} AS g{i}" for i, g in enumerate(corr.group_by)]
    value = [f"{per_rule(corr.value_field)} AS val"] if corr.value_field else []
    numbers = ", ".join(str(no) for _, no in refs)
    return (
        f'SELECT h.rule_no, e.ts, e.event_uid, e.host, e."user", {", ".join([*keys, *value, "1 AS one"])} '
        f"FROM hunt_hits h JOIN hunt_hit_events e ON e.eid = h.eid WHERE h.rule_no IN ({numbers})"
    )


def _json_key(name: str) -> str:
    return '$."' + name.replace('"', '\\"') + '"'


def _correlation_sql(
    corr: CompiledCorrelation, refs: list[tuple[str, int]], rules: list[CompiledRule]
) -> str:
    groups = [f"g{i}" for i in range(len(corr.group_by))] or ["one"]
    span = f"INTERVAL {int(corr.timespan_seconds)} SECOND"
    window = f"PARTITION BY {', '.join(groups)} ORDER BY ts RANGE BETWEEN {span} PRECEDING AND CURRENT ROW"
    if corr.type == "temporal_ordered":
        fired = _ordered_sql(refs, groups, span)
    else:
        measure, condition = {
            "event_count": ("count(*)", f"{_OPS[corr.op]} {corr.count}"),
            "value_count": ("count(DISTINCT val)", f"{_OPS[corr.op]} {corr.count}"),
            "temporal": ("count(DISTINCT rule_no)", f">= {len({no for _, no in refs})}"),
        }[corr.type]
        fired = (
            f"SELECT {', '.join(groups)}, min(ts) AS end_ts FROM "
            f"(SELECT *, {measure} OVER ({window}) AS measure FROM base) WHERE measure {condition} "
            f"GROUP BY ALL"
        )
    join = " AND ".join(f"b.{g} = f.{g}" for g in groups)
    meta = corr.meta
    severity = meta.level if meta.level in LEVEL_SCORE else "informational"
    titles = "; ".join(rules[no].meta.title for _, no in refs)
    explained_groups = (
        " || ', ' || ".join(f"{sql_string(name + '=')} || f.{g}" for name, g in zip(corr.group_by, groups, strict=False))
        if corr.group_by else "'all events'"
    )  # fmt: skip
    return f"""
WITH base AS MATERIALIZED ({_base_sql(corr, refs)}),
fired AS ({fired})
SELECT
    md5({sql_string(meta.rule_id)} || '|' || {" || ".join(f"f.{g}::VARCHAR" for g in groups)} || '|' || f.end_ts::VARCHAR) AS finding_id,
    'sigma' AS source, 'sigma_correlation' AS kind, {sql_string(meta.rule_id)} AS rule_id,
    {sql_string(meta.title)} AS title, {sql_string(severity)} AS severity,
    {LEVEL_SCORE[severity]} AS score,
    {_list(meta.techniques)} AS techniques, {_list(meta.tags)} AS tags,
    min(b.ts) AS first_ts, max(b.ts) AS last_ts,
    list_distinct(list(b.host) FILTER (WHERE b.host IS NOT NULL)) AS hosts,
    list_distinct(list(b."user") FILTER (WHERE b."user" IS NOT NULL)) AS users,
    []::VARCHAR[] AS addresses, []::VARCHAR[] AS files,
    list(b.event_uid ORDER BY b.ts)[1:{MAX_EVIDENCE}] AS evidence,
    'Sigma correlation "' || {sql_string(meta.title)} || '" ({corr.type}) fired for ' || {explained_groups} ||
        ': ' || count(*) || ' hits of ' || {sql_string(titles)} ||
        ' within {corr.timespan_seconds} s' AS explanation,
    CAST(json_object('rule_file', {sql_string(meta.file)}, 'correlation', {sql_string(corr.type)},
        'group_by', {_list(corr.group_by)}, 'hits', count(*)) AS VARCHAR) AS details
FROM fired f JOIN base b ON {join}
    AND b.ts BETWEEN f.end_ts - {span} AND f.end_ts
GROUP BY {", ".join(f"f.{g}" for g in groups)}, f.end_ts
"""


def _ordered_sql(refs: list[tuple[str, int]], groups: list[str], span: str) -> str:
    """Chains hit(rule 1) -> earliest later hit(rule 2) -> ... within the span of the first."""
    cols = ", ".join(groups)
    sql = f"SELECT {cols}, ts AS t0, ts AS t_last FROM base WHERE rule_no = {refs[0][1]}"
    for step, (_ref, no) in enumerate(refs[1:], start=1):
        on = " AND ".join(f"c.{g} = n.{g}" for g in groups)
        sql = (
            f"SELECT c.{', c.'.join(groups)}, c.t0, n.ts AS t_last FROM ({sql}) c "
            f"ASOF JOIN (SELECT {cols}, ts FROM base WHERE rule_no = {no}) n "
            f"ON {on} AND n.ts >= c.t_last"
        )
        del step
    return (
        f"SELECT {cols}, min(t_last) AS end_ts FROM ({sql}) "
        f"WHERE t_last <= t0 + {span} GROUP BY ALL"
    )


def _list(values: tuple[str, ...]) -> str:
    if not values:
        return "[]::VARCHAR[]"
    return "[" + ", ".join(sql_string(v) for v in values) + "]"
