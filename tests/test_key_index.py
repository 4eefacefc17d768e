"""The core's key index (``_didcore.KeyIndex``), which the classifier uses to find a
dictionary's codes among the lookups' keys: ``find_normalised`` must find exactly what
Arrow's normalisation (``didcore.codes.normalise_array``) followed by ``find`` finds.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from didcore import _didcore
from didcore.arrow_buffers import _string_buffers
from didcore.codes import normalise_array

KEYS = ["E01000001", "E01000002", "RX1", "A81001", "COMPUTERIZED AXIAL TOMOGRAPHY", "Ä1", "X"]

# pieces that make codes, their spellings and what surrounds them in real extracts
#: The ASCII characters Arrow's utf8_trim_whitespace trims.
_ASCII_WHITESPACE = "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f "

_pieces = st.sampled_from(
    [*KEYS, "e01000001", "rx1", "a81001", "x", "ä1", "computerized axial tomography"]
)
_space = st.sampled_from(
    [" ", "\t", "\r\n", "\x0b", "\x0c", "\x1c", "\x1f", "\x85", "\xa0", "\u2003", "", "", ""]
)
_noise = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=6)


@st.composite
def _values(draw: st.DrawFn) -> str | None:
    if draw(st.integers(0, 9)) == 0:
        return None
    if draw(st.booleans()):
        return draw(_space) + draw(_pieces) + draw(_space)
    return draw(_space) + draw(_noise) + draw(_space)


def _ends_outside_ascii(value: str | None) -> bool:
    trimmed = "" if value is None else value.strip(_ASCII_WHITESPACE)
    return bool(trimmed) and not (trimmed[0].isascii() and trimmed[-1].isascii())


def _arrow_then_find(index: object, arr: pa.Array) -> list[int]:
    norm = normalise_array(arr)
    found = index.find(_string_buffers(pa, norm))  # type: ignore[attr-defined]
    blank = np.array([v is None or v == "" for v in norm.to_pylist()], bool)
    return np.where(blank, -2, found).tolist()  # type: ignore[no-any-return]


@settings(max_examples=300, deadline=None)
@given(st.lists(_values(), max_size=40), st.integers(0, 3))
def test_find_normalised_is_arrow_normalisation_then_find(
    values: list[str | None], offset: int
) -> None:
    index = _didcore.KeyIndex(_string_buffers(pa, pa.array(KEYS)))
    # values whose ends are ASCII once trimmed: found in the core, as Arrow would
    kept = [v for v in values if not _ends_outside_ascii(v)]
    arr = pa.array(["pad"] * offset + kept, pa.string()).slice(offset)
    got = index.find_normalised(_string_buffers(pa, arr))
    assert got is not None
    assert got.tolist() == _arrow_then_find(index, arr)
    # any other value hands the whole dictionary back to Arrow's normalisation
    arr = pa.array(values, pa.string())
    got = index.find_normalised(_string_buffers(pa, arr))
    if any(_ends_outside_ascii(v) for v in values):
        assert got is None
    else:
        assert got is not None
        assert got.tolist() == _arrow_then_find(index, arr)
