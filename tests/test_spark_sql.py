"""DuckDB-to-Spark SQL rewrites that sqlglot gets wrong, checked without a Spark runtime."""

from __future__ import annotations

import re

from breachtrace.engines.spark_sql import transpile


def test_isodow_maps_sparks_sunday_first_days_to_iso_days() -> None:
    sql = transpile("SELECT isodow(ts) AS d FROM t")
    match = re.search(r"\(\(DAYOFWEEK\(ts\) \+ (\d+)\) % 7 \+ 1\)", sql)
    assert match, sql
    shift = int(match.group(1))
    # Spark's dayofweek: Sunday 1 .. Saturday 7; ISO: Monday 1 .. Sunday 7
    spark_days = {"sun": 1, "mon": 2, "tue": 3, "wed": 4, "thu": 5, "fri": 6, "sat": 7}
    iso = {day: (n + shift) % 7 + 1 for day, n in spark_days.items()}
    assert iso == {"mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6, "sun": 7}
