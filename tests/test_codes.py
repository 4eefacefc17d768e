"""One rule for codes (didcore.codes): every path that compares codes normalises them alike.

The rule: trim Unicode white space as ``str.strip()`` does, then upper-case ASCII letters only.
The weird inputs are those on which ``str.upper()`` or a narrower trim would differ: ``ß``
(``str.upper()`` gives ``SS``), the ligature ``ﬁ`` (``FI``), the Turkish dotless ``ı`` (``I``),
no-break and ideographic space padding (trimmed), and the zero-width space (not white space,
so kept: a code carrying one is a near miss, not a match).
"""

from __future__ import annotations

import sys

import numpy as np
import pyarrow as pa
import pytest

import didcore
from didcore.codes import (
    normalise_array,
    normalise_array_or_null,
    normalise_code,
    normalise_text,
)
from didcore.errors import PopulationError
from didcore.lookup import Lookups
from didcore.lookup import normalise_code as lookup_normalise_code
from didcore.population import Population
from didcore.quality import read_provider_missing
from didcore.reference.cube import aggregate_reference

# Codes as a lookup lists them, with the letters str.upper() mangles.
CODES = ["aß1", "Bﬁ2", "cı3", "D4"]
# The same codes as an extract or a population file might hold them: padded, lower-cased, and
# near misses (what str.upper() or a zero-width space would make of them) that must not match.
VARIANTS = [
    "\xa0aß1 ",
    "Aẞ1",  # capital sharp s: another letter, not a match
    "ASS1",
    "bﬁ2\u3000",
    "BFI2",
    "\tcı3\n",
    "CI3",
    "\u200bD4",
    "d4\u200b",
    " d4\xa0",
    "   ",
]
WEIRD = [*CODES, *VARIANTS, "", "\u2003x\u2028", "ǆ", "İ", "\x1cq\x1f", "ﬀ"]
KEYS = {normalise_code(c) for c in CODES}


def test_scalar_and_array_forms_agree() -> None:
    assert normalise_code(" a81001\xa0") == "A81001"
    assert normalise_code("ß") == "ß"
    assert normalise_code("ﬁ") == "ﬁ"
    assert normalise_code("ı") == "ı"
    assert normalise_code("\u200b") == "\u200b"
    assert normalise_code("\xa0 ") is None
    assert normalise_code(None) is None
    assert normalise_code(float("nan")) is None
    assert lookup_normalise_code is normalise_code  # lookup re-exports the one rule
    arr = pa.array(WEIRD, pa.string())
    assert normalise_array(arr).to_pylist() == [normalise_text(w) for w in WEIRD]
    assert normalise_array_or_null(arr).to_pylist() == [normalise_code(w) for w in WEIRD]
    assert normalise_array_or_null(pa.array(WEIRD, pa.large_string())).to_pylist() == [
        normalise_code(w) for w in WEIRD
    ]


def test_every_unicode_white_space_is_trimmed_alike() -> None:
    spaces = [chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()]
    texts = [f"{s}a{s}b{s}" for s in spaces]
    assert normalise_array(pa.array(texts)).to_pylist() == [normalise_text(t) for t in texts]


def _lookups() -> Lookups:
    return Lookups.from_tables(
        practice_icb={"gp_practice_code": CODES, "icb_code": ["QAA"] * len(CODES)},
        lsoa_icb={"lsoa11": ["E01000001"], "icb_code": ["QAA"]},
        lsoa_imd={"lsoa11": ["E01000001", "E01000005"], "imd_decile": ["1", "10"]},
    )


def test_lookup_keys() -> None:
    assert set(_lookups().practice_icb) == KEYS
    # the row-by-row path (values that are not text) keys them the same way
    rows = Lookups.from_tables(
        practice_icb={"gp_practice_code": pa.array(CODES, pa.string()), "icb_code": [1, 1, 1, 1]},
        lsoa_icb={"lsoa11": ["E01000001"], "icb_code": ["QAA"]},
        lsoa_imd={"lsoa11": ["E01000001"], "imd_decile": ["1"]},
    )
    assert set(rows.practice_icb) == KEYS


def test_extract_codes_counted_by_aggregate() -> None:
    n = len(VARIANTS)
    table = pa.table(
        {
            "provider_code": VARIANTS,
            "gp_practice_code": VARIANTS,
            "lsoa11": ["E01000005"] * n,  # has an IMD but no ICB: a practice miss is no_icb
            "sex": ["1"] * n,
            "age": pa.array([40] * n, pa.int64()),
            "modality": ["Plain Radiography"] * n,
            "exam_code": ["XCHES"] * n,
        }
    )
    lookups = _lookups()
    matched = sum(normalise_code(v) in KEYS for v in VARIANTS)
    assert matched == 4  # the padded/lower-cased spellings only, never the near misses
    cube = didcore.aggregate(table, lookups, progress=False)
    assert cube.rows_read == n
    assert n - cube.exclusions["no_icb"] == matched
    reference = aggregate_reference(table.to_pylist(), lookups)
    assert n - reference.exclusions["no_icb"] == matched
    providers = {normalise_code(v) for v in VARIANTS} - {None}
    assert providers <= set(cube.provider_codes)
    assert providers <= set(reference.provider)


def _population(icb_code: str) -> pa.Table:
    return pa.table(
        {
            "icb_code": [icb_code],
            "sex": ["1"],
            "age": ["40"],
            "imd_quintile": [1],
            "population": [10.0],
        }
    )


@pytest.mark.filterwarnings("ignore::didcore.population.PopulationWarning")
@pytest.mark.parametrize("value", VARIANTS[:-1])
def test_population_icb_codes(value: str) -> None:
    codes = tuple(normalise_code(c) or "" for c in CODES)
    key = normalise_code(value)
    if key in KEYS:
        pop = Population.read(_population(value), codes)
        assert pop.values[codes.index(key)].sum() == 10.0
        assert np.count_nonzero(pop.values) == 1
    else:
        with pytest.raises(PopulationError):
            Population.read(_population(value), codes)


def test_quality_provider_codes() -> None:
    table = pa.table({"provider_code": VARIANTS, "missing_records": [1.0] * len(VARIANTS)})
    out = read_provider_missing(table)
    expected: dict[str, float] = {}
    for v in VARIANTS:
        key = normalise_code(v)
        if key is not None:
            expected[key] = expected.get(key, 0.0) + 1.0
    got = dict(
        zip(out["provider_code"].to_pylist(), out["missing_records"].to_pylist(), strict=True)
    )
    assert got == expected
    assert got["ASS1"] == 1.0  # "ASS1" is its own provider, not "aß1"
    assert got["D4"] == 1.0  # " d4\xa0" only: the zero-width spellings are other codes
