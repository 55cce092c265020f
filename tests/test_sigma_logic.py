"""Rules decided in Python (logic.py) give what their SQL gives in DuckDB, row for row."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest
from test_sigma_modifiers import CASES

from breachtrace.case import Case
from breachtrace.detect.sigma import hunt
from breachtrace.detect.sigma.compiler import compile_text
from breachtrace.detect.sigma.logic import columns, evaluate, logic_of, tree
from breachtrace.detect.sigma.records import CompiledRule
from breachtrace.ingest.runner import ingest

from sigma_helpers import PROCESS, fresh_case, matched_records, rule_id, rule_yaml, write_rules

hunt_module = importlib.import_module("breachtrace.detect.sigma.hunt")
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"

ROWS = [
    ("c:\\windows\\system32\\cmd.exe", "whoami /all", "C:\\Windows\\System32\\cmd.exe"),
    ("c:\\tools\\it's.exe", "", "C:\\Tools\\It's.exe"),
    (None, "net use \\\\host\\admin$", None),
    ("", None, ""),
    ("d:\\ümlaut\\ß.exe", "naïve -enc", "D:\\Ümlaut\\ß.exe"),
    (None, None, None),
    ("line1\nc:\\x.exe", "whoami\n", "A\nB"),
]
SQL = [
    """contains("l:a", 'system32')""",
    """starts_with("l:a", 'c:\\')""",
    """ends_with("l:a", '\\cmd.exe')""",
    """"l:a" = 'c:\\tools\\it''s.exe'""",
    """"l:b" IN ('whoami /all', '', 'x')""",
    """"v:a" IS NULL""",
    """"v:a" IS NOT NULL AND contains("l:b", 'admin$')""",
    """contains("l:a", '')""",
    """contains("l:b", 'whoami') OR contains("l:a", '.exe')""",
    """contains("l:b", 'whoami') AND contains("l:a", '.exe')""",
    """ends_with("l:a", '.exe') AND NOT coalesce((contains("l:b", 'whoami')), false)""",
    """NOT coalesce((ends_with("l:a", 'ß.exe') OR "l:b" = ''), false) AND "v:a" IS NOT NULL""",
    """(starts_with("l:a", 'd:') OR starts_with("l:a", 'c:')) AND (contains("l:b", '-enc')
       OR contains("l:b", '/all') AND NOT coalesce(("l:a" IN ('x', 'y')), false))""",
    """NOT ("l:b" = 'whoami /all')""",
    "true",
    """contains("v:a", 'Windows') AND NULL""",
    """coalesce(NULL, contains("l:b", 'net'), false)""",
    # regular expressions that only list texts (the backend's merged ORs)
    r"""regexp_matches("l:a", '(?s)(?:^c:\\windows\\)|(?:\.exe$)|(?:it''s)|(?:^$)')""",
    r"""regexp_matches("l:b", '(?s)(?:admin\$)|(?:^whoami /all$)|(?:\\\\host)')""",
    r"""NOT coalesce(regexp_matches("l:a", '(?:ß\.exe$)'), false)""",
    # an escaped $ is a character; after an escaped backslash, $ is the end again
    r"""regexp_matches("l:b", '(?:admin\$)|(?:cmd\.exe$)|(?:\\$)|(?:s\\\$)')""",
    # real regular expressions, on RE2 with DuckDB's options: . does not match a newline unless
    # (?s); ^ and $ are the ends of the value ("whoami\n" does not end with whoami)
    r"""regexp_matches("v:a", 'x.*y')""",
    r"""regexp_matches("l:a", '(?s)(?:^c:.*\.exe$)')""",
    r"""regexp_matches("l:a", '^c:.*\.exe$')""",
    r"""regexp_matches("v:a", '(?i)(?:cmd)')""",
    r"""regexp_matches("l:b", '(?:\d+)|whoami$')""",
    r"""regexp_matches("v:a", '^B') OR regexp_matches("v:a", 'A.B')""",
    r"""regexp_matches("v:a", '(?s)A.B') AND NOT regexp_matches("v:a", '^B$')""",
    r"""regexp_matches("v:a", '(?i)ümlaut\\[^\\]+\.EXE') OR regexp_matches("l:b", '\bnet\s+use\b')""",
    # LIKE, as the backend writes it: the whole value, % any text (newlines too), _ one
    # character (ß is one), the escape making either a character
    r""""l:a" LIKE '%\\system32\\%.exe' ESCAPE '\'""",
    r""""l:a" LIKE 'd:\\_mlaut\\_.exe' ESCAPE '\'""",
    r""""l:b" LIKE '%net use%$' ESCAPE '\' OR "l:b" LIKE 'whoami%' ESCAPE '\'""",
    r""""l:a" LIKE '%it''s%' ESCAPE '\' AND NOT ("l:b" LIKE '\%%' ESCAPE '\')""",
    r""""l:a" LIKE 'line1_c:%' ESCAPE '\' OR "v:a" LIKE '_' ESCAPE '\'""",
    r""""l:b" LIKE '%.*[(%' ESCAPE '\' OR "v:a" LIKE '%\_%' ESCAPE '\'""",
]


@pytest.fixture(scope="module")
def table() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute('CREATE TABLE t (n INTEGER, "l:a" VARCHAR, "l:b" VARCHAR, "v:a" VARCHAR)')
    con.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", [(i, *r) for i, r in enumerate(ROWS)])
    return con


def _parse(con: duckdb.DuckDBPyConnection) -> Callable[[str], str]:
    return lambda sql: str(con.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()[0])


@pytest.mark.parametrize("sql", SQL)
def test_tree_agrees_with_duckdb_on_every_row(table: duckdb.DuckDBPyConnection, sql: str) -> None:
    found = logic_of(sql, _parse(table))
    assert found is not None, sql
    expected = dict(table.execute(f"SELECT n, ({sql}) FROM t ORDER BY n").fetchall())
    for n, (a, b, va) in enumerate(ROWS):
        row = {"l:a": a, "l:b": b, "v:a": va}
        assert evaluate(found, row) == expected[n], (sql, row)
    assert columns(found) <= {"l:a", "l:b", "v:a"}


@pytest.mark.parametrize(
    "sql",
    [
        r"""regexp_matches("l:a", '(?<=c:)x')""",  # RE2 rejects it: DuckDB reports the rule
        """TRY_CAST("v:a" AS DOUBLE) > 4""",
        """"l:a" = "l:b\"""",  # a field reference, not a text
        """lower("v:a") = 'x'""",
        """contains("l:a", 'x'""",  # not even SQL
    ],
)
def test_anything_else_is_left_to_sql(table: duckdb.DuckDBPyConnection, sql: str) -> None:
    assert logic_of(sql, _parse(table)) is None


def test_compiled_rules_carry_their_tree() -> None:
    plain = rule_yaml("plain", PROCESS, {
        "sel": {"Image|endswith": "\\cmd.exe", "CommandLine|contains": "whoami"},
        "filter": {"ParentImage": None}, "condition": "sel and not filter",
    })  # fmt: skip
    regex = rule_yaml("regex", PROCESS, {"sel": {"CommandLine|re": "who.mi"}, "condition": "sel"})
    number = rule_yaml("number", PROCESS, {"sel": {"ProcessId|gt": 4}, "condition": "sel"})
    (with_tree,) = compile_text(plain, "plain.yml", {})
    (with_regex,) = compile_text(regex, "regex.yml", {})
    (without,) = compile_text(number, "number.yml", {})
    assert all(isinstance(r, CompiledRule) for r in (with_tree, with_regex, without))
    assert with_tree.logic is not None and with_regex.logic is not None and without.logic is None
    assert columns(tree(with_tree.logic)) == {"l:^image", "l:^command^line", "v:^parent^image"}
    assert tree(with_regex.logic) == ["regex", "v:^command^line", "who.mi"]


def _both_ways(case: Case, rules: Path, cache: Path) -> tuple[dict, dict, int]:
    decided = hunt(case, [rules], cache_dir=cache)
    in_python = matched_records(case)
    original = hunt_module.DECIDE_MAX_ROWS
    hunt_module.DECIDE_MAX_ROWS = 0
    try:
        planned = hunt(case, [rules], cache_dir=cache)
    finally:
        hunt_module.DECIDE_MAX_ROWS = original
    assert planned.rules_decided == 0 and planned.findings == decided.findings
    return in_python, matched_records(case), decided.rules_decided


def test_hunt_decides_as_its_sql_would(tmp_path: Path) -> None:
    """Every modifier test's rule, hunted with the decision in Python and with SQL only."""
    texts = {name: rule_yaml(name, ls, det) for name, (ls, det, _want) in CASES.items()}
    rules = write_rules(tmp_path / "rules", texts)
    in_python, in_sql, decided = _both_ways(fresh_case(tmp_path / "case"), rules, tmp_path / "c")
    assert decided >= 10  # most of them are limited to a few rows and simple enough
    assert in_python == in_sql and in_python


def test_rules_that_search_records_are_left_to_sql(tmp_path: Path) -> None:
    """A rule reading the records (a keyword regex that only lists a text has a tree) in a group
    checked row by row: decided in SQL, where the records are, with the same result."""
    system = {"product": "windows", "service": "system"}
    texts = {
        "keyword": rule_yaml("keyword", system, {"keywords": ["evilsvc"], "condition": "keywords"}),
        "field_and_keyword_regex": rule_yaml("field_and_keyword_regex", system, {
            "sel": {"EventID": 7045, "ServiceName": "EvilSvc"}, "kw": {"|re": "(?:evil)"},
            "condition": "sel and kw"}),
    }  # fmt: skip
    (compiled,) = compile_text(texts["field_and_keyword_regex"], "r.yml", {})
    assert isinstance(compiled, CompiledRule) and compiled.logic is not None
    rules = write_rules(tmp_path / "rules", texts)
    in_python, in_sql, _decided = _both_ways(fresh_case(tmp_path / "case"), rules, tmp_path / "c")
    assert in_python == in_sql
    assert in_python[rule_id("field_and_keyword_regex")] == {23}


def test_the_engine_is_closed_when_the_rules_fail_to_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DuckDB opens while the rules load: a rule path that is not there still closes it."""
    from breachtrace.engines.duckdb import DuckDBEngine

    closed: list[bool] = []
    original = DuckDBEngine.close
    monkeypatch.setattr(DuckDBEngine, "close", lambda self: (closed.append(True), original(self)))
    with pytest.raises(FileNotFoundError, match="not found"):
        hunt(fresh_case(tmp_path / "case"), [tmp_path / "missing"], cache_dir=tmp_path / "c")
    assert closed == [True]


@pytest.mark.skipif(not CORPUS.is_dir(), reason="needs ../shared/corpus")
def test_sigmahq_rules_decide_as_their_sql_would_on_evtx_mitre(tmp_path: Path) -> None:
    """SigmaHQ's Windows rules over evtx-mitre: the same findings either way."""
    ingest(tmp_path / "case", [CORPUS / "evtx-mitre"])
    rules = CORPUS / "sigma" / "rules" / "windows"
    in_python, in_sql, decided = _both_ways(Case.open(tmp_path / "case"), rules, tmp_path / "c")
    assert decided >= 100
    assert in_python == in_sql and sum(map(len, in_python.values())) > 1000
