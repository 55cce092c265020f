"""Hopper-style path linking over hops (pure Python): continuation, credential switch, causal
user, alarm, and the daily budget."""

from __future__ import annotations

import datetime as dt

from breachtrace.detect.behaviour.config import load_config
from breachtrace.detect.behaviour.paths import Hop, link_paths, paths_under_budget

W = load_config().lateral.path.weights
T0 = dt.datetime(2021, 3, 1)


def hop(key: int, src: str, dst: str, user: str, hours: float, *, switch: bool | None = False,
        causal: tuple[str, ...] = (), unreached: bool | None = None, server: bool = False,
        risk: float = 0.0) -> Hop:  # fmt: skip
    return Hop(
        key=key, src=src, dst=dst, user=user, ts=T0 + dt.timedelta(hours=hours), method="network",
        src_kind="host", switch=switch, causal=causal, unreached=unreached, src_server=server,
        parts={"source_risk": risk, "novelty": 0.0, "spread": 0.0, "remote_exec": 0.0},
        reasons=[], evidence=[f"e{key}"],
    )  # fmt: skip


def _reached(pairs: set[tuple[str, str]]):  # type: ignore[no-untyped-def]
    return lambda user, host, before: (user, host) in pairs


def test_switch_to_an_unreached_host_is_an_alarm_and_later_hops_continue_the_path() -> None:
    hops = [
        hop(1, "ws-a", "srv2", "admin1", 1, switch=True, causal=("alice",), unreached=True),
        hop(2, "srv2", "srv3", "admin1", 2),  # same account carried on: a continuation
        hop(3, "ws-b", "srv1", "bob", 3),  # ordinary, not a candidate
    ]
    flagged, graph = link_paths(hops, weights=W, chain_window=dt.timedelta(days=30),
                                min_score=0.45, reached=_reached({("alice", "srv1")}))  # fmt: skip
    assert [h.key for h in flagged] == [1, 2]
    assert flagged[0].alarm and flagged[1].parent is flagged[0]
    assert flagged[1].path_causal == ("alice",) and flagged[1].alarm  # alice never reached srv3
    paths, stats = paths_under_budget(flagged, graph, daily_budget=5)
    assert len(paths) == 1 and [h.key for h in paths[0].hops] == [1, 2]
    assert stats["alarm_paths"] == 1


def test_time_respecting_only_earlier_hops_can_be_parents() -> None:
    hops = [
        hop(1, "srv2", "srv3", "admin1", 1),  # before anyone entered srv2
        hop(2, "ws-a", "srv2", "admin1", 2, switch=True, causal=("alice",), unreached=True),
    ]
    flagged, _ = link_paths(hops, weights=W, chain_window=dt.timedelta(days=30), min_score=0.45,
                            reached=_reached(set()))  # fmt: skip
    assert [h.key for h in flagged] == [2]


def test_a_switch_to_a_host_the_causal_user_reached_is_ranked_not_alarmed() -> None:
    hops = [hop(1, "ws-a", "srv1", "admin1", 1, switch=True, causal=("alice",), unreached=False)]
    flagged, graph = link_paths(hops, weights=W, chain_window=dt.timedelta(days=30),
                                min_score=0.45, reached=_reached({("alice", "srv1")}))  # fmt: skip
    assert len(flagged) == 1 and not flagged[0].alarm
    paths, _ = paths_under_budget(flagged, graph, daily_budget=0)
    assert paths == []  # no budget left for non-alarms


def test_daily_budget_keeps_the_best_scoring_paths() -> None:
    hops = [
        hop(i, f"srv{i}", f"dst{i}", f"u{i}", 1 + i / 10, server=True, risk=0.3 * (i % 4), switch=True,
            causal=("x",), unreached=False)
        for i in range(8)
    ]  # fmt: skip
    flagged, graph = link_paths(hops, weights=W, chain_window=dt.timedelta(days=30),
                                min_score=0.45, reached=_reached(set()))  # fmt: skip
    paths, stats = paths_under_budget(flagged, graph, daily_budget=3)
    assert len(paths) == 3 and stats["paths_over_budget_dropped"] == 5
    kept = sorted(p.score for p in paths)
    dropped = sorted(h.score for h in flagged if all(h is not p.root for p in paths))
    assert min(kept) >= max(dropped)
