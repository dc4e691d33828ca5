"""Sufficient statistics of one metric in one variant."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MeanStats:
    """n, sum and sum of squares of a per-unit metric: enough for its mean and variance.

    A binomial metric (converted or not) is the same thing with 0/1 values, so sum_squares = sum.
    """

    n: int
    sum: float
    sum_squares: float

    def __post_init__(self) -> None:
        if self.n < 2:
            raise ValueError(f"need at least 2 units to estimate a variance, got n={self.n}")
        if self.sum_squares < 0:
            raise ValueError(f"sum_squares must not be negative, got {self.sum_squares}")

    @property
    def mean(self) -> float:
        return self.sum / self.n

    @property
    def variance(self) -> float:
        """Sample variance (n - 1 in the denominator), never negative despite rounding."""
        return max((self.sum_squares - self.sum**2 / self.n) / (self.n - 1), 0.0)

    @classmethod
    def of_proportion(cls, n: int, successes: int) -> MeanStats:
        """A 0/1 metric from its count of units and of successes."""
        if not 0 <= successes <= n:
            raise ValueError(f"successes must be between 0 and n={n}, got {successes}")
        return cls(n=n, sum=float(successes), sum_squares=float(successes))
