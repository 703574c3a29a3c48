"""Sequential tests for the rollout gate: decide from as few candidate answers as the evidence allows.

Each check is Wald's sequential probability ratio test on a rate (disagreement with stable, abstaining,
failing): H0 "the rate is at most its bound" against H1 "it is at least the bound plus a margin". The log
likelihood ratio adds up one answer at a time; above log((1 - beta) / alpha) the candidate is rejected, and
it is floored at log(beta / (1 - alpha)), so that the evidence for a good candidate never piles up so high
that a later breakage goes unseen (a CUSUM). Reaching the floor once is "evidence in", which promotion
needs. A model whose answers are random or swapped disagrees on about half or all of them and is rejected
within about a dozen; one that agrees on 97% reaches the floor within about 20 and almost never
reaches the rejection line by noise (alpha = 0.001 per check).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

ALPHA = 0.001  # chance of rejecting a candidate whose rate is at its bound, per check
BETA = 0.01  # chance of taking a candidate whose rate is at the bound plus the margin as good


@dataclass
class Sprt:
    """One sequential test of a rate against its bound; `update` with every new observation."""

    name: str
    bound: float
    margin: float
    llr: float = 0.0
    observed: int = 0
    hits: int = 0
    accepted: bool = False
    rejected: bool = False
    _upper: float = field(default=math.log((1 - BETA) / ALPHA), repr=False)
    _lower: float = field(default=math.log(BETA / (1 - ALPHA)), repr=False)

    def update(self, hit: bool, bound: float | None = None) -> None:
        """Add one observation (hit: the bad outcome happened); bound replaces the bound from now on."""
        if self.rejected:
            return
        if bound is not None:
            self.bound = bound
        p0 = min(max(self.bound, 1e-4), 0.98)
        p1 = min(p0 + self.margin, 0.999)
        self.observed += 1
        self.hits += int(hit)
        self.llr += math.log(p1 / p0) if hit else math.log((1 - p1) / (1 - p0))
        if self.llr >= self._upper:
            self.rejected = True
        elif self.llr <= self._lower:
            self.llr, self.accepted = self._lower, True

    @property
    def rate(self) -> float | None:
        """The observed rate so far."""
        return self.hits / self.observed if self.observed else None

    def reason(self) -> str:
        """Why it rejected, in words."""
        return (f"{self.name} {self.hits}/{self.observed} ({self.rate:.0%}) is above its bound {self.bound:.3g} "
                f"(sequential test, alpha {ALPHA:g})")

    def summary(self) -> dict:
        """Where the test stands."""
        state = "rejected" if self.rejected else "evidence in" if self.accepted else "collecting"
        return {"observed": self.observed, "rate": self.rate, "bound": round(self.bound, 4),
                "log_likelihood_ratio": round(self.llr, 3), "state": state}


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p): how surprising k bad outcomes in n are when the rate is p."""
    if k <= 0:
        return 1.0
    p = min(max(p, 0.0), 1.0)
    return float(sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1)))
