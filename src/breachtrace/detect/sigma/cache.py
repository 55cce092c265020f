"""Compiled-rule cache: a second hunt over the same rule files skips pySigma entirely.

Entries are keyed by the SHA-256 of the rule file's bytes; the cache file itself is named by
the backend version and the compile settings (placeholder values), so a new backend or other
settings start a fresh file instead of reading SQL compiled differently. The default place is
the user cache (``$BREACHTRACE_CACHE_DIR``, else ``$XDG_CACHE_HOME/breachtrace``, else
``~/.cache/breachtrace``), shared by every case; the case directory is used when that is not
writable.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import orjson

from breachtrace.detect.sigma.backend import BACKEND_VERSION


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
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, suffix=".tmp")
            with os.fdopen(fd, "wb") as fh:
                fh.write(orjson.dumps(self.entries))
            os.replace(tmp, self.path)
        except OSError:
            return False
        self.dirty = False
        return True
