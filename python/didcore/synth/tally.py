"""Exact counts of what was written: the derivation rules applied to the written columns, so
truth.json and the Cube compare key for key.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from didcore.codes import normalise_array, normalise_text
from didcore.cube import QUALITY_COUNTERS
from didcore.reference.recount import count_cube, derive_rows
from didcore.synth.model import _Model
from didcore.synth.params import _N_AGE, _N_IMD

# =============================================================================================
# Exact counts of what was written (the derivation rules applied to the written columns)
# =============================================================================================

# The cube's counters (docs/architecture.md), so truth.json and Cube compare key for key.
_COUNTERS = QUALITY_COUNTERS


def _normalised(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(row -> entry index or -1 for null, normalised entries) of a dictionary column.

    Normalisation is what the pipeline does to codes (:mod:`didcore.codes`): trim Unicode white
    space, upper-case ASCII letters. Used for the provider keys of the per-provider counters.
    """
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if not isinstance(array, pa.DictionaryArray):
        array = array.dictionary_encode()
    index = pc.fill_null(array.indices, -1).to_numpy().astype(np.int64)
    entries = normalise_array(array.dictionary)
    return index, np.asarray(entries.to_pylist(), dtype=object)


class _Tally:
    """Counts of a written extract by the derivation rules, independent of how rows were made.

    Applies the lookups written to ``lookups/`` to the written string columns with the one
    vectorised re-count (:func:`didcore.reference.recount.derive_rows`: ICB from the practice,
    else nothing for an other-valid practice, else from the LSOA; IMD quintile from the LSOA;
    sex valid if "1" or "2"; age valid if present and not negative; exclusions in order
    no_icb > no_imd > no_sex > no_age), then counts the cube's quality counters per provider
    and per ICB (no_measure: past the exclusions, with a modality in no measure).
    """

    def __init__(self, model: _Model) -> None:
        self.model = model
        icb_index = {c: i for i, c in enumerate(model.icb_codes)}
        english = model.practice_kind == 0
        self.practice_icb = {
            str(code): int(i)
            for code, i in zip(
                model.practice_codes[english], model.practice_icb[english], strict=True
            )
        }
        other = (model.practice_kind == 1) | (model.practice_kind == 2)
        self.other_practices = {str(code) for code in model.practice_codes[other]}
        n_eng = len(model.lsoa_icb)
        self.lsoa_icb = {
            str(code): int(i)
            for code, i in zip(model.lsoa_codes[:n_eng], model.lsoa_icb, strict=True)
        }
        self.lsoa_quintile = {
            str(code): int(q)
            for code, q in zip(model.lsoa_codes[:n_eng], model.lsoa_quintile, strict=True)
        }
        # Matched like codes (didcore.codes): trimmed, ASCII upper-cased.
        self.modality = {
            normalise_text(name): k for k, name in enumerate(model.measures.modality[:9])
        }
        self.edoc = {
            (normalise_text(model.measures.modality[k]), normalise_text(code)): k
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
        rows = derive_rows(
            table,
            practice_icb=self.practice_icb,
            other_practices=self.other_practices,
            lsoa_icb=self.lsoa_icb,
            lsoa_quintile=self.lsoa_quintile,
            modality_measure=self.modality,
            edoc_measure=self.edoc,
        )
        quintile, sex, age_ok = rows.quintile, rows.sex, rows.age_ok
        included = rows.complete
        # "included" is every record past the four exclusions; "no_measure" is
        # the part of it whose modality is in no measure (none are generated, but count it).
        no_measure = included & (rows.modality_measure < 0)
        flags = np.stack(
            [
                np.ones(n, dtype=bool),
                rows.no_practice,
                rows.no_lsoa,
                rows.no_practice & rows.no_lsoa,
                rows.src_gp,
                rows.src_other,
                rows.src_lsoa,
                rows.src_unknown,
                rows.no_icb,
                rows.no_imd,
                rows.no_sex,
                rows.no_age,
                included,
                no_measure,
                quintile < 0,
                sex < 0,
                ~age_ok,
                (quintile < 0) | (sex < 0) | ~age_ok,
            ],
            axis=1,
        )
        icb = rows.icb

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

        self.cube += count_cube(rows, self.n_icb, self.cube.shape[-1])

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
