"""The known source formats, and choosing one for an input from its first bytes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from breachtrace.ingest.authlog import AuthLogReader
from breachtrace.ingest.base import Reader
from breachtrace.ingest.evtx_reader import EvtxReader
from breachtrace.ingest.lanl import LanlAuthReader, LanlFlowsReader
from breachtrace.ingest.mapped import MappedReader, SourceMapping, is_mapping_file
from breachtrace.ingest.sources import InputFile
from breachtrace.ingest.windows_json import NxlogReader, WinlogbeatReader
from breachtrace.ingest.zeek import ZeekReader


def builtin_readers() -> list[Reader]:
    """Built-in readers in sniffing order (most specific first)."""
    return [
        EvtxReader(),
        WinlogbeatReader(),
        ZeekReader(),
        NxlogReader(),
        AuthLogReader(),
        LanlAuthReader(),
        LanlFlowsReader(),
    ]


def load_mappings(paths: Iterable[Path]) -> list[SourceMapping]:
    """Source mappings from YAML files, or from every mapping file in the given directories."""
    mappings: list[SourceMapping] = []
    for path in paths:
        files = sorted(path.rglob("*.y*ml")) if path.is_dir() else [path]
        mappings.extend(SourceMapping.load(f) for f in files if is_mapping_file(f))
    return mappings


def discover_mappings(inputs: Iterable[Path]) -> list[Path]:
    """Mapping files shipped with the inputs: inside input directories or a sibling mappings/."""
    found: list[Path] = []
    for raw in inputs:
        path = Path(raw)
        if not path.is_dir():
            continue
        for candidate_dir in (path, path.parent / "mappings"):
            if candidate_dir.is_dir():
                found.extend(p for p in sorted(candidate_dir.rglob("*.y*ml")) if is_mapping_file(p))
    return sorted(set(found))


def all_readers(mappings: Sequence[SourceMapping] = ()) -> list[Reader]:
    """Readers for sniffing: EVTX first, then user mappings, then the other built-ins."""
    builtins = builtin_readers()
    return [builtins[0], *(MappedReader(m) for m in mappings), *builtins[1:]]


def choose_reader(
    src: InputFile, head: bytes, readers: Sequence[Reader], forced: str | None = None
) -> Reader | None:
    """The reader for an input: the one named by ``forced``, else the first that sniffs it."""
    if forced:
        for reader in readers:
            if reader.name == forced:
                return reader
        names = ", ".join(r.name for r in readers)
        raise ValueError(f"unknown format {forced!r}; known formats: {names}")
    for reader in readers:
        if reader.sniff(head, src):
            return reader
    return None
