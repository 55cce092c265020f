"""Commands writing into one case at once: each interleaving below once lost or tore data.
Every test forces its instant deterministically (a second writer run inside the first's
window), so it fails on the code before the fix whatever the machine's timing."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import breachtrace.context as context_module
import breachtrace.findings as findings_module
from breachtrace.case import Case
from breachtrace.context import store_context_file
from breachtrace.findings import write_findings
from breachtrace.schema import FINDING_SCHEMA

from conftest import DATA, rows


def _findings(prefix: str, n: int) -> pa.Table:
    table = FINDING_SCHEMA.empty_table().to_pydict()
    for name in table:
        table[name] = [None] * n
    table["finding_id"] = [f"{prefix}{i}" for i in range(n)]
    table["source"] = ["sigma"] * n
    return pa.table(table).cast(FINDING_SCHEMA)


def test_two_writers_of_one_findings_set_leave_one_whole_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hunt writes the Sigma findings while another hunt writes them whole; with one shared
    temporary name the second truncated and renamed the first's file mid-write."""
    case = Case.open(tmp_path / "case", create=True)

    class HalfwayInterrupted:
        @staticmethod
        def write_table(table: pa.Table, where: Path, compression: str) -> None:
            with pq.ParquetWriter(where, table.schema, compression=compression) as writer:
                writer.write_table(table.slice(0, 500))
                monkeypatch.setattr(findings_module, "pq", pq)
                write_findings(case, "sigma", _findings("B", 1000))  # the other hunt, whole
                writer.write_table(table.slice(500))

    monkeypatch.setattr(findings_module, "pq", HalfwayInterrupted)
    write_findings(case, "sigma", _findings("A", 1000))
    stored = pq.read_table(case.findings_dir / "sigma.parquet")
    ids = set(stored.column("finding_id").to_pylist())
    assert ids == {f"A{i}" for i in range(1000)}  # the last rename wins, whole
    assert [p.name for p in case.findings_dir.iterdir()] == ["sigma.parquet"]


def test_context_files_stored_at_once_both_keep_their_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two commands store different context files; the second's record of custody was lost
    when both read context.json before either wrote it."""
    case = Case.open(tmp_path / "case", create=True)
    networks = tmp_path / "networks.csv"
    networks.write_text("cidr,site\n10.0.0.0/8,hq\n")
    identities = tmp_path / "identities.csv"
    identities.write_text("user,home_site\nalice,hq\n")
    real_loads = json.loads
    other: list[threading.Thread] = []

    def loads_then_let_the_other_run(text: str) -> object:
        record = real_loads(text)
        if not other:  # the first store has read the record: the second runs now
            other.append(threading.Thread(
                target=store_context_file, args=(Case.open(case.root), "identities", identities)
            ))  # fmt: skip
            other[0].start()
            other[0].join(timeout=1)  # it waits for the case's lock, or (before) ran through
        return record

    (case.root / "context").mkdir()
    (case.root / "context" / "context.json").write_text("{}")
    monkeypatch.setattr(context_module.json, "loads", loads_then_let_the_other_run)
    store_context_file(case, "networks", networks)
    other[0].join(timeout=30)
    monkeypatch.setattr(context_module.json, "loads", real_loads)
    record = real_loads((case.root / "context" / "context.json").read_text())
    assert sorted(record) == ["identities", "networks"]


def test_a_case_being_created_by_another_process_is_opened_not_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two ingests into one new case: the second saw no case.json, then the first's files,
    and refused the folder as 'not empty and not a case'."""
    root = tmp_path / "case"
    Case.open(root, create=True)  # the other process, done in the meantime
    real_exists = Path.exists
    asked: list[Path] = []

    def case_json_absent_at_first_look(self: Path) -> bool:
        if self.name == "case.json" and not asked:
            asked.append(self)
            return False
        return real_exists(self)

    monkeypatch.setattr(Path, "exists", case_json_absent_at_first_look)
    case = Case.open(root, create=True)
    assert asked and case.root == root.resolve()


def test_a_batch_halfway_through_its_commit_is_not_read(tmp_path: Path) -> None:
    """A commit moves its files into events/ before it renames its manifest; a reader
    globbing events/ read the half-committed batch (and, had its process died there, events
    the next recovery deletes)."""
    from breachtrace.ingest.runner import ingest

    case_dir = tmp_path / "case"
    ingest(case_dir, [DATA / "zeek" / "conn.log"])
    case = Case.open(case_dir)
    before = rows(case.connect(), "SELECT count(*) AS n FROM events")[0]["n"]
    assert before > 0
    stored = next(case.events_dir.rglob("*.parquet"))
    moving = stored.with_name("20991231T000000-deadbeef_00000_0.parquet")  # no manifest yet
    moving.write_bytes(stored.read_bytes())
    (case.rejects_dir / "20991231T000000-deadbeef.parquet").write_bytes(stored.read_bytes())
    con = case.connect()  # not Case.open: its recovery would remove the files first
    assert rows(con, "SELECT count(*) AS n FROM events")[0]["n"] == before
    assert rows(con, "SELECT count(*) AS n FROM rejects")[0]["n"] == 0


def test_one_file_given_to_two_ingests_at_once_is_stored_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second ingest began before the first committed the same file: it looked the file up
    in a manifest without it, and both committed it (every event stored twice)."""
    from breachtrace.ingest.runner import ingest

    case_dir = tmp_path / "case"
    doubled = tmp_path / "schtasks.json"  # with a bad record: its reject must not double either
    doubled.write_bytes((DATA / "nxlog" / "otrf-schtask-sample.json").read_bytes() + b"{broken\n")
    # another file of the same format: normalized with it, so its rows share a staged file
    # that the commit rewrites without the duplicate's
    other = tmp_path / "other.json"
    other.write_bytes(b"".join(doubled.read_bytes().splitlines(keepends=True)[:3]))
    inputs = [doubled, other]
    ingest(case_dir, inputs[:1])  # the first ingest, committed while the second was reading
    first = Case.open(case_dir).connect()
    once = rows(first, "SELECT count(*) AS n FROM events")[0]["n"]
    rejected = rows(first, "SELECT count(*) AS n FROM rejects")[0]["n"]
    assert rejected == 1
    real_manifest = Case.manifest
    looked: list[bool] = []

    def manifest_from_before_the_first_commit(self: Case) -> list:
        if not looked:  # the second ingest's look at the start
            looked.append(True)
            return []
        return real_manifest(self)

    monkeypatch.setattr(Case, "manifest", manifest_from_before_the_first_commit)
    summary = ingest(case_dir, inputs)
    monkeypatch.setattr(Case, "manifest", real_manifest)
    statuses = {Path(f.path).name: f.status for f in summary.files}
    assert statuses == {"schtasks.json": "duplicate", "other.json": "ingested"}
    case = Case.open(case_dir)
    con = case.connect()
    by_input = rows(con, "SELECT input_id, count(*) AS n FROM events GROUP BY ALL ORDER BY n")
    kept = next(f for f in summary.files if f.status == "ingested").records_read
    assert kept == 3
    assert sorted(r["n"] for r in by_input) == sorted([once, kept])  # its rows once
    assert sorted(Path(e.path).name for e in case.manifest()) == ["other.json", "schtasks.json"]
    assert rows(con, "SELECT count(*) AS n FROM rejects")[0]["n"] == rejected
    # the rewritten files keep the store's columns (a file's month is its folder, not a column)
    schemas = {tuple(pq.read_schema(f).names) for f in case.events_dir.rglob("*.parquet")}
    assert len(schemas) == 1 and "month" not in next(iter(schemas))


def test_what_a_killed_writer_left_is_removed_by_the_next_write(tmp_path: Path) -> None:
    case = Case.open(tmp_path / "case", create=True)
    case.findings_dir.mkdir()
    left = case.findings_dir / ".sigma.parquet.4242-0123456789ab.tmp"
    left.write_bytes(b"half a file")
    fresh = case.findings_dir / ".sigma.parquet.4243-0123456789ab.tmp"  # being written now
    fresh.write_bytes(b"being written")
    old = left.stat().st_mtime - 2 * 3600
    os.utime(left, (old, old))
    write_findings(case, "sigma", _findings("A", 3))
    assert not left.exists() and fresh.exists()
    assert pq.read_table(case.findings_dir / "sigma.parquet").num_rows == 3


def test_the_duckdb_cli_views_see_an_ingest_that_could_not_rewrite_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """case.duckdb's views read the folder when queried, not a list of files made at the last
    rewrite: an ingest that could not rewrite them (a CLI session holding the file) is seen."""
    import duckdb

    from breachtrace.ingest.runner import ingest

    case_dir = tmp_path / "case"
    first = ingest(case_dir, [DATA / "zeek" / "conn.log"])

    def busy(self: Case, con: object = None) -> None:
        raise duckdb.IOException("the file is held by another process")

    monkeypatch.setattr(Case, "refresh_database", busy)
    second = ingest(case_dir, [DATA / "authlog" / "auth.log"])
    assert second.warnings  # said, not failed
    with duckdb.connect(str(case_dir / "case.duckdb"), read_only=True) as con:
        count = con.execute("SELECT count(*) FROM events").fetchone()
    assert count == (first.events + second.events,)
