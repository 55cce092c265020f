"""Sigma rule files -> compiled rules (through the cache), filtered by level, status and tags.

Rules are read from directories or files at run time and never copied into breachtrace. Files
the cache does not hold are compiled by ``compiler.py`` (pySigma and our backend, imported only
then), in worker processes when there are many; a file or rule that cannot be used is reported
(id, title, file, reason) and skipped without affecting the others.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from breachtrace.detect.sigma.cache import (
    FileState,
    RuleCache,
    RuleSetSnapshot,
    SnapshotEntry,
    default_cache_dir,
    file_digest,
)
from breachtrace.detect.sigma.records import (
    LEVELS,
    CompiledCorrelation,
    CompiledRule,
    RuleMeta,
    SkippedRule,
    from_dict,
)
from breachtrace.gc_paused import gc_paused, gc_running
from breachtrace.yaml_files import load_yaml

RULES_ENV = "BREACHTRACE_SIGMA_RULES"
CONFIG_ENV = "BREACHTRACE_CONFIG"
GET_RULES_HELP = (
    "No Sigma rules given and none configured. Get SigmaHQ's rules with\n"
    "  git clone --depth 1 https://github.com/SigmaHQ/sigma ~/sigma\n"
    "(or unpack a release archive from https://github.com/SigmaHQ/sigma/releases), then either\n"
    "pass --rules ~/sigma/rules, set BREACHTRACE_SIGMA_RULES=~/sigma/rules, or put\n"
    "'sigma_rules: ~/sigma/rules' in ~/.config/breachtrace/config.yaml."
)
PARALLEL_FROM = 64  # cache misses below this compile in-process (pool start-up costs ~0.3 s)


class NoRulesConfigured(Exception):
    """No rule paths were given and none are configured; the message says how to get some."""


@dataclass
class LoadedRules:
    """Every compiled rule and correlation from a set of paths, and what could not be used."""

    rules: list[CompiledRule] = field(default_factory=list)
    correlations: list[CompiledCorrelation] = field(default_factory=list)
    skipped: list[SkippedRule] = field(default_factory=list)
    files: int = 0
    from_cache: int = 0  # files whose compiled rules came from the cache
    seconds: float = 0.0

    @property
    def loaded(self) -> int:
        return len(self.rules) + len(self.correlations) + len(self.skipped)


# -- finding the rules -------------------------------------------------------------------------
def default_rule_paths() -> list[Path]:
    """Rule paths from $BREACHTRACE_SIGMA_RULES (os.pathsep-separated) or the config file."""
    configured = os.environ.get(RULES_ENV)
    if not configured:
        config = Path(os.environ.get(CONFIG_ENV, "~/.config/breachtrace/config.yaml")).expanduser()
        if config.is_file():
            data = load_yaml(config.read_text()) or {}
            value = data.get("sigma_rules") if isinstance(data, dict) else None
            if isinstance(value, list):
                configured = os.pathsep.join(str(v) for v in value)
            elif value:
                configured = str(value)
    if not configured:
        raise NoRulesConfigured(GET_RULES_HELP)
    return [Path(p).expanduser() for p in configured.split(os.pathsep) if p]


def discover_rule_files(paths: Iterable[Path]) -> list[Path]:
    """Every .yml/.yaml file under the given directories, plus the given files, sorted."""
    return [Path(file) for file, _state in _discover(paths)]


def check_rule_paths(paths: Iterable[Path]) -> None:
    """FileNotFoundError naming the first rule path that is neither a file nor a directory
    (callers with slow work before the hunt ask up front)."""
    for path in paths:
        path = Path(path).expanduser()
        if not (path.is_dir() or path.is_file()):
            raise FileNotFoundError(f"Sigma rule path not found: {path}")


def _discover(paths: Iterable[Path]) -> list[tuple[str, FileState]]:
    """The rule files with their states (one stat each; directories followed through links,
    as ``Path.rglob`` did), in ``Path`` order. Kept as strings: 2,400 ``Path`` objects and
    their comparisons cost more than walking the directories."""
    found: dict[str, FileState] = {}
    for path in paths:
        path = Path(path).expanduser()
        if path.is_dir():
            _walk(str(path), found)
        elif path.is_file():
            found[str(path)] = FileState.of(path.stat())
        else:
            check_rule_paths([path])
    # Path order compares part by part (so "a/x" sorts before "a-b/x")
    return sorted(found.items(), key=lambda item: item[0].split(os.sep))


def _walk(folder: str, found: dict[str, FileState]) -> None:
    """Add the rule files under ``folder`` (scandir rather than os.walk: a fifth faster over
    SigmaHQ's tree). Unreadable folders are passed over, as os.walk does."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        try:
            if entry.is_dir():  # through links, like os.walk(followlinks=True)
                _walk(entry.path, found)
                continue
            if os.path.splitext(entry.name)[1] not in (".yml", ".yaml"):
                continue
            st = entry.stat()
        except OSError:
            continue  # a dangling link, or removed meanwhile: not a rule file
        if stat.S_ISREG(st.st_mode):
            found[entry.path] = FileState.of(st)


# -- loading a rule set ------------------------------------------------------------------------
def load_rules(
    paths: Sequence[Path],
    *,
    placeholders: Mapping[str, Sequence[str]] | None = None,
    cache_dir: Path | None = None,
    use_cache: bool = True,
    workers: int | None = None,
    progress: Callable[[str], None] | None = None,
    before_fork: Callable[[], None] | None = None,
) -> LoadedRules:
    """Compile every rule under ``paths``, from the cache where the file is unchanged.

    A file is unchanged when the rule set's snapshot recorded its state (size, times, inode)
    long enough before it was written, else when its bytes have a cached digest.
    ``before_fork`` is called before worker processes are started to compile (a caller with
    a thread at work lets it finish first: forking beside a running thread is unsafe)."""
    started = time.perf_counter()
    placeholders = dict(placeholders or {})
    files = _discover(paths)
    settings = repr(sorted((k, list(v)) for k, v in placeholders.items()))
    directory = cache_dir or default_cache_dir()
    loaded = LoadedRules(files=len(files))
    with gc_paused():
        snapshot = None
        if use_cache:
            roots = sorted(str(Path(p).expanduser().resolve()) for p in paths)
            snapshot = RuleSetSnapshot(directory, settings, roots)
        entries, misses, stale = _cached(files, snapshot, directory, settings, use_cache)
    if misses and progress:
        cached = len(files) - len(misses)
        progress(f"compiling {len(misses)} rule files with pySigma ({cached} cached)")
    compiled: list[list[dict[str, Any]]] = []
    if misses:
        # pySigma's objects hold cycles (a hunt pauses the collector). Only then: the collector
        # switched on collects at once, walking every object read from the cache (~50 ms).
        with gc_running():
            compiled = _compile_all(
                [(file, text) for file, text in misses.values()], placeholders, workers,
                before_fork,
            )  # fmt: skip
    for (index, (_file, _text)), items in zip(misses.items(), compiled, strict=True):
        entries[index] = SnapshotEntry(entries[index].file, entries[index].state,
                                       entries[index].digest, items)  # fmt: skip
    if misses and use_cache:
        rule_cache = RuleCache(directory, settings)
        for index in misses:
            rule_cache.put(entries[index].digest, entries[index].items)
        rule_cache.save()
    if snapshot is not None and (stale or len(snapshot.entries) != len(entries)):
        snapshot.save(entries)
    loaded.from_cache = len(files) - len(misses)
    with gc_paused():
        for entry in entries:
            _add(loaded, entry.items, entry.file)
    loaded.seconds = time.perf_counter() - started
    return loaded


def _cached(
    files: list[tuple[str, FileState]],
    snapshot: RuleSetSnapshot | None,
    directory: Path,
    settings: str,
    use_cache: bool,
) -> tuple[list[SnapshotEntry], dict[int, tuple[str, str]], bool]:
    """Every file's entry (items empty where uncached), the misses by index as (file, text),
    and whether the snapshot needs rewriting (some file was not trusted by its state)."""
    entries: list[SnapshotEntry] = []
    misses: dict[int, tuple[str, str]] = {}
    rule_cache: RuleCache | None = None  # the digest cache, read only if the snapshot falls short
    stale = False
    for index, (file, state) in enumerate(files):
        entry = snapshot.trusted(file, state) if snapshot is not None else None
        if entry is not None:
            entries.append(entry)
            continue
        stale = True
        data = Path(file).read_bytes()
        digest = file_digest(data)
        items = snapshot.items(file, digest) if snapshot is not None else None
        if items is None and use_cache:
            rule_cache = rule_cache or RuleCache(directory, settings)
            items = rule_cache.get(digest)
        if items is None:
            misses[index] = (file, data.decode("utf-8", errors="replace"))
        entries.append(SnapshotEntry(file, state, digest, items or []))
    return entries, misses, stale


def _compile_all(
    pairs: list[tuple[str, str]],
    placeholders: Mapping[str, Sequence[str]],
    workers: int | None,
    before_fork: Callable[[], None] | None = None,
) -> list[list[dict[str, Any]]]:
    if not pairs:
        return []
    from breachtrace.detect.sigma.compiler import compile_batch  # pySigma: only on misses

    workers = workers or min(2, os.cpu_count() or 1)
    if len(pairs) < PARALLEL_FROM or workers <= 1:
        return compile_batch(pairs, placeholders)
    if before_fork is not None:
        before_fork()
    size = max(1, -(-len(pairs) // (workers * 4)))
    batches = [pairs[i : i + size] for i in range(0, len(pairs), size)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        results = pool.map(compile_batch, batches, [placeholders] * len(batches))
        return [items for batch in results for items in batch]


def _add(loaded: LoadedRules, items: list[dict[str, Any]], file: str) -> None:
    for data in items:
        item = from_dict(data, file=file)
        if isinstance(item, SkippedRule):
            loaded.skipped.append(item)
        elif isinstance(item, CompiledRule):
            loaded.rules.append(item)
        else:
            loaded.correlations.append(item)


# -- choosing rules ----------------------------------------------------------------------------
@dataclass(frozen=True)
class RuleFilter:
    """Which rules a hunt runs: minimum level, statuses and ATT&CK/other tags (any of them)."""

    min_level: str | None = None
    statuses: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.min_level and self.min_level.lower() not in LEVELS:
            raise ValueError(f"unknown level {self.min_level!r}: choose one of {', '.join(LEVELS)}")

    def accepts(self, meta: RuleMeta) -> bool:
        if self.min_level:
            if meta.level not in LEVELS:
                return False
            if LEVELS.index(meta.level) < LEVELS.index(self.min_level.lower()):
                return False
        if self.statuses and meta.status not in {s.lower() for s in self.statuses}:
            return False
        if self.tags:
            wanted = [tag_key(t) for t in self.tags]
            have = [tag_key(t) for t in meta.tags]
            if not any(tag == w or tag.startswith(w + ".") for tag in have for w in wanted):
                return False
        return True


def tag_key(tag: str) -> str:
    """A tag as compared: case-insensitive, ``_`` and ``-`` alike (SigmaHQ writes tactics
    ``attack.lateral-movement``, older rules and behavioural findings ``lateral_movement``)."""
    return tag.lower().replace("_", "-")
