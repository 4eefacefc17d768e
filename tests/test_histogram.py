"""``_didcore.bincount`` (the value profile's counts) against numpy, over indices with nulls
at any bit offset of their validity bitmap, out-of-range indices in valid rows (not counted)
and null rows holding any index.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from didcore import _didcore


@settings(max_examples=200, deadline=None)
@given(
    size=st.integers(1, 70),
    n=st.integers(0, 700),
    offset=st.integers(0, 20),
    null_share=st.sampled_from([0.0, 0.01, 0.2, 0.9, 1.0]),
    seed=st.integers(0, 2**32 - 1),
)
def test_bincount_equals_numpy(
    size: int, n: int, offset: int, null_share: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    indices = rng.integers(-3, size + 3, n).astype(np.int32)
    valid = rng.random(offset + n) >= null_share
    bits = np.packbits(valid, bitorder="little")
    rows = valid[offset:]
    in_range = (indices >= 0) & (indices < size)
    want = np.bincount(indices[rows & in_range], minlength=size)
    bins, nulls = _didcore.bincount(indices, bits, offset, size)
    assert np.asarray(bins).tolist() == want.tolist()
    assert nulls == int((~rows).sum())
    bins, nulls = _didcore.bincount(indices, None, 0, size)
    assert np.asarray(bins).tolist() == np.bincount(indices[in_range], minlength=size).tolist()
    assert nulls == 0
