"""Upper-tail probabilities of daily counts, for "far more than usual" judgments.

A count series (hosts an account reaches per day, say) is modelled from its own history: Poisson
when its variance does not exceed its mean, else negative binomial fitted by moments, so a
naturally bursty account (an administrator) is judged against its own spread.
"""

from __future__ import annotations

import math
from collections.abc import Callable


def count_tail(k: int, mean: float, variance: float) -> float:
    """P(X >= k) for a count with this mean and variance (Poisson or negative binomial)."""
    if k <= 0:
        return 1.0
    mean = max(mean, 1e-9)
    log_pmf: Callable[[int], float]
    if variance > mean:
        r = mean * mean / (variance - mean)
        log_p, log_q = math.log(r / (r + mean)), math.log(mean / (r + mean))

        def log_pmf(j: int) -> float:
            return math.lgamma(j + r) - math.lgamma(r) - math.lgamma(j + 1) + r * log_p + j * log_q

    else:
        log_mean = math.log(mean)

        def log_pmf(j: int) -> float:
            return -mean + j * log_mean - math.lgamma(j + 1)

    # sum the tail directly (1 - cdf loses the small probabilities that matter here)
    total, j = 0.0, k
    while True:
        term = math.exp(log_pmf(j))
        total += term
        j += 1
        if term <= total * 1e-12 or j - k > 100_000:
            return min(total, 1.0)
