"""Compiling Sigma rule files with pySigma and our backend (only on compiled-rule cache misses).

Each file is parsed by pySigma and each rule in it compiled by ``backend.py``; a file or rule
that cannot be used becomes a ``SkippedRule`` (id, title, file, reason) without affecting the
others. ``loader.py`` imports this module only when some file misses the cache, so a warm hunt
never loads pySigma.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

import duckdb
import yaml
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationCondition, SigmaCorrelationRule
from sigma.exceptions import SigmaError
from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline
from sigma.processing.transformations import ValueListPlaceholderTransformation
from sigma.rule import SigmaRule

from breachtrace.detect.sigma.backend import DuckDBSigmaBackend
from breachtrace.detect.sigma.logic import logic_text
from breachtrace.detect.sigma.records import (
    CompiledCorrelation,
    CompiledRule,
    RuleMeta,
    SkippedRule,
    to_dict,
)

Compiled = CompiledRule | CompiledCorrelation | SkippedRule


def compile_text(text: str, file: str, placeholders: Mapping[str, Sequence[str]]) -> list[Compiled]:
    """Parse one rule file (one or more YAML documents) and compile each rule in it."""
    try:
        # References are resolved by the hunt across files (a correlation may sit apart from
        # its rules), so pySigma must not try within this file alone.
        collection = SigmaCollection.from_yaml(
            text, collect_errors=True, collect_filters=True, resolve_references=False
        )
    except (SigmaError, yaml.YAMLError, ValueError, TypeError, AttributeError) as exc:
        return [_skipped_text(text, file, f"cannot parse: {_oneline(exc)}")]
    backend = DuckDBSigmaBackend(_pipeline(placeholders))
    out: list[Compiled] = []
    for rule in collection.rules:
        meta = _meta(rule, file)
        if rule.errors:
            out.append(SkippedRule(meta.rule_id, meta.title, file, _oneline(rule.errors[0])))
        elif isinstance(rule, SigmaRule):
            out.append(_compile_rule(backend, rule, meta))
        elif isinstance(rule, SigmaCorrelationRule):
            out.append(_compile_correlation(rule, meta))
        else:
            reason = "Sigma filter documents are not applied yet; the filter was ignored"
            out.append(SkippedRule(meta.rule_id, meta.title, file, reason))
    if not out:
        out.append(_skipped_text(text, file, "no Sigma rule in the file"))
    return out


def _compile_rule(backend: DuckDBSigmaBackend, rule: SigmaRule, meta: RuleMeta) -> Compiled:
    try:
        converted = backend.convert_detection(rule)
        for pattern in converted.regexes:
            _check_regex(pattern)
    except (SigmaError, NotImplementedError, ValueError, TypeError, duckdb.Error) as exc:
        return SkippedRule(meta.rule_id, meta.title, meta.file, f"cannot compile: {_oneline(exc)}")
    ls = rule.logsource
    return CompiledRule(
        meta, ls.product, ls.category, ls.service, converted.sql,
        converted.fields, converted.lower_fields, converted.regexes, converted.anchors,
        logic_text(converted.sql, _parse_sql),
    )  # fmt: skip


def _compile_correlation(rule: SigmaCorrelationRule, meta: RuleMeta) -> Compiled:
    kind = rule.type.name.lower() if hasattr(rule.type, "name") else str(rule.type).lower()
    condition = rule.condition
    if not isinstance(condition, SigmaCorrelationCondition):
        reason = "extended correlation conditions (boolean expressions) are not supported"
        return SkippedRule(meta.rule_id, meta.title, meta.file, reason)
    if kind not in ("event_count", "value_count", "temporal", "temporal_ordered"):
        return SkippedRule(
            meta.rule_id, meta.title, meta.file, f"correlation type {kind} is not supported"
        )
    fieldref = condition.fieldref
    if isinstance(fieldref, list):
        fieldref = fieldref[0] if len(fieldref) == 1 else None
    if kind == "value_count" and not fieldref:
        return SkippedRule(
            meta.rule_id, meta.title, meta.file, "value_count needs one condition field"
        )
    aliases = {
        alias.alias: {ref.reference: name for ref, name in alias.mapping.items()}
        for alias in rule.aliases
    }
    return CompiledCorrelation(
        meta=meta, type=kind, rules=tuple(r.reference for r in rule.rules or ()),
        group_by=tuple(rule.group_by or ()), timespan_seconds=int(rule.timespan.seconds),
        op=condition.op.name.lower(), count=condition.count, value_field=fieldref,
        aliases=aliases, generate=bool(rule.generate),
    )  # fmt: skip


def _meta(rule: Any, file: str) -> RuleMeta:
    level = rule.level.name.lower() if getattr(rule, "level", None) else ""
    status = rule.status.name.lower() if getattr(rule, "status", None) else ""
    tags = tuple(f"{t.namespace}.{t.name}".lower() for t in getattr(rule, "tags", None) or ())
    return RuleMeta(
        rule_id=str(rule.id or rule.name or rule.title or file), title=rule.title or "",
        file=file, name=rule.name or "", level=level, status=status, tags=tags,
        description=(rule.description or "").strip(),
    )  # fmt: skip


def _skipped_text(text: str, file: str, reason: str) -> SkippedRule:
    """A skipped entry for a file pySigma could not read: id and title read off the text."""
    rid = re.search(r"^id:\s*['\"]?([^\s'\"#]+)", text, re.M)
    title = re.search(r"^title:\s*(.+?)\s*$", text, re.M)
    return SkippedRule(rid.group(1) if rid else "", title.group(1) if title else "", file, reason)


def _oneline(exc: object) -> str:
    return " ".join(str(exc).split())[:500]


@cache
def _duckdb() -> duckdb.DuckDBPyConnection:
    return duckdb.connect()


def _check_regex(pattern: str) -> None:
    """Raise if DuckDB's regex engine (RE2) rejects a pattern that pySigma accepted."""
    try:
        _duckdb().execute("SELECT regexp_matches('', ?)", [pattern]).fetchall()
    except duckdb.Error as exc:
        raise ValueError(f"regular expression {pattern!r} is not supported by RE2: {exc}") from None


def _parse_sql(sql: str) -> str:
    """DuckDB's parse of a statement, as JSON (what ``logic_text`` reads)."""
    row = _duckdb().execute("SELECT json_serialize_sql(?)", [sql]).fetchone()
    return str(row[0]) if row else '{"error": true}'


def _pipeline(placeholders: Mapping[str, Sequence[str]]) -> ProcessingPipeline | None:
    if not placeholders:
        return None
    item = ProcessingItem(
        ValueListPlaceholderTransformation(include=list(placeholders)),
        identifier="breachtrace_placeholders",
    )
    return ProcessingPipeline(
        name="breachtrace placeholders", items=[item],
        vars={k: list(v) for k, v in placeholders.items()},
    )  # fmt: skip


def compile_batch(
    batch: list[tuple[str, str]], placeholders: Mapping[str, Sequence[str]]
) -> list[list[dict[str, Any]]]:
    """Worker entry: compile (file, text) pairs; results as plain dicts for pickling/caching."""
    return [[to_dict(c) for c in compile_text(text, file, placeholders)] for file, text in batch]
