"""Compiled Sigma rules as plain records: what the hunt runs, what the cache stores."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

LEVELS = ("informational", "low", "medium", "high", "critical")
LEVEL_SCORE = {"informational": 0.1, "low": 0.3, "medium": 0.5, "high": 0.75, "critical": 0.95}
CORRELATION_TYPES = ("event_count", "value_count", "temporal", "temporal_ordered")


@dataclass(frozen=True)
class RuleMeta:
    """What identifies and describes a rule (base or correlation)."""

    rule_id: str
    title: str
    file: str
    name: str = ""  # the rule's `name:` (correlations may reference rules by it)
    level: str = ""
    status: str = ""
    tags: tuple[str, ...] = ()
    description: str = ""

    @property
    def techniques(self) -> tuple[str, ...]:
        """ATT&CK technique ids from tags such as attack.t1059.001."""
        out = []
        for tag in self.tags:
            if tag.lower().startswith("attack.t") and tag[8:9].isdigit():
                out.append("T" + tag[8:].upper())
        return tuple(out)


@dataclass(frozen=True)
class CompiledRule:
    """A detection rule as one SQL boolean expression over field columns (see backend.py)."""

    meta: RuleMeta
    product: str | None
    category: str | None
    service: str | None
    sql: str
    fields: tuple[str, ...]
    lower_fields: tuple[str, ...]
    regexes: tuple[str, ...] = ()
    # clauses of (field, text) pairs: each clause needs one of its texts to occur (backend.py)
    anchors: tuple[tuple[tuple[str, str], ...], ...] | None = None
    # the condition as a tree the hunt can evaluate in Python (logic.py), if the SQL allows it,
    # as JSON text: parsed only for the few rules a hunt decides (as nested lists, the trees
    # made the cached rule set a third slower to read)
    logic: str | None = field(default=None, compare=False, hash=False)


@dataclass(frozen=True)
class CompiledCorrelation:
    """A Sigma correlation rule over the hits of the base rules it references."""

    meta: RuleMeta
    type: str  # one of CORRELATION_TYPES
    rules: tuple[str, ...]  # referenced rule ids or names, in order
    group_by: tuple[str, ...]
    timespan_seconds: int
    op: str  # gte, gt, lte, lt, eq, neq
    count: float
    value_field: str | None = None  # value_count: the field whose distinct values are counted
    aliases: dict[str, dict[str, str]] = field(default_factory=dict)  # alias -> {rule ref: field}
    generate: bool = False  # also report the referenced rules' own hits


@dataclass(frozen=True)
class SkippedRule:
    """A rule that could not be used, and why (shown to the responder)."""

    rule_id: str
    title: str
    file: str
    reason: str


def to_dict(item: CompiledRule | CompiledCorrelation | SkippedRule) -> dict[str, Any]:
    kind = {CompiledRule: "rule", CompiledCorrelation: "correlation", SkippedRule: "skipped"}
    return {"kind": kind[type(item)], **asdict(item)}


def from_dict(
    data: dict[str, Any], file: str | None = None
) -> CompiledRule | CompiledCorrelation | SkippedRule:
    """A record from ``to_dict``'s form; ``file`` replaces the file it was compiled from (the
    cache is shared by identical files at other places)."""
    data = dict(data)
    kind = data.pop("kind")
    if kind == "skipped":
        if file is not None:
            data["file"] = file
        return SkippedRule(**data)
    meta = dict(data.pop("meta"))
    meta["tags"] = tuple(meta["tags"])
    if file is not None:
        meta["file"] = file
    if kind == "rule":
        for key in ("fields", "lower_fields", "regexes"):
            data[key] = tuple(data[key])
        if data.get("anchors") is not None:
            # JSON gives [[[field, text], ...], ...]; map(tuple) is the cheap way back (about
            # 40,000 pairs in SigmaHQ's Windows rules)
            data["anchors"] = tuple(tuple(map(tuple, clause)) for clause in data["anchors"])
        return CompiledRule(meta=RuleMeta(**meta), **data)
    data["rules"] = tuple(data["rules"])
    data["group_by"] = tuple(data["group_by"])
    return CompiledCorrelation(meta=RuleMeta(**meta), **data)
