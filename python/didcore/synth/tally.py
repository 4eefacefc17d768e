"""Exact counts of what was written: the derivation rules applied to the written columns, so
truth.json and the Cube compare key for key.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from didcore.cube import QUALITY_COUNTERS
from didcore.synth.model import _Model
from didcore.synth.params import _N_AGE, _N_IMD

# =============================================================================================
# Exact counts of what was written (the derivation rules applied to the written columns)
# =============================================================================================

# The cube's counters (docs/architecture.md), so truth.json and Cube compare key for key.
_COUNTERS = QUALITY_COUNTERS


def _normalised(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(row -> entry index or -1 for null, normalised entries) of a dictionary column.

    Normalisation is what the pipeline does to codes: trim whitespace, upper-case.
    """
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if not isinstance(array, pa.DictionaryArray):
        array = array.dictionary_encode()
    index = pc.fill_null(array.indices, -1).to_numpy().astype(np.int64)
    entries = pc.utf8_upper(pc.utf8_trim_whitespace(array.dictionary))
    return index, np.asarray(entries.to_pylist(), dtype=object)


class _Tally:
    """Counts of a written extract by the derivation rules, independent of how rows were made.

    Applies the lookups written to ``lookups/`` to the written string columns: ICB from the
    practice, else nothing for an other-valid practice, else from the LSOA; IMD quintile from the
    LSOA; sex valid if "1" or "2"; age valid if present and not negative. Exclusions in order
    no_icb > no_imd > no_sex > no_age > no_measure.
    """

    def __init__(self, model: _Model) -> None:
        self.model = model
        icb_index = {c: i for i, c in enumerate(model.icb_codes)}
        english = model.practice_kind == 0
        self.practice_icb = dict(
            zip(model.practice_codes[english], model.practice_icb[english].tolist(), strict=True)
        )
        other = (model.practice_kind == 1) | (model.practice_kind == 2)
        self.other_practices = set(model.practice_codes[other].tolist())
        n_eng = len(model.lsoa_icb)
        self.lsoa = {
            code: (int(i), int(q))
            for code, i, q in zip(
                model.lsoa_codes[:n_eng], model.lsoa_icb, model.lsoa_quintile, strict=True
            )
        }
        # Matched like codes: trimmed and upper-cased.
        self.modality = {name.upper(): k for k, name in enumerate(model.measures.modality[:9])}
        self.edoc = {
            (model.measures.modality[k].upper(), code.upper()): k
            for k in range(9, 14)
            for code in model.measures.edoc_codes[model.measures.names[k]]
        }
        self.n_icb = len(icb_index)
        self.cube = np.zeros((self.n_icb, 2, _N_AGE, _N_IMD, 14), dtype=np.int64)
        self.provider: dict[str, np.ndarray] = {}
        self.icb = np.zeros((self.n_icb + 1, len(_COUNTERS)), dtype=np.int64)  # last: no ICB

    def add(self, table: pa.Table) -> None:
        """Count one row group."""
        n = table.num_rows
        p_row, p_entries = _normalised(table.column("gp_practice_code"))
        e_icb = np.array([self.practice_icb.get(c, -1) for c in p_entries], dtype=np.int64)
        e_other = np.array([c in self.other_practices for c in p_entries], dtype=bool)
        e_blank = np.array([c == "" for c in p_entries], dtype=bool)
        present = p_row >= 0
        safe = np.where(present, p_row, 0)
        practice_icb = np.where(present, e_icb[safe] if len(e_icb) else -1, -1)
        practice_other = present & (e_other[safe] if len(e_other) else False)
        no_practice = ~present | (e_blank[safe] if len(e_blank) else True)

        l_row, l_entries = _normalised(table.column("lsoa11"))
        looked = [self.lsoa.get(c, (-1, -1)) for c in l_entries]
        e_licb = np.array([x[0] for x in looked], dtype=np.int64)
        e_q = np.array([x[1] for x in looked], dtype=np.int64)
        e_lblank = np.array([c == "" for c in l_entries], dtype=bool)
        present = l_row >= 0
        safe = np.where(present, l_row, 0)
        lsoa_icb = np.where(present, e_licb[safe] if len(e_licb) else -1, -1)
        quintile = np.where(present, e_q[safe] if len(e_q) else -1, -1)
        no_lsoa = ~present | (e_lblank[safe] if len(e_lblank) else True)

        src_gp = practice_icb >= 0
        src_other = ~src_gp & practice_other
        src_lsoa = ~src_gp & ~src_other & (lsoa_icb >= 0)
        src_unknown = ~(src_gp | src_other | src_lsoa)
        icb = np.where(src_gp, practice_icb, np.where(src_lsoa, lsoa_icb, -1))

        s_row, s_entries = _normalised(table.column("sex"))
        e_sex = np.array([{"1": 0, "2": 1}.get(c, -1) for c in s_entries], dtype=np.int64)
        sex = np.where(s_row >= 0, e_sex[np.maximum(s_row, 0)] if len(e_sex) else -1, -1)
        age_col = table.column("age")
        age = pc.fill_null(age_col, -1).to_numpy().astype(np.int64)
        age_ok = age >= 0
        band = np.minimum(np.maximum(age, 0) // 5, _N_AGE - 1)

        m_row, m_entries = _normalised(table.column("modality"))
        modality = np.array([*(self.modality.get(c, -1) for c in m_entries), -1], dtype=np.int64)[
            m_row
        ]
        x_row, x_entries = _normalised(table.column("exam_code"))
        # EDOC measure of each (modality, exam code entry) pair; -1 for none.
        edoc_of = np.full((10, len(x_entries) + 1), -1, dtype=np.int64)  # row/col -1: unknown
        for (modality_name, code), k in self.edoc.items():
            edoc_of[self.modality[modality_name], np.flatnonzero(x_entries == code)] = k
        edoc = edoc_of[modality, x_row]
        no_icb = icb < 0
        no_imd = ~no_icb & (quintile < 0)
        no_sex = ~no_icb & ~no_imd & (sex < 0)
        no_age = ~no_icb & ~no_imd & ~no_sex & ~age_ok
        # "included" is every record past the four exclusions; "no_measure" is
        # the part of it whose modality is in no measure (none are generated, but count it).
        included = ~(no_icb | no_imd | no_sex | no_age)
        no_measure = included & (modality < 0)

        flags = np.stack(
            [
                np.ones(n, dtype=bool),
                no_practice,
                no_lsoa,
                no_practice & no_lsoa,
                src_gp,
                src_other,
                src_lsoa,
                src_unknown,
                no_icb,
                no_imd,
                no_sex,
                no_age,
                included,
                no_measure,
                quintile < 0,
                sex < 0,
                ~age_ok,
                (quintile < 0) | (sex < 0) | ~age_ok,
            ],
            axis=1,
        )

        pr_row, pr_entries = _normalised(table.column("provider_code"))
        keys, key_of_entry = np.unique(
            np.append(np.where(pr_entries == "", "(missing)", pr_entries), "(missing)").astype(str),
            return_inverse=True,
        )
        row_key = key_of_entry[pr_row]  # index -1 picks the appended "(missing)"
        for key in keys.tolist():
            self.provider.setdefault(key, np.zeros(len(_COUNTERS), dtype=np.int64))
        for c in range(len(_COUNTERS)):
            per_key = np.bincount(row_key, weights=flags[:, c], minlength=len(keys))
            for j, key in enumerate(keys.tolist()):
                self.provider[key][c] += int(per_key[j])
        icb_key = np.where(icb >= 0, icb, self.n_icb)
        for c in range(len(_COUNTERS)):
            self.icb[:, c] += np.bincount(
                icb_key, weights=flags[:, c], minlength=self.n_icb + 1
            ).astype(np.int64)

        inc = np.flatnonzero(included & ~no_measure)
        base = (((icb[inc] * 2 + sex[inc]) * _N_AGE + band[inc]) * _N_IMD + quintile[inc]) * 14
        flat = self.cube.reshape(-1)
        flat += np.bincount(base + modality[inc], minlength=flat.size)
        has_edoc = edoc[inc] >= 0
        flat += np.bincount(base[has_edoc] + edoc[inc][has_edoc], minlength=flat.size)

    def counters(self) -> dict[str, Any]:
        """Totals, exclusions, ICB sources and the per-provider and per-ICB counters."""
        total = self.icb.sum(0)
        named = dict(zip(_COUNTERS, total.tolist(), strict=True))
        icb_keys = [*self.model.icb_codes.tolist(), "(none)"]
        return {
            "rows_read": named["rows"],
            "exclusions": {
                "rows_read": named["rows"],
                "no_icb": named["excl_no_icb"],
                "no_imd": named["excl_no_imd"],
                "no_sex": named["excl_no_sex"],
                "no_age": named["excl_no_age"],
                "included": named["included"],
                "no_measure": named["no_measure"],
            },
            "icb_source": {
                "gp_practice": named["src_gp_practice"],
                "other_valid_practice": named["src_other_valid_practice"],
                "lsoa": named["src_lsoa"],
                "unknown": named["src_unknown"],
            },
            "totals": named,
            "provider_quality": {
                k: dict(zip(_COUNTERS, v.tolist(), strict=True))
                for k, v in sorted(self.provider.items())
                if v[0] > 0
            },
            "icb_quality": {
                k: dict(zip(_COUNTERS, v.tolist(), strict=True))
                for k, v in zip(icb_keys, self.icb, strict=True)
            },
        }
