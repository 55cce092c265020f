"""Findings kept in the case: one Parquet file per (source, run), replaced when re-run."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import astuple

import pyarrow as pa
import pyarrow.parquet as pq

from breachtrace.atomic_write import replacing
from breachtrace.case import Case
from breachtrace.engines.duckdb import sql_literal
from breachtrace.schema import FINDING_SCHEMA, Finding


def findings_table(findings: Iterable[Finding]) -> pa.Table:
    rows = [astuple(f) for f in findings]
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in FINDING_SCHEMA]
    return pa.table(
        [pa.array([list(v) if isinstance(v, tuple) else v for v in col], f.type)
         for col, f in zip(columns, FINDING_SCHEMA, strict=True)],
        schema=FINDING_SCHEMA,
    )  # fmt: skip


def write_findings(case: Case, name: str, table: pa.Table) -> None:
    """Replace the findings set ``name`` (e.g. "sigma", "lateral") atomically."""
    case.findings_dir.mkdir(exist_ok=True)
    with replacing(case.findings_dir / f"{name}.parquet") as tmp:
        pq.write_table(table.cast(FINDING_SCHEMA), tmp, compression="zstd")


def findings_source_sql(case: Case) -> str:
    """A FROM-clause source over every findings set of the case (empty if none)."""
    has_findings = case.findings_dir.is_dir() and any(case.findings_dir.glob("*.parquet"))
    if not has_findings:
        return "(SELECT * FROM findings_empty)"
    return (
        f"read_parquet({sql_literal(str(case.findings_dir / '*.parquet'))}, union_by_name = true)"
    )
