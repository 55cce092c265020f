"""The DuckDB engine: connections configured the same way for every stage.

Sessions run in UTC so that timestamps with offsets are converted, never silently truncated,
and memory is capped (DuckDB spills to disk beyond the cap) so big cases fit a laptop.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import psutil

# Small SQL helpers every stage uses, defined once. Empty strings and the Windows "-" placeholder
# mean "no value"; IPv4-mapped IPv6 addresses are written as plain IPv4.
MACROS = r"""
CREATE OR REPLACE MACRO bt_null(x) AS
    CASE WHEN trim(CAST(x AS VARCHAR)) IN ('', '-', '(null)', 'null', 'NULL') THEN NULL
         ELSE trim(CAST(x AS VARCHAR)) END;
CREATE OR REPLACE MACRO bt_ts(x) AS
    timezone('UTC', try_cast(replace(trim(CAST(x AS VARCHAR)), ' UTC', '') AS TIMESTAMPTZ));
CREATE OR REPLACE MACRO bt_epoch(x) AS
    CAST(to_timestamp(try_cast(x AS DOUBLE)) AT TIME ZONE 'UTC' AS TIMESTAMP);
CREATE OR REPLACE MACRO bt_ip(x) AS
    CASE WHEN bt_null(x) IS NULL THEN NULL
         WHEN starts_with(lower(bt_null(x)), '::ffff:') THEN substr(bt_null(x), 8)
         ELSE bt_null(x) END;
CREATE OR REPLACE MACRO bt_host(x) AS
    CASE WHEN bt_null(x) IS NULL THEN NULL
         WHEN regexp_full_match(bt_null(x), '[0-9]{1,3}(\.[0-9]{1,3}){3}') THEN bt_null(x)
         ELSE lower(split_part(ltrim(bt_null(x), '\'), '.', 1)) END;
CREATE OR REPLACE MACRO bt_int(x) AS
    CASE WHEN starts_with(lower(trim(CAST(x AS VARCHAR))), '0x')
         THEN try_cast(try_cast(CAST(x AS VARCHAR) AS UBIGINT) AS BIGINT)
         ELSE try_cast(try_cast(CAST(x AS VARCHAR) AS DOUBLE) AS BIGINT) END;
CREATE OR REPLACE MACRO bt_user(x) AS lower(bt_null(x));
"""


def default_memory_limit() -> str:
    """Half of the machine's RAM unless BREACHTRACE_MEMORY_LIMIT says otherwise."""
    configured = os.environ.get("BREACHTRACE_MEMORY_LIMIT")
    if configured:
        return configured
    return f"{max(1, psutil.virtual_memory().total // 2 // 2**20)}MB"


def connect(
    database: str | Path = ":memory:",
    *,
    memory_limit: str | None = None,
    threads: int | None = None,
    temp_directory: Path | None = None,
    read_only: bool = False,
) -> duckdb.DuckDBPyConnection:
    """Open a DuckDB connection with breachtrace's session settings and macros."""
    con = duckdb.connect(str(database), read_only=read_only)
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"SET memory_limit = '{memory_limit or default_memory_limit()}'")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    if temp_directory is not None:
        con.execute(f"SET temp_directory = '{_sql_str(str(temp_directory))}'")
    con.execute("SET preserve_insertion_order = false")
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
