"""The DuckDB engine: connections configured the same way for every stage.

Sessions run in UTC so that timestamps with offsets are converted, never silently truncated,
and memory is capped (DuckDB spills to disk beyond the cap) so big cases fit a laptop.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import psutil
import pyarrow as pa

# SQL helpers every stage uses, defined once as templates over one argument {x}. Each uses its
# argument exactly once, so expanding them textually keeps SQL linear in size. Generated SQL
# should pass through ``expand_macros``: DuckDB 2.0 spends ~0.1 s binding each macro call,
# which made a mapping with a few hundred calls take 30 s to plan. The same definitions are
# also installed as real macros for people's ad-hoc queries.
HELPERS: dict[str, str] = {
    # "no value": empty, the Windows "-" placeholder, or a spelled-out null. A lambda, because
    # DuckDB binds nullif(a, b) as CASE WHEN a = b THEN NULL ELSE a END (a copied twice), and
    # nested helpers then grew exponentially (three levels took 6.7 s to plan).
    "bt_null": "list_filter([trim(CAST({x} AS VARCHAR))], "
    "lambda v: v NOT IN ('', '-', '(null)', 'null', 'NULL'))[1]",
    # text with or without an offset -> UTC timestamp (offsets applied, never dropped; text
    # without one is read in the session's TimeZone, which ingest --timezone sets)
    "bt_ts": "timezone('UTC', try_cast(replace(trim(CAST({x} AS VARCHAR)), ' UTC', '') "
    "AS TIMESTAMPTZ))",
    # a parsed timestamp -> UTC: one without a zone is local time in the session's TimeZone
    "bt_local": "timezone('UTC', CAST({x} AS TIMESTAMPTZ))",
    "bt_epoch": "CAST(to_timestamp(try_cast({x} AS DOUBLE)) AT TIME ZONE 'UTC' AS TIMESTAMP)",
    # IPv4-mapped IPv6 written as plain IPv4
    "bt_ip": "regexp_replace(bt_null({x}), '^::ffff:', '', 'i')",
    # host names: lower-case short name (first label), addresses unchanged
    "bt_host": "lower(regexp_replace(ltrim(bt_null({x}), '\\'), '^([^.]*[^0-9.][^.]*)[.].*$', '\\1'))",
    # decimal or 0x-hex text -> BIGINT
    "bt_int": "try_cast(try_cast(trim(CAST({x} AS VARCHAR)) AS UBIGINT) AS BIGINT)",
    "bt_user": "lower(bt_null({x}))",
}
_HELPER_CALL = re.compile(r"\b(" + "|".join(HELPERS) + r")\(")


@functools.lru_cache(maxsize=256)
def expand_macros(sql: str) -> str:
    """Replace every ``bt_*(...)`` call in ``sql`` with its template (nested calls too)."""
    out: list[str] = []
    pos = 0
    while match := _HELPER_CALL.search(sql, pos):
        out.append(sql[pos : match.start()])
        close = _closing_paren(sql, match.end())
        argument = expand_macros(sql[match.end() : close])
        out.append("(" + expand_macros(HELPERS[match.group(1)].format(x=f"({argument})")) + ")")
        pos = close + 1
    out.append(sql[pos:])
    return "".join(out)


def _closing_paren(sql: str, start: int) -> int:
    """Index of the parenthesis closing the one opened just before ``start`` (quote-aware)."""
    depth, i, quote = 1, start, ""
    while i < len(sql):
        c = sql[i]
        if quote:
            if c == quote:
                if i + 1 < len(sql) and sql[i + 1] == quote:
                    i += 1
                else:
                    quote = ""
        elif c in "'\"":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ValueError("unbalanced parentheses in generated SQL")


MACROS = "\n".join(
    f"CREATE OR REPLACE MACRO {name}(x) AS {expand_macros(template.format(x='x'))};"
    for name, template in HELPERS.items()
)


# The memory budget is the whole process's: DuckDB gets this share of it and spills past it;
# the rest is for what Python holds (aggregates, findings, Arrow results of queries).
DUCKDB_SHARE = 0.7
_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}  # fmt: skip


def parse_size(text: str) -> int:
    """Bytes in a size such as "4GB", "4096 MiB" or "512MB" (DuckDB's units)."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", text)
    unit = match.group(2).upper() if match else ""
    if not match or unit not in _UNITS:
        raise ValueError(f"not a memory size: {text!r} (use for example 4GB or 4096MB)")
    return int(float(match.group(1)) * _UNITS[unit])


def memory_budget() -> int:
    """The process's memory budget in bytes: BREACHTRACE_MEMORY_LIMIT, else half the RAM."""
    configured = os.environ.get("BREACHTRACE_MEMORY_LIMIT")
    if configured:
        return parse_size(configured)
    return int(psutil.virtual_memory().total // 2)


def default_memory_limit() -> str:
    """DuckDB's share of the memory budget (see ``memory_budget``)."""
    return f"{max(64, int(memory_budget() * DUCKDB_SHARE) // 2**20)}MiB"


def connect(
    database: str | Path = ":memory:",
    *,
    memory_limit: str | None = None,
    threads: int | None = None,
    temp_directory: Path | None = None,
    read_only: bool = False,
    metadata_cache: bool = False,
) -> duckdb.DuckDBPyConnection:
    """Open a DuckDB connection with breachtrace's session settings and macros.

    ``metadata_cache`` keeps Parquet footers between queries: for stages that run many small
    lookups over the same files (trace, scope), where reading them again was most of the cost."""
    con = duckdb.connect(str(database), read_only=read_only)
    con.execute("SET TimeZone = 'UTC'")
    # the stages report their own progress; DuckDB's bar would interleave with it on stderr
    con.execute("SET enable_progress_bar = false")
    con.execute(f"SET memory_limit = '{memory_limit or default_memory_limit()}'")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    if temp_directory is not None:
        con.execute(f"SET temp_directory = '{_sql_str(str(temp_directory))}'")
    con.execute("SET preserve_insertion_order = false")
    if metadata_cache:
        con.execute("SET parquet_metadata_cache = true")
    if not read_only:
        con.execute(MACROS)
    else:
        for stmt in MACROS.replace("CREATE OR REPLACE MACRO", "CREATE OR REPLACE TEMP MACRO").split(
            ";"
        ):
            if stmt.strip():
                con.execute(stmt)
    return con


def _sql_str(value: str) -> str:
    return value.replace("'", "''")


def sql_literal(value: str) -> str:
    """A value as a SQL string literal (quotes doubled); for paths and names, never user SQL."""
    return "'" + _sql_str(value) + "'"


def sql_identifier(name: str) -> str:
    """A name (column, database) as a quoted SQL identifier (double quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


class DuckDBEngine:
    """The ``Engine`` over a DuckDB connection (the default: one machine, spilling to disk)."""

    name = "duckdb"

    def __init__(self, con: duckdb.DuckDBPyConnection, events_source: str | None = None) -> None:
        self.con = con
        self.events_source = events_source  # the FROM source the view ``events`` reads

    def restrict_events(self, condition: str) -> None:
        """Narrow the view ``events`` to the rows meeting ``condition`` (SQL)."""
        source = self.events_source or "events"
        self.con.execute(
            f"CREATE OR REPLACE TEMP VIEW events AS SELECT * FROM {source} WHERE {condition}"
        )

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        self.con.execute(sql, list(params) if params else None)

    def table(self, sql: str, params: Sequence[Any] | None = None) -> pa.Table:
        return self.con.sql(sql, params=list(params) if params else None).to_arrow_table()

    def create_table(self, name: str, sql: str, *, row_ids: bool = False) -> None:
        # DuckDB tables always have the ``rowid`` pseudo-column. Not TEMP: a temporary table is
        # private to its connection, and ``worker`` cursors must see it (the database is
        # in-memory anyway).
        self.con.execute(f"CREATE OR REPLACE TABLE {name} AS {sql}")

    def register(self, name: str, table: pa.Table) -> None:
        self.con.register(name, table)

    def unregister(self, name: str) -> None:
        self.con.unregister(name)

    def worker(self) -> DuckDBEngine:
        return DuckDBEngine(self.con.cursor())

    def close(self) -> None:
        self.con.close()
