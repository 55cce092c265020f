"""The case directory: one folder holding everything about an investigation.

Layout::

    CASE/
      case.json                     what made this case, and when
      manifest/<batch>.json         one commit record per ingest batch (chain of custody)
      events/month=YYYY-MM/*.parquet    normalized events, zstd, partitioned by UTC month
      rejects/<batch>.parquet       records that could not be read, with file and location
      staging/                      batches being written; never read
      case.duckdb                   views (events, manifest, rejects) for the DuckDB CLI
      .database-root                the folder case.duckdb's views point into (rewritten
                                    when a command opens the case after it was moved)

A batch becomes visible only when its manifest file is renamed into place, so an ingest that is
interrupted at any point leaves either the whole batch or nothing; ``Case.open`` removes what an
interrupted batch left behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from breachtrace import __version__
from breachtrace.engines.duckdb import MACROS, connect, sql_identifier, sql_literal
from breachtrace.schema import COLUMNS

DATABASE_ROOT = ".database-root"


class CaseError(Exception):
    """A case directory that cannot be used, with what to do about it."""


@dataclass
class ManifestEntry:
    """What the case knows about one ingested input file."""

    path: str
    sha256: str
    size: int
    format: str
    records_read: int = 0
    records_rejected: int = 0
    first_ts: str | None = None
    last_ts: str | None = None
    ingested_at: str = field(
        default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds")
    )
    batch_id: str = ""
    input_id: str = ""
    fingerprint: str = ""
    seconds: float = 0.0
    timezone: str = "UTC"  # the zone of the input's times written without an offset


def new_batch_id() -> str:
    """Sortable, unique batch id (time first, so listings read in ingest order)."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


class Case:
    """An opened case directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    # -- layout ---------------------------------------------------------------------------
    @property
    def events_dir(self) -> Path:
        return self.root / "events"

    @property
    def manifest_dir(self) -> Path:
        return self.root / "manifest"

    @property
    def rejects_dir(self) -> Path:
        return self.root / "rejects"

    @property
    def staging_dir(self) -> Path:
        return self.root / "staging"

    @property
    def findings_dir(self) -> Path:
        return self.root / "findings"

    @property
    def database_path(self) -> Path:
        return self.root / "case.duckdb"

    # -- opening --------------------------------------------------------------------------
    @classmethod
    def open(cls, root: str | Path, *, create: bool = False) -> Case:
        """Open (and with ``create``, make) a case directory, recovering interrupted batches."""
        path = Path(root).expanduser().resolve()
        marker = path / "case.json"
        if not marker.exists():
            if not create:
                raise CaseError(
                    f"{path} is not a breachtrace case (no case.json). "
                    "Create one with: breachtrace ingest --case DIR FILES..."
                )
            # another process may be creating the same case right now (parallel ingests into
            # a new case): its files are no reason to refuse once its case.json is there
            if path.exists() and any(path.iterdir()) and not marker.exists():
                raise CaseError(
                    f"{path} exists, is not empty and is not a breachtrace case; "
                    "choose a new or empty directory for the case"
                )
            path.mkdir(parents=True, exist_ok=True)
            created = {
                "tool": "breachtrace",
                "version": __version__,
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            # made exclusively, first in the folder (see the check above); if that other
            # process made it first, it is kept
            with contextlib.suppress(FileExistsError), open(marker, "x") as fh:
                fh.write(json.dumps(created, indent=2))
        case = cls(path)
        for d in (case.events_dir, case.manifest_dir, case.rejects_dir, case.staging_dir):
            d.mkdir(exist_ok=True)
        case._repoint_database()
        return case

    def _repoint_database(self) -> None:
        """case.duckdb's views name the case's files by absolute path; after the folder was
        moved or copied (to another machine, say), rewrite them, so that the DuckDB CLI keeps
        working on the copy. breachtrace itself never reads them (``connect`` makes its own)."""
        stamp = self.root / DATABASE_ROOT
        if not self.database_path.exists():
            return
        try:
            if stamp.read_text() == str(self.root):
                return
        except FileNotFoundError:
            pass
        try:
            with self.writer_lock():
                self.refresh_database()
        except (OSError, duckdb.Error):  # e.g. a case on read-only media: left as it was
            return

    @contextlib.contextmanager
    def writer_lock(self, *, wait: bool = True) -> Iterator[None]:
        """Hold the case's commit lock (short: recovery, commits, case.duckdb); recover first.
        Several ingests may stage batches at once; their commits take turns here."""
        lock_path = self.root / ".lock"
        with open(lock_path, "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise CaseError(
                    f"another breachtrace process is writing to {self.root}; wait for it to finish"
                ) from exc
            self.recover()
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def staging_batch(self, batch_id: str) -> Iterator[Path]:
        """A staging folder for one batch, locked while this process writes it, so that another
        process's ``recover`` leaves it alone (a lock dies with its process)."""
        staged = self.staging_dir / batch_id
        # Made under the writer lock, as ``recover`` runs only under it: otherwise another
        # process's recovery could find the lock file in the instant before it is locked, take
        # the batch for dead and delete it, and the batch would later commit empty.
        with self.writer_lock():
            lock = open(self.staging_dir / f"{batch_id}.lock", "w")
            fcntl.flock(lock, fcntl.LOCK_EX)
        with lock:
            try:
                staged.mkdir(parents=True)
                yield staged
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _batch_alive(self, batch_id: str) -> bool:
        """Whether a live process holds the staging lock of ``batch_id``."""
        try:
            with open(self.staging_dir / f"{batch_id}.lock", "r+") as lock:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return True
                fcntl.flock(lock, fcntl.LOCK_UN)
        except FileNotFoundError:
            return False
        return False

    def recover(self) -> list[Path]:
        """Delete what uncommitted batches of dead processes left behind (batches other live
        processes are staging stay); return the removed paths. Call with the writer lock."""
        committed = self.committed_batches()
        removed: list[Path] = []
        for item in self.staging_dir.iterdir():
            batch_id = item.name.removesuffix(".lock")
            if item.name == "duckdb-tmp" or self._batch_alive(batch_id):
                continue
            shutil.rmtree(item, ignore_errors=True) if item.is_dir() else item.unlink()
            removed.append(item)
        for parquet in list(self.events_dir.rglob("*.parquet")) + list(
            self.rejects_dir.glob("*.parquet")
        ):
            if _batch_of(parquet) not in committed:
                parquet.unlink()
                removed.append(parquet)
        for tmp in self.manifest_dir.glob("*.tmp"):
            tmp.unlink()
            removed.append(tmp)
        return removed

    # -- manifest -------------------------------------------------------------------------
    def committed_batches(self) -> set[str]:
        return {p.stem for p in self.manifest_dir.glob("*.json")}

    def manifest(self) -> list[ManifestEntry]:
        """Every committed input file, oldest batch first."""
        entries: list[ManifestEntry] = []
        for path in sorted(self.manifest_dir.glob("*.json")):
            record = json.loads(path.read_text())
            entries.extend(ManifestEntry(**e) for e in record["files"])
        return entries

    def known_hashes(self) -> dict[str, ManifestEntry]:
        return {e.sha256: e for e in self.manifest()}

    def commit_batch(self, batch_id: str, entries: list[ManifestEntry], staged: Path) -> None:
        """Move a staged batch into the store, then make it visible by writing its manifest.
        Call with the writer lock held (``writer_lock``).

        The manifest rename is the commit point: files moved before it are removed by
        ``recover`` if the process dies in between. File names start with the batch id, so
        batches never overwrite each other's files.
        """
        for parquet in sorted(staged.rglob("*.parquet")):
            rel = parquet.relative_to(staged)
            if rel.parts[0] == "rejects":
                target = self.rejects_dir / parquet.name
            else:
                target = self.events_dir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(parquet, target)
        shutil.rmtree(staged, ignore_errors=True)
        record = {
            "batch_id": batch_id,
            "committed": datetime.now(UTC).isoformat(timespec="seconds"),
            "tool_version": __version__,
            # plain values, so no asdict (deep copies: ~5 ms per 300 files); json escapes what
            # is not ASCII, so names that are not UTF-8 (surrogates) round-trip
            "files": [vars(e) | {"batch_id": batch_id} for e in entries],
        }
        tmp = self.manifest_dir / f"{batch_id}.tmp"
        with open(tmp, "w") as fh:
            json.dump(record, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.manifest_dir / f"{batch_id}.json")

    # -- querying -------------------------------------------------------------------------
    def committed_files(self, folder: Path) -> list[Path]:
        """The Parquet files under ``folder`` (events, rejects) of committed batches only.
        A commit moves its files in before it renames its manifest, so a glob would also read
        a batch halfway through its commit, or one whose process died there (removed by the
        next recovery): the manifest is listed first, and a batch is then read wholly or not
        at all."""
        committed = self.committed_batches()
        return sorted(p for p in folder.rglob("*.parquet") if _batch_of(p) in committed)

    def has_events(self) -> bool:
        return bool(self.committed_files(self.events_dir))

    def events_source_sql(self, *, live: bool = False) -> str:
        """A FROM-clause source for the events of this case (an empty relation if none): the
        files of the batches committed now; ``live``, every file there is when it is read
        (case.duckdb's views, for the DuckDB CLI: they keep up with later ingests even when
        an ingest could not rewrite them, but may read a batch halfway through its commit)."""
        files = self.committed_files(self.events_dir)
        if not files:
            cols = ", ".join(f"CAST(NULL AS {c.sql_type}) AS {c.name}" for c in COLUMNS)
            return f"(SELECT {cols}, CAST(NULL AS VARCHAR) AS month WHERE false)"
        source = (
            sql_literal(str(self.events_dir / "**" / "*.parquet")) if live else _file_list(files)
        )
        return f"read_parquet({source}, hive_partitioning = true, union_by_name = true)"

    def rejects_source_sql(self, *, live: bool = False) -> str:
        """The rejected records, as ``events_source_sql``."""
        files = self.committed_files(self.rejects_dir)
        if not files:
            return (
                "(SELECT NULL::VARCHAR AS input_path, NULL::VARCHAR AS input_id, "
                "NULL::VARCHAR AS input_sha256, NULL::BIGINT AS input_record, NULL::VARCHAR AS reason, "
                "NULL::VARCHAR AS excerpt WHERE false)"
            )
        source = sql_literal(str(self.rejects_dir / "*.parquet")) if live else _file_list(files)
        return f"read_parquet({source})"

    def create_views(self, con: duckdb.DuckDBPyConnection, *, temp: bool = True) -> None:
        """Define the views ``events``, ``rejects`` and (temporary, or once there are any)
        ``findings`` on a connection."""
        kind = "TEMP VIEW" if temp else "VIEW"
        live = not temp  # case.duckdb's views (see ``events_source_sql``)
        con.execute(
            f"CREATE OR REPLACE {kind} events AS SELECT * FROM {self.events_source_sql(live=live)}"
        )
        if temp or any(self.findings_dir.glob("*.parquet")):
            # imported here: Parquet writing is ~20 ms to import, which an ingest never needs
            from breachtrace.findings import findings_source_sql
            from breachtrace.schema import FINDING_SCHEMA

            con.register("findings_empty", FINDING_SCHEMA.empty_table())
            con.execute(
                f"CREATE OR REPLACE {kind} findings AS SELECT * FROM {findings_source_sql(self)}"
            )
        con.execute(
            f"CREATE OR REPLACE {kind} rejects AS SELECT * FROM "
            f"{self.rejects_source_sql(live=live)}"
        )

    def connect(self, *, views: bool = True, **kwargs: Any) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB connection spilling into the case, with this case's views unless
        ``views`` is False (safe for concurrent readers)."""
        con = connect(temp_directory=self.root / "staging" / "duckdb-tmp", **kwargs)
        if views:
            self.create_views(con)
        return con

    def refresh_database(self, con: duckdb.DuckDBPyConnection | None = None) -> None:
        """Rewrite case.duckdb's views, for people who open the case in the DuckDB CLI; through
        ``con`` if given, which attaches the file (a database of its own costs ~30 ms to open)."""
        if con is None:
            with contextlib.closing(connect(self.database_path)) as own:
                self._write_views(own)
        else:
            row = con.execute("SELECT current_database()").fetchone()
            current = sql_identifier(str(row[0]) if row else "memory")
            con.execute(f"ATTACH {sql_literal(str(self.database_path))} AS bt_case_database")
            try:
                con.execute("USE bt_case_database")
                con.execute(MACROS)  # as ``connect`` stores them, for the CLI
                self._write_views(con)
            finally:
                con.execute(f"USE {current}")
                con.execute("DETACH bt_case_database")
        (self.root / DATABASE_ROOT).write_text(str(self.root))

    def _write_views(self, con: duckdb.DuckDBPyConnection) -> None:
        self.create_views(con, temp=False)
        manifest_glob = sql_literal(str(self.manifest_dir / "*.json"))
        if self.committed_batches():
            con.execute(
                "CREATE OR REPLACE VIEW manifest AS SELECT unnest(files, recursive := true) "
                f"FROM read_json({manifest_glob}, union_by_name = true)"
            )


def _batch_of(parquet: Path) -> str:
    """The batch a stored file belongs to: events ``<batch>_<n>.parquet``, rejects
    ``<batch>.parquet`` (batch ids hold no ``_``)."""
    return parquet.name.split("_")[0].removesuffix(".parquet")


def _file_list(files: list[Path]) -> str:
    return "[" + ", ".join(sql_literal(str(f)) for f in files) + "]"
