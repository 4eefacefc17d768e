"""The rows: code pools and the :class:`_RowMaker` that expands a batch of planned categories
into an Arrow table of extract columns (docs/inputs.md), with the planted data-quality problems.
"""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa

from didcore.synth.model import _Model
from didcore.synth.params import (
    _CODE_VARIANTS,
    _CROSS_BORDER_LSOA_SHARE,
    _FY_START,
    _N_AGE,
    _N_CELL,
    _N_IMD,
    _N_WELSH_LSOA,
    _OTHER_VALID_JUSTICE_SHARE,
    _PSEUDO_LSOAS,
    _R_COMPLETE,
    _R_NO_AGE,
    _R_NO_IMD,
    _R_NO_SEX,
    _R_OTHER,
    _R_UNKNOWN,
    _REASONS,
    _SECONDARY_MISSING_AGE,
    _SECONDARY_MISSING_SEX,
    _SEX_ODD_FORMS,
    _UNRECOGNISED_PRACTICE_SHARE,
)
from didcore.synth.plan import _Plan
from didcore.synth.sampling import _choice, _Sampler, _spread_over_years

# =============================================================================================
# Rows
# =============================================================================================

# Practice states of a row.
_PR_VALID, _PR_NONE, _PR_UNRECOGNISED, _PR_OTHER = range(4)
_BLANKS = ("", "   ")  # blank codes, counted as missing like nulls
_SEX_POOL = ("1", "2", "0", "9", "", " 1", " 2", "1 ", "2 ")
_SEX_MISSING = {2: 0.35, 3: 0.25, -1: 0.35, 4: 0.05}  # "0", "9", null, ""

_SCHEMA = pa.schema(
    [
        pa.field("provider_code", pa.dictionary(pa.int32(), pa.string()), nullable=False),
        pa.field("gp_practice_code", pa.dictionary(pa.int32(), pa.string())),
        pa.field("lsoa11", pa.dictionary(pa.int32(), pa.string())),
        pa.field("sex", pa.dictionary(pa.int32(), pa.string())),
        pa.field("age", pa.int32()),
        pa.field("date_of_birth", pa.date32()),
        pa.field("test_date", pa.date32(), nullable=False),
        pa.field("modality", pa.dictionary(pa.int32(), pa.string()), nullable=False),
        pa.field("exam_code", pa.dictionary(pa.int32(), pa.string()), nullable=False),
    ]
)


class _CodePool:
    """Strings of one column: the codes, blank values, then lower/leading/trailing variants."""

    def __init__(self, codes: np.ndarray, blanks: tuple[str, ...] = ()) -> None:
        codes = codes.astype(str)
        self.n = len(codes)
        self.blank0 = self.n
        self.values = pa.array(
            [
                *codes.tolist(),
                *blanks,
                *np.char.lower(codes).tolist(),
                *np.char.add(" ", codes).tolist(),  # (numpy < 2 has no "+" on text)
                *np.char.add(codes, " ").tolist(),
            ],
            pa.string(),
        )
        self.variant0 = self.n + len(blanks)

    def with_variants(
        self, code: np.ndarray, shares: tuple[float, float, float], rng: np.random.Generator
    ) -> tuple[np.ndarray, int]:
        """Indices of ``code`` (indices of codes), some turned into variants; and how many."""
        u = rng.random(len(code))
        variant = np.zeros(len(code), dtype=np.int64)
        edges = np.cumsum(shares)
        for v in range(3):
            variant[(u >= (edges[v - 1] if v else 0.0)) & (u < edges[v])] = v + 1
        out = np.where(variant > 0, self.variant0 + (variant - 1) * self.n + code, code)
        return out, int((variant > 0).sum())


def _dictionary_array(
    values: pa.Array, index: np.ndarray, null: np.ndarray | None = None
) -> pa.DictionaryArray:
    """Dictionary-encoded column holding only the strings this row group uses."""
    valid = index if null is None else index[~null]
    used = np.zeros(len(values), dtype=bool)
    used[valid] = True
    remap = np.cumsum(used, dtype=np.int64) - 1
    indices = pa.array(remap[index].astype(np.int32), mask=null)
    return pa.DictionaryArray.from_arrays(indices, values.filter(pa.array(used)))


def _dates_of_birth(test_day: np.ndarray, age: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Dates of birth (days since 1970) giving exactly ``age`` whole years at ``test_day``.

    The last birthday is 0..364 days before the test (always within the past year); the date of
    birth is that day ``age`` years earlier, with 29 February moved to 28 February in years that
    are not leap years.
    """
    last_birthday = (test_day - rng.integers(0, 365, len(test_day))).astype("datetime64[D]")
    year = last_birthday.astype("datetime64[Y]")
    month = last_birthday.astype("datetime64[M]")
    day = (last_birthday - month.astype("datetime64[D]")).astype(np.int64)
    birth_month = (year - age.astype("timedelta64[Y]")).astype("datetime64[M]") + (
        month - year.astype("datetime64[M]")
    )
    month_length = (
        (birth_month + 1).astype("datetime64[D]") - birth_month.astype("datetime64[D]")
    ).astype(np.int64)
    birth = birth_month.astype("datetime64[D]") + np.minimum(day, month_length - 1)
    return birth.astype(np.int64)


class _RowMaker:
    """Expands a row group's categories into columns (all vectorised)."""

    def __init__(self, model: _Model, plan: _Plan) -> None:
        self.model = model
        self.plan = plan
        n_icb = len(model.icb_codes)
        self.n_icb = n_icb
        self.cell = _Sampler.dense(plan.expected.reshape(14 * n_icb, _N_CELL))
        self.provider = _Sampler.dense(model.provider_prob.reshape(14 * n_icb, -1))
        english = np.flatnonzero(model.practice_kind == 0)
        self.practice = _Sampler(
            model.practice_icb[english], english, model.practice_weight[english]
        )
        self.welsh_practices = np.flatnonzero(model.practice_kind == 1)
        self.justice_practices = np.flatnonzero(model.practice_kind == 2)
        self.closed_practices = np.flatnonzero(model.practice_kind == 3)
        self.pseudo_practices = np.flatnonzero(model.practice_kind == 4)
        n_eng = len(model.lsoa_icb)
        self.lsoa = _Sampler(
            model.lsoa_icb * _N_IMD + model.lsoa_quintile, np.arange(n_eng), model.lsoa_weight
        )
        self.welsh_lsoa0, self.n_welsh_lsoa = n_eng, _N_WELSH_LSOA
        self.pseudo_lsoa0 = n_eng + _N_WELSH_LSOA
        self.neighbour = _Sampler.dense(model.neighbour_weight)
        self.day = _Sampler.dense(model.day_weight)
        offsets = np.cumsum([0, *(len(c) for c in model.exam_codes)])
        # groups kind * 2 + sex (0 male, 1 female); items index the concatenated code lists
        self.exam = _Sampler(
            np.concatenate(
                [np.repeat([2 * k, 2 * k + 1], len(c)) for k, c in enumerate(model.exam_codes)]
            ),
            np.concatenate([np.tile(np.arange(a, b), 2) for a, b in itertools.pairwise(offsets)]),
            np.concatenate([w.ravel() for w in model.exam_weights]),
        )
        self.exam_values = pa.array([c for codes in model.exam_codes for c in codes], pa.string())
        self.modality_values = pa.array(list(model.measures.modality[:9]), pa.string())
        self.provider_pool = _CodePool(model.provider_codes)
        self.practice_pool = _CodePool(model.practice_codes, _BLANKS)
        self.lsoa_pool = _CodePool(model.lsoa_codes, ("",))
        self.sex_values = pa.array(list(_SEX_POOL), pa.string())
        self.fy_start = int(_FY_START.astype(np.int64))
        self.years = 1  # financial years the test dates span, ending 2023/24

    def make(
        self, category: np.ndarray, rng: np.random.Generator
    ) -> tuple[pa.Table, dict[str, int]]:
        """The rows of the given categories (already shuffled), and what was planted in them."""
        m, plan, n_icb = self.model, self.plan, self.n_icb
        n = len(category)
        reason = plan.reason[category].astype(np.int64)
        kind = plan.kind[category].astype(np.int64)
        icb = plan.icb[category].astype(np.int64)
        cell = plan.cell[category].astype(np.int64)
        extra = cell < 0
        cell[extra] = self.cell(kind[extra] * n_icb + icb[extra], rng)
        sex, band, quintile = cell // (_N_AGE * _N_IMD), (cell // _N_IMD) % _N_AGE, cell % _N_IMD
        provider = plan.provider[category].astype(np.int64)
        complete = provider < 0
        provider[complete] = self.provider(kind[complete] * n_icb + icb[complete], rng)
        planted: dict[str, int] = {}

        # GP practice: absent for the provider's share of tests; otherwise one of the ICB's
        # practices, with a few unrecognised (closed or pseudo) codes that leave the ICB to the
        # LSOA. Other-valid rows get a Welsh or justice-estate code.
        normal = (reason == _R_COMPLETE) | (reason == _R_NO_SEX) | (reason == _R_NO_AGE)
        u = rng.random(n)
        p_none = m.no_practice_prob[provider]
        state = np.full(n, _PR_VALID)
        state[normal & (u < p_none)] = _PR_NONE
        unrecognised = (u >= p_none) & (u < p_none + _UNRECOGNISED_PRACTICE_SHARE * (1 - p_none))
        state[normal & unrecognised] = _PR_UNRECOGNISED
        state[reason == _R_OTHER] = _PR_OTHER
        unknown = reason == _R_UNKNOWN
        state[unknown] = np.where(
            rng.random(n)[unknown] < np.maximum(0.75, p_none[unknown]), _PR_NONE, _PR_UNRECOGNISED
        )
        practice = np.zeros(n, dtype=np.int64)
        valid = state == _PR_VALID
        practice[valid] = self.practice(icb[valid], rng)
        unrec = np.flatnonzero(state == _PR_UNRECOGNISED)
        pseudo = rng.random(len(unrec)) < 0.2
        practice[unrec] = np.where(
            pseudo,
            rng.choice(self.pseudo_practices, len(unrec)),
            rng.choice(self.closed_practices, len(unrec)),
        )
        other = np.flatnonzero(state == _PR_OTHER)
        justice = rng.random(len(other)) < _OTHER_VALID_JUSTICE_SHARE
        practice[other] = np.where(
            justice,
            rng.choice(self.justice_practices, len(other)),
            rng.choice(self.welsh_practices, len(other)),
        )
        has_code = state != _PR_NONE
        practice[has_code], planted["variant_gp_practice_code"] = self.practice_pool.with_variants(
            practice[has_code], _CODE_VARIANTS["gp_practice_code"], rng
        )
        none = np.flatnonzero(~has_code)
        blank_kind = _choice(rng, len(none), {-1: 0.85, 0: 0.10, 1: 0.05})
        practice[none] = np.where(blank_kind >= 0, self.practice_pool.blank0 + blank_kind, 0)
        practice_null = np.zeros(n, dtype=bool)
        practice_null[none[blank_kind < 0]] = True
        planted["practice_none"] = int((~has_code).sum())
        planted["practice_unrecognised"] = len(unrec)
        planted["practice_other_valid_welsh"] = int((~justice).sum())
        planted["practice_other_valid_justice"] = int(justice.sum())

        # LSOA: in the row's ICB and quintile; for ~3% of tests with a practice, in another ICB
        # of the region (same quintile), as people registered across an ICB border.
        lsoa = np.zeros(n, dtype=np.int64)
        group = icb * _N_IMD + quintile
        cross = normal & valid & (rng.random(n) < _CROSS_BORDER_LSOA_SHARE)
        group[cross] = self.neighbour(icb[cross], rng) * _N_IMD + quintile[cross]
        planted["lsoa_cross_border"] = int(cross.sum())
        kinds_missing = np.full(n, -1)  # -1 English LSOA; 0 null; 1 blank; 2 Welsh; 3 pseudo
        for r, mix in (
            (_R_NO_IMD, {0: 0.82, 1: 0.05, 2: 0.10, 3: 0.03}),
            (_R_UNKNOWN, {0: 0.75, 1: 0.05, 2: 0.15, 3: 0.05}),
            (_R_OTHER, {-1: 0.15, 0: 0.25, 2: 0.60}),
        ):
            rows_r = np.flatnonzero(reason == r)
            kinds_missing[rows_r] = _choice(rng, len(rows_r), mix)
        english = kinds_missing == -1
        lsoa[english] = self.lsoa(group[english], rng)
        welsh = kinds_missing == 2
        lsoa[welsh] = self.welsh_lsoa0 + rng.integers(0, self.n_welsh_lsoa, int(welsh.sum()))
        pseudo_l = kinds_missing == 3
        lsoa[pseudo_l] = self.pseudo_lsoa0 + rng.integers(
            0, len(_PSEUDO_LSOAS), int(pseudo_l.sum())
        )
        coded = english | welsh | pseudo_l
        lsoa[coded], planted["variant_lsoa11"] = self.lsoa_pool.with_variants(
            lsoa[coded], _CODE_VARIANTS["lsoa11"], rng
        )
        lsoa[kinds_missing == 1] = self.lsoa_pool.blank0
        lsoa_null = kinds_missing == 0
        planted["lsoa_null_or_blank"] = int(((kinds_missing == 0) | (kinds_missing == 1)).sum())
        planted["lsoa_welsh"] = int(welsh.sum())
        planted["lsoa_pseudo"] = int(pseudo_l.sum())

        # Sex: NHS codes as strings, a few with stray spaces; missing (0, 9, null or blank) for
        # no_sex rows and for some rows already excluded for a higher-precedence reason.
        sex_code = sex.copy()  # "1" is pool index 0, "2" index 1
        odd = rng.random(n) < _SEX_ODD_FORMS
        sex_code[odd] = 5 + sex[odd] + 2 * rng.integers(0, 2, int(odd.sum()))
        planted["sex_odd_form"] = int(odd.sum())
        secondary = (reason == _R_OTHER) | (reason == _R_UNKNOWN) | (reason == _R_NO_IMD)
        no_sex = (reason == _R_NO_SEX) | (secondary & (rng.random(n) < _SECONDARY_MISSING_SEX))
        sex_code[no_sex] = _choice(rng, int(no_sex.sum()), _SEX_MISSING)
        planted["sex_missing"] = int(no_sex.sum())
        sex_null = sex_code < 0
        sex_code[sex_null] = 0

        # Age in whole years, uniform within its 5-year band; 90+ falls off geometrically.
        age = np.where(
            band < _N_AGE - 1,
            5 * band + rng.integers(0, 5, n),
            90 + np.minimum(rng.geometric(0.25, n) - 1, 15),
        )
        secondary |= reason == _R_NO_SEX
        age_null = (reason == _R_NO_AGE) | (secondary & (rng.random(n) < _SECONDARY_MISSING_AGE))
        planted["age_missing"] = int(age_null.sum())
        test_day = self.fy_start + self.day(kind, rng)
        if self.years > 1:
            test_day = _spread_over_years(test_day - self.fy_start, self.years, rng)
        birth = _dates_of_birth(test_day, age, rng)

        prov_idx, planted["variant_provider_code"] = self.provider_pool.with_variants(
            provider, _CODE_VARIANTS["provider_code"], rng
        )
        exam = self.exam(2 * kind + sex, rng)
        columns = [
            _dictionary_array(self.provider_pool.values, prov_idx),
            _dictionary_array(self.practice_pool.values, practice, practice_null),
            _dictionary_array(self.lsoa_pool.values, lsoa, lsoa_null),
            _dictionary_array(self.sex_values, sex_code, sex_null),
            pa.array(age.astype(np.int32), mask=age_null),
            pa.array(birth.astype(np.int32), mask=age_null).cast(pa.date32()),
            pa.array(test_day.astype(np.int32)).cast(pa.date32()),
            _dictionary_array(self.modality_values, m.kind_modality[kind]),
            _dictionary_array(self.exam_values, exam),
        ]
        for r, name in enumerate(_REASONS):
            planted[f"rows_{name}"] = int((reason == r).sum())
        return pa.Table.from_arrays(columns, schema=_SCHEMA), planted
