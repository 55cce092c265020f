"""Compiled-rule cache: a second hunt over the same rule files skips pySigma entirely.

Two files, both named by the backend version and the compile settings (placeholder values), so
a new backend or other settings start afresh instead of reading SQL compiled differently:

- ``compiled-<key>.json``: compiled rules per SHA-256 of a rule file's bytes, shared by every
  rule set (an edited file is recompiled, the others are found by their digest);
- ``ruleset-<key>.json``, one per set of rule paths: the whole set's compiled rules in load
  order, with each file's size, times, inode and digest. A warm hunt reads this one file and
  stats the rule files instead of reading and hashing each (SigmaHQ's 2,400 Windows rules:
  about a third of the load time) and looking it up among every digest ever compiled.
 The default place is
the user cache (``$BREACHTRACE_CACHE_DIR``, else ``$XDG_CACHE_HOME/breachtrace``, else
``~/.cache/breachtrace``), shared by every case; the case directory is used when that is not
writable.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from breachtrace import atomic_write
from breachtrace.detect.sigma.columns import BACKEND_VERSION


def default_cache_dir() -> Path:
    configured = os.environ.get("BREACHTRACE_CACHE_DIR")
    if configured:
        return Path(configured).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "breachtrace"


def usable_cache_dir(fallback: Path) -> Path:
    """The default cache directory if it can be written, else ``fallback`` (the case's)."""
    directory = default_cache_dir()
    probe = directory
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return directory if os.access(probe, os.W_OK) else fallback


def file_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class RuleCache:
    """Compiled rules per rule-file digest, loaded once and written back atomically."""

    def __init__(self, directory: Path, settings: str = "") -> None:
        salt = hashlib.sha256(f"{BACKEND_VERSION}\n{settings}".encode()).hexdigest()[:16]
        self.path = directory / "sigma" / f"compiled-{salt}.json"
        self.entries: dict[str, list[dict[str, Any]]] = {}
        self.dirty = False
        try:
            self.entries = orjson.loads(self.path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            self.entries = {}  # no cache yet, or unreadable: start afresh

    def get(self, digest: str) -> list[dict[str, Any]] | None:
        return self.entries.get(digest)

    def put(self, digest: str, items: list[dict[str, Any]]) -> None:
        self.entries[digest] = items
        self.dirty = True

    def save(self) -> bool:
        """Write the cache if anything was added; False if the directory is not writable."""
        if not self.dirty:
            return True
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write.write_bytes(self.path, orjson.dumps(self.entries))
        except OSError:
            return False
        self.dirty = False
        return True


# A file changed within this long before the snapshot was written may keep its size and times
# (coarse file-system clocks: a tick on Linux, 2 s on FAT): its times prove nothing, so it is
# re-read and its digest compared, like git's "racily clean" index entries.
RACY_NS = 2 * 10**9


@dataclass(frozen=True)
class FileState:
    """What says a rule file is unchanged without reading it: size, times and inode (the
    change time moves on every write and cannot be set back by tools that copy times)."""

    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileState:
        return cls(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


@dataclass(frozen=True)
class SnapshotEntry:
    file: str
    state: FileState
    digest: str
    items: list[dict[str, Any]]


class RuleSetSnapshot:
    """The compiled rules of one set of rule paths, trusted per file by its ``FileState``."""

    def __init__(self, directory: Path, settings: str, roots: list[str]) -> None:
        key = hashlib.sha256(f"{BACKEND_VERSION}\n{settings}\n{roots!r}".encode()).hexdigest()
        self.path = directory / "sigma" / f"ruleset-{key[:16]}.json"
        self.entries: dict[str, SnapshotEntry] = {}
        self.written_ns = 0  # the snapshot's own modification time, in the file system's clock
        try:
            with open(self.path, "rb") as fh:
                self.written_ns = os.fstat(fh.fileno()).st_mtime_ns
                data = orjson.loads(fh.read())
            for file, state, digest, items in data["files"]:
                self.entries[file] = SnapshotEntry(file, FileState(*state), digest, items)
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            self.entries = {}  # no snapshot yet, or unreadable: every file is read and hashed

    def trusted(self, file: str, state: FileState) -> SnapshotEntry | None:
        """The file's entry if its state is unchanged and old enough to prove it."""
        entry = self.entries.get(file)
        if entry is None or entry.state != state:
            return None
        if max(state.mtime_ns, state.ctime_ns) >= self.written_ns - RACY_NS:
            return None
        return entry

    def items(self, file: str, digest: str) -> list[dict[str, Any]] | None:
        """The file's compiled rules if its bytes are those the snapshot recorded."""
        entry = self.entries.get(file)
        return entry.items if entry is not None and entry.digest == digest else None

    def save(self, entries: list[SnapshotEntry]) -> bool:
        """Replace the snapshot atomically; False if the directory is not writable."""
        data = {
            "files": [
                [e.file, [e.state.size, e.state.mtime_ns, e.state.ctime_ns, e.state.inode],
                 e.digest, e.items]
                for e in entries
            ]
        }  # fmt: skip
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write.write_bytes(self.path, orjson.dumps(data))
        except OSError:
            return False
        return True
