"""What compiled rules and the hunt share, without pySigma: field columns, the keyword
pseudo-field, SQL string literals, and the backend version that keys the compiled-rule cache.

Kept apart from ``backend.py`` so that a hunt whose rules all come from the cache never imports
pySigma (about a third of a second of start-up).
"""

from __future__ import annotations

from importlib.metadata import version

from breachtrace.engines.duckdb import sql_identifier

# Bump when the SQL the backend emits changes: compiled rules cached by older versions are redone.
BACKEND_VERSION = f"bt-duckdb-15/pysigma-{version('pySigma')}"
KEYWORD_FIELD = "@raw"


def field_column(field: str, *, lower: bool = False) -> str:
    """The quoted column holding a Sigma field's value (or its lower-cased value).

    DuckDB identifiers are case-insensitive, Sigma field names are not, so upper-case letters
    are spelled ``^x``: ``CommandLine`` -> ``"v:^command^line"``.
    """
    return quoted(column_name(field, lower=lower))


def column_name(field: str, *, lower: bool = False) -> str:
    """``field_column`` unquoted (as the trees of rules decided in Python name columns)."""
    spelled = "".join("^" + c.lower() if c.isupper() else c for c in field)
    return f"{'l' if lower else 'v'}:{spelled}"


def quoted(name: str) -> str:
    """A column name as a quoted SQL identifier."""
    return sql_identifier(name)


def sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
