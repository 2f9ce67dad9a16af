"""The statistics behind campaign results: intervals for rates and for differences of
rates, and the test that decides a winner. Pure functions of counts.

- A rate's interval is Wilson's score interval.
- A difference of two rates (a variant's lift over the holdout) gets Newcombe's hybrid
  score interval (his method 10), built from the two Wilson intervals: it keeps its
  coverage near the nominal level for small counts and rates near 0, where the Wald
  interval does not.
- Significance is the two-sided two-proportion z-test with the pooled rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist


def z_for(confidence: float) -> float:
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson's score interval for k successes in n (0, 1 when n is 0)."""
    if n <= 0:
        return 0.0, 1.0
    z = z_for(confidence)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe(
    k1: int, n1: int, k2: int, n2: int, confidence: float = 0.95
) -> tuple[float, float, float]:
    """(p1 - p2, lower, upper): Newcombe's hybrid score interval for a difference."""
    if n1 <= 0 or n2 <= 0:
        return 0.0, -1.0, 1.0
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson(k1, n1, confidence)
    l2, u2 = wilson(k2, n2, confidence)
    d = p1 - p2
    return (
        d,
        d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
        d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2),
    )


def z_test(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float]:
    """(z, two-sided p) of the pooled two-proportion z-test (p is 1 when it cannot be run)."""
    if n1 <= 0 or n2 <= 0:
        return 0.0, 1.0
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 0.0, 1.0
    z = (k1 / n1 - k2 / n2) / se
    return z, math.erfc(abs(z) / math.sqrt(2))


@dataclass(frozen=True)
class Verdict:
    """The winner test's outcome: a winner or None, and why, with its evidence."""

    winner: str | None
    reason: str
    evidence: dict


def decide_winner(arms: dict[str, tuple[int, int]], alpha: float, min_sample: int) -> Verdict:
    """The leading arm wins when every arm has ``min_sample`` recipients and the leader's
    rate beats each other arm's at ``alpha`` / (arms - 1) (Bonferroni), two-sided.

    ``arms``: variant -> (recipients, successes); the holdout is not an arm here.
    """
    if len(arms) < 2:
        return Verdict(None, "fewer than two variants", {})
    small = {a: n for a, (n, _) in arms.items() if n < min_sample}
    rates = {a: (k / n if n else 0.0) for a, (n, k) in arms.items()}
    leader = max(sorted(rates), key=lambda a: rates[a])
    level = alpha / (len(arms) - 1)
    tests = {}
    for other in sorted(arms):
        if other == leader:
            continue
        z, p = z_test(arms[leader][1], arms[leader][0], arms[other][1], arms[other][0])
        tests[other] = {"z": round(z, 4), "p": p}
    evidence = {"leader": leader, "rates": rates, "alpha": alpha, "level": level,
                "min_sample": min_sample, "tests": tests,
                "recipients": {a: n for a, (n, _) in arms.items()}}  # fmt: skip
    if small:
        return Verdict(None, f"below the minimum sample of {min_sample}: {small}", evidence)
    beaten = [o for o, t in tests.items() if t["p"] < level and rates[leader] > rates[o]]
    if len(beaten) < len(tests):
        return Verdict(None, f"{leader} leads but not significantly (level {level:g})", evidence)
    return Verdict(leader, f"{leader} beats every other variant at level {level:g}", evidence)
