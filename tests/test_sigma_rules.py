"""Loading Sigma rules: broken and unsupported rules are reported and skipped, the rest run;
the compiled-rule cache; the default rules directory; the backend's SQL."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from sigma.collection import SigmaCollection

from breachtrace.detect.sigma import NoRulesConfigured, cache, default_rule_paths, hunt, loader
from breachtrace.detect.sigma.backend import DuckDBSigmaBackend, field_column
from breachtrace.detect.sigma.loader import RuleFilter, load_rules
from breachtrace.detect.sigma.records import RuleMeta

from sigma_helpers import PROCESS, fresh_case, matched_records, rule_id, rule_yaml, write_rules

GOOD = rule_yaml("good", PROCESS, {"sel": {"Image|endswith": "\\cmd.exe"}, "condition": "sel"})
SYNTAX_ERROR = (
    f"title: broken yaml\nid: {rule_id('syntax')}\nlogsource: {{product: windows\ndetection: [\n"
)
BROKEN = {
    "syntax": SYNTAX_ERROR,
    "unknown_modifier": rule_yaml("unknown_modifier", PROCESS,
                                  {"sel": {"Image|sideways": "x"}, "condition": "sel"}),
    "undefined_selection": rule_yaml("undefined_selection", PROCESS,
                                     {"sel": {"Image": "x"}, "condition": "sel and other"}),
    "re2_lookahead": rule_yaml("re2_lookahead", PROCESS,
                               {"sel": {"CommandLine|re": "cmd(?=\\.exe)"}, "condition": "sel"}),
    "no_placeholder_value": rule_yaml("no_placeholder_value", PROCESS,
                                      {"sel": {"User|expand": "%nobody_defined_this%"}, "condition": "sel"}),
}  # fmt: skip
UNMAPPED = rule_yaml("unmapped", {"product": "aws", "service": "cloudtrail"},
                     {"sel": {"eventName": "ConsoleLogin"}, "condition": "sel"})  # fmt: skip


def test_syntax_error_is_reported_with_id_title_file(tmp_path: Path) -> None:
    path = write_rules(tmp_path, {"syntax": SYNTAX_ERROR}) / "syntax.yml"
    loaded = load_rules([path], use_cache=False)
    assert not loaded.rules
    [skipped] = loaded.skipped
    assert (skipped.rule_id, skipped.title, skipped.file) == (
        rule_id("syntax"),
        "broken yaml",
        str(path),
    )
    assert skipped.reason.startswith("cannot parse")


def test_mixed_directory_runs_the_valid_rules(tmp_path: Path) -> None:
    rules = write_rules(tmp_path / "rules", {"good": GOOD, "unmapped": UNMAPPED, **BROKEN})
    (rules / "notes.txt").write_text("not a rule")
    case = fresh_case(tmp_path / "case")
    summary = hunt(case, [rules], cache_dir=tmp_path / "cache")
    reasons = {s.rule_id: s.reason for s in summary.skipped}
    assert set(reasons) == {rule_id(name) for name in BROKEN}
    assert "sideways" in reasons[rule_id("unknown_modifier")]
    assert "(?=" in reasons[rule_id("re2_lookahead")]  # rejected by pySigma or by our RE2 check
    assert "nobody_defined_this" in reasons[rule_id("no_placeholder_value")]
    assert [u.rule_id for u in summary.unmapped] == [rule_id("unmapped")]
    assert "aws/cloudtrail" in summary.unmapped[0].reason
    assert summary.rules_loaded == 7 and summary.rules_compiled == 2
    assert matched_records(case) == {rule_id("good"): {1}}
    assert summary.rules_fired == 1


def test_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        load_rules([tmp_path / "nope"], use_cache=False)


def test_cache_skips_pysigma_and_notices_changes(tmp_path: Path) -> None:
    rules = write_rules(tmp_path / "rules", {"good": GOOD, "syntax": SYNTAX_ERROR})
    first = load_rules([rules], cache_dir=tmp_path / "cache")
    assert first.from_cache == 0 and len(first.rules) == 1 and len(first.skipped) == 1
    second = load_rules([rules], cache_dir=tmp_path / "cache")
    assert second.from_cache == 2
    assert second.rules == first.rules and second.skipped == first.skipped
    (rules / "good.yml").write_text(GOOD.replace("cmd.exe", "net.exe"))
    third = load_rules([rules], cache_dir=tmp_path / "cache")
    assert third.from_cache == 1 and "net.exe" in third.rules[0].sql


def test_rule_set_snapshot_trusts_unchanged_files_and_notices_edits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = write_rules(tmp_path / "rules", {"good": GOOD, "syntax": SYNTAX_ERROR})
    time.sleep(0.05)  # the snapshot is written a clock tick after the files changed
    monkeypatch.setattr(cache, "RACY_NS", 0)
    first = load_rules([rules], cache_dir=tmp_path / "cache")
    assert first.from_cache == 0
    with monkeypatch.context() as patched:  # unchanged files are neither read nor hashed
        patched.setattr(loader, "file_digest", _must_not_hash)
        second = load_rules([rules], cache_dir=tmp_path / "cache")
    assert second.from_cache == 2
    assert second.rules == first.rules and second.skipped == first.skipped
    # the same size and modification time (as a tool copying times leaves them): the change
    # time still moves, so the file is read again and recompiled
    good = rules / "good.yml"
    before = good.stat()
    good.write_text(GOOD.replace("cmd.exe", "net.exe"))
    os.utime(good, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert good.stat().st_size == before.st_size
    third = load_rules([rules], cache_dir=tmp_path / "cache")
    assert third.from_cache == 1 and "net.exe" in third.rules[0].sql
    (rules / "syntax.yml").unlink()
    fourth = load_rules([rules], cache_dir=tmp_path / "cache")
    assert fourth.from_cache == 1 and fourth.skipped == [] and fourth.rules == third.rules


def test_rule_set_snapshot_does_not_trust_racy_files(tmp_path: Path) -> None:
    snapshot = cache.RuleSetSnapshot(tmp_path, "", ["rules"])
    state = cache.FileState(size=10, mtime_ns=5 * 10**9, ctime_ns=5 * 10**9, inode=1)
    snapshot.entries["a.yml"] = cache.SnapshotEntry("a.yml", state, "digest", [])
    snapshot.written_ns = state.ctime_ns + cache.RACY_NS + 1
    assert snapshot.trusted("a.yml", state) is not None
    snapshot.written_ns = state.ctime_ns + cache.RACY_NS // 2  # changed just before: unproven
    assert snapshot.trusted("a.yml", state) is None
    assert snapshot.items("a.yml", "digest") == [] and snapshot.items("a.yml", "other") is None


def _must_not_hash(data: bytes) -> str:
    raise AssertionError("an unchanged rule file was read and hashed")


def test_cache_is_keyed_by_placeholder_values(tmp_path: Path) -> None:
    text = rule_yaml("expand", PROCESS, {"sel": {"User|expand": "%admins%"}, "condition": "sel"})
    rules = write_rules(tmp_path / "rules", {"expand": text})
    one = load_rules([rules], cache_dir=tmp_path / "c", placeholders={"admins": ["a"]})
    two = load_rules([rules], cache_dir=tmp_path / "c", placeholders={"admins": ["b"]})
    assert two.from_cache == 0 and one.rules[0].sql != two.rules[0].sql


def test_default_rules_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("BREACHTRACE_SIGMA_RULES", raising=False)
    monkeypatch.setenv("BREACHTRACE_CONFIG", str(tmp_path / "absent.yaml"))
    with pytest.raises(NoRulesConfigured, match="git clone"):
        default_rule_paths()
    config = tmp_path / "config.yaml"
    config.write_text(f"sigma_rules: {tmp_path / 'from-config'}\n")
    monkeypatch.setenv("BREACHTRACE_CONFIG", str(config))
    assert default_rule_paths() == [tmp_path / "from-config"]
    monkeypatch.setenv("BREACHTRACE_SIGMA_RULES", f"{tmp_path / 'a'}:{tmp_path / 'b'}")
    assert default_rule_paths() == [tmp_path / "a", tmp_path / "b"]


def test_rule_filter() -> None:
    meta = RuleMeta("id", "t", "f", level="high", status="test", tags=("attack.t1021.002",))
    assert RuleFilter("medium").accepts(meta) and not RuleFilter("critical").accepts(meta)
    assert RuleFilter(tags=("attack.t1021",)).accepts(meta)
    assert not RuleFilter(tags=("attack.t102",)).accepts(meta)
    assert RuleFilter(statuses=("test", "stable")).accepts(meta)
    assert not RuleFilter(statuses=("stable",)).accepts(meta)
    with pytest.raises(ValueError, match="unknown level"):
        RuleFilter("severe")
    assert meta.techniques == ("T1021.002",)


def test_backend_sql_shape() -> None:
    rule = SigmaCollection.from_yaml(rule_yaml("shape", PROCESS, {
        "sel": {"Image|endswith": ["\\A.exe", "\\b.exe"], "CommandLine|cased": "X'y"},
        "flt": {"User": "x"}, "condition": "sel and not flt",
    })).rules[0]  # fmt: skip
    converted = DuckDBSigmaBackend().convert_detection(rule)
    image, user = field_column("Image", lower=True), field_column("User", lower=True)
    assert f"ends_with({image}, '\\a.exe')" in converted.sql
    assert f"{field_column('CommandLine')} = 'X''y'" in converted.sql
    assert f"NOT coalesce(({user} = 'x'), false)" in converted.sql
    assert converted.fields == ("Image", "CommandLine", "User")
    assert field_column("CommandLine") == '"v:^command^line"'
    assert set(converted.anchors or ()) == {
        (("CommandLine", "x'y"),),
        (("Image", "\\a.exe"), ("Image", "\\b.exe")),
    }
