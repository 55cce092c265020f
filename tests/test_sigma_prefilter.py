"""The hunt's prefilter: a rule is skipped, or limited to some rows, only where its anchor texts
prove it cannot match elsewhere."""

from __future__ import annotations

from breachtrace.detect.sigma import scan
from breachtrace.detect.sigma.columns import KEYWORD_FIELD
from breachtrace.detect.sigma.records import CompiledRule, RuleMeta

Anchors = tuple[tuple[tuple[str, str], ...], ...] | None


def _rule(rule_id: str, anchors: Anchors) -> CompiledRule:
    meta = RuleMeta(rule_id=rule_id, title=rule_id, file=f"{rule_id}.yml")
    return CompiledRule(meta, "windows", "process_creation", None, "true", (), (), (), anchors)


def _group(*rules: CompiledRule) -> scan.RuleGroup:
    group = scan.RuleGroup(0, "windows/process_creation", ())
    group.rules = list(enumerate(rules))
    return group


def test_clauses_must_hold_in_one_same_row() -> None:
    both = _rule("both", ((("Image", "\\tool.exe"),), (("CommandLine", "-secret"),)))
    either = _rule("either", ((("Image", "\\tool.exe"), ("CommandLine", "-secret")),))
    apart = _group(both, either)
    texts = scan.anchor_texts(apart)
    # row 1 has the image, row 2 the command line: never both in one event
    values = [("Image", "c:\\bin\\tool.exe", [1]), ("CommandLine", "run -secret now", [2]),
              ("Image", "c:\\bin\\other.exe", [2])]  # fmt: skip
    found = scan.row_candidates(apart, texts, values)
    assert [no for no, _ in found.rules] == [1]  # the group-level check would keep both
    assert found.rows == {1: (1, 2)}
    together = [*values, ("Image", "d:\\tool.exe", [3]), ("CommandLine", "x -secret", [3])]
    found = scan.row_candidates(apart, texts, together)
    assert [no for no, _ in found.rules] == [0, 1]
    assert found.rows == {0: (3,), 1: (1, 2, 3)}


def test_rules_without_usable_anchors_are_kept_on_every_row() -> None:
    unknown = _rule("unknown", None)
    keyword = _rule("keyword", (((KEYWORD_FIELD, "mimikatz"),), (("Image", "\\x.exe"),)))
    absent = _rule("absent", ((("Image", "\\nowhere.exe"),),))
    group = _group(unknown, keyword, absent)
    found = scan.row_candidates(group, scan.anchor_texts(group), [("Image", "c:\\x.exe", [7])])
    assert [no for no, _ in found.rules] == [0, 1]
    assert found.rows == {1: (7,)}  # the keyword clause is not checked, the other one is


def test_unconditional_rules_are_those_kept_whatever_the_values() -> None:
    """The hunt matches these before prefiltering: the prefilter must keep them, unlimited,
    on any values (here: none at all, and values holding every text)."""
    rules = [
        _rule("unknown", None),
        _rule("keywords", (((KEYWORD_FIELD, "mimikatz"),), ((KEYWORD_FIELD, "x"), ("Image", "y")))),
        _rule("field", (((KEYWORD_FIELD, "mimikatz"),), (("Image", "\\x.exe"),))),
    ]
    assert [scan.unconditional(r) for r in rules] == [True, True, False]
    group = _group(*rules)
    texts = scan.anchor_texts(group)
    for values in ([], [("Image", "c:\\x.exe y", [7])]):
        found = scan.row_candidates(group, texts, values)
        kept = {no for no, _ in found.rules}
        assert {0, 1} <= kept and not {0, 1} & set(found.rows)
        assert scan.candidates(group, texts, set())[:2] == group.rules[:2]


def test_many_rows_are_not_listed() -> None:
    wide = _rule("wide", ((("Image", ".exe"),),))
    group = _group(wide)
    values = [("Image", "c:\\p.exe", list(range(scan.ROW_FILTER_MAX + 1)))]
    found = scan.row_candidates(group, scan.anchor_texts(group), values)
    assert [no for no, _ in found.rules] == [0] and found.rows == {}


def test_match_sql_limits_a_rule_to_its_rows() -> None:
    group = _group(_rule("r", None))
    sql = scan.match_sql(group, group.rules, {0: (4, 9)})
    assert "WHERE first_eid IN (4, 9) AND (true)" in sql
    assert "WHERE true" in scan.match_sql(group, group.rules)
