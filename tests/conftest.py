"""Shared test helpers: fixture paths, the optional shared corpus, and a one-call ingest."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from breachtrace.case import Case
from breachtrace.ingest.runner import IngestSummary, ingest

DATA = Path(__file__).parent / "data"
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"

needs_corpus = pytest.mark.skipif(
    not CORPUS.is_dir(),
    reason=f"shared corpus not present at {CORPUS} (fresh clone without ../shared)",
)


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables printed as wide as their content: a narrow terminal's COLUMNS (a developer's
    shell) folds the cells the CLI tests read."""
    monkeypatch.setenv("COLUMNS", "200")


def ingest_and_query(case_dir: Path, *paths: Path, **kwargs: Any) -> tuple[IngestSummary, Any]:
    """Ingest paths into a case and return (summary, DuckDB connection with the case views)."""
    summary = ingest(case_dir, list(paths), **kwargs)
    return summary, Case.open(case_dir).connect()


def rows(con: Any, sql: str, *params: Any) -> list[dict[str, Any]]:
    cursor = con.execute(sql, list(params))
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """A headless Debian chromium driven by Playwright (skips when not installed)."""
    from report_support import launch_chromium

    yield from launch_chromium()
