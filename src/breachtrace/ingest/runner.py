"""Ingest: inputs -> readers -> DuckDB normalization -> staged Parquet -> committed batch.

Python moves each record into Arrow once; DuckDB normalizes whole chunks and writes zstd
Parquet partitioned by UTC month. Reading the next table overlaps with DuckDB's work on the
current one (DuckDB releases the GIL), and evidence files are hashed on another thread.
A batch of inputs becomes visible in the case only when its manifest is committed.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import queue
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, TypeVar, cast

import duckdb
import numpy as np
import pyarrow as pa

from breachtrace.case import Case, ManifestEntry, new_batch_id
from breachtrace.engines.duckdb import expand_macros, sql_literal
from breachtrace.ingest.base import FormatError, Reader, RejectLog
from breachtrace.ingest.formats import all_readers, choose_reader, discover_mappings, load_mappings
from breachtrace.ingest.sources import HashingReader, InputFile, discover
from breachtrace.schema import COLUMNS

# Rows normalized per DuckDB query (planning one costs ~0.1-0.4 s), and rows per committed batch
# (what an interruption re-does). Both can be tuned through the environment.
CHUNK_ROWS = int(os.environ.get("BREACHTRACE_CHUNK_ROWS", 250_000))
CHUNK_BYTES = 96 * 2**20  # and at most this much record text per query, bounding memory
# DuckDB's memory cap during ingest (it spills beyond it); batches, not inputs, set the need.
INGEST_MEMORY_LIMIT = os.environ.get("BREACHTRACE_INGEST_MEMORY_LIMIT", "1GB")
COMMIT_ROWS = int(os.environ.get("BREACHTRACE_COMMIT_ROWS", 5_000_000))
COMMIT_FILES = 1000
PARQUET_OPTIONS = "FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880"
MONTH_FILES = 12  # a chunk spread over more months is written by one partitioned COPY
THREADED_BYTES = 16 * 2**20
T = TypeVar("T")


@dataclass
class FileResult:
    """What happened to one input."""

    path: str
    status: str  # ingested | duplicate | failed
    format: str = ""
    records_read: int = 0
    records_rejected: int = 0
    sha256: str = ""
    message: str = ""


@dataclass
class IngestSummary:
    case: Path
    files: list[FileResult] = field(default_factory=list)
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)  # what went wrong after the commit

    @property
    def events(self) -> int:
        return sum(f.records_read for f in self.files if f.status == "ingested")

    @property
    def rejected(self) -> int:
        return sum(f.records_rejected for f in self.files if f.status == "ingested")

    def count(self, status: str) -> int:
        return sum(1 for f in self.files if f.status == status)


class Progress:
    """Progress callbacks; the CLI draws a bar or prints log lines from them."""

    def start(self, total_files: int, total_bytes: int) -> None: ...
    def file_started(self, src: InputFile, reader: str) -> None: ...
    def records(self, n: int) -> None: ...
    def file_done(self, result: FileResult) -> None: ...
    def file_revised(self, result: FileResult) -> None:
        """A file reported done turned out otherwise (a duplicate found at the commit)."""


@dataclass
class _Input:
    """An input being ingested: its manifest entry, rejects and result, filled as rows land."""

    entry: ManifestEntry
    rejects: RejectLog
    result: FileResult
    closed: bool = False  # fully read
    finished: bool = False  # all its rows normalized and its result reported


class _Batch:
    """Inputs staged together and committed as one manifest record."""

    def __init__(
        self,
        case: Case,
        con: duckdb.DuckDBPyConnection,
        writer: _Writer,
        progress: Progress,
        timezone: str,
    ) -> None:
        self.case, self.con, self.progress, self.timezone = case, con, progress, timezone
        self.writer = writer
        self.batch_id = new_batch_id()
        self._hold = contextlib.ExitStack()  # the staging lock, released once committed
        self.staging = self._hold.enter_context(case.staging_batch(self.batch_id))
        self.inputs: dict[str, _Input] = {}
        self.rejects: list[pa.Table] = []
        self.rows = 0
        self._sql: str | None = None
        self._columns: tuple[str, ...] | None = None  # what _sql gives, if its reader knows
        self._tables: list[pa.Table] = []
        self._pending_rows = 0
        self._pending_bytes = 0
        self._part = 0
        self._raw_column = "line"

    # -- per input ------------------------------------------------------------------------
    def open(self, src: InputFile, reader: Reader, fingerprint: str) -> str:
        input_id = uuid.uuid4().hex[:12]
        entry = ManifestEntry(src.display, "", src.size, reader.name, input_id=input_id,
                              fingerprint=fingerprint, timezone=self.timezone)  # fmt: skip
        result = FileResult(src.display, "ingested", reader.name)
        self.inputs[input_id] = _Input(entry, RejectLog(), result)
        return input_id

    def add(self, reader: Reader, input_id: str, table: pa.Table) -> None:
        sql = expand_macros(reader.normalize_sql("batch_in"))
        if self._sql is not None and sql != self._sql:
            self.flush()
        self._sql, self._columns = sql, reader.normalize_columns()
        ids = pa.array([input_id] * table.num_rows, pa.string())
        self._raw_column = reader.raw_column
        self._tables.append(table.append_column("input_id", ids))
        self._pending_rows += table.num_rows
        self._pending_bytes += table.nbytes
        if self._pending_rows >= CHUNK_ROWS or self._pending_bytes >= CHUNK_BYTES:
            self.flush()

    def close(self, input_id: str, sha256: str, seconds: float) -> FileResult:
        item = self.inputs[input_id]
        item.entry.sha256 = item.result.sha256 = sha256
        item.entry.seconds = round(seconds, 3)
        item.closed = True
        if not self._tables:
            self._finish_closed()
        return item.result

    # -- normalizing ----------------------------------------------------------------------
    def flush(self) -> None:
        if self._tables and self._sql is not None:
            table = pa.concat_tables(self._tables)
            rows = pa.array(np.arange(table.num_rows, dtype=np.int64))
            self._normalize(table.append_column("row_no", rows), self._sql)
            self._part += 1
        self._tables, self._pending_rows, self._pending_bytes = [], 0, 0
        self._finish_closed()

    def _finish_closed(self) -> None:
        for item in list(self.inputs.values()):
            if not item.closed or item.finished:
                continue
            rejects = item.rejects
            item.entry.records_rejected = item.result.records_rejected = len(rejects)
            item.result.records_read = item.entry.records_read
            item.result.message = (
                "" if item.entry.records_read or not rejects.items else ("no record could be read")
            )
            if rejects.items:
                self.rejects.append(_rejects_table(item.entry, rejects))
            self.progress.file_done(item.result)
            item.finished = True

    def _normalize(self, table: pa.Table, sql: str) -> None:
        """Normalize one chunk, count its rejects and per-input stats, and hand it to the
        writer, which stages it as Parquet while the next chunk is normalized."""
        con = self.con
        number = self.writer.next_number()
        out, joined = f"batch_out_{number}", f"batch_in_{number}"
        con.register("batch_in", table)
        try:
            projection, has_raw = _projection(con, sql, self._columns)
            # a table of the database, not a temporary one: the writer's connection reads it
            con.execute(f"CREATE OR REPLACE TABLE {out} AS SELECT {projection} FROM ({sql})")
            # Readers that keep the record verbatim leave it out of their SELECT; it is joined
            # back from the input batch here instead of being copied through every step.
            raw = "o.raw" if has_raw else f"CAST(b.{self._raw_column} AS VARCHAR)"
            for input_id, record, reason, excerpt in con.execute(
                f"SELECT o.input_id, o.input_record, o.reject_reason, left({raw}, 200) "
                f"FROM {out} o{'' if has_raw else ' JOIN batch_in b USING (row_no)'} "
                "WHERE o.reject_reason IS NOT NULL ORDER BY 1, 2"
            ).fetchall():
                self.inputs[input_id].rejects.add(record, reason, excerpt or "")
            months: set[str | None] = set()
            rows = 0
            for input_id, count, timed, first, last, *span in con.execute(
                "SELECT input_id, count(*), count(ts), min(ts), max(ts), strftime(min(ts), "
                f"'%Y-%m'), strftime(max(ts), '%Y-%m') FROM {out} "
                "WHERE reject_reason IS NULL GROUP BY input_id"
            ).fetchall():
                entry = self.inputs[input_id].entry
                entry.records_read += count
                entry.first_ts = _earliest(entry.first_ts, first)
                entry.last_ts = _latest(entry.last_ts, last)
                self.rows += count
                rows += count
                self.progress.records(count)
                months.update(span if timed == count else [None])
        except BaseException:
            con.execute(f"DROP TABLE IF EXISTS {out}")
            raise
        finally:
            con.unregister("batch_in")
        source = f"{out} o" + ("" if has_raw else f" JOIN {joined} b USING (row_no)")
        name = f"{self.batch_id}_{self._part:05d}_{{i}}"

        def write(wcon: duckdb.DuckDBPyConnection) -> None:
            if not has_raw:
                wcon.register(joined, table)
            try:
                written = self._write(wcon, out, source, raw, months, has_raw, name)
                if written != rows:  # a guard: every good row must land in exactly one file
                    raise RuntimeError(f"ingest: {written} of {rows} normalized rows were written")
            finally:
                if not has_raw:
                    wcon.unregister(joined)
                wcon.execute(f"DROP TABLE IF EXISTS {out}")

        self.writer.submit(write)

    def _write(
        self,
        con: duckdb.DuckDBPyConnection,
        out: str,
        source: str,
        raw: str,
        months: set[str | None],
        spread: bool,
        name: str,
    ) -> int:
        """Stage the chunk's good rows as zstd Parquet, one file per UTC month; how many rows
        were written.

        Each month's rows are copied straight into its folder, one COPY per month (when
        ``spread``: the chunk's table holds every column, so each COPY is a filtered scan of it).
        DuckDB's PARTITION_BY, which buffers and hashes every row, cost a third more; it is
        kept for rows without a time, for very many months, and for readers whose raw record
        is joined in (each month would repeat the join).
        """
        select = ", ".join(
            "o.input_id || ':' || o.input_record AS event_uid" if c.name == "event_uid"
            else f"{raw} AS raw" if c.name == "raw" else f"o.{c.name}"
            for c in COLUMNS
        )  # fmt: skip
        options = PARQUET_OPTIONS
        ranges: list[tuple[str, str]] = []  # (month, the SQL condition selecting its rows)
        if len(months) == 1 and None not in months:
            ranges = [(str(next(iter(months))), "")]
        elif spread and None not in months:
            ranges = [
                (label, f" AND o.ts >= {sql_literal(start)}::TIMESTAMP "
                        f"AND o.ts < {sql_literal(start)}::TIMESTAMP + INTERVAL 1 MONTH")
                for label, start in con.execute(
                    "SELECT DISTINCT strftime(date_trunc('month', ts), '%Y-%m'), "
                    f"CAST(date_trunc('month', ts) AS VARCHAR) FROM {out} "
                    "WHERE reject_reason IS NULL ORDER BY 1"
                ).fetchall()
            ]  # fmt: skip
        if months and not 0 < len(ranges) <= MONTH_FILES:
            return _copied(
                con,
                f"COPY (SELECT {select}, strftime(o.ts, '%Y-%m') AS month FROM {source} "
                f"WHERE o.reject_reason IS NULL) TO {sql_literal(str(self.staging / 'events'))} "
                f"({options}, PARTITION_BY (month), OVERWRITE_OR_IGNORE true, FILENAME_PATTERN "
                f"{sql_literal(name)})",
            )
        written = 0
        for month, within in ranges:
            folder = self.staging / "events" / f"month={month}"
            folder.mkdir(parents=True, exist_ok=True)
            target = folder / (name.format(i=0) + ".parquet")
            written += _copied(
                con,
                f"COPY (SELECT {select} FROM {source} WHERE o.reject_reason IS NULL{within}) "
                f"TO {sql_literal(str(target))} ({options})",
            )
        return written

    # -- committing -----------------------------------------------------------------------
    def release(self) -> None:
        """Give up the staging lock (an uncommitted batch is then removed by ``recover``)."""
        self._hold.close()

    def commit(self) -> list[ManifestEntry]:
        self.flush()
        self.writer.wait()
        entries = [i.entry for i in self.inputs.values() if i.result.status == "ingested"]
        if not entries:
            shutil.rmtree(self.staging, ignore_errors=True)
            self._hold.close()
            return []
        if self.rejects:
            target = self.staging / "rejects" / f"{self.batch_id}.parquet"
            target.parent.mkdir(parents=True, exist_ok=True)
            self.con.register("rejects_in", pa.concat_tables(self.rejects))
            self.con.execute(
                f"COPY rejects_in TO {sql_literal(str(target))} (FORMAT parquet, COMPRESSION zstd)"
            )
            self.con.unregister("rejects_in")
        events_dir = self.staging / "events"
        if events_dir.exists():
            for part in events_dir.iterdir():
                part.rename(self.staging / part.name)
            events_dir.rmdir()
        with self.case.writer_lock():  # commits of parallel ingests take turns
            late = self._committed_meanwhile(entries)
            if late:
                self._drop_staged(late)
                entries = [e for e in entries if e.input_id not in late]
            if entries:
                self.case.commit_batch(self.batch_id, entries, self.staging)
        if not entries:
            shutil.rmtree(self.staging, ignore_errors=True)
        self._hold.close()
        return entries

    def _committed_meanwhile(self, entries: list[ManifestEntry]) -> set[str]:
        """The inputs whose content another ingest committed since this one looked (the same
        file given to two ingests at once), marked duplicates; call under the writer lock."""
        committed = self.case.known_hashes()
        late: set[str] = set()
        for entry in entries:
            prior = committed.get(entry.sha256)
            if prior is not None:
                late.add(entry.input_id)
                result = self.inputs[entry.input_id].result
                result.status = "duplicate"
                result.message = (
                    f"ingested meanwhile by another process as {prior.path}; nothing kept"
                )
                self.progress.file_revised(result)
        return late

    def _drop_staged(self, input_ids: set[str]) -> None:
        """Rewrite the staged files holding rows of ``input_ids`` without them (removing
        emptied ones). Read without hive partitioning: a file's ``month=`` folder is not one
        of its columns, and must not become one."""
        ids = ", ".join(sql_literal(i) for i in sorted(input_ids))
        for staged in sorted(self.staging.rglob("*.parquet")):
            source = f"read_parquet({sql_literal(str(staged))}, hive_partitioning = false)"
            row = self.con.execute(
                f"SELECT count(*) FROM {source} WHERE input_id IN ({ids})"
            ).fetchone()
            if not row or not row[0]:
                continue
            kept = staged.with_suffix(".kept")
            rows = _copied(
                self.con,
                f"COPY (SELECT * FROM {source} WHERE input_id NOT IN ({ids})) "
                f"TO {sql_literal(str(kept))} ({PARQUET_OPTIONS})",
            )
            if rows:
                os.replace(kept, staged)
            else:
                kept.unlink()
                staged.unlink()


def _copied(con: duckdb.DuckDBPyConnection, copy: str) -> int:
    """Run a COPY; the number of rows it wrote."""
    row = con.execute(copy).fetchone()
    return int(row[0]) if row else 0


class IngestWriteError(RuntimeError):
    """Writing the case's Parquet failed (disk full, say): the ingest stops, uncommitted."""


class _Writer:
    """Stages normalized chunks as Parquet on a second connection and thread while the next
    chunk is normalized: DuckDB's ordered Parquet writer keeps one core busy, normalizing
    keeps two (per million JSON events: 3.8 s writing on one core, 4.0 s normalizing on 1.8).
    One chunk is written at a time; a failed write is raised by the next ``submit`` or by
    ``wait``."""

    def __init__(self, con: duckdb.DuckDBPyConnection, settings: Sequence[str]) -> None:
        self.con = con.cursor()  # the same in-memory database: sees the chunk's table
        for setting in settings:
            self.con.execute(setting)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-writer")
        self._pending: Future[None] | None = None
        self._numbers = itertools.count()

    def next_number(self) -> int:
        """A number naming one chunk's tables (unique for this ingest)."""
        return next(self._numbers)

    def submit(self, job: Callable[[duckdb.DuckDBPyConnection], None]) -> None:
        self.wait()
        self._pending = self._pool.submit(job, self.con)

    def wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is None:
            return
        try:
            pending.result()
        except Exception as exc:  # the whole ingest fails: its batch is not committed
            raise IngestWriteError(f"staging normalized events as Parquet failed: {exc}") from exc

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self._pool.shutdown(wait=True)
            self.con.close()


def ingest(
    case_dir: str | Path,
    paths: Sequence[str | Path],
    *,
    mappings: Sequence[str | Path] = (),
    format: str | None = None,
    progress: Progress | None = None,
    memory_limit: str | None = None,
    timezone: str = "UTC",
) -> IngestSummary:
    """Ingest files and directories into a case (created if needed); see the module doc.

    ``timezone`` (an IANA name) is the zone of times the inputs write without an offset
    (classic syslog, ISO text without one, mapped CSV/JSON); it is kept in each file's
    manifest entry. Times with an offset, epochs and EVTX times are UTC whatever it says."""
    started = time.perf_counter()
    timezone = check_timezone(timezone)
    progress = progress or Progress()
    mapping_paths = [Path(m) for m in mappings] + discover_mappings(Path(p) for p in paths)
    readers = all_readers(load_mappings(mapping_paths))
    if format and format not in {r.name for r in readers}:
        names = ", ".join(r.name for r in readers)
        raise ValueError(f"unknown format {format!r}; known formats: {names}")
    inputs = _grouped(list(discover(paths)), readers, format)
    case = Case.open(case_dir, create=True)
    summary = IngestSummary(case.root)
    # Several ingests may run at once on one case (one per file or folder, say): each stages
    # its own batches; only recovery and commits take the case's lock, in turns.
    with case.writer_lock():
        known = {e.fingerprint: e for e in case.manifest() if e.fingerprint}
        known_sha = {e.sha256: e for e in case.manifest()}
    con = case.connect(views=False, memory_limit=memory_limit or INGEST_MEMORY_LIMIT)
    settings = [
        "SET partitioned_write_flush_threshold = 100000",
        "SET enable_progress_bar = false",
        # Offset-less text cast to TIMESTAMPTZ is read in the session's zone (bt_ts, bt_local).
        f"SET TimeZone = {sql_literal(timezone)}",
    ]
    for setting in settings:
        con.execute(setting)
    progress.start(len(inputs), sum(src.size for src, _ in inputs))
    writer = _Writer(con, settings)
    batch = _Batch(case, con, writer, progress, timezone)
    try:
        for src, sniffed in inputs:
            result = _ingest_one(src, sniffed, readers, format, batch, known, known_sha)
            summary.files.append(result)
            if result.status != "ingested":
                progress.file_done(result)
            if batch.rows >= COMMIT_ROWS or len(batch.inputs) >= COMMIT_FILES:
                batch.commit()
                batch = _Batch(case, con, writer, progress, timezone)
        batch.commit()
        try:
            with case.writer_lock():
                case.refresh_database(con)
        except (OSError, duckdb.Error) as exc:  # the events are committed: say so, not fail
            summary.warnings.append(
                f"case.duckdb (the views for the DuckDB CLI) was not updated: {exc}. Close any "
                "DuckDB session on it; the next ingest into the case rewrites it"
            )
    finally:
        try:
            writer.close()
        finally:
            con.close()
            batch.release()
    summary.seconds = time.perf_counter() - started
    return summary


def _grouped(
    inputs: list[InputFile], readers: Sequence[Reader], forced: str | None
) -> list[tuple[InputFile, Reader | None]]:
    """The inputs with the reader sniffed for each, those normalized by the same SQL next to
    each other (path order kept within a group): a chunk holds rows of one SQL, so a folder
    alternating Zeek conn, dns and smb logs, or EVTX and auth logs, made a query per file (the
    demo's 85 files: 50 queries, 9 when grouped; 18% less ingest time). An input that cannot be
    read or prepared here goes last with no reader, and ``_ingest_one`` reports why. Heads are
    not kept (thousands of inputs would hold 64 KB each): ``_ingest_one`` reads its own."""
    keys: dict[str, int] = {}
    sniffed: list[tuple[int, InputFile, Reader | None]] = []
    for src in inputs:
        try:
            head = src.head()
            reader = choose_reader(src, head, readers, forced)
            sql = reader.prepare(src, head).normalize_sql("batch_in") if reader else None
        except Exception:  # reported with its file when it is ingested
            reader, sql = None, None
        key = keys.setdefault(sql, len(keys)) if sql is not None else len(inputs)
        sniffed.append((key, src, reader if sql is not None else None))
    sniffed.sort(key=lambda item: item[0])  # stable: path order within a group
    return [(src, reader) for _key, src, reader in sniffed]


def _ingest_one(
    src: InputFile,
    sniffed: Reader | None,
    readers: Sequence[Reader],
    forced: str | None,
    batch: _Batch,
    known: dict[str, ManifestEntry],
    known_sha: dict[str, ManifestEntry],
) -> FileResult:
    """Ingest one input with its ``sniffed`` reader (``_grouped``; None: sniff it here, where
    a failure is reported)."""
    started = time.perf_counter()
    try:
        head = src.head()
        reader = sniffed or choose_reader(src, head, readers, forced)
        fingerprint = src.fingerprint()
        # a likely re-ingest is confirmed by the whole file's hash
        sha = src.sha256() if fingerprint in known else ""
    except OSError as exc:
        return FileResult(src.display, "failed", message=f"cannot read: {exc}")
    if reader is None:
        tried = ", ".join(r.name for r in readers)
        return FileResult(
            src.display, "failed",
            message=f"unrecognised format (tried: {tried}); use --format, or --mapping for CSV/JSON",
        )  # fmt: skip
    if sha and sha in known_sha:
        prior = known_sha[sha]
        return FileResult(
            src.display, "duplicate", prior.format, sha256=sha,
            message=f"already ingested as {prior.path} at {prior.ingested_at}; nothing to do",
        )  # fmt: skip
    batch.progress.file_started(src, reader.name)
    input_id = batch.open(src, reader, fingerprint)
    rejects = batch.inputs[input_id].rejects
    # Threads pay off only for big inputs: hashing beside parsing, reading beside normalizing.
    big = src.size >= THREADED_BYTES
    hasher = _BackgroundHash(src) if src.disk_path and big else None
    member_hash = ""
    try:
        with src.open() as raw_stream:
            # An archive member is hashed as it is read; a file on disk is hashed as stored.
            member = None if src.disk_path else HashingReader(raw_stream)
            stream = raw_stream if member is None else cast(BinaryIO, member)
            prepared = reader.prepare(src, head)
            tables = prepared.batches(stream, src, rejects)
            for table in _prefetch(tables) if big else tables:
                batch.add(prepared, input_id, table)
            if member is not None:
                member_hash = _drain(member)
    except (FormatError, OSError, EOFError, duckdb.Error, ValueError) as exc:
        # Keep what was read before the failure; the failure itself is a counted reject.
        rejects.add(-1, f"reading stopped early: {type(exc).__name__}: {exc}")
    # Files on disk are hashed as stored (a .gz as the compressed file), for chain of custody.
    sha = hasher.result() if hasher else (_hash_file(src) if src.disk_path else member_hash)
    result = batch.close(input_id, sha, time.perf_counter() - started)
    known[fingerprint] = batch.inputs[input_id].entry
    known_sha[sha] = batch.inputs[input_id].entry
    return result


_PROJECTION_CACHE: dict[str, tuple[str, bool]] = {}


def check_timezone(name: str) -> str:
    """``name`` if it is an IANA time zone both Python and DuckDB know; else a ValueError."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
        if name != "UTC":  # DuckDB's ICU knows UTC; a throwaway connection costs ~0.05 s
            duckdb.connect().execute(f"SET TimeZone = {sql_literal(name)}").close()
    except (ZoneInfoNotFoundError, ValueError, duckdb.Error):
        raise ValueError(
            f"unknown time zone {name!r}: give an IANA name such as Asia/Tokyo, "
            "America/New_York or UTC (Etc/GMT-9 is a fixed UTC+9, with the sign reversed)"
        ) from None
    return name


def _projection(
    con: duckdb.DuckDBPyConnection, sql: str, columns: Sequence[str] | None
) -> tuple[str, bool]:
    """Cast a reader's SELECT, which gives ``columns`` (None: unknown, bound here to find
    out), onto the schema (columns it leaves out become NULL); and whether it produces ``raw``
    itself."""
    cached = _PROJECTION_CACHE.get(sql)
    if cached is None:
        if columns is None:
            columns = con.sql(f"SELECT * FROM ({sql}) LIMIT 0").columns
        produced = set(columns)
        parts = []
        for col in COLUMNS:
            if col.name == "event_uid" or (col.name == "raw" and "raw" not in produced):
                continue
            source = col.name if col.name in produced else "NULL"
            parts.append(f"CAST({source} AS {col.sql_type}) AS {col.name}")
        if "raw" not in produced:
            parts.append("row_no")
        cached = (", ".join(parts) + ", reject_reason", "raw" in produced)
        _PROJECTION_CACHE[sql] = cached
    return cached


def _rejects_table(entry: ManifestEntry, rejects: RejectLog) -> pa.Table:
    n = len(rejects.items)
    return pa.table(
        {
            "input_path": pa.array([entry.path] * n),
            "input_id": pa.array([entry.input_id] * n),
            "input_sha256": pa.array([entry.sha256] * n),
            "input_record": pa.array([r.input_record for r in rejects.items], pa.int64()),
            "reason": pa.array([r.reason for r in rejects.items]),
            "excerpt": pa.array([r.excerpt for r in rejects.items]),
        }
    )


def _earliest(current: str | None, candidate: datetime | None) -> str | None:
    if candidate is None:
        return current
    text = candidate.isoformat()
    return text if current is None or text < current else current


def _latest(current: str | None, candidate: datetime | None) -> str | None:
    if candidate is None:
        return current
    text = candidate.isoformat()
    return text if current is None or text > current else current


def _hash_file(src: InputFile) -> str:
    try:
        return src.sha256()
    except OSError as exc:
        return f"unavailable ({type(exc).__name__}: {exc})"


def _drain(stream: HashingReader) -> str:
    """Finish hashing whatever the reader did not consume."""
    while stream.read(8 * 2**20):
        pass
    return stream.digest.hexdigest()


class _BackgroundHash:
    """SHA-256 of the evidence file, computed on another thread (hashlib releases the GIL)."""

    def __init__(self, src: InputFile) -> None:
        self._src = src
        self._value = ""
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._value = self._src.sha256()
        except BaseException as exc:  # handed to the caller in result()
            self._error = exc

    def result(self) -> str:
        self._thread.join()
        if self._error:
            return f"unavailable ({type(self._error).__name__}: {self._error})"
        return self._value


def _prefetch(items: Iterator[T] | Iterable[T], depth: int = 2) -> Iterator[T]:
    """Yield from ``items`` while a thread produces the next ones."""
    q: queue.Queue[tuple[str, object]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(("item", item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(("done", None))
        except BaseException as exc:
            q.put(("error", exc))

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        while True:
            kind, value = q.get()
            if kind == "done":
                return
            if kind == "error":
                raise value  # type: ignore[misc]
            yield value  # type: ignore[misc]
    finally:
        stop.set()
        thread.join(timeout=5)
