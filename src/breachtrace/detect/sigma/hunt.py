"""Hunt: run Sigma rules over every event of a case and store each hit as a Finding.

The work, in SQL over the case store, except where a rule is decided in Python (step 6):

1. open DuckDB, then count events per class (source format, channel, provider, event id) on a
   thread while the rules load; a small case's records are copied there too (step 3);
2. resolve each rule's logsource to the classes it covers and group rules by logsource;
   groups without events are never scanned;
3. copy the raw records some group needs into memory once (``hunt_events``), so the Parquet
   ``raw`` column is decompressed once, not once per group (memory: about their size);
4. per group, extract the fields its rules read, once per distinct combination of values
   (``scan.py``), while the prefilter's automata are built; the rules the prefilter cannot
   remove (no anchors) are matched as soon as their group's table is made;
5. skip the rules whose necessary texts (``anchors``, from the backend) cannot occur together
   in one event of their group, and limit those whose texts occur together in a few events to
   those: planning costs ~1-2 ms a rule, which on a small case is most of the work;
6. evaluate in Python, on those few rows, the limited rules whose condition is string tests,
   regular expressions (on RE2, as DuckDB) and LIKE patterns (``logic.py``); match the
   remaining rules in batches on a thread pool, one DuckDB cursor each, so every core works; a
   batch DuckDB rejects is split until the failing rule is found and reported;
7. run correlation rules over the hits (``correlate.py``) and write the findings set "sigma"."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from breachtrace.case import Case
from breachtrace.detect.sigma import correlate, logic, scan
from breachtrace.detect.sigma.cache import usable_cache_dir
from breachtrace.detect.sigma.columns import KEYWORD_FIELD
from breachtrace.detect.sigma.loader import LoadedRules, RuleFilter, default_rule_paths, load_rules
from breachtrace.detect.sigma.logsources import Logsource, LogsourceMap, load_logsources
from breachtrace.detect.sigma.records import (
    LEVEL_SCORE,
    CompiledCorrelation,
    CompiledRule,
    SkippedRule,
)
from breachtrace.engines.base import Engine, open_engine, query_errors, tuples
from breachtrace.findings import write_findings
from breachtrace.gc_paused import gc_paused
from breachtrace.schema import FINDING_SCHEMA

# A rule whose tree (logic.py) the prefilter limited to at most this many rows is evaluated in
# Python on them: planning its SQL costs about a millisecond, evaluating a tree on a row a few
# microseconds. The prefilter limits rules to at most ROW_FILTER_MAX rows, so this decides
# every limited rule that has a tree; 0 leaves all of them to SQL (tests compare both).
DECIDE_MAX_ROWS = scan.ROW_FILTER_MAX

# Classes whose records may hold wrapped values, and objects (see ``_load_events``)
Shapes = tuple[set[int], set[int]]

# Rows in one DuckDB row group (its unit of parallel work; DuckDB's default)
DUCKDB_ROW_GROUP = 122_880

# Rows of a group's table up to which the prefilter checks texts row by row (Python walks each
# non-null anchored value, ~1 us each; most of a row's fields are null)
ROW_CHECK_ROWS = 20_000


@dataclass
class HuntSummary:
    """What a hunt did: rules (loaded, compiled, skipped with reasons, fired), events, findings."""

    case: Path
    rule_files: int = 0
    rules_loaded: int = 0  # rule documents read (compiled or not)
    rules_selected: int = 0  # compiled rules passing the level/status/tag filters
    rules_compiled: int = 0
    files_from_cache: int = 0
    skipped: list[SkippedRule] = field(default_factory=list)  # could not be parsed/compiled/run
    unmapped: list[SkippedRule] = field(default_factory=list)  # logsource sees no stored events
    rules_fired: int = 0
    correlations_run: int = 0
    correlations_fired: int = 0
    events_total: int = 0
    events_scanned: int = 0  # events some selected rule's logsource covers
    groups_scanned: int = 0
    findings: int = 0
    compile_seconds: float = 0.0
    scan_seconds: float = 0.0
    seconds: float = 0.0
    fired: dict[str, int] = field(default_factory=dict)  # rule id -> findings
    timings: dict[str, float] = field(default_factory=dict)  # phase -> seconds
    rules_planned: int = 0  # rules whose SQL ran (see rules_decided; the others' texts occur
    # in no event)
    rules_decided: int = 0  # rules evaluated in Python on their few candidate rows (logic.py)


@gc_paused()  # the hunt's objects are freed by reference counting (gc_paused.py)
def hunt(
    case: Case,
    rule_paths: Sequence[Path],
    *,
    min_level: str | None = None,
    statuses: Sequence[str] = (),
    tags: Sequence[str] = (),
    progress: Callable[[str], None] | None = None,
    placeholders: Mapping[str, Sequence[str]] | None = None,
    cache_dir: Path | None = None,
    threads: int | None = None,
    engine: str = "duckdb",
    spark_master: str | None = None,
) -> HuntSummary:
    """Run the Sigma rules under ``rule_paths`` over the case and store findings ("sigma").

    With no ``rule_paths`` the configured default is used (``default_rule_paths``, which
    raises ``NoRulesConfigured`` saying how to get SigmaHQ's rules). Compiled rules are cached
    in ``cache_dir`` (default: the user cache, else the case directory).

    ``min_level``, ``statuses`` and ``tags`` choose rules (a tag matches itself and its
    sub-techniques); ``placeholders`` give values to ``|expand`` placeholders; ``progress``
    receives one-line messages. ``engine`` runs the SQL on "duckdb" (default) or "spark"
    (``spark_master``, default local[*]). Returns counts, timings and every skipped rule.
    """
    started = time.perf_counter()
    say = progress or (lambda _m: None)
    mapping = load_logsources()
    values = {**mapping.placeholders, **(placeholders or {})}
    paths = list(rule_paths) or default_rule_paths()
    cache_dir = cache_dir or usable_cache_dir(case.root / "cache")

    def load(before_fork: Callable[[], None] | None = None) -> LoadedRules:
        return load_rules(paths, placeholders=values, cache_dir=cache_dir, progress=say,
                          before_fork=before_fork)  # fmt: skip

    shapes: Shapes | None = None  # set where the records were copied while the rules loaded
    if engine == "duckdb":
        con, classes, shapes, loaded = _open_while_loading(case, threads, mapping, load)
    else:  # Spark's context must be made on the main thread (it sets a signal handler)
        loaded = load()
        con, classes = _open(case, engine, spark_master, threads)
    summary = HuntSummary(case.root)
    try:
        _hunt_with(con, classes, shapes, case, loaded, mapping, min_level, statuses, tags, say,
                   threads, summary)  # fmt: skip
    finally:
        con.close()
    summary.seconds = time.perf_counter() - started
    return summary


def _open_while_loading(
    case: Case,
    threads: int | None,
    mapping: LogsourceMap,
    load: Callable[[Callable[[], None] | None], LoadedRules],
) -> tuple[Engine, list[tuple], Shapes | None, LoadedRules]:
    """DuckDB opened, then the event classes counted and a small case's records copied
    (``_count_and_copy``) on a thread while this one loads the rules; returned with the rules.
    Opening stays on this thread: its dozen short calls into DuckDB, each waiting for the
    interpreter the rule loading holds, took 3-6 times as long on a thread (60-160 ms)."""
    con = open_engine(case, "duckdb", threads=threads)
    with ThreadPoolExecutor(max_workers=1) as background:
        counting = background.submit(_count_and_copy, con, threads, mapping)
        closed: list[bool] = []

        def before_fork() -> None:
            # Rule files are about to be compiled in forked processes: DuckDB runs threads of
            # its own, and forking beside threads is unsafe, so close it (which joins them)
            # and open it again after; a compile that long makes the cost moot.
            _settle(counting)
            con.close()
            closed.append(True)

        try:
            loaded = load(before_fork)
        except BaseException:
            if not closed:
                _settle(counting)
                con.close()
            raise
    if closed:
        return *_open(case, "duckdb", None, threads), None, loaded
    try:
        classes, shapes = counting.result()
    except BaseException:
        con.close()
        raise
    return con, classes, shapes, loaded


# Cases up to this many events have all of their records copied while the rules load, before
# the groups tell which classes some rule sees (a larger case copies only those, after).
EARLY_COPY_MAX = DUCKDB_ROW_GROUP


def _count_and_copy(
    con: Engine, threads: int | None, mapping: LogsourceMap
) -> tuple[list[tuple], Shapes | None]:
    """``_count``, then on a small case (``EARLY_COPY_MAX``) every record copied for the scan
    (``_prepare_scan``), with which classes hold wrapped values and objects (else None)."""
    classes = _count(con)
    events = sum(row[5] for row in classes)
    if events > EARLY_COPY_MAX:
        return classes, None
    every = [row[0] for row in classes]
    return classes, _prepare_scan(con, every, mapping, events, threads, with_findings=True)


def _open(
    case: Case, engine: str, spark_master: str | None, threads: int | None
) -> tuple[Engine, list[tuple]]:
    """The engine over the case, with its events counted per class (``_count``)."""
    con = open_engine(case, engine, master=spark_master, threads=threads)
    try:
        classes = _count(con)
    except BaseException:
        con.close()
        raise
    return con, classes


def _count(con: Engine) -> list[tuple]:
    """``hunt_classes``: events counted per class (source format, channel, provider, event
    code), and those counts."""
    con.execute("SET enable_progress_bar = false")
    con.create_table(
        "hunt_classes",
        "SELECT CAST(row_number() OVER (ORDER BY source_format, channel, provider, event_code) "
        "AS INTEGER) AS cls, * FROM (SELECT source_format, channel, provider, event_code, "
        "count(*) AS n FROM events GROUP BY ALL)",
    )
    return tuples(
        con, "SELECT cls, source_format, channel, provider, event_code, n FROM hunt_classes"
    )


def _settle(pending: Future) -> None:
    """Wait for work on the engine before it is closed (the hunt failed first, or a fork is
    coming); its own failure, if any, is reported when the engine is opened again."""
    try:
        pending.result()
    except Exception:  # the hunt's own error is the one to report
        return


def _hunt_with(
    con: Engine,
    classes: list[tuple],
    shapes: Shapes | None,
    case: Case,
    loaded: LoadedRules,
    mapping: LogsourceMap,
    min_level: str | None,
    statuses: Sequence[str],
    tags: Sequence[str],
    say: Callable[[str], None],
    threads: int | None,
    summary: HuntSummary,
) -> None:
    summary.rule_files, summary.rules_loaded = loaded.files, loaded.loaded
    summary.timings["load_rules"] = summary.compile_seconds = loaded.seconds
    summary.rules_compiled = len(loaded.rules) + len(loaded.correlations)
    summary.files_from_cache, summary.skipped = loaded.from_cache, list(loaded.skipped)
    say(
        f"{summary.rules_compiled} rules compiled from {loaded.files} files in {loaded.seconds:.2f} s"
    )
    rules, correlations, output = _select(
        loaded, RuleFilter(min_level, tuple(statuses), tuple(tags)), summary
    )
    _run(con, classes, shapes, case, mapping, rules, correlations, output, summary, say, threads)


def _select(
    loaded: LoadedRules, chosen: RuleFilter, summary: HuntSummary
) -> tuple[list[CompiledRule], list[CompiledCorrelation], list[bool]]:
    """Rules passing the filter plus the base rules of chosen correlations, and which of them
    report their own hits (Sigma: a rule a correlation references does not, unless the
    correlation says ``generate: true``)."""
    by_ref: dict[str, int] = {}
    for i, rule in enumerate(loaded.rules):
        by_ref.setdefault(rule.meta.rule_id, i)
        if rule.meta.name:
            by_ref.setdefault(rule.meta.name, i)
    chosen_rules = {i for i, r in enumerate(loaded.rules) if chosen.accepts(r.meta)}
    usable: list[CompiledCorrelation] = []
    referenced: dict[int, bool] = {}  # rule index -> some referencing correlation generates
    for corr in (c for c in loaded.correlations if chosen.accepts(c.meta)):
        missing = [ref for ref in corr.rules if ref not in by_ref]
        if missing:
            reason = f"correlation references rules that were not loaded: {', '.join(missing)}"
            summary.skipped.append(
                SkippedRule(corr.meta.rule_id, corr.meta.title, corr.meta.file, reason)
            )
            continue
        usable.append(corr)
        for ref in corr.rules:
            referenced[by_ref[ref]] = referenced.get(by_ref[ref], False) or corr.generate
    indices = sorted(chosen_rules | set(referenced))
    output = [
        i in chosen_rules and referenced.get(i, not _silenced(loaded.rules[i], loaded.correlations))
        for i in indices
    ]
    summary.rules_selected = len(indices) + len(usable)
    return [loaded.rules[i] for i in indices], usable, output


def _silenced(rule: CompiledRule, correlations: list[CompiledCorrelation]) -> bool:
    """Whether a loaded correlation (chosen or not) without ``generate`` references the rule."""
    refs = {rule.meta.rule_id, rule.meta.name} - {""}
    return any(not c.generate and refs & set(c.rules) for c in correlations)


def _run(
    con: Engine,
    classes: list[tuple],
    shapes: Shapes | None,
    case: Case,
    mapping: LogsourceMap,
    rules: list[CompiledRule],
    correlations: list[CompiledCorrelation],
    output: list[bool],
    summary: HuntSummary,
    say: Callable[[str], None],
    threads: int | None,
) -> None:
    began = time.perf_counter()
    copied = shapes is not None  # the records (and the findings' columns) copied while loading
    summary.events_total = sum(row[5] for row in classes)
    groups = _group(rules, mapping, classes, summary)
    correlate.add_group_fields(groups, rules, correlations)
    needed = sorted({c for g in groups for ids in g.classes.values() for c in ids})
    summary.groups_scanned = len(groups)
    summary.events_scanned = sum(row[5] for row in classes if row[0] in set(needed))
    say(
        f"{summary.events_total:,} events; {summary.events_scanned:,} seen by {len(groups)} logsource groups"
    )
    if shapes is None:  # not copied yet (a large case): only the classes some group sees
        shapes = _prepare_scan(con, needed, mapping, summary.events_total, threads)
    summary.timings["events"] = time.perf_counter() - began
    formats_of = {row[0]: row[1] for row in classes}
    failed = _scan(con, groups, formats_of, shapes, mapping, say, threads, summary)
    mark = time.perf_counter()
    for rule_no, reason in failed.items():
        meta = rules[rule_no].meta
        summary.skipped.append(SkippedRule(meta.rule_id, meta.title, meta.file, reason))
    _register_rules(con, rules, output, mapping)
    _hit_events(con, copied)
    table = _findings(con)
    corr_table, fired = correlate.run(con, rules, correlations)
    summary.correlations_run, summary.correlations_fired = len(correlations), fired
    if corr_table.num_rows:
        table = pa.concat_tables([table, corr_table])
    write_findings(case, "sigma", table)
    summary.findings = table.num_rows
    counts: dict[str, int] = {}
    for rid in table.column("rule_id").to_pylist():
        counts[rid] = counts.get(rid, 0) + 1
    summary.fired = counts
    summary.rules_fired = len(
        set(table.filter(pc.equal(table["kind"], "sigma"))["rule_id"].to_pylist())
    )
    summary.scan_seconds = time.perf_counter() - began
    summary.timings["findings"] = time.perf_counter() - mark
    if con.name != "duckdb":  # DuckDB's database is the hunt's own, in memory: gone on close
        _drop_work_tables(con, groups)


def _drop_work_tables(con: Engine, groups: list[scan.RuleGroup]) -> None:
    for group in groups:
        con.execute(f"DROP {'VIEW' if group.searches_records else 'TABLE'} IF EXISTS {group.table}")
        if group.joins_records:
            con.execute(f"DROP TABLE IF EXISTS {group.values_table}")
    for name in ["hunt_events", "hunt_hits", "hunt_matches", "hunt_hit_events", "hunt_classes",
                 "hunt_rules"]:  # fmt: skip
        con.execute(f"DROP TABLE IF EXISTS {name}")


def _group(
    rules: list[CompiledRule], mapping: LogsourceMap, classes: list[tuple], summary: HuntSummary
) -> list[scan.RuleGroup]:
    """Rules grouped by resolved logsource; only groups whose logsource covers stored events."""
    groups: dict[str, scan.RuleGroup] = {}
    resolved: dict[tuple[str | None, str | None, str | None], Logsource | None] = {}
    for rule_no, rule in enumerate(rules):
        # thousands of rules share a few dozen logsources: resolve each once
        where = (rule.product, rule.category, rule.service)
        if where not in resolved:
            resolved[where] = mapping.resolve(*where)
        logsource = resolved[where]
        if logsource is None:
            key = "/".join(v for v in (rule.product, rule.category, rule.service) if v)
            reason = f"logsource {key or '(none)'} is not mapped to stored events (see sigma_logsources.yaml)"
            summary.unmapped.append(
                SkippedRule(rule.meta.rule_id, rule.meta.title, rule.meta.file, reason)
            )
            continue
        group = groups.get(logsource.key)
        if group is None:
            group = groups[logsource.key] = scan.RuleGroup(
                len(groups), logsource.key, logsource.sources
            )
            for cls, fmt, channel, provider, code, n in classes:
                for index, source in enumerate(group.sources):
                    if source.covers(fmt, channel, provider, code):
                        group.classes.setdefault(index, []).append(cls)
                        group.events += n
        group.rules.append((rule_no, rule))
    return [g for g in groups.values() if g.events]


def _prepare_scan(
    con: Engine,
    classes: list[int],
    mapping: LogsourceMap,
    events: int,
    chosen_threads: int | None,
    *,
    with_findings: bool = False,
) -> Shapes:
    """The records copied (``_load_events``, whose result this returns) and the tables the
    matches go to made."""
    shapes = _load_events(con, classes, mapping, with_findings=with_findings)
    con.execute("CREATE OR REPLACE TABLE hunt_hits (rule_no INTEGER, eid BIGINT, fields VARCHAR)")
    con.execute("CREATE OR REPLACE TABLE hunt_matches (rule_no INTEGER, first_eid BIGINT)")
    if con.name == "duckdb" and events <= DUCKDB_ROW_GROUP and not chosen_threads:
        # DuckDB scans a row group with one thread whatever its setting, and the pool already
        # runs a statement per core: more threads only cost scheduling (evtx-mitre: 9% of the
        # hunt's CPU time, 5% of its wall time). ``events`` is the whole case: the findings
        # step reads all of it.
        con.execute("SET threads = 1")
    return shapes


def _load_events(
    con: Engine, classes: list[int], mapping: LogsourceMap, *, with_findings: bool = False
) -> Shapes:
    """Copy the records of these classes into ``hunt_events``, with the header columns that
    fields may read (event code, channel, provider: small beside the records, and joining them
    back per branch cost a millisecond of planning each); returns the classes with some
    record that may hold a wrapped value (``scan.wrapped_test``), the only ones extraction
    unwraps, and those with some record that may hold an object whose child's fields are read
    (``scan.holds_objects_test``), the only ones extraction reads such objects of.
    ``with_findings`` (a small case) copies the columns findings show too (``FINDING_COLUMNS``):
    then the hits' events need not be read from the store again (``_hit_events``)."""
    wanted = ", ".join(str(c) for c in classes) or "NULL"
    shown = "".join(f"e.{c}, " for c in FINDING_COLUMNS) if with_findings else ""
    holds = scan.holds_objects_test("e.raw", "e.source_format", mapping.object_keys())
    con.create_table("hunt_events", f"""
        SELECT c.cls, e.event_uid, e.event_code, e.channel, e.provider, {shown}e.raw,
               {scan.wrapped_test("e.raw")} AS wrapped, {holds} AS holds_objects
        FROM events e JOIN hunt_classes c
          ON e.source_format IS NOT DISTINCT FROM c.source_format
         AND e.channel IS NOT DISTINCT FROM c.channel
         AND e.provider IS NOT DISTINCT FROM c.provider
         AND e.event_code IS NOT DISTINCT FROM c.event_code
        WHERE c.cls IN ({wanted})
    """, row_ids=True)  # fmt: skip
    shapes: Shapes = (set(), set())
    for cls, wrapped, holds_objects in tuples(
        con, "SELECT cls, bool_or(wrapped), bool_or(holds_objects) FROM hunt_events GROUP BY cls"
    ):
        if wrapped:
            shapes[0].add(cls)
        if holds_objects:
            shapes[1].add(cls)
    return shapes


def _scan(
    con: Engine,
    groups: list[scan.RuleGroup],
    formats_of: dict[int, str],
    shapes: Shapes,
    mapping: LogsourceMap,
    say: Callable[[str], None],
    threads: int | None,
    summary: HuntSummary,
) -> dict[int, str]:
    """Extract every group's fields, then match all rule batches; returns rules that failed.
    The prefilter's automata are built while the pool extracts."""
    workers = threads or 2
    failed: dict[int, str] = {}

    @contextlib.contextmanager
    def worker() -> Iterator[Engine]:
        """The engine for one pool thread (a DuckDB cursor, closed after; Spark's session)."""
        cur = con.worker()
        try:
            yield cur
        finally:
            if cur is not con:
                cur.close()

    def extract(group: scan.RuleGroup) -> None:
        with worker() as cur:
            cur.execute(scan.extract_sql(group, formats_of, mapping, *shapes,
                                         structs=cur.name == "duckdb"))  # fmt: skip
        # Rules the prefilter keeps whatever the values are matched once the table is made,
        # while the main thread prefilters the others (the pool would idle then). Queued here,
        # so none waits for a table and all are queued when the extractions are done.
        early.extend(
            pool.submit(match, (group, batch), {})
            for batch in scan.batches(unconditional[group.number])
        )

    def match(
        job: tuple[scan.RuleGroup, list[tuple[int, CompiledRule]]],
        rows: dict[int, tuple[int, ...]],
    ) -> None:
        group, batch = job
        with worker() as cur:
            _match_isolating(cur, group, batch, rows, failed)

    def fields(jobs: list[tuple[scan.RuleGroup, list[tuple[int, CompiledRule]]]]) -> None:
        with worker() as cur:
            cur.execute(scan.fields_sql(jobs))

    ordered = sorted(groups, key=lambda g: -g.events * len(g.rules))
    unconditional = {g.number: [(n, r) for n, r in g.rules if scan.unconditional(r)]
                     for g in ordered}  # fmt: skip
    early: list[Future[None]] = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        mark = time.perf_counter()
        extracting = {pool.submit(extract, g): g for g in ordered}
        anchors = {g.number: scan.Anchors.of(g) for g in groups}
        # Prefilter the groups whose tables are made, in batches, while the pool extracts the
        # others (the largest group's extraction is the longest: the small ones are done first)
        runnable: dict[int, list[tuple[int, CompiledRule]]] = {}
        limited: dict[int, tuple[int, ...]] = {}
        cells: dict[int, Cells] = {}
        waiting = set(extracting)
        while waiting:
            done, waiting = wait(waiting, return_when=FIRST_COMPLETED)
            for finished in done:
                finished.result()
            batch = [extracting[f] for f in done]
            if not waiting:
                summary.timings["extract"] = time.perf_counter() - mark
                mark = time.perf_counter()
            found = _candidates(con, batch, anchors)
            runnable.update(found[0])
            limited.update(found[1])
            cells.update(found[2])
        _take(runnable, unconditional)  # already queued
        decided = {
            g.number: [(no, r) for no, r in runnable[g.number] if _decidable(r, limited.get(no))]
            for g in ordered
        }
        _take(runnable, decided)
        summary.timings["prefilter"] = time.perf_counter() - mark
        jobs = [(g, b) for g in ordered for b in scan.batches(runnable[g.number])]
        summary.rules_planned = sum(len(r) for r in [*runnable.values(), *unconditional.values()])
        summary.rules_decided = sum(len(r) for r in decided.values())
        say(f"matching {summary.rules_planned + summary.rules_decided} of "
            f"{sum(len(g.rules) for g in groups)} rules (the others' texts occur in no event): "
            f"{summary.rules_planned} in {len(jobs) + len(early)} SQL batches, "
            f"{summary.rules_decided} in Python on their few candidate rows")  # fmt: skip
        mark = time.perf_counter()
        matching = early + [pool.submit(match, job, limited) for job in jobs]
        # this thread decides its rules while the pool plans and runs the others
        _decide(con, ordered, decided, limited, cells, anchors)
        summary.timings["decide"] = time.perf_counter() - mark
        for pending in matching:
            pending.result()
        matched = _matched(con, ordered)  # a statement per worker, of about equal rules
        shares: list[list[tuple[scan.RuleGroup, list[tuple[int, CompiledRule]]]]] = [
            [] for _ in range(workers)
        ]
        for job in sorted(matched, key=lambda j: -len(j[1])):
            min(shares, key=lambda share: sum(len(j[1]) for j in share)).append(job)
        list(pool.map(fields, [share for share in shares if share]))
        summary.timings["match"] = time.perf_counter() - mark
    return failed


def _take(
    runnable: dict[int, list[tuple[int, CompiledRule]]],
    taken: dict[int, list[tuple[int, CompiledRule]]],
) -> None:
    """Remove from each group's runnable rules those taken elsewhere."""
    for number, rules in taken.items():
        if rules:
            numbers = {no for no, _ in rules}
            runnable[number] = [(no, r) for no, r in runnable[number] if no not in numbers]


def _decidable(rule: CompiledRule, rows: tuple[int, ...] | None) -> bool:
    """Whether the rule is evaluated in Python: its condition has a tree, it searches no
    record (records are not among the values read), and the prefilter limited it to a few
    rows (on many rows DuckDB's vectorized scan is the faster)."""
    return (
        rule.logic is not None
        and KEYWORD_FIELD not in rule.fields
        and rows is not None
        and len(rows) <= DECIDE_MAX_ROWS
    )


def _decide(
    con: Engine,
    groups: list[scan.RuleGroup],
    decided: dict[int, list[tuple[int, CompiledRule]]],
    limited: dict[int, tuple[int, ...]],
    cells: dict[int, Cells],
    anchors: dict[int, scan.Anchors],
) -> None:
    """Evaluate the decided rules on their rows' values and add their hits to
    ``hunt_matches``, as the SQL batches do. The lower-cased values the prefilter read are
    reused; the other columns the rules read come in one query for every group."""
    trees = {no: logic.tree(r.logic) for rules in decided.values() for no, r in rules if r.logic}
    values: dict[tuple[int, int], dict[str, str | None]] = {}
    jobs = []
    for group in groups:
        rules = decided.get(group.number) or []
        if not rules:
            continue
        names = set().union(*(logic.columns(trees[no]) for no, _ in rules))
        rows = {row for no, _ in rules for row in limited[no]}
        # the prefilter read the anchored fields, some of them from these very columns
        read = scan.prefilter_columns(group, scan.anchored_fields(anchors[group.number].texts))
        columns = {name: column for name, column in read.items() if column in names}
        for name, value, having in cells.get(group.number, []) if columns else []:
            column = columns.get(name)
            if column is not None:
                for row in having:
                    if row in rows:
                        values.setdefault((group.number, row), {})[column] = value
        if missing := names - set(columns.values()):
            jobs.append((group, sorted(missing), sorted(rows)))
    if jobs:
        for grp, row, column, value in tuples(con, scan.row_values_sql(jobs)):
            values.setdefault((grp, row), {})[column] = value
    hits: list[tuple[int, int]] = []
    for group in groups:
        for no, _rule in decided.get(group.number) or []:
            for row in limited[no]:
                if logic.evaluate(trees[no], values.get((group.number, row), {})) is True:
                    hits.append((no, row))
    if hits:
        table = pa.table({
            "rule_no": pa.array([h[0] for h in hits], pa.int32()),
            "first_eid": pa.array([h[1] for h in hits], pa.int64()),
        })  # fmt: skip
        con.register("hunt_decided", table)
        con.execute("INSERT INTO hunt_matches SELECT rule_no, first_eid FROM hunt_decided")
        con.unregister("hunt_decided")


def _matched(
    con: Engine, groups: list[scan.RuleGroup]
) -> list[tuple[scan.RuleGroup, list[tuple[int, CompiledRule]]]]:
    """Per row-keyed group, its rules with rows in hunt_matches (see ``fields_sql``)."""
    matched = {row[0] for row in tuples(con, "SELECT DISTINCT rule_no FROM hunt_matches")}
    jobs = []
    for group in groups:
        rules = [(no, rule) for no, rule in group.rules if no in matched]
        if rules and group.row_keyed:
            jobs.append((group, rules))
    return jobs


Cells = list[tuple[str, str, list[int]]]  # (field, lower-cased value, rows having it)


def _candidates(
    con: Engine, groups: list[scan.RuleGroup], anchors: dict[int, scan.Anchors]
) -> tuple[dict[int, list[tuple[int, CompiledRule]]], dict[int, tuple[int, ...]], dict[int, Cells]]:
    """Per group, the rules worth planning: those whose anchor texts occur in its events; the
    rules limited to the few rows where their texts occur together; and, per group checked row
    by row, the values read for that (the decisions reuse them)."""
    runnable = {g.number: g.rules for g in groups}
    limited: dict[int, tuple[int, ...]] = {}
    cells: dict[int, Cells] = {}
    # Checking a text costs about what evaluating a rule's predicate on it would (both scan the
    # field's values), but over distinct values and without planning a query per rule.
    texts = {g.number: anchors[g.number].texts for g in groups}
    chosen = [(g, scan.anchored_fields(texts[g.number])) for g in groups if texts[g.number]]
    if not chosen:
        return runnable, limited, cells
    # Row by row where the group's table is small enough for Python to walk its values (the
    # rules left are then also evaluated on fewer rows); else value by value.
    tables = [(g, f) for g, f in chosen if g.row_keyed]
    # a table has at most a row per event: count rows only where that bound is too high
    large = [g for g, _ in tables if g.events > ROW_CHECK_ROWS]
    sizes = dict(tuples(con, scan.sizes_sql(large))) if large else {}
    by_row = [(g, f) for g, f in tables if sizes.get(g.number, g.events) <= ROW_CHECK_ROWS]
    row_checked = {g.number for g, _ in by_row}
    if by_row:
        for grp, field_name, value, rows in tuples(con, scan.rows_sql(by_row)):
            cells.setdefault(grp, []).append((field_name, value, rows))
        for group, _fields in by_row:
            found = scan.row_candidates(group, texts[group.number], cells.get(group.number, []),
                                        anchors[group.number].automata)  # fmt: skip
            runnable[group.number] = found.rules
            limited.update(found.rows)
    by_value = [(g, f) for g, f in chosen if g.number not in row_checked]
    if by_value:
        values: dict[int, dict[str, list[str]]] = {}
        for grp, field_name, value in tuples(con, scan.values_sql(by_value)):
            values.setdefault(grp, {}).setdefault(field_name, []).append(value)
        for group, _fields in by_value:
            present = scan.present_texts(
                texts[group.number], values.get(group.number, {}), anchors[group.number].automata
            )
            runnable[group.number] = scan.candidates(group, texts[group.number], present)
    return runnable, limited, cells


def _match_isolating(
    cur: Engine,
    group: scan.RuleGroup,
    batch: list[tuple[int, CompiledRule]],
    limited: dict[int, tuple[int, ...]],
    failed: dict[int, str],
) -> None:
    """Run a batch; if DuckDB rejects it, halve it until the failing rules are found."""
    try:
        cur.execute(scan.match_sql(group, batch, limited))
    except query_errors() as exc:
        if len(batch) == 1:
            failed[batch[0][0]] = (
                f"{'DuckDB' if cur.name == 'duckdb' else 'Spark'} could not run the rule: "
                f"{' '.join(str(exc).split())[:400]}"
            )
            return
        half = len(batch) // 2
        _match_isolating(cur, group, batch[:half], limited, failed)
        _match_isolating(cur, group, batch[half:], limited, failed)


# The store's columns a finding shows, besides those ``hunt_events`` always holds
FINDING_COLUMNS = ("ts", "host", '"user"', "src_ip", "dst_ip", "process", "file_path",
                   "source_format")  # fmt: skip


def _hit_events(con: Engine, copied: bool) -> None:
    """The normalized columns of the events that matched (few), for findings and correlations:
    from ``hunt_events`` where they were ``copied`` (a small case), else from the store
    (``hunt_events`` holds little more than the raw records, to keep a large copy small)."""
    columns = ", ".join(f"e.{c}" for c in FINDING_COLUMNS)
    if copied:
        source = "(SELECT DISTINCT eid FROM hunt_hits) x JOIN hunt_events e ON e.rowid = x.eid"
    else:
        source = (
            "(SELECT DISTINCT h.eid, he.event_uid FROM hunt_hits h "
            "JOIN hunt_events he ON he.rowid = h.eid) x JOIN events e ON e.event_uid = x.event_uid"
        )
    con.execute(
        f"CREATE OR REPLACE TABLE hunt_hit_events AS SELECT x.eid, e.event_uid, {columns}, "
        f"e.channel, e.event_code FROM {source}"
    )


def _register_rules(
    con: Engine,
    rules: list[CompiledRule],
    output: list[bool],
    mapping: LogsourceMap,
) -> None:
    """The rules that hit, as ``hunt_rules`` (the findings' titles, levels, tags...): the few
    that matched rather than every rule loaded."""
    numbers = sorted(row[0] for row in tuples(con, "SELECT DISTINCT rule_no FROM hunt_hits"))
    metas = [rules[no].meta for no in numbers]
    text = pa.string()
    table = pa.table({
        "rule_no": pa.array(numbers, pa.int32()),
        "rule_id": pa.array([m.rule_id for m in metas], text),
        "title": pa.array([m.title for m in metas], text),
        "severity": pa.array(
            [m.level if m.level in LEVEL_SCORE else "informational" for m in metas], text
        ),
        "score": pa.array([LEVEL_SCORE.get(m.level, 0.1) for m in metas], pa.float64()),
        "techniques": pa.array([list(m.techniques) for m in metas], pa.list_(text)),
        "tags": pa.array([list(m.tags) for m in metas], pa.list_(text)),
        "file": pa.array([m.file for m in metas], text),
        "logsource": pa.array([
            "/".join(v for v in (r.product, r.category, r.service) if v)
            for r in (rules[no] for no in numbers)
        ], text),
        "output": pa.array([output[no] for no in numbers], pa.bool_()),
    })  # fmt: skip
    con.register("hunt_rules_arrow", table)
    con.create_table("hunt_rules", "SELECT * FROM hunt_rules_arrow")
    con.unregister("hunt_rules_arrow")


def _findings(con: Engine) -> pa.Table:
    """One finding per (rule, matching event), built in SQL as FINDING_SCHEMA rows."""
    names = ", ".join(f.name for f in FINDING_SCHEMA)
    return con.table(f"""
        SELECT {names} FROM (
        SELECT
            md5(r.rule_id || '|' || e.event_uid) AS finding_id,
            'sigma' AS source, 'sigma' AS kind, r.rule_id, r.title, r.severity, r.score,
            r.techniques, r.tags, e.ts AS first_ts, e.ts AS last_ts,
            list_filter([e.host], lambda x: x IS NOT NULL) AS hosts,
            list_filter([e."user"], lambda x: x IS NOT NULL) AS users,
            list_distinct(list_filter([e.src_ip, e.dst_ip], lambda x: x IS NOT NULL)) AS addresses,
            list_distinct(list_filter([e.process, e.file_path], lambda x: x IS NOT NULL)) AS files,
            [e.event_uid] AS evidence,
            'Sigma rule "' || r.title || '" (' || r.severity || ') matched ' ||
                coalesce(e.channel, e.source_format) ||
                coalesce(' event ' || e.event_code, '') || ' on ' ||
                coalesce(e.host, e.src_ip, 'an unknown host') ||
                CASE WHEN h.fields <> '{{}}' THEN ': ' || left(h.fields, 300) ELSE '' END AS explanation,
            CAST(json_object('rule_file', r.file, 'logsource', r.logsource,
                'source_format', e.source_format, 'channel', e.channel, 'event_code', e.event_code,
                'fields', json(h.fields)) AS VARCHAR) AS details
        FROM hunt_hits h
        JOIN hunt_rules r ON r.rule_no = h.rule_no
        JOIN hunt_hit_events e ON e.eid = h.eid
        WHERE r.output
        ORDER BY first_ts, rule_id)
    """).cast(FINDING_SCHEMA)  # fmt: skip
