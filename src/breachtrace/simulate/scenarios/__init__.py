"""Incident scenarios: each plans its malicious events, log gaps and ground truth for an org.

- ``telecom-2020``: incident A (overseas server chain + stolen credential over VPN)
- ``maker-2016``: incident B (beaconing implants, slow collection, deleted logs)
- ``quiet``: no attack, for counting false positives
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from breachtrace.simulate.org import DAY, Org
from breachtrace.simulate.scenarios import maker, telecom
from breachtrace.simulate.truth import Plan


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    anchor: dt.date  # a date the period is placed around
    anchor_is_end: bool  # the period ends at (True) or starts at (False) the anchor
    jitter_days: tuple[int, int]  # seed-chosen shift of the anchor
    plan: Callable[[Org], Plan]

    def start(self, seed: int, days: int) -> int:
        """Epoch seconds of the period's first UTC midnight, chosen by seed."""
        rng = np.random.default_rng([seed, 0])
        anchor = self.anchor + dt.timedelta(days=int(rng.integers(*self.jitter_days)))
        first = anchor - dt.timedelta(days=days) if self.anchor_is_end else anchor
        return (
            int(dt.datetime(first.year, first.month, first.day, tzinfo=dt.UTC).timestamp())
            // DAY
            * DAY
        )


def _quiet(org: Org) -> Plan:
    return Plan()


SCENARIOS: dict[str, Scenario] = {
    "telecom-2020": Scenario(
        "telecom-2020",
        "incident A: overseas server chain and a stolen credential over VPN",
        dt.date(2020, 5, 9),
        True,
        (-40, 41),
        telecom.plan,
    ),
    "maker-2016": Scenario(
        "maker-2016",
        "incident B: beaconing implants, slow collection, deleted logs",
        dt.date(2016, 12, 1),
        False,
        (-25, 36),
        maker.plan,
    ),
    "quiet": Scenario(
        "quiet", "no attack: ordinary activity only", dt.date(2019, 1, 7), False, (0, 700), _quiet
    ),
}
