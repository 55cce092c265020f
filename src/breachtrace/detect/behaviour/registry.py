"""One interface for every behavioural analytic, and the registry that lists them.

An analytic is a module that registers one ``Analytic``: a name (used by ``--only`` and as the
findings set's file name), a title, and a ``run`` function taking a ``Run`` (the case's SQL
engine with its views, the settings, the context, shared tables) and returning an
``AnalyticResult`` (findings, what could not be judged, and a few measured numbers).
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from breachtrace.case import Case
from breachtrace.context import Context
from breachtrace.detect.behaviour.config import Settings
from breachtrace.engines import base
from breachtrace.engines.base import Engine
from breachtrace.schema import Finding

# Modules holding analytics, imported on first use of the registry (each calls ``register``).
MODULES = ("lateral", "credentials", "bulk_access", "beacon", "tamper", "remote_access")


@dataclass
class AnalyticResult:
    """What one analytic produced."""

    findings: list[Finding] = field(default_factory=list)
    not_judged: list[str] = field(default_factory=list)  # plain sentences
    stats: dict[str, Any] = field(default_factory=dict)  # e.g. alerts per day, candidates
    seconds: float = 0.0


@dataclass
class Run:
    """Everything an analytic may use while it runs."""

    case: Case
    engine: Engine  # DuckDB by default, Spark with --engine spark: the same SQL
    settings: Settings  # the whole configuration
    context: Context
    first_ts: datetime | None
    last_ts: datetime | None
    events: int
    shared: dict[str, Any] = field(default_factory=dict)  # tables built once per run
    shared_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def span_days(self) -> float:
        if self.first_ts is None or self.last_ts is None:
            return 0.0
        return (self.last_ts - self.first_ts).total_seconds() / 86_400

    def execute(self, sql: str, params: list[Any] | None = None) -> None:
        """Run statements (CREATE OR REPLACE TEMP TABLE ... AS, DROP) on the engine."""
        self.engine.execute(sql, params)

    def rows(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        """Rows of a query as dicts (for aggregates: edges, candidate series, findings)."""
        return base.rows(self.engine, sql, params)

    def tuples(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        """Rows of a query as tuples."""
        return base.tuples(self.engine, sql, params)

    def one(self, sql: str, params: list[Any] | None = None) -> tuple[Any, ...] | None:
        """The first row of a query, or None."""
        return base.one(self.engine, sql, params)

    def once(self, name: str, build: Callable[[Run], Any]) -> Any:
        """Build a shared table (or value) once per run; its time is recorded under ``name``."""
        if name not in self.shared:
            began = time.perf_counter()
            self.shared[name] = build(self)
            self.shared_seconds[name] = time.perf_counter() - began
        return self.shared[name]


@dataclass(frozen=True)
class Analytic:
    name: str  # lateral, credentials, bulk, beacon, tamper
    title: str
    run: Callable[[Run], AnalyticResult]


_REGISTRY: dict[str, Analytic] = {}


def register(
    name: str, title: str
) -> Callable[[Callable[[Run], AnalyticResult]], Callable[[Run], AnalyticResult]]:
    """Decorator: register ``fn`` as the analytic ``name``."""

    def wrap(fn: Callable[[Run], AnalyticResult]) -> Callable[[Run], AnalyticResult]:
        _REGISTRY[name] = Analytic(name, title, fn)
        return fn

    return wrap


def analytics() -> dict[str, Analytic]:
    """Every registered analytic, in the order of MODULES."""
    for module in MODULES:
        importlib.import_module(f"breachtrace.detect.behaviour.{module}")
    return dict(_REGISTRY)


def select(only: tuple[str, ...] | list[str] | None) -> list[Analytic]:
    """The analytics named in ``only`` (all when empty), or ValueError naming the unknown ones."""
    known = analytics()
    if not only:
        return list(known.values())
    wanted = [n.strip().lower() for n in only if n.strip()]
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise ValueError(
            f"unknown analytic(s) {', '.join(unknown)}; choose from {', '.join(known)}"
        )
    return [known[n] for n in known if n in wanted]
