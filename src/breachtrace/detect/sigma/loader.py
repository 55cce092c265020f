"""Sigma rule files -> compiled rules (through the cache), filtered by level, status and tags.

Rules are read from directories or files at run time and never copied into breachtrace. Each
file is parsed by pySigma and compiled by our backend; a file or rule that cannot be used is
reported (id, title, file, reason) and skipped without affecting the others. Compiling runs in
worker processes when many files miss the cache.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
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
from breachtrace.detect.sigma.cache import RuleCache, default_cache_dir, file_digest
from breachtrace.detect.sigma.records import (
    LEVELS,
    CompiledCorrelation,
    CompiledRule,
    RuleMeta,
    SkippedRule,
    from_dict,
    to_dict,
)

Compiled = CompiledRule | CompiledCorrelation | SkippedRule
RULES_ENV = "BREACHTRACE_SIGMA_RULES"
CONFIG_ENV = "BREACHTRACE_CONFIG"
GET_RULES_HELP = (
    "No Sigma rules given and none configured. Get SigmaHQ's rules with\n"
    "  git clone --depth 1 https://github.com/SigmaHQ/sigma ~/sigma\n"
    "(or unpack a release archive from https://github.com/SigmaHQ/sigma/releases), then either\n"
    "pass --rules ~/sigma/rules, set BREACHTRACE_SIGMA_RULES=~/sigma/rules, or put\n"
    "'sigma_rules: ~/sigma/rules' in ~/.config/breachtrace/config.yaml."
)
PARALLEL_FROM = 64  # cache misses below this compile in-process (pool start-up costs ~0.3 s)


class NoRulesConfigured(Exception):
    """No rule paths were given and none are configured; the message says how to get some."""


@dataclass
class LoadedRules:
    """Every compiled rule and correlation from a set of paths, and what could not be used."""

    rules: list[CompiledRule] = field(default_factory=list)
    correlations: list[CompiledCorrelation] = field(default_factory=list)
    skipped: list[SkippedRule] = field(default_factory=list)
    files: int = 0
    from_cache: int = 0  # files whose compiled rules came from the cache
    seconds: float = 0.0

    @property
    def loaded(self) -> int:
        return len(self.rules) + len(self.correlations) + len(self.skipped)


# -- finding the rules -------------------------------------------------------------------------
def default_rule_paths() -> list[Path]:
    """Rule paths from $BREACHTRACE_SIGMA_RULES (os.pathsep-separated) or the config file."""
    configured = os.environ.get(RULES_ENV)
    if not configured:
        config = Path(os.environ.get(CONFIG_ENV, "~/.config/breachtrace/config.yaml")).expanduser()
        if config.is_file():
            data = yaml.safe_load(config.read_text()) or {}
            value = data.get("sigma_rules") if isinstance(data, dict) else None
            if isinstance(value, list):
                configured = os.pathsep.join(str(v) for v in value)
            elif value:
                configured = str(value)
    if not configured:
        raise NoRulesConfigured(GET_RULES_HELP)
    return [Path(p).expanduser() for p in configured.split(os.pathsep) if p]


def discover_rule_files(paths: Iterable[Path]) -> list[Path]:
    """Every .yml/.yaml file under the given directories, plus the given files, sorted."""
    found: set[Path] = set()
    for path in paths:
        path = Path(path).expanduser()
        if path.is_dir():
            found.update(
                p for p in path.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file()
            )
        elif path.is_file():
            found.add(path)
        else:
            raise FileNotFoundError(f"Sigma rule path not found: {path}")
    return sorted(found)


# -- compiling one file ------------------------------------------------------------------------
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
def _regex_checker() -> duckdb.DuckDBPyConnection:
    return duckdb.connect()


def _check_regex(pattern: str) -> None:
    """Raise if DuckDB's regex engine (RE2) rejects a pattern that pySigma accepted."""
    try:
        _regex_checker().execute("SELECT regexp_matches('', ?)", [pattern]).fetchall()
    except duckdb.Error as exc:
        raise ValueError(f"regular expression {pattern!r} is not supported by RE2: {exc}") from None


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


def _compile_batch(
    batch: list[tuple[str, str]], placeholders: Mapping[str, Sequence[str]]
) -> list[list[dict[str, Any]]]:
    """Worker entry: compile (file, text) pairs; results as plain dicts for pickling/caching."""
    return [[to_dict(c) for c in compile_text(text, file, placeholders)] for file, text in batch]


# -- loading a rule set ------------------------------------------------------------------------
def load_rules(
    paths: Sequence[Path],
    *,
    placeholders: Mapping[str, Sequence[str]] | None = None,
    cache_dir: Path | None = None,
    use_cache: bool = True,
    workers: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> LoadedRules:
    """Compile every rule under ``paths``, from the cache where the file is unchanged."""
    started = time.perf_counter()
    placeholders = dict(placeholders or {})
    files = discover_rule_files(paths)
    settings = repr(sorted((k, list(v)) for k, v in placeholders.items()))
    rule_cache = RuleCache(cache_dir or default_cache_dir(), settings) if use_cache else None
    loaded = LoadedRules(files=len(files))
    misses: list[tuple[str, str, str]] = []  # (file, digest, text)
    for path in files:
        data = path.read_bytes()
        digest = file_digest(data)
        cached = rule_cache.get(digest) if rule_cache else None
        if cached is not None:
            loaded.from_cache += 1
            _add(loaded, cached, str(path))
        else:
            misses.append((str(path), digest, data.decode("utf-8", errors="replace")))
    if misses and progress:
        progress(f"compiling {len(misses)} rule files with pySigma ({loaded.from_cache} cached)")
    for (file, digest, _), items in zip(
        misses, _compile_all(misses, placeholders, workers), strict=True
    ):
        _add(loaded, items, file)
        if rule_cache is not None:
            rule_cache.put(digest, items)
    if rule_cache is not None:
        rule_cache.save()
    loaded.seconds = time.perf_counter() - started
    return loaded


def _compile_all(
    misses: list[tuple[str, str, str]],
    placeholders: Mapping[str, Sequence[str]],
    workers: int | None,
) -> list[list[dict[str, Any]]]:
    pairs = [(file, text) for file, _, text in misses]
    workers = workers or min(2, os.cpu_count() or 1)
    if len(pairs) < PARALLEL_FROM or workers <= 1:
        return _compile_batch(pairs, placeholders)
    size = max(1, -(-len(pairs) // (workers * 4)))
    batches = [pairs[i : i + size] for i in range(0, len(pairs), size)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        results = pool.map(_compile_batch, batches, [placeholders] * len(batches))
        return [items for batch in results for items in batch]


def _add(loaded: LoadedRules, items: list[dict[str, Any]], file: str) -> None:
    for data in items:
        item = from_dict(data)
        if isinstance(item, SkippedRule):
            loaded.skipped.append(replace(item, file=file))
        elif isinstance(item, CompiledRule):
            loaded.rules.append(replace(item, meta=replace(item.meta, file=file)))
        else:
            loaded.correlations.append(replace(item, meta=replace(item.meta, file=file)))


# -- choosing rules ----------------------------------------------------------------------------
@dataclass(frozen=True)
class RuleFilter:
    """Which rules a hunt runs: minimum level, statuses and ATT&CK/other tags (any of them)."""

    min_level: str | None = None
    statuses: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.min_level and self.min_level.lower() not in LEVELS:
            raise ValueError(f"unknown level {self.min_level!r}: choose one of {', '.join(LEVELS)}")

    def accepts(self, meta: RuleMeta) -> bool:
        if self.min_level:
            if meta.level not in LEVELS:
                return False
            if LEVELS.index(meta.level) < LEVELS.index(self.min_level.lower()):
                return False
        if self.statuses and meta.status not in {s.lower() for s in self.statuses}:
            return False
        if self.tags:
            wanted = [tag_key(t) for t in self.tags]
            have = [tag_key(t) for t in meta.tags]
            if not any(tag == w or tag.startswith(w + ".") for tag in have for w in wanted):
                return False
        return True


def tag_key(tag: str) -> str:
    """A tag as compared: case-insensitive, ``_`` and ``-`` alike (SigmaHQ writes tactics
    ``attack.lateral-movement``, older rules and behavioural findings ``lateral_movement``)."""
    return tag.lower().replace("_", "-")
