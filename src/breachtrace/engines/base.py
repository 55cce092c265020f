"""What every SQL engine offers the stages: run DuckDB-dialect SQL, get Arrow back.

The analytics are written once, in DuckDB's dialect (after ``expand_macros``). The DuckDB
engine runs that SQL as it is; the Spark engine transpiles it with sqlglot and runs it on a
SparkSession over the same Parquet layout. Python code only sees aggregates, as Arrow tables
or rows, never a engine's own objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import pyarrow as pa

ENGINES = ("duckdb", "spark")


class Engine(Protocol):
    """A SQL engine over one case's events (the views ``events``, ``findings``, ``rejects``)."""

    name: str

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        """Run one or more statements (DDL, CREATE TEMP TABLE ... AS, INSERT, DROP)."""
        ...

    def table(self, sql: str, params: Sequence[Any] | None = None) -> pa.Table:
        """The result of one query as an Arrow table."""
        ...

    def create_table(self, name: str, sql: str, *, row_ids: bool = False) -> None:
        """Materialize ``sql`` as the temporary table ``name``; with ``row_ids`` the table also
        has a unique BIGINT pseudo-column ``rowid`` (DuckDB's own, Spark's generated ids)."""
        ...

    def restrict_events(self, condition: str) -> None:
        """Narrow the view ``events`` to the rows meeting ``condition`` (DuckDB SQL)."""
        ...

    def register(self, name: str, table: pa.Table) -> None:
        """Make an Arrow table queryable as ``name`` (small tables: context, rules)."""
        ...

    def unregister(self, name: str) -> None: ...

    def worker(self) -> Engine:
        """An engine usable from another thread (DuckDB: a cursor; Spark: the same session)."""
        ...

    def close(self) -> None: ...


def python_values(table: pa.Table) -> pa.Table:
    """Decimals as Python numbers: whole ones (DuckDB's HUGEINT sums) as integers, others as
    floats, so aggregates read the same whichever engine summed them."""
    fields = []
    for f in table.schema:
        if pa.types.is_decimal(f.type):
            f = f.with_type(pa.int64() if f.type.scale == 0 else pa.float64())
        fields.append(f)
    schema = pa.schema(fields)
    return table if schema.equals(table.schema) else table.cast(schema)


def rows(engine: Engine, sql: str, params: Sequence[Any] | None = None) -> list[dict[str, Any]]:
    """Rows of a query as dicts (for aggregates: edges, candidate series, findings)."""
    return python_values(engine.table(sql, params)).to_pylist()


def tuples(engine: Engine, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
    """Rows of a query as tuples, columns in select order."""
    table = python_values(engine.table(sql, params))
    columns = [c.to_pylist() for c in table.columns]
    return list(zip(*columns, strict=True)) if columns else []


def one(engine: Engine, sql: str, params: Sequence[Any] | None = None) -> tuple[Any, ...] | None:
    """The first row of a query as a tuple, or None when it has no rows."""
    found = tuples(engine, sql, params)
    return found[0] if found else None


def materialize(engine: Engine, name: str, table: pa.Table) -> None:
    """A small Arrow table as the engine's own table ``name`` (copied in, not a view over
    Python memory), for the stages' lookup tables: edges, inventories, queries."""
    engine.register(f"{name}_arrow", table)
    try:
        engine.create_table(name, f"SELECT * FROM {name}_arrow")
    finally:
        engine.unregister(f"{name}_arrow")


def query_errors() -> tuple[type[BaseException], ...]:
    """What an engine raises for a query it cannot run (a rule's SQL, say)."""
    import duckdb
    import sqlglot.errors

    from breachtrace.engines.spark import SparkSQLError

    return (duckdb.Error, SparkSQLError, sqlglot.errors.SqlglotError)


def open_engine(
    case: Any, name: str = "duckdb", *, master: str | None = None, **kwargs: Any
) -> Engine:
    """An engine of kind ``name`` ("duckdb" or "spark") over ``case`` (a ``Case``); ``master``
    is Spark's master URL, ``kwargs`` go to DuckDB's ``Case.connect`` (threads, ...)."""
    if name == "duckdb":
        from breachtrace.engines.duckdb import DuckDBEngine

        return DuckDBEngine(case.connect(**kwargs), case.events_source_sql())
    if name == "spark":
        from breachtrace.engines.spark import SparkEngine

        return SparkEngine.for_case(case, master=master)
    raise ValueError(f"unknown engine {name!r}; choose from {', '.join(ENGINES)}")
