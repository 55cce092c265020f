"""Helpers for the detect tests: hand-written events straight into a case store, and simulated
or corpus cases built once and kept in pytest's cache.

Ingesting Windows logs currently costs about half a minute of DuckDB planning per batch on the
development machine, whatever the size, so the simulated and corpus cases are cached under
pytest's cache directory, keyed by the scenario and a hash of the simulator and ingest sources
(``pytest --cache-clear`` rebuilds them).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from breachtrace.case import Case, ManifestEntry, new_batch_id
from breachtrace.schema import EVENT_SCHEMA

SRC = Path(__file__).resolve().parents[1] / "src" / "breachtrace"


def t(day: int, hour: float = 0.0, minute: float = 0.0, second: float = 0.0) -> dt.datetime:
    """A time on day ``day`` of a fixed test period (2021-03-01 is day 0), UTC."""
    return dt.datetime(2021, 3, 1) + dt.timedelta(
        days=day, hours=hour, minutes=minute, seconds=second
    )


def write_events(case_dir: Path, rows: list[dict[str, Any]], *, name: str = "unit") -> Case:
    """Commit ``rows`` (dicts of normalized columns; ts required) as one batch of a case."""
    case = Case.open(case_dir, create=True)
    batch = new_batch_id()
    input_id = hashlib.sha256(f"{name}{batch}".encode()).hexdigest()[:12]
    full = []
    for i, r in enumerate(rows):
        row = {f.name: None for f in EVENT_SCHEMA}
        row.update(r)
        row.setdefault("source_format", "nxlog")
        row["input_id"] = input_id
        row["input_record"] = i + 1
        row["event_uid"] = row.get("event_uid") or f"{input_id}:{i + 1}"
        row["raw"] = row.get("raw") or "{}"
        full.append(row)
    table = pa.Table.from_pylist(full, schema=EVENT_SCHEMA)
    staged = case.staging_dir / batch
    # the store's layout: events/month=YYYY-MM/<batch>_<n>.parquet
    months = sorted({r["ts"].strftime("%Y-%m") for r in full})
    for month in months:
        keep = [r["ts"].strftime("%Y-%m") == month for r in full]
        target = staged / f"month={month}"
        target.mkdir(parents=True, exist_ok=True)
        pq.write_table(table.filter(pa.array(keep)), target / f"{batch}_0.parquet")
    entry = ManifestEntry(
        path=f"/test/{name}", sha256=hashlib.sha256(batch.encode()).hexdigest(), size=0,
        format="test", records_read=len(full), input_id=input_id,
    )  # fmt: skip
    case.commit_batch(batch, [entry], staged)
    return case


def _sources_hash() -> str:
    h = hashlib.sha256()
    for sub in ("simulate", "ingest"):
        for p in sorted((SRC / sub).rglob("*.py")):
            h.update(p.read_bytes())
    # ingest runs on the DuckDB engine only; the Spark engine's files do not change a case
    sources = [SRC / "schema.py", SRC / "case.py", SRC / "engines" / "duckdb.py"]
    for p in [*sources, *sorted((SRC / "data").glob("*.yaml"))]:
        if p.name != "detect.yaml":
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


def cached_dir(request: pytest.FixtureRequest, key: str, build: Callable[[Path], None]) -> Path:
    """A directory built once by ``build`` and kept in pytest's cache (rebuilt when the
    simulator or ingest sources change, or after ``pytest --cache-clear``)."""
    cache = getattr(request.config, "cache", None)  # absent with -p no:cacheprovider
    if cache is not None:
        root = Path(cache.mkdir("breachtrace-detect"))
    else:
        root = request.getfixturevalue("tmp_path_factory").mktemp("breachtrace-detect")
    target = root / f"{key}-{_sources_hash()}"
    done = target / ".complete"
    if not done.exists():
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        build(target)
        done.write_text("ok\n")
    return target


def simulated(
    request: pytest.FixtureRequest, scenario: str, hosts: int, days: int, seed: int
) -> Path:
    """sim/ and case/ for a scenario (sprays injected unless quiet), built once."""
    from breachtrace.detect.behaviour.evaluation import inject_sprays
    from breachtrace.ingest.runner import ingest
    from breachtrace.simulate import simulate

    def build(target: Path) -> None:
        simulate(target / "sim", scenario, hosts=hosts, days=days, seed=seed)
        if scenario != "quiet":
            inject_sprays(target / "sim", seed=seed)
        ingest(target / "case", [target / "sim" / "logs"])

    return cached_dir(request, f"{scenario}-{hosts}-{days}-{seed}", build)


def fresh_copy(src_case: Path, dst: Path) -> Path:
    """A copy of a cached case to run detect in (so findings never touch the cache)."""
    shutil.copytree(src_case, dst, ignore=shutil.ignore_patterns("findings", "staging"))
    return dst
