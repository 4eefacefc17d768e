"""Hypothesis strategies for extract records, and the Arrow layouts they may arrive in.

A case is drawn from a seed: :class:`Gen` runs the strategies on a hypothesis
``ConjectureData`` seeded with ``random.Random(seed)``, so the same seed gives the same case
(with the same hypothesis version), which is what makes every finding replayable.

Records mix clean values with the dirty ones real extracts hold: nulls, blanks, codes in any
case padded with ASCII or Unicode white space, near misses (a zero-width space, an accented
letter), ages as text in every spelling (hex, underscores, Arabic-Indic and full-width digits,
exponents, infinities), sex as text/int/float/decimal, dates as text.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import random
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from .fixtures import EXAMS, LSOA_ICB, OTHER, PRACTICES, PROVIDERS

# ------------------------------------------------------------------ drawing from a seed


class Gen:
    """Deterministic draws for one case: hypothesis strategies and plain random choices."""

    def __init__(self, seed: int) -> None:
        from hypothesis.internal.conjecture.data import ConjectureData

        self.seed = seed
        self.rng = random.Random(seed)
        self._data_type = ConjectureData
        self._provider = _provider()

    def draw(self, strategy: st.SearchStrategy[Any]) -> Any:
        """One value of ``strategy`` (each draw has its own choice sequence, seeded from this
        case's random generator, so that large draws never overrun hypothesis' buffer).
        """
        from hypothesis.control import BuildContext

        data = self._data_type(
            random=random.Random(self.rng.getrandbits(64)), provider=self._provider
        )
        with BuildContext(data, wrapped_test=Gen.draw):
            return data.draw(strategy)

    def choice(self, options: Any) -> Any:
        options = list(options)
        return options[self.rng.randrange(len(options))]

    def bool(self, p: float = 0.5) -> bool:
        return self.rng.random() < p

    def int(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)


def _provider() -> Any:
    """Hypothesis' provider without its "local constants": those are gathered from whatever
    modules the process has imported, so a case drawn in a worker would differ from the same
    seed replayed elsewhere. Without them, a seed gives the same case in any process.
    """
    from hypothesis.internal.conjecture.providers import Constants, HypothesisProvider

    empty = Constants()

    class Provider(HypothesisProvider):
        @property
        def _local_constants(self) -> Any:  # type: ignore[override]
            return empty

    return Provider


# ------------------------------------------------------------------ values

_SPACES = [
    "",
    "",
    "",
    " ",
    "  ",
    "\t",
    "\n",
    "\r",
    "\v",
    "\f",
    "\xa0",
    "\u2003",
    "\u3000",
    "\x85",
    "\x1f",
    "\u2028",
    "\ufeff",  # not white space: a near miss
]


def code_variants(code: str) -> st.SearchStrategy[str]:
    """``code`` as an extract might hold it: any case, padding, near misses."""
    return st.tuples(
        st.sampled_from(_SPACES),
        st.sampled_from(
            [
                code,
                code,
                code.lower(),
                code.title(),
                code + "\u00e9",
                " ".join(code),
                code + "\u200b",
                code.replace("0", "O"),
                code.upper().translate({ord("A"): "\u0410"}),  # Cyrillic A
            ]
        ),
        st.sampled_from(_SPACES),
    ).map("".join)


_JUNK = st.sampled_from(
    ["NA", "null", "N/A", "#N/A", "-", "?", "\U0001f600", "\x00", "a,b", 'x"y', "=1+1", "@SUM(A1)"]
)


def codes(known: list[str], unknown: list[str]) -> st.SearchStrategy[str | None]:
    return st.one_of(
        st.none(),
        st.just(""),
        st.just("   "),
        st.sampled_from(known).flatmap(code_variants),
        st.sampled_from(known),
        st.sampled_from(unknown),
        _JUNK,
        st.text(max_size=6),
        st.text(alphabet="ABCEXZ0189 ", min_size=200, max_size=300),
    )


MODALITIES = [
    "Plain Radiography",
    "Diagnostic Ultrasonography",
    "Computerized Axial Tomography",
    "Magnetic Resonance Imaging",
    "Fluoroscopy",
    "Nuclear Medicine Procedure",
    "Positron Emission Tomography",
    "Single Photon Emission Computerized Tomography",
    "Medical Photography",
]

practice_st = codes([*PRACTICES, *OTHER], ["X00000", "a8100", "W9"])
lsoa_st = codes([*LSOA_ICB, "E01000005"], ["E01999999", "W01000001"])
provider_st = codes(PROVIDERS, ["ZZZ", "R" * 40])
modality_st = codes(MODALITIES, ["Other Thing", "X-ray"])
exam_st = codes(EXAMS, ["ZZZZZZ"])

SEX_TEXT = [
    "1",
    "2",
    "0",
    "9",
    " 1",
    "2 ",
    "M",
    "F",
    "",
    "x",
    "1.0",
    "02",
    "+1",
    "2.",
    "1e0",
    "1_0",
    "1.5",
    "0x1",
    "\u0662",  # Arabic-Indic 2
    "\uff11",  # full-width 1
    "\u22121",  # minus sign
    "1\x00",
    "\xa02\xa0",
    "01.00",
    "+01",
    " 2.0 ",
    "-1",
    "male",
    "2.000000001",
]
sex_text_st = st.one_of(st.none(), st.sampled_from(SEX_TEXT), st.sampled_from(["1", "2"]))
sex_int_st = st.one_of(st.none(), st.sampled_from([1, 2, 1, 2, 0, 9, 3, 101]))
sex_signed_st = st.one_of(sex_int_st, st.sampled_from([-1, -2]))
sex_float_st = st.one_of(
    st.none(),
    st.sampled_from(
        [1.0, 2.0, 1.0, 2.0, 0.0, -0.0, 9.0, -1.0, 1.5, 2.0001, math.nan, math.inf, 1e300]
    ),
)
sex_decimal_st = st.one_of(
    st.none(),
    st.sampled_from(
        [Decimal("1"), Decimal("2"), Decimal("2.00"), Decimal("1.50"), Decimal("0"), Decimal("9")]
    ),
)

AGE_TEXT = [
    "",
    " ",
    " 41 ",
    "41.0",
    "4e1",
    "044",
    "+7",
    "44.9",
    "-0.5",
    "-0",
    "NK",
    "1e400",
    "4 1",
    "0x10",
    "0X1f",
    "1_000",
    "\u0664\u0660",  # Arabic-Indic 40
    "\uff14\uff10",  # full-width 40
    "inf",
    "-inf",
    "nan",
    "NaN",
    "40.",
    ".5",
    "9" * 25,
    "2147483648",
    "2147483647",
    "-2147483649",
    "0b11",
    "1,5",
    "40abc",
    "40\xa0",
    "\u200b40",
    "+-4",
    "1e2",
    "90",
    "89.999",
]
age_int_st = st.one_of(st.none(), st.integers(-3, 140), st.integers(-3, 140))
age_big_st = st.one_of(
    age_int_st,
    st.sampled_from([2**31 - 2, 2**31 - 1, 2**31, 2**32 + 40, 2**40, 2**62, -(2**31), -(2**63)]),
)
age_float_st = st.one_of(
    st.none(),
    st.sampled_from(
        [math.nan, math.inf, -math.inf, -0.5, 4.999, 89.5, 1e300, 2.0**31 + 0.5, 1e19, -1e19, -0.0]
    ),
    st.integers(-3, 140).map(float),
    st.floats(-3, 140, allow_nan=False, width=32),
)
age_decimal_st = st.one_of(
    st.none(),
    st.integers(-3, 140).map(Decimal),
    st.sampled_from([Decimal("40.5"), Decimal("-0.5"), Decimal("89.999"), Decimal("4.000")]),
)
age_text_st = st.one_of(
    st.none(),
    st.integers(-3, 140).map(str),
    st.integers(-3, 140).map(str),
    st.sampled_from(AGE_TEXT),
)
date_st = st.one_of(st.none(), st.dates(dt.date(1890, 1, 1), dt.date(2035, 12, 31)))
DATE_TEXT = [
    "2023-04-01",
    "2023-04-01 10:30:00",
    "2023-04-01T10:30",
    "2023-04-01T23:30+01:00",
    "2023-04-01T23:30:00.123Z",
    " 2023-04-01 ",
    "",
    "01/05/1980",
    "2023-02-30",
    "2023-4-1",
    "20230401",
    "NK",
    "2023-04-01T",
    "2023-04-01junk",
    "2023-04-01Z",
    "+2023-04-01",
    "1980-13-01",
    "0001-01-01",
]
date_text_st = st.one_of(
    st.none(), date_st.map(lambda d: d.isoformat() if d else None), st.sampled_from(DATE_TEXT)
)


# ------------------------------------------------------------------ extracts


@dataclass
class Spec:
    """An extract to build: rows of Python values and the Arrow type of each column."""

    rows: list[dict[str, Any]]
    types: dict[str, Any]
    use_age: bool
    cuts: list[int] = field(default_factory=list)
    null_entries: bool = False

    @property
    def columns(self) -> list[str]:
        return list(self.types)


def _text_types() -> list[Any]:
    import pyarrow as pa

    values = [pa.string(), pa.large_string(), pa.string_view(), pa.binary()]
    out = [pa.string(), pa.large_string(), pa.string_view(), pa.binary(), pa.large_binary()]
    for index in (pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint32()):
        out.extend(pa.dictionary(index, v) for v in values)
    return out


def spec(g: Gen, *, max_rows: int = 120, dirty: bool = True) -> Spec:
    """Draw an extract: which way age is given, the value kinds, the rows and column types."""
    import pyarrow as pa

    use_age = g.bool(0.75)
    sex_kind = g.choice(["text", "text", "int", "signed", "float", "decimal"])
    age_kind = g.choice(["int", "int", "big", "float", "decimal", "text"])
    date_kind = g.choice(["date", "date", "timestamp", "text"])
    n = g.choice([0, 1, 2, 5, 20, 60, max_rows])
    sex_st = {
        "text": sex_text_st,
        "int": sex_int_st,
        "signed": sex_signed_st,
        "float": sex_float_st,
        "decimal": sex_decimal_st,
    }[sex_kind]
    age_st = {
        "int": age_int_st,
        "big": age_big_st,
        "float": age_float_st,
        "decimal": age_decimal_st,
        "text": age_text_st,
    }[age_kind]
    if not dirty:
        sex_st = st.sampled_from(["1", "2"]) if sex_kind == "text" else st.sampled_from([1, 2])
        sex_kind = "text" if sex_kind == "text" else "int"
    d_st = date_text_st if date_kind == "text" else date_st
    row_st = st.fixed_dictionaries(
        {
            "provider_code": provider_st,
            "gp_practice_code": practice_st,
            "lsoa11": lsoa_st,
            "sex": sex_st,
            "modality": modality_st,
            "exam_code": exam_st,
            "test_date": d_st,
            **({"age": age_st} if use_age else {"date_of_birth": d_st}),
        }
    )
    rows = [g.draw(row_st) for _ in range(n)]
    text_types = _text_types()
    same = g.bool(0.5)  # one text layout for every code column, as most writers do
    first = g.choice(text_types)
    types: dict[str, Any] = {}
    for name in ("provider_code", "gp_practice_code", "lsoa11"):
        types[name] = first if same else g.choice(text_types)
    types["sex"] = {
        "text": first if same else g.choice(text_types),
        "int": g.choice([pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint64()]),
        "signed": g.choice([pa.int8(), pa.int16(), pa.int32(), pa.int64()]),
        "float": g.choice([pa.float16(), pa.float32(), pa.float64()]),
        "decimal": g.choice([pa.decimal128(5, 2), pa.decimal256(12, 3), pa.decimal128(3, 0)]),
    }[sex_kind]
    for name in ("modality", "exam_code"):
        types[name] = first if same else g.choice(text_types)
    date_type = {
        "date": g.choice([pa.date32(), pa.date64()]),
        "timestamp": g.choice(
            [
                pa.timestamp("s"),
                pa.timestamp("ms"),
                pa.timestamp("us", "UTC"),
                pa.timestamp("ns", "Europe/London"),
                pa.timestamp("s", "+05:30"),
            ]
        ),
        "text": g.choice([pa.string(), pa.large_string(), pa.string_view(), *text_types[5:12]]),
    }[date_kind]
    types["test_date"] = date_type
    if use_age:
        types["age"] = {
            "int": g.choice([pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint16()]),
            "big": pa.int64(),
            "float": g.choice([pa.float16(), pa.float32(), pa.float64()]),
            "decimal": g.choice([pa.decimal128(6, 2), pa.decimal256(20, 3)]),
            "text": g.choice(
                [pa.string(), pa.large_string(), pa.string_view(), pa.binary(), *text_types[5:]]
            ),
        }[age_kind]
    else:
        types["date_of_birth"] = date_type
    cuts = sorted(g.rng.randint(0, n) for _ in range(g.int(0, 4)))
    return Spec(rows, types, use_age, cuts, g.bool(0.3))


def _fit(values: list[Any], t: Any) -> list[Any]:
    """Values an Arrow type can hold: out-of-range integers null, text encoded for binary."""
    import numpy as np
    import pyarrow as pa

    if pa.types.is_integer(t):
        info = np.iinfo(t.to_pandas_dtype())
        return [v if v is None or info.min <= v <= info.max else None for v in values]
    if pa.types.is_decimal(t):
        # fractions beyond the scale and numbers beyond the precision do not fit: null
        out = []
        for v in values:
            try:
                ok = v is not None and v.is_finite() and v == round(v, t.scale)
                ok = ok and abs(v) < Decimal(10) ** (t.precision - t.scale)
            except (AttributeError, ArithmeticError):
                ok = False
            out.append(Decimal(v) if ok else None)
        return out
    if pa.types.is_timestamp(t):
        return [None if v is None else dt.datetime(v.year, v.month, v.day, 12, 30) for v in values]
    return values


def array(values: list[Any], t: Any, *, null_entry: bool = False) -> Any:
    """An Arrow array of ``t`` holding ``values`` (Python values of any kind)."""
    import numpy as np
    import pyarrow as pa

    if pa.types.is_dictionary(t):
        distinct = list(dict.fromkeys(v for v in values if v is not None))
        where = {v: i for i, v in enumerate(distinct)}
        idx = [None if v is None else where[v] for v in values]
        entries = array(distinct, t.value_type)
        if null_entry:
            # null rows as valid indices to a null dictionary entry (Arrow allows both)
            entries = pa.concat_arrays([entries, pa.nulls(1, entries.type)])
            idx = [len(entries) - 1 if i is None else i for i in idx]
        index_type = t.index_type
        if len(entries) > np.iinfo(index_type.to_pandas_dtype()).max:
            index_type = pa.int32()
        return pa.DictionaryArray.from_arrays(pa.array(idx, index_type), entries)
    if pa.types.is_float16(t):
        mask = np.array([v is None for v in values], bool)
        with np.errstate(over="ignore"):  # 1e300 as a half float is inf, as a writer stores it
            halves = np.array([0 if v is None else v for v in values], np.float16)
        return pa.array(halves, mask=mask)
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return pa.array([None if v is None else v.encode("utf-8") for v in values], t)
    if pa.types.is_timestamp(t) or pa.types.is_date(t) or pa.types.is_integer(t):
        return pa.array(_fit(values, t), t)
    if pa.types.is_decimal(t):
        return pa.array(_fit(values, t), t)
    if _is_textual(t):
        return pa.array([None if v is None else str(v) for v in values], t)
    return pa.array(values, t)


def _is_textual(t: Any) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t))


def batches(s: Spec) -> tuple[list[Any], Any]:
    """The spec's rows as record batches (split at ``s.cuts``) and their schema."""
    import pyarrow as pa

    schema = pa.schema([pa.field(k, t) for k, t in s.types.items()])
    bounds = [0, *s.cuts, len(s.rows)]
    out = []
    for lo, hi in itertools.pairwise(bounds):
        part = s.rows[lo:hi]
        cols = [array([r[f.name] for r in part], f.type, null_entry=s.null_entries) for f in schema]
        out.append(pa.RecordBatch.from_arrays(cols, schema=schema))
    return out, schema


def table(s: Spec) -> Any:
    """The spec as one pyarrow Table (one chunk per batch)."""
    import pyarrow as pa

    bs, schema = batches(s)
    return pa.Table.from_batches(bs, schema)


def text_value(v: Any) -> str | None:
    """How a value is written in a CSV file (``None`` for a missing value)."""
    if v is None:
        return None
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else {"nan": "NaN", "inf": "inf", "-inf": "-inf"}[str(v)]
    if isinstance(v, dt.date | dt.datetime):
        return v.isoformat()
    return str(v)
