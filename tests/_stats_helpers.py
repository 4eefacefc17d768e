"""Shared builders and hypothesis strategies for the statistics tests."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from hypothesis import strategies as st

from didcore.axes import STRATA_SHAPE
from didcore.cube import Cube
from didcore.population import Population

SHAPE = STRATA_SHAPE
REL = 1e-9
ABS = 1e-12


def icb_codes(n: int) -> tuple[str, ...]:
    return tuple(f"Q{i:02d}" for i in range(n))


def make_cube(
    counts: np.ndarray,
    codes: Sequence[str] | None = None,
    measures: Sequence[str] | None = None,
    kinds: Sequence[str] | None = None,
) -> Cube:
    counts = np.asarray(counts, dtype=np.int64)
    n_icb, n_measure = counts.shape[0], counts.shape[-1]
    codes = tuple(codes) if codes is not None else icb_codes(n_icb)
    measures = tuple(measures) if measures is not None else tuple(f"M{m}" for m in range(n_measure))
    if kinds is None:
        kinds = tuple("modality" if m % 2 == 0 else "edoc" for m in range(n_measure))
    return Cube(counts, codes, measures, tuple(kinds))


def make_population(values: np.ndarray, codes: Sequence[str] | None = None) -> Population:
    values = np.asarray(values, dtype=np.float64)
    return Population(values, tuple(codes) if codes is not None else icb_codes(values.shape[0]))


@st.composite
def cube_inputs(
    draw: st.DrawFn, max_icb: int = 4, max_measure: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """(counts, population): small cubes with zero cells, tiny and large populations, large
    counts (Byar's branch) and small ones (exact branch), measures nobody had, and ICB cells
    with tests but no population. Strata with no national population never have tests."""
    n_icb = draw(st.integers(1, max_icb))
    n_measure = draw(st.integers(1, max_measure))
    seed = draw(st.integers(0, 2**32 - 1))
    pop_scale = draw(st.sampled_from([1.0, 5.0, 100.0, 1e4, 1e6]))
    zero_fraction = draw(st.sampled_from([0.0, 0.2, 0.8, 0.99, 1.0]))
    whole_people = draw(st.booleans())
    rates = draw(
        st.lists(
            st.sampled_from([0.0, 1e-5, 1e-3, 0.05, 0.5, 3.0]),
            min_size=n_measure,
            max_size=n_measure,
        )
    )
    stray_tests = draw(st.booleans())
    rng = np.random.default_rng(seed)
    shape = (n_icb, *SHAPE)
    pop = rng.uniform(0.0, pop_scale, shape)
    if whole_people:
        pop = np.round(pop)
    pop[rng.random(shape) < zero_fraction] = 0.0
    icb_effect = rng.uniform(0.5, 1.5, (n_icb, 1, 1, 1, n_measure))
    lam = pop[..., None] * np.asarray(rates) * icb_effect
    counts = rng.poisson(lam).astype(np.int64)
    national = pop.sum(axis=0)
    if stray_tests:
        # tests in ICB cells with no population, in strata that have people elsewhere
        stray = (pop == 0) & (national > 0)[None]
        counts += (
            rng.poisson(0.5, counts.shape) * stray[..., None] * (np.asarray(rates) > 0)
        ).astype(np.int64)
    counts[:, national == 0, :] = 0
    return counts, pop


def assert_rows_equal(
    actual: list[dict[str, Any]],
    expected: list[dict[str, Any]],
    scale: dict[str, str] | None = None,
) -> None:
    """Rows equal: ints, strings, bools and None exactly; floats to 1e-9 relative.

    ``scale`` maps a column to another whose magnitude sets its absolute tolerance (1e-9 of
    it): an SD of rates that are equal up to rounding is ~1e-12, noise on a scale of 1e4.
    """
    scale = scale or {}
    assert len(actual) == len(expected)
    for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
        assert a.keys() == e.keys(), (i, a.keys() ^ e.keys())
        for key in e:
            av, ev = a[key], e[key]
            where = (i, key, av, ev, a)
            atol = ABS
            if key in scale and isinstance(e[scale[key]], float):
                atol = max(ABS, REL * abs(e[scale[key]]))
            if isinstance(ev, float) and isinstance(av, (float, int)):
                assert math.isclose(av, ev, rel_tol=REL, abs_tol=atol), where
            else:
                assert av == ev, where
                assert type(av) is type(ev) or (av is None and ev is None), where


def assert_arrays_close(actual: Any, expected: Any, rel: float = REL, atol: float = ABS) -> None:
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    assert a.shape == e.shape
    np.testing.assert_allclose(a, e, rtol=rel, atol=atol, equal_nan=True)
