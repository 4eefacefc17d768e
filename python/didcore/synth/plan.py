"""The plan: how many rows of each category (kind x ICB x cell x problem) to write, for a given
size and seed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from didcore.synth.model import _Model
from didcore.synth.params import (
    _BROAD_OF_BAND,
    _EXCLUDED_SHARE,
    _N_AGE,
    _N_CELL,
    _N_IMD,
    _NO_IMD_BY_ICB,
    _NO_IMD_BY_PROVIDER,
    _NO_SEX_BY_PROVIDER,
    _OTHER_VALID_JUSTICE_SHARE,
    _R_COMPLETE,
    _R_NO_AGE,
    _R_NO_IMD,
    _R_NO_SEX,
    _R_OTHER,
    _R_UNKNOWN,
    _REASONS,
    _UNKNOWN_BY_PROVIDER,
    _WELSH_BORDER_ICBS,
)
from didcore.synth.sampling import _largest_remainder, _systematic

# =============================================================================================
# The plan: how many rows of each category, for a given size and seed
# =============================================================================================


@dataclass(frozen=True)
class _Plan:
    scale: float  # persons in population.csv per person of the ONS population
    population: np.ndarray  # (42, 2, 19, 5) scaled persons, as written to population.csv
    expected: np.ndarray  # (14 kinds, 42, 2, 19, 5) expected complete tests
    reason: np.ndarray  # per category: index into _REASONS
    kind: np.ndarray
    icb: np.ndarray
    cell: np.ndarray  # (sex * 19 + age band) * 5 + quintile, or -1: drawn per row
    provider: np.ndarray  # provider index, or -1: drawn per row
    counts: np.ndarray  # rows of each category
    problem_share: dict[str, np.ndarray]  # planted share of rows by (provider, ICB) per reason


def _cell_order(n_icb: int) -> np.ndarray:
    """Flat cell indices (icb, sex, age, imd) ordered broad band > sex > imd > age > ICB.

    Systematic sampling in this order keeps the total of each broad age band, each (broad band,
    sex, quintile) and each (sex, age band, quintile) stratum within one test of its
    expectation, so the margins of every rates ratio are within a few tests of theirs.
    """
    i, s, a, q = np.meshgrid(
        np.arange(n_icb), np.arange(2), np.arange(_N_AGE), np.arange(_N_IMD), indexing="ij"
    )
    return np.lexsort((i.ravel(), a.ravel(), q.ravel(), s.ravel(), _BROAD_OF_BAND[a.ravel()]))


def _problem_shares(
    model: _Model, volume: np.ndarray, rows_expected: float
) -> dict[str, np.ndarray]:
    """Share of the rows at each (provider, ICB) that carry each exclusion reason.

    ``volume``: (n_prov, n_icb) expected complete tests. Shares are additive (baseline +
    provider excess + ICB excess, Annex A Tables A.1-A.3); the baselines are solved so that each
    reason's national total is its Annex A share of all rows. Extra rows at (p, i) for reason r
    are ``volume * share_r / (1 - sum of shares)``, so shares are of all rows there.
    """
    p_index = {c: j for j, c in enumerate(model.provider_codes)}
    i_index = {c: j for j, c in enumerate(model.icb_codes)}
    n_prov, n_icb = volume.shape

    def by_provider(table: Mapping[str, float]) -> np.ndarray:
        out = np.zeros((n_prov, 1))
        for code, share in table.items():
            if code in p_index:
                out[p_index[code]] = share
        return out

    def by_icb(table: Mapping[str, float]) -> np.ndarray:
        out = np.zeros((1, n_icb))
        for code, share in table.items():
            out[0, i_index[code]] = share
        return out

    border = by_icb(_WELSH_BORDER_ICBS)
    border = border / ((volume * border).sum() / volume.sum())
    # Other-valid practices and missing LSOA with a valid ICB need a practice code: none at
    # the providers that never send one (RM3, RWF: 100% without a practice in Table A.1).
    sends_practice = (model.no_practice_prob < 0.99)[:, None] * 1.0
    # (pattern multiplied by the solved baseline, fixed excess)
    design = {
        _R_OTHER: (
            sends_practice
            * ((1 - _OTHER_VALID_JUSTICE_SHARE) * border + _OTHER_VALID_JUSTICE_SHARE),
            np.zeros((1, 1)),
        ),
        _R_UNKNOWN: (np.ones((1, 1)), by_provider(_UNKNOWN_BY_PROVIDER)),
        _R_NO_IMD: (
            sends_practice,
            sends_practice * (by_provider(_NO_IMD_BY_PROVIDER) + by_icb(_NO_IMD_BY_ICB)),
        ),
        _R_NO_SEX: (np.ones((1, 1)), by_provider(_NO_SEX_BY_PROVIDER)),
        _R_NO_AGE: (np.ones((1, 1)), np.zeros((1, 1))),
    }
    base = dict.fromkeys(design, 0.0)
    shares: dict[int, np.ndarray] = {}
    for _ in range(50):
        shares = {
            r: np.broadcast_to(pat * base[r] + exc, volume.shape)
            for r, (pat, exc) in design.items()
        }
        inflate = volume / (1 - np.minimum(sum(shares.values()), 0.95))
        for r, (pat, exc) in design.items():
            wanted = _EXCLUDED_SHARE[r] * rows_expected - (inflate * exc).sum()
            base[r] = max(wanted, 0.0) / (inflate * pat).sum()
    return {_REASONS[r]: np.array(s) for r, s in shares.items()}


def _plan(model: _Model, rows: int, seed: int) -> _Plan:
    """Decide the number of rows of every category (deterministic for ``rows`` and ``seed``)."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,)))
    n_icb = len(model.icb_codes)
    excluded_share = sum(_EXCLUDED_SHARE.values())
    per_person = model.kind_rate.sum(0)
    scale = rows * (1 - excluded_share) / float((per_person * model.population).sum())
    population = model.population * scale
    expected = model.kind_rate * population  # complete tests expected, per kind and cell

    order = _cell_order(n_icb)
    complete = np.zeros((14, n_icb * _N_CELL), dtype=np.int64)
    for k in range(14):
        complete[k, order] = _systematic(expected[k].ravel()[order], rng)
    surplus = int(complete.sum()) - rows
    if surplus > 0:  # only for tiny sizes, where rounding can exceed the total asked for
        flat = complete.ravel()
        flat -= rng.multivariate_hypergeometric(flat, surplus, method="marginals")
    n_extra = rows - int(complete.sum())
    reason_counts = _largest_remainder(
        n_extra, np.array([_EXCLUDED_SHARE[r] for r in range(1, len(_REASONS))])
    )

    # Extra (excluded) rows: reason -> (kind, ICB, provider) by the planted shares.
    kind_icb = expected.reshape(14, n_icb, -1).sum(2)
    per_provider = kind_icb[:, :, None] * model.provider_prob  # (kind, icb, provider)
    volume = per_provider.sum(0).T  # (provider, icb)
    shares = _problem_shares(model, volume, rows)
    inflate = 1 / (1 - np.minimum(sum(shares.values()), 0.95))
    cats = [
        (
            np.full(complete.size, _R_COMPLETE),
            np.repeat(np.arange(14), n_icb * _N_CELL),
            np.tile(np.repeat(np.arange(n_icb), _N_CELL), 14),
            np.tile(np.arange(_N_CELL), 14 * n_icb),
            np.full(complete.size, -1),
            complete.ravel(),
        )
    ]
    for r, n_r in zip(range(1, len(_REASONS)), reason_counts, strict=True):
        w = per_provider * (shares[_REASONS[r]] * inflate).T[None, :, :]
        counts = rng.multinomial(int(n_r), (w / w.sum()).ravel())
        kind_of, icb_of, provider_of = np.unravel_index(np.arange(w.size), w.shape)
        cats.append((np.full(w.size, r), kind_of, icb_of, np.full(w.size, -1), provider_of, counts))
    reason, kind, icb, cell, provider, counts = (np.concatenate(c) for c in zip(*cats, strict=True))
    keep = counts > 0
    return _Plan(
        scale=scale,
        population=population,
        expected=expected,
        reason=reason[keep].astype(np.int8),
        kind=kind[keep].astype(np.int16),
        icb=icb[keep].astype(np.int16),
        cell=cell[keep].astype(np.int32),
        provider=provider[keep].astype(np.int32),
        counts=counts[keep].astype(np.int64),
        problem_share=shares,
    )
