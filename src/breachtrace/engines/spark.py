"""The Spark engine: the analytics' DuckDB SQL, transpiled by sqlglot, run by PySpark.

Each statement is parsed in DuckDB's dialect, a few DuckDB-only constructs are rewritten into
Spark equivalents (``spark_sql.py``), and the result is generated in Spark's dialect. DuckDB's
temporary tables become cached temporary views, ``INSERT INTO`` a union with the cached rows.
The case's Parquet files are read in place: a local case folder or any Hadoop URI (s3a://,
hdfs://) holding the same layout.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import sqlglot
from sqlglot import exp

from breachtrace.engines.duckdb import expand_macros
from breachtrace.engines.spark_sql import WITH_KEY, bind_parameters, to_spark
from breachtrace.schema import COLUMNS, FINDING_SCHEMA

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from breachtrace.case import Case

DEFAULT_MASTER = "local[*]"


def spark_session(master: str | None = None, app: str = "breachtrace") -> SparkSession:
    """A SparkSession for breachtrace (UTC, non-ANSI casts like DuckDB's try_cast).

    ``local[...]`` masters are kept on loopback; a cluster master is used as given
    (spark-submit's own settings apply). ``BREACHTRACE_SPARK_DRIVER_MEMORY`` sizes a local
    driver (default 4g); ``BREACHTRACE_SPARK_MAX_RESULT_SIZE`` caps what one query may return
    to it (default 0, no cap: in local mode the driver's memory is the real bound, and Spark's
    own default of 1g stopped a 50M-event hunt returning its 2.3M findings)."""
    from pyspark.sql import SparkSession

    master = master or DEFAULT_MASTER
    builder = (
        SparkSession.builder.master(master)
        .appName(app)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.ansi.enabled", "false")
        .config("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
        .config("spark.sql.parquet.inferTimestampNTZ.enabled", "true")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", os.environ.get("BREACHTRACE_SPARK_PARTITIONS", "8"))
    )
    if master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        builder = (
            builder.config("spark.driver.host", "127.0.0.1")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.driver.memory", os.environ.get("BREACHTRACE_SPARK_DRIVER_MEMORY", "4g"))
            .config(
                "spark.driver.maxResultSize",
                os.environ.get("BREACHTRACE_SPARK_MAX_RESULT_SIZE", "0"),
            )
        )
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel(os.environ.get("BREACHTRACE_SPARK_LOG_LEVEL", "ERROR"))
    return session


class SparkEngine:
    """The ``Engine`` over a SparkSession and a case's Parquet layout."""

    name = "spark"

    def __init__(self, spark: SparkSession) -> None:
        self.spark = spark
        self._cached: dict[str, DataFrame] = {}
        self._lock = threading.Lock()

    @classmethod
    def for_case(
        cls, case: Case, *, master: str | None = None, uri: str | None = None
    ) -> SparkEngine:
        """An engine with the views ``events``, ``findings`` and ``rejects`` of ``case``; the
        Parquet files are read from ``uri`` (default: BREACHTRACE_SPARK_CASE_URI, else the
        case folder), which may be any Hadoop URI holding the case layout."""
        engine = cls(spark_session(master))
        base = (uri or os.environ.get("BREACHTRACE_SPARK_CASE_URI") or str(case.root)).rstrip("/")
        # The committed batches' files, by their place in the case (the same under ``base``):
        # the folder would also hold a batch halfway through its commit (``Case.committed_files``).
        # A case whose files are only at ``uri`` is read whole.
        events = [
            f"{base}/{p.relative_to(case.root).as_posix()}"
            for p in case.committed_files(case.events_dir)
        ]
        engine.read_events(f"{base}/events" if events or uri else None, events or None)
        findings = [str(p.name) for p in sorted(case.findings_dir.glob("*.parquet"))]
        engine._read_or_empty(
            "findings", [f"{base}/findings/{n}" for n in findings], FINDING_SCHEMA
        )
        rejects = [p.name for p in case.committed_files(case.rejects_dir)]
        engine._read_or_empty("rejects", [f"{base}/rejects/{n}" for n in rejects], None)
        return engine

    # -- reading the case ------------------------------------------------------------------
    def read_events(self, events_uri: str | None, files: list[str] | None = None) -> None:
        """The view ``events`` over ``events_uri``/month=YYYY-MM/*.parquet, or over ``files``
        there (or an empty one)."""
        if events_uri is None:
            cols = ", ".join(f"CAST(NULL AS {c.sql_type}) AS {c.name}" for c in COLUMNS)
            self.execute(f"CREATE OR REPLACE TEMP VIEW events AS SELECT {cols}, "
                         "CAST(NULL AS VARCHAR) AS month WHERE false")  # fmt: skip
            return
        # The store's schema is known: given to the reader, it replaces a schema-merging job
        # over every file's footer (5-7 s of each stage's start at 1M events, 72 files); a
        # file written before a column existed reads it as NULL, as DuckDB's union_by_name.
        reader = self.spark.read.schema(_events_ddl()).option("basePath", events_uri)
        frame = reader.parquet(*(files or [events_uri]))
        frame.createOrReplaceTempView("events")

    def _read_or_empty(self, name: str, paths: list[str], schema: pa.Schema | None) -> None:
        if paths:
            self.spark.read.option("mergeSchema", "true").parquet(*paths).createOrReplaceTempView(
                name
            )
        elif schema is not None:
            self.register(name, schema.empty_table())
        else:
            self.execute(
                f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT CAST(NULL AS VARCHAR) AS input_path, "
                "CAST(NULL AS VARCHAR) AS input_id, CAST(NULL AS VARCHAR) AS input_sha256, "
                "CAST(NULL AS BIGINT) AS input_record, CAST(NULL AS VARCHAR) AS reason, "
                "CAST(NULL AS VARCHAR) AS excerpt WHERE false"
            )

    def restrict_events(self, condition: str) -> None:
        """Narrow the view ``events`` to the rows meeting ``condition`` (DuckDB SQL)."""
        where = to_spark(
            sqlglot.parse_one(f"SELECT * FROM events WHERE {condition}", read="duckdb")
        )
        self._sql(where).createOrReplaceTempView("events")

    # -- Engine ----------------------------------------------------------------------------
    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        for statement in sqlglot.parse(bind_parameters(expand_macros(sql), params), read="duckdb"):
            if statement is not None:
                self._statement(statement)

    def table(self, sql: str, params: Sequence[Any] | None = None) -> pa.Table:
        began = time.perf_counter()
        with self._query(_single(sql, params)) as frame:
            result = _naive_timestamps(frame.toArrow())
        self._trace(f"query {' '.join(sql.split())[:80]}", began)
        return result

    def create_table(self, name: str, sql: str, *, row_ids: bool = False) -> None:
        with self._query(_single(sql)) as frame:
            if row_ids:
                from pyspark.sql.functions import monotonically_increasing_id

                frame = frame.withColumn("rowid", monotonically_increasing_id())
            self._cache(name, frame)

    def register(self, name: str, table: pa.Table) -> None:
        if table.num_rows == 0:
            # an empty Arrow table carries no rows to infer from; build the schema in SQL
            cols = ", ".join(
                f"CAST(NULL AS {_spark_type(f.type)}) AS `{f.name}`" for f in table.schema
            )
            self._sql(f"SELECT {cols} WHERE false").createOrReplaceTempView(name)
            return
        self.spark.createDataFrame(table).createOrReplaceTempView(name)

    def unregister(self, name: str) -> None:
        self._drop(name)

    def worker(self) -> SparkEngine:
        return self  # a SparkSession takes queries from several threads

    def close(self) -> None:
        for name in list(self._cached):
            self._drop(name)

    # -- statements ------------------------------------------------------------------------
    def _statement(self, statement: exp.Expression) -> None:
        if isinstance(statement, exp.Set | exp.Command) and not isinstance(statement, exp.Create):
            return  # DuckDB session settings (SET threads ...) mean nothing to Spark
        if isinstance(statement, exp.Create):
            self._create(statement)
        elif isinstance(statement, exp.Insert):
            target = statement.this.name if isinstance(statement.this, exp.Table) else ""
            with self._query(statement.expression) as rows, self._lock:
                self._cache(target, self.spark.table(target).unionByName(rows))
        elif isinstance(statement, exp.Drop):
            tables = statement.args.get("tables") or [statement.this]
            for table in tables:
                self._drop(table.name)
        else:
            with self._query(statement) as frame:
                frame.collect()

    def _create(self, create: exp.Create) -> None:
        name = create.this.this.name if isinstance(create.this, exp.Schema) else create.this.name
        kind = create.args.get("kind", "").upper()
        if isinstance(create.this, exp.Schema):  # CREATE TABLE t (col type, ...): empty
            cols = ", ".join(
                f"CAST(NULL AS {c.args['kind'].sql('spark')}) AS `{c.name}`"
                for c in create.this.expressions
            )
            self._cache(name, self._sql(f"SELECT {cols} WHERE false"))
        elif kind == "VIEW":
            self._drop(name)
            self._sql(to_spark(create.expression, self._columns_of)).createOrReplaceTempView(name)
        elif kind == "TABLE":
            with self._query(create.expression) as frame:
                self._cache(name, frame)
        else:
            raise ValueError(f"the Spark engine cannot run CREATE {kind}: {create.sql()[:200]}")

    @contextlib.contextmanager
    def _query(self, query: exp.Expression) -> Iterator[DataFrame]:
        """The DataFrame of a DuckDB query (parameters already bound). Its ``WITH x AS MATERIALIZED`` CTEs are cached
        first under unique names (Spark would otherwise recompute a CTE at every use), and
        dropped once the caller has consumed the frame."""
        query, ctes = _split_materialized(query)
        made: list[str] = []
        try:
            for name, body in ctes:
                self._cache(name, self._sql(to_spark(body)))
                made.append(name)
            yield self._sql(to_spark(query, self._columns_of))
        finally:
            for name in made:
                self._drop(name)

    def _sql(self, text: str) -> DataFrame:
        """``spark.sql``, with the transpiled SQL in the error when Spark rejects it."""
        try:
            return self.spark.sql(text)
        except Exception as exc:
            if os.environ.get("BREACHTRACE_SPARK_DEBUG"):
                print(text, file=sys.stderr)
            raise SparkSQLError(
                f"{str(exc).strip()[:600]}\n-- in Spark SQL: {text[:2000]}"
            ) from exc

    def _cache(self, name: str, frame: DataFrame) -> None:
        """Materialize ``frame`` now and make it the view ``name``. A local checkpoint (memory,
        then disk) rather than a cached plan: later queries then plan against a flat table, not
        the whole lineage, which made planning the dominant cost (minutes per query)."""
        began = time.perf_counter()
        frame = frame.localCheckpoint(eager=True)
        self._trace(name, began)
        old = self._cached.pop(name, None)
        frame.createOrReplaceTempView(name)
        self._cached[name] = frame
        if old is not None:
            old.unpersist()

    def _columns_of(self, query: exp.Expression) -> list[str]:
        """The column names of a query (Spark analyses it; nothing runs)."""
        return list(self._sql(to_spark(query, self._columns_of)).columns)

    @staticmethod
    def _trace(what: str, began: float) -> None:
        if os.environ.get("BREACHTRACE_SPARK_DEBUG"):
            print(f"spark: {what} in {time.perf_counter() - began:.1f} s", file=sys.stderr)

    def _drop(self, name: str) -> None:
        old = self._cached.pop(name, None)
        self.spark.catalog.dropTempView(name)
        if old is not None:
            old.unpersist()


class SparkSQLError(RuntimeError):
    """Spark rejected or failed a transpiled statement (the message shows the Spark SQL)."""


def _split_materialized(
    query: exp.Expression,
) -> tuple[exp.Expression, list[tuple[str, exp.Expression]]]:
    """The query without its MATERIALIZED CTEs (references renamed to unique view names), and
    those CTEs as (view name, standalone query) in order; a CTE's query keeps the plain CTEs
    defined before it, which it may read."""
    key = WITH_KEY
    with_ = query.args.get(key)
    if not isinstance(with_, exp.With) or not any(
        c.args.get("materialized") for c in with_.expressions
    ):
        return query, []
    query = query.copy()
    with_ = query.args[key]
    uses = _evaluations(query, list(with_.expressions))
    tag = uuid.uuid4().hex[:8]
    renamed: dict[str, str] = {}
    plain: list[exp.CTE] = []
    out: list[tuple[str, exp.Expression]] = []
    for cte in list(with_.expressions):
        body = _renamed(cte.this.copy(), renamed)
        # A CTE read once gains nothing from being materialized first, and its checkpoint is
        # a Spark job of its own (planned, run, stored): it is left to Spark as a plain CTE.
        if cte.args.get("materialized") and uses.get(cte.alias, 0) > 1:
            standalone = body
            if plain:
                standalone = body.copy()
                standalone.set(key, exp.With(expressions=[c.copy() for c in plain]))
            name = f"bt_cte_{tag}_{cte.alias}"
            out.append((name, standalone))
            renamed[cte.alias] = name
            cte.pop()
        else:
            cte.set("this", body)
            plain.append(cte)
    if not with_.expressions:
        with_.pop()
    for table in query.find_all(exp.Table):
        if not table.args.get("db") and table.name in renamed:
            table.set("this", exp.to_identifier(renamed[table.name]))
    return query, out


def _evaluations(query: exp.Expression, ctes: list[exp.CTE]) -> dict[str, int]:
    """How many times Spark would compute each CTE of ``query`` (a plain CTE is inlined at
    every read, so a CTE read once by a plain CTE read twice is computed twice); a
    MATERIALIZED CTE computed more than once is checkpointed, and then counts once for what
    it reads."""
    body = query.copy()
    body.set(WITH_KEY, None)
    times: dict[str, int] = {}
    for i in range(len(ctes) - 1, -1, -1):
        name = ctes[i].alias
        count = _reads(body, name)
        for later in ctes[i + 1 :]:
            reads = _reads(later.this, name)
            once = later.args.get("materialized") and times[later.alias] > 1
            count += reads * (1 if once else times[later.alias])
        times[name] = count
    return times


def _reads(query: exp.Expression, name: str) -> int:
    return sum(1 for t in query.find_all(exp.Table) if not t.args.get("db") and t.name == name)


def _renamed(body: exp.Expression, renamed: dict[str, str]) -> exp.Expression:
    for table in body.find_all(exp.Table):
        if not table.args.get("db") and table.name in renamed:
            table.set("this", exp.to_identifier(renamed[table.name]))
    return body


def _single(sql: str, params: Sequence[Any] | None = None) -> exp.Expression:
    text = bind_parameters(expand_macros(sql), params)
    statements = [s for s in sqlglot.parse(text, read="duckdb") if s is not None]
    if len(statements) != 1:
        raise ValueError(f"expected one query, got {len(statements)}")
    return statements[0]


def _spark_type(arrow_type: pa.DataType) -> str:
    if pa.types.is_list(arrow_type):
        return f"ARRAY<{_spark_type(arrow_type.value_type)}>"
    if pa.types.is_timestamp(arrow_type):
        return "TIMESTAMP_NTZ" if arrow_type.tz is None else "TIMESTAMP"
    names = {pa.string(): "STRING", pa.large_string(): "STRING", pa.int32(): "INT",
             pa.int64(): "BIGINT", pa.float64(): "DOUBLE", pa.bool_(): "BOOLEAN",
             pa.date32(): "DATE", pa.float32(): "FLOAT", pa.int16(): "SMALLINT"}  # fmt: skip
    return names[arrow_type]


def _events_ddl() -> str:
    """The events' Spark schema: the store's columns, then the partition column ``month``."""
    columns = [f"`{c.name}` {_spark_type(c.type)}" for c in COLUMNS]
    return ", ".join([*columns, "`month` STRING"])


def _naive_timestamps(table: pa.Table) -> pa.Table:
    """UTC timestamps without a zone, as DuckDB returns the store's TIMESTAMP columns."""
    fields = []
    changed = False
    for f in table.schema:
        if pa.types.is_timestamp(f.type) and f.type.tz is not None:
            fields.append(f.with_type(pa.timestamp(f.type.unit)))
            changed = True
        else:
            fields.append(f)
    return table.cast(pa.schema(fields)) if changed else table
