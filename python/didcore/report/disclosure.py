"""Statistical disclosure control for published tables.

The rule is the one NHS England (formerly NHS Digital) applies to its secondary-care statistics
(HES, ECDS, and the other datasets that adopted it in 2018):

1. **National counts are not controlled.** Tables 1-2 (national rates), the rates-ratio tables
   (national by sex, deprivation and age), the source shares and the exclusions are published as
   they are.
2. **Sub-national counts** (per ICB, per provider, per cube cell):

   * 0 stays 0 (a true zero identifies nobody);
   * 1 to 7 are suppressed (published as ``*``; empty in CSV, with ``suppressed`` true);
   * every other count is rounded to the nearest 5 (halves round up: 12.5 -> 15).

3. **Totals are computed from the unrounded values and then rounded**, never summed from the
   published cells, so a total carries no more information than its own rounding allows.
4. **Secondary suppression**, because a total minus the other cells of its group would otherwise
   give back a suppressed value: within every group of cells whose total is published elsewhere
   (an ICB's observed count across its cube cells; a measure's count across ICBs, whose total is
   the national count), when exactly one cell is suppressed, the smallest other non-zero cell is
   suppressed too. This is repeated until no group has exactly one suppressed cell.
5. **Values derived from a controlled count**: a crude rate or percentage is computed from the
   rounded count (and the rounded denominator when that is a controlled count too); anything
   computed from a suppressed count (crude, standardised and directly standardised rates, their
   confidence limits, O/E, year-on-year change) is suppressed with it. Standardised rates of
   published counts are "complex calculations" and are not rounded further, as in the
   NHS England rule.

Populations are ONS estimates (public, not counts of patients in the extract) and are not
controlled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["DisclosureRule", "apply_rule", "secondary_suppression"]


@dataclass(frozen=True)
class DisclosureRule:
    """The small-count rule: suppress 1..``max_suppressed``, round the rest to ``round_to``."""

    max_suppressed: int = 7
    round_to: int = 5

    def __post_init__(self) -> None:
        """Refuse settings that would publish raw small counts by accident."""
        if self.max_suppressed < 0 or self.round_to < 1:
            raise ValueError("DisclosureRule needs max_suppressed >= 0 and round_to >= 1")

    def describe(self) -> str:
        """A one-sentence statement of the rule, for notes in the outputs."""
        return (
            f"Sub-national counts of 1 to {self.max_suppressed} are suppressed (*) and other "
            f"counts are rounded to the nearest {self.round_to}; totals are rounded from "
            "unrounded values; where one cell of a group with a published total is suppressed, "
            "the next smallest is suppressed too; rates and percentages are computed from the "
            "rounded counts and suppressed with them. National figures are not controlled."
        )

    def round(self, values: np.ndarray) -> np.ndarray:
        """Round counts to the nearest ``round_to`` (halves up), as float64."""
        v = np.asarray(values, dtype=float)
        return np.floor(v / self.round_to + 0.5) * self.round_to

    def primary(self, values: np.ndarray) -> np.ndarray:
        """Mask of the counts suppressed by the small-count rule (1..max_suppressed)."""
        v = np.asarray(values, dtype=float)
        return (v > 0) & (v <= self.max_suppressed)


def secondary_suppression(
    values: np.ndarray, suppressed: np.ndarray, groups: Sequence[np.ndarray]
) -> np.ndarray:
    """Extend ``suppressed`` so that no group has exactly one suppressed cell.

    ``groups`` holds, for each grouping with a published total, an integer group id per cell.
    The cell added to a group is its smallest non-zero unsuppressed cell (ties: the first), which
    hides the most while losing the least. A group whose other cells are all zero is left alone:
    its total then equals the suppressed cell and is itself suppressed by the primary rule.
    """
    v = np.asarray(values, dtype=float)
    mask = np.asarray(suppressed, dtype=bool).copy()
    if not len(groups) or not mask.any():
        return mask
    cells = np.arange(v.size)
    for _ in range(v.size + 1):  # each pass suppresses at least one cell or stops
        changed = False
        for gid in groups:
            gid = np.asarray(gid)
            n_groups = int(gid.max()) + 1 if gid.size else 0
            n_supp = np.bincount(gid[mask], minlength=n_groups)
            lone = np.nonzero(n_supp == 1)[0]
            if lone.size == 0:
                continue
            # candidate cells: in a lone group, non-zero, not yet suppressed
            cand = np.isin(gid, lone) & ~mask & (v > 0)
            if not cand.any():
                continue
            idx = cells[cand]
            # smallest value per group: sort by (group, value, index) and take each group's first
            order = np.lexsort((idx, v[idx], gid[idx]))
            idx = idx[order]
            first = np.ones(idx.size, dtype=bool)
            first[1:] = gid[idx][1:] != gid[idx][:-1]
            mask[idx[first]] = True
            changed = True
        if not changed:
            break
    return mask


def apply_rule(
    rule: DisclosureRule, values: np.ndarray, groups: Sequence[np.ndarray] = ()
) -> tuple[np.ndarray, np.ndarray]:
    """Control one column of sub-national counts.

    Returns ``(published, suppressed)``: the rounded counts as float64 with NaN where
    suppressed, and the suppression mask (primary and secondary).
    """
    v = np.asarray(values, dtype=float)
    mask = secondary_suppression(v, rule.primary(v), groups)
    out = rule.round(v)
    out[mask] = np.nan
    return out, mask
