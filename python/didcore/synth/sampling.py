"""Sampling helpers: categorical draws, systematic sampling, largest-remainder rounding and the
spread of test days over several financial years.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

# =============================================================================================
# Sampling helpers
# =============================================================================================


class _Sampler:
    """Draw one item per row from a categorical distribution that depends on the row's group.

    Vectorised: the within-group cumulative probabilities are laid end to end as
    ``group + cdf`` (monotone over all groups), so one :func:`numpy.searchsorted` of
    ``group + u`` (``u`` uniform on [0, 1)) draws every row at once. Items of zero weight are
    never drawn. Every group asked for must have positive total weight.
    """

    def __init__(self, group: np.ndarray, item: np.ndarray, weight: np.ndarray) -> None:
        keep = weight > 0
        group, item, weight = group[keep], item[keep], weight[keep].astype(np.float64)
        order = np.lexsort((item, group))
        group, item, weight = group[order], item[order], weight[order]
        first = np.r_[True, group[1:] != group[:-1]]
        last = np.r_[group[1:] != group[:-1], True]
        start = np.flatnonzero(first)
        cum = np.cumsum(weight)
        before = np.repeat(np.r_[0.0, cum[:-1]][start], np.diff(np.r_[start, len(group)]))
        total = np.repeat(
            cum[last] - np.r_[0.0, cum[:-1]][start], np.diff(np.r_[start, len(group)])
        )
        frac = (cum - before) / total
        frac[last] = 1.0  # exact, so rounding can never spill into the next group
        self.keys = group.astype(np.float64) + frac
        self.items = item

    @classmethod
    def dense(cls, weights: np.ndarray) -> _Sampler:
        """From a (groups, items) weight matrix."""
        g, i = np.nonzero(weights > 0)
        return cls(g, i, weights[g, i])

    def __call__(self, groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        u = rng.random(len(groups))
        return self.items[np.searchsorted(self.keys, groups + u, side="right")]


def _choice(rng: np.random.Generator, n: int, probs: Mapping[int, float]) -> np.ndarray:
    """``n`` draws of the keys of ``probs`` (which sum to 1)."""
    keys = np.fromiter(probs.keys(), dtype=np.int64)
    p = np.fromiter(probs.values(), dtype=np.float64)
    return keys[np.searchsorted(np.cumsum(p), rng.random(n) * p.sum(), side="right")]


def _systematic(expected: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Integer counts with the given expectations whose running sums never stray by a whole test.

    ``counts[j] = floor(C_j + u) - floor(C_{j-1} + u)`` with ``C`` the cumulative expectation
    and one uniform ``u``: E[counts[j]] = expected[j], and the sum of any run of consecutive
    cells is within 1 of its expectation.
    """
    c = np.floor(np.cumsum(expected) + rng.random()).astype(np.int64)
    return np.diff(c, prepend=0)


def _largest_remainder(total: int, shares: np.ndarray) -> np.ndarray:
    """Split ``total`` into integers proportional to ``shares`` (Hamilton's method)."""
    exact = total * shares / shares.sum()
    out = np.floor(exact).astype(np.int64)
    out[np.argsort(-(exact - out), kind="stable")[: total - out.sum()]] += 1
    return out


def _spread_over_years(index: np.ndarray, years: int, rng: np.random.Generator) -> np.ndarray:
    """Test days (days since 1970) spread evenly at random over ``years`` financial years
    ending 2023/24: day ``index`` of 2023/24's calendar (0 = 1 April) put in a random year,
    31 March of 2023/24's leap year falling on 30 March in a year of 365 days.
    """
    first = 2023 - (years - 1)
    starts = np.array([f"{y}-04-01" for y in range(first, 2025)], "datetime64[D]").astype(np.int64)
    lengths = np.diff(starts)
    which = rng.integers(0, years, len(index))
    return starts[which] + np.minimum(index, lengths[which] - 1)
