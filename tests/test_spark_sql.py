"""DuckDB-to-Spark SQL rewrites that sqlglot gets wrong, checked without a Spark runtime."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import duckdb

from breachtrace.engines.spark_sql import bind_parameters, transpile


def test_isodow_maps_sparks_sunday_first_days_to_iso_days() -> None:
    sql = transpile("SELECT isodow(ts) AS d FROM t")
    match = re.search(r"\(\(DAYOFWEEK\(ts\) \+ (\d+)\) % 7 \+ 1\)", sql)
    assert match, sql
    shift = int(match.group(1))
    # Spark's dayofweek: Sunday 1 .. Saturday 7; ISO: Monday 1 .. Sunday 7
    spark_days = {"sun": 1, "mon": 2, "tue": 3, "wed": 4, "thu": 5, "fri": 6, "sat": 7}
    iso = {day: (n + shift) % 7 + 1 for day, n in spark_days.items()}
    assert iso == {"mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6, "sun": 7}


def test_parameters_are_bound_as_literals_with_the_meaning_duckdb_gives_them() -> None:
    # text order, never a ? inside a string or a comment; an aware time is read in UTC
    sql = ("SELECT '?' AS q, list_contains(?, 'o''k') AS has, ? * 2 AS f, ? AS ts, ? AS n, "
           "? AS b, len(?) AS empty -- ?\n")  # fmt: skip
    tokyo = datetime(2020, 1, 2, 9, 0, 0, 500, tzinfo=timezone(timedelta(hours=9)))
    params = [["x", "o'k"], 1.25, tokyo, None, True, []]
    bound = bind_parameters(sql, params)
    assert bound.count("'?'") == 1 and bound.endswith("-- ?\n")
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    assert con.execute(bound).fetchall() == [
        ("?", True, 2.5, datetime(2020, 1, 2, 0, 0, 0, 500), None, True, 0)
    ]
    assert "CAST('2020-01-02 00:00:00.000500' AS TIMESTAMP_NTZ)" in transpile(bound)


def test_side_by_side_unnests_are_zipped_as_duckdb_zips_them() -> None:
    sql = "SELECT 1 AS g, unnest(['a', 'b', 'c']) AS k, unnest([x, y]) AS v FROM t WHERE x > 0"
    assert transpile(sql) == (
        "SELECT 1 AS g, INLINE(ARRAYS_ZIP(ARRAY('a', 'b', 'c'), ARRAY(x, y))) AS (k, v) "
        "FROM t WHERE x > 0"
    )
    # DuckDB pairs the i-th elements and pads the shorter list, as arrays_zip does
    rows = (
        duckdb.connect()
        .execute(
            "SELECT 1 AS g, unnest(['a', 'b', 'c']) AS k, unnest([x, y]) AS v "
            "FROM (SELECT 1 AS x, 2 AS y) WHERE x > 0"
        )
        .fetchall()
    )
    assert rows == [(1, "a", 1), (1, "b", 2), (1, "c", None)]
    alone = "SELECT unnest([x, y]) AS v, 2 AS w, unnest([z]) AS u FROM t"
    assert "ARRAYS_ZIP" not in transpile(alone)  # not side by side: left as it was
