"""The case store: idempotent re-ingest, recovery from a killed ingest, layout, manifest."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import orjson
import pytest

from breachtrace.case import Case

from conftest import DATA, ingest_and_query, rows


def _nxlog_lines(n: int, host: str, start_record: int = 1) -> str:
    out = []
    for i in range(n):
        out.append(orjson.dumps({
            "EventID": 4663, "Channel": "Security", "Hostname": f"{host}.corp.example",
            "SourceName": "Microsoft-Windows-Security-Auditing",
            "@timestamp": f"2020-05-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:00.000Z",
            "RecordNumber": start_record + i, "SubjectUserName": f"user{i % 50}",
            "ObjectName": f"D:\\\\shares\\\\clients\\\\C{i % 900:04d}\\\\file{i}.docx",
        }).decode())  # fmt: skip
    return "\n".join(out) + "\n"


def test_reingest_same_file_is_a_noop(tmp_path: Path) -> None:
    first, _ = ingest_and_query(tmp_path / "case", DATA / "evtx", DATA / "zeek")
    again, con = ingest_and_query(tmp_path / "case", DATA / "evtx", DATA / "zeek")
    assert first.events > 0 and again.events == 0
    assert again.count("duplicate") == len(again.files) == len(first.files)
    assert all("already ingested" in f.message for f in again.files)
    assert rows(con, "SELECT count(*) AS n FROM events")[0]["n"] == first.events


def test_same_content_twice_in_one_run(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for d in ("a", "b"):
        (tmp_path / d / "x.json").write_text(_nxlog_lines(10, "ws1"))
    summary, con = ingest_and_query(tmp_path / "case", tmp_path / "a", tmp_path / "b")
    assert [f.status for f in summary.files] == ["ingested", "duplicate"]
    assert rows(con, "SELECT count(*) AS n FROM events")[0]["n"] == 10


def test_same_compressed_content_twice_is_a_duplicate(tmp_path: Path) -> None:
    """Inputs not hashed before they are parsed (.gz, archive members) are matched by their
    fingerprint, then confirmed by SHA-256; plain small files by SHA-256 alone (above)."""
    data = _nxlog_lines(10, "ws1").encode()
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "x.json.gz").write_bytes(gzip.compress(data, mtime=0))
        with zipfile.ZipFile(tmp_path / d / "y.zip", "w") as zf:
            zf.writestr("y.json", _nxlog_lines(5, "ws2"))
    summary, con = ingest_and_query(tmp_path / "case", tmp_path / "a", tmp_path / "b")
    assert [f.status for f in summary.files] == ["ingested", "ingested", "duplicate", "duplicate"]
    assert rows(con, "SELECT count(*) AS n FROM events")[0]["n"] == 15
    entries = Case.open(tmp_path / "case").manifest()
    assert all(e.fingerprint and len(e.sha256) == 64 for e in entries)


def test_zip_member_copy_of_a_plain_file_is_a_duplicate(tmp_path: Path) -> None:
    """The same bytes as a plain file and as an archive member, in one run and in the next."""
    text = _nxlog_lines(10, "ws1")
    for run in ("one", "next"):
        (tmp_path / run).mkdir()
        (tmp_path / run / "a.json").write_text(text)
        with zipfile.ZipFile(tmp_path / run / "b.zip", "w") as zf:
            zf.writestr("a.json", text)
    summary, _ = ingest_and_query(tmp_path / "case", tmp_path / "one")
    assert [f.status for f in summary.files] == ["ingested", "duplicate"]
    (tmp_path / "next" / "a.json").unlink()
    again, con = ingest_and_query(tmp_path / "case", tmp_path / "next")
    assert [f.status for f in again.files] == ["duplicate"]
    assert rows(con, "SELECT count(*) AS n FROM events")[0]["n"] == 10


def test_file_name_not_utf8_is_kept_escaped(tmp_path: Path) -> None:
    """A name in another encoding is ingested; the manifest and case.duckdb show its bytes
    escaped, and a second ingest into the case still works."""
    folder = tmp_path / "in"
    folder.mkdir()
    raw_name = os.fsencode(folder) + b"/caf\xe9.json"
    with open(raw_name, "w") as fh:
        fh.write(_nxlog_lines(5, "ws1"))
    summary, _ = ingest_and_query(tmp_path / "case", folder)
    assert summary.events == 5 and not summary.warnings
    assert summary.files[0].path.endswith("caf\\xe9.json")
    (folder / "other.json").write_text(_nxlog_lines(3, "ws2"))
    again, _ = ingest_and_query(tmp_path / "case", folder)
    assert again.events == 3 and not again.warnings
    case = Case.open(tmp_path / "case")
    assert any(e.path.endswith("caf\\xe9.json") for e in case.manifest())
    import duckdb

    con = duckdb.connect(str(case.database_path), read_only=True)
    assert con.execute("SELECT count(*) FROM manifest").fetchone()[0] == 2


def test_layout_partitioned_by_month_with_manifest(tmp_path: Path) -> None:
    path = tmp_path / "in.json"
    path.write_text(_nxlog_lines(100, "fs1"))
    ingest_and_query(tmp_path / "case", path)
    case = Case.open(tmp_path / "case")
    months = sorted(p.name for p in case.events_dir.iterdir())
    assert months == ["month=2020-05"]
    entry = case.manifest()[0]
    assert entry.records_read == 100 and entry.format == "nxlog" and len(entry.sha256) == 64
    assert entry.first_ts.startswith("2020-05-01") and entry.size == path.stat().st_size
    import duckdb

    con = duckdb.connect(str(case.database_path), read_only=True)
    assert con.execute("SELECT count(*) FROM events").fetchone()[0] == 100
    assert con.execute("SELECT records_read FROM manifest").fetchone()[0] == 100


PARTS = 9


def test_killed_ingest_recovers_without_duplicates_or_loss(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    # committed one part at a time: time enough after the second commit to kill the ingest,
    # even on a loaded machine
    for k in range(PARTS):
        (inputs / f"part{k}.json").write_text(_nxlog_lines(20_000, f"host{k}", k * 100_000))
    env = os.environ | {"BREACHTRACE_CHUNK_ROWS": "5000", "BREACHTRACE_COMMIT_ROWS": "20000"}
    case_dir = tmp_path / "case"
    cmd = [sys.executable, "-m", "breachtrace", "ingest", "--case", str(case_dir), str(inputs)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    manifest = case_dir / "manifest"
    while time.time() < deadline and proc.poll() is None:
        if manifest.is_dir() and len(list(manifest.glob("*.json"))) >= 2:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "ingest finished before it could be interrupted"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    committed = len(list(manifest.glob("*.json")))
    assert 2 <= committed < PARTS

    finished = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    _clean, clean_con = ingest_and_query(tmp_path / "clean", inputs)
    con = Case.open(case_dir).connect()
    query = "SELECT host, record_id, count(*) AS n FROM events GROUP BY ALL ORDER BY ALL"
    assert rows(con, query) == rows(clean_con, query)
    assert rows(con, "SELECT count(*) AS n FROM events")[0]["n"] == PARTS * 20_000
    assert (
        rows(con, "SELECT max(n) AS m FROM (SELECT count(*) AS n FROM events GROUP BY event_uid)")[
            0
        ]["m"]
        == 1
    )
    assert len(Case.open(case_dir).manifest()) == PARTS


def test_memory_budget_is_the_process_and_duckdb_gets_a_share(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from breachtrace.engines import duckdb as engine

    monkeypatch.setenv("BREACHTRACE_MEMORY_LIMIT", "4GB")
    con = engine.connect()
    try:
        limit = con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
    finally:
        con.close()
    assert limit == "2.6 GiB"  # 70% of 4 GB, the rest left for Python's side
    monkeypatch.setenv("BREACHTRACE_MEMORY_LIMIT", "plenty")
    with pytest.raises(ValueError, match="'plenty'"):
        engine.default_memory_limit()


def test_moved_case_keeps_its_duckdb_database_working(tmp_path: Path) -> None:
    """case.duckdb's views hold absolute paths: a command run on a moved or copied case
    rewrites them, so the DuckDB CLI works on the copy."""
    import duckdb

    path = tmp_path / "in.json"
    path.write_text(_nxlog_lines(20, "fs1"))
    ingest_and_query(tmp_path / "case", path)
    moved = tmp_path / "elsewhere" / "case"
    moved.parent.mkdir()
    (tmp_path / "case").rename(moved)
    stale = duckdb.connect(str(moved / "case.duckdb"), read_only=True)
    with pytest.raises(duckdb.Error):  # still names the old folder
        stale.execute("SELECT count(*) FROM events").fetchone()
    stale.close()
    Case.open(moved)
    con = duckdb.connect(str(moved / "case.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM events").fetchone()[0] == 20
    assert con.execute("SELECT records_read FROM manifest").fetchone()[0] == 20


def test_inputs_normalized_alike_are_ingested_together(tmp_path: Path) -> None:
    """A folder per host alternating formats is ingested grouped by normalizing SQL (path order
    kept within a group), so a chunk holds many files; nothing is lost or reordered within."""
    from breachtrace.ingest.formats import all_readers
    from breachtrace.ingest.runner import _grouped
    from breachtrace.ingest.sources import discover

    for site in ("site1", "site2"):
        folder = tmp_path / "in" / site
        folder.mkdir(parents=True)
        for name in ("conn.log", "dns.log"):  # made distinct: not duplicates of each other
            text = (DATA / "zeek" / name).read_text()
            (folder / name).write_text(text + f"#close\t{site}\n")
        auth = (DATA / "authlog" / "auth.log").read_text()
        (folder / "auth.log").write_text(auth + f"Jan  2 00:00:01 {site} CRON[1]: x\n")
    order = _grouped(list(discover([tmp_path / "in"])), all_readers([]), None)
    assert [Path(f.display).relative_to(tmp_path / "in").as_posix() for f, _reader in order] == [
        "site1/auth.log", "site2/auth.log", "site1/conn.log", "site2/conn.log",
        "site1/dns.log", "site2/dns.log",
    ]  # fmt: skip
    assert [reader.name for _f, reader in order if reader] == ["authlog"] * 2 + ["zeek"] * 4
    summary, con = ingest_and_query(tmp_path / "case", tmp_path / "in")
    assert summary.count("ingested") == 6 and summary.rejected == 0
    per_file = {e.path: e.records_read for e in Case.open(tmp_path / "case").manifest()}
    assert len(per_file) == 6 and sum(per_file.values()) == summary.events
    total = rows(con, "SELECT count(*) AS n FROM events")[0]["n"]
    assert total == summary.events


def test_recovery_by_another_process_never_takes_a_new_batch_for_dead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A parallel ingest's recovery may run at any instant, also the one between a batch's
    lock file being created and being locked. Were it to run there, it would take the batch
    for dead, delete its lock file, and a later recovery its staged files: the batch would
    commit empty (as seen once in CI). Here a second case handle (a separate lock, as another
    process holds) tries to recover in exactly that instant."""
    import fcntl

    from breachtrace import case as case_module

    case = Case.open(tmp_path / "case", create=True)
    other = Case(case.root)
    real_flock = fcntl.flock
    tried: list[bool] = []

    def flock_after_a_rival_recovery(fd: object, op: int) -> None:
        name = getattr(fd, "name", "")
        if str(name).endswith(".lock") and "staging" in str(name) and op == fcntl.LOCK_EX:
            try:
                with other.writer_lock(wait=False):
                    tried.append(True)
            except case_module.CaseError:
                tried.append(False)  # the writer lock is held: no recovery can run now
        real_flock(fd, op)

    monkeypatch.setattr(case_module.fcntl, "flock", flock_after_a_rival_recovery)
    with case.staging_batch("20261203T000000-abcdef01") as staged:
        monkeypatch.setattr(case_module.fcntl, "flock", real_flock)
        (staged / "part.parquet").write_bytes(b"staged")
        with other.writer_lock():  # a later recovery, by any process
            pass
        assert (staged / "part.parquet").exists()
    assert tried == [False]
