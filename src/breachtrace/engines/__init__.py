"""Query engines: DuckDB by default (engines.duckdb); Apache Spark for scale-out."""
