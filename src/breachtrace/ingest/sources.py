"""Input files as the readers see them: plain files, members of .zip archives, .gz streams.

Directories are walked recursively. Every input is addressed by a display path a responder can
read (``archive.zip!member.json``) and hashed while it is read, for the case manifest.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, BinaryIO, cast

HEAD_BYTES = 64 * 1024
# Sidecar files that describe data rather than hold events.
SKIP_SUFFIXES = (".yaml", ".yml", ".md", ".txt.sha256", ".sha256", ".pdf", ".png", ".cap", ".pcap")
SKIP_NAMES = {"truth.json"}
# Documentation shipped beside evidence (LICENSE, LICENSE-otrf, README.md, NOTICE ...).
SKIP_STEMS = ("license", "licence", "readme", "notice", "copying")


@dataclass
class InputFile:
    """One input as delivered: a way to open its (decompressed) bytes, and what it is."""

    display: str
    size: int
    open: Callable[[], BinaryIO]
    local_path: Path | None = None  # set when the bytes are a plain file on disk
    mtime: datetime | None = None  # last write, the reference for year-less timestamps
    disk_path: Path | None = None  # the evidence file itself (a .gz as stored), for hashing
    # SHA-256 of the whole file when the fingerprint already read all of it (small files)
    _sha256: str = field(default="", init=False, repr=False, compare=False)

    def head(self, n: int = HEAD_BYTES) -> bytes:
        with self.open() as fh:
            return fh.read(n)

    def fingerprint(self) -> str:
        """A cheap identity (size and first/last MiB) used to spot likely re-ingests."""
        digest = hashlib.sha256(str(self.size).encode())
        with self.open() as fh:
            first = fh.read(2**20)
            digest.update(first)
            whole = self.disk_path is not None and self.disk_path == self.local_path
            if whole and len(first) == self.size:  # all of the evidence file: hash it now
                self._sha256 = hashlib.sha256(first).hexdigest()
            if self.local_path is not None and self.size > 2**21:
                fh.seek(-(2**20), os.SEEK_END)
                digest.update(fh.read(2**20))
        return digest.hexdigest()

    def sha256(self) -> str:
        """SHA-256 of the evidence as stored: the file on disk, or the archive member."""
        if self._sha256:
            return self._sha256
        digest = hashlib.sha256()
        opener = _file_opener(self.disk_path) if self.disk_path else self.open
        with opener() as fh:
            while block := fh.read(8 * 2**20):
                digest.update(block)
        return digest.hexdigest()


class HashingReader(io.RawIOBase):
    """Wraps a binary stream and hashes every byte read through it."""

    def __init__(self, inner: BinaryIO) -> None:
        self.inner = inner
        self.digest = hashlib.sha256()
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.inner.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.digest.update(data)
        self.bytes_read += n
        return n

    def read(self, size: int = -1) -> bytes:
        data = self.inner.read(size)
        self.digest.update(data)
        self.bytes_read += len(data)
        return data

    def close(self) -> None:
        self.inner.close()
        super().close()


def _skip(path: Path) -> bool:
    name = path.name.lower()
    return name.startswith((".", *SKIP_STEMS)) or name in SKIP_NAMES or name.endswith(SKIP_SUFFIXES)


def _display(path: Path | str) -> str:
    """A path as text that is valid UTF-8: a name in another encoding (bytes Python holds as
    surrogates) shows its bytes as \\xNN escapes, so manifests, views and reports can hold it."""
    return os.fsencode(path).decode("utf-8", errors="backslashreplace")


def _zip_members(archive: Path) -> Iterator[InputFile]:
    with zipfile.ZipFile(archive) as zf:
        infos = [i for i in zf.infolist() if not i.is_dir() and not _skip(Path(i.filename))]
    for info in infos:

        def opener(info: zipfile.ZipInfo = info) -> BinaryIO:
            zf = zipfile.ZipFile(archive)
            member = zf.open(info)
            return _ClosingStream(member, zf)

        stamp = datetime(*info.date_time, tzinfo=UTC)
        yield InputFile(f"{_display(archive)}!{info.filename}", info.file_size, opener, mtime=stamp)


class _ClosingStream(io.BufferedReader):
    """A member stream that also closes the archive it came from."""

    def __init__(self, member: IO[bytes], owner: zipfile.ZipFile) -> None:
        super().__init__(member)  # type: ignore[arg-type]
        self._owner = owner

    def close(self) -> None:
        super().close()
        self._owner.close()


def _file_opener(path: Path) -> Callable[[], BinaryIO]:
    return lambda: cast(BinaryIO, open(path, "rb"))


def _gzip_opener(path: Path) -> Callable[[], BinaryIO]:
    return lambda: cast(BinaryIO, gzip.open(path, "rb"))


def _expand(path: Path) -> Iterator[InputFile]:
    lower = path.name.lower()
    mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    if lower.endswith(".zip") and zipfile.is_zipfile(path):
        yield from _zip_members(path)
    elif lower.endswith(".gz"):
        size = path.stat().st_size
        yield InputFile(_display(path), size, _gzip_opener(path), mtime=mtime, disk_path=path)
    else:
        yield InputFile(
            _display(path),
            path.stat().st_size,
            _file_opener(path),
            local_path=path,
            mtime=mtime,
            disk_path=path,
        )


def discover(paths: Iterable[str | Path]) -> Iterator[InputFile]:
    """Every input below the given files and directories, in a stable order."""
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"input not found: {path}")
        if path.is_dir():
            for child in sorted(p for p in path.rglob("*") if p.is_file()):
                rel_parts = child.relative_to(path).parts
                if any(part.startswith(".") for part in rel_parts) or _skip(child):
                    continue
                yield from _expand(child)
        else:
            yield from _expand(path)
