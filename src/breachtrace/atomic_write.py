"""Replacing a file whole (the case's results, the rule cache), even when several processes
replace it at once.

A fixed temporary name (``findings/sigma.tmp``) is shared by every process writing the same
file: one truncates and renames what another is still writing, and the file left behind is
torn (seen: a findings set mixing two hunts' rows, unreadable). Here each write has a name of
its own beside the target, so the last rename wins and every version read is whole.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

# A temporary file of ``target`` this old is what a killed writer left (these writes take
# seconds): the next write of the same file removes it.
STALE_SECONDS = 3600


@contextlib.contextmanager
def replacing(target: Path) -> Iterator[Path]:
    """A temporary path beside ``target``, unique to this call, renamed over ``target`` when
    the block ends (removed if it fails). Hidden and ending ``.tmp``, so no glob of the case's
    files (``*.parquet``, ``*.json``) reads it meanwhile, nor after a crash."""
    _remove_stale(target)
    tmp = target.with_name(f".{target.name}.{os.getpid()}-{uuid.uuid4().hex[:12]}.tmp")
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _remove_stale(target: Path) -> None:
    """Remove what killed writers of ``target`` left behind (``STALE_SECONDS`` old)."""
    cutoff = time.time() - STALE_SECONDS
    for left in target.parent.glob(f".{target.name}.*.tmp"):
        with contextlib.suppress(OSError):  # another writer's, or already gone
            if left.stat().st_mtime < cutoff:
                left.unlink()


def write_bytes(target: Path, data: bytes) -> None:
    with replacing(target) as tmp:
        tmp.write_bytes(data)


def write_text(target: Path, text: str) -> None:
    """``text`` in the encoding ``Path.write_text`` uses, as the files' readers read it."""
    with replacing(target) as tmp:
        tmp.write_text(text)
