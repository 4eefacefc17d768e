"""A value profile of an extract, collected during the counting pass, for guards and checks.

:class:`ValueProfile` keeps, for a few columns (``sex``, ``modality``, ``exam_code``; and for
``didcore check`` the practice and LSOA codes that matched no lookup), how many rows hold
each raw value, as written in the extract (before any value map). It costs one
``numpy.bincount`` of a batch's dictionary indices per column (a few milliseconds for a
million rows) plus a look-up of the dictionary values that occur, so it is always on.

Counts are exact while a column has at most :data:`KEEP` distinct values; beyond that the
rarest are dropped (summed in :attr:`ValueProfile.dropped`), which can only leave out values
too rare to be among the top ones reported.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from didcore.errors import shown

__all__ = ["KEEP", "TOP", "ValueProfile", "describe_values"]

#: Values reported per column (the top ones by count).
TOP = 50
#: Distinct values kept per column before the rarest are dropped (exact below this).
KEEP = 2000


class ValueProfile:
    """Rows per raw value of some extract columns (keyed by role: ``"sex"``, ``"modality"``,
    ``"exam_code"``, ``"gp_practice_code_unmatched"``, ``"lsoa11_unmatched"``).

    ``rows`` is the number of rows seen; ``first`` a copy taken after the first batch, for
    the early guards that stop a run in seconds rather than after the whole extract.
    """

    def __init__(self) -> None:
        self.rows = 0
        self.batches = 0
        self.counts: dict[str, dict[str | None, int]] = {}
        self.dropped: dict[str, int] = {}
        self.first: ValueProfile | None = None
        #: called with :attr:`first` once the first batch is in (the early guards)
        self.on_first: Callable[[ValueProfile], None] | None = None
        #: the value maps the run applied (raw values here are before them)
        self.value_maps: dict[str, dict[str, str]] = {}
        #: whether :meth:`add_detail` counts (``didcore check``) or does nothing
        self.full = False
        #: True for :attr:`first`: the first batch alone (the early guards' messages say so)
        self.early = False

    def __repr__(self) -> str:
        return f"<didcore.ValueProfile {self.rows:,} rows; columns {', '.join(self.counts)}>"

    # ------------------------------------------------------------------ collecting
    def add_coded(
        self,
        role: str,
        column: tuple[Any, ...],
        dictionary: Any,
        keep: np.ndarray | None = None,
    ) -> None:
        """Count a dictionary-coded column: ``column`` is ``(int32 indices, validity bitmap or
        None, bit offset)`` (as handed to the Rust core), ``dictionary`` its Arrow string
        values. ``keep`` (a bool per dictionary value) counts only those values.
        """
        indices, validity, offset = column
        size = len(dictionary)
        if keep is not None:
            # only the rows of a few values (codes matching no lookup): find those rows, then
            # count them; a null row's index is arbitrary, so its validity is checked there
            flags = np.append(np.asarray(keep[:size], bool), False)
            rows = np.flatnonzero(np.take(flags, indices, mode="clip"))
            if validity is not None and len(rows):
                bits = np.asarray(validity, np.uint8)
                at = rows + offset
                rows = rows[((bits[at >> 3] >> (at & 7)) & 1).astype(bool)]
            bins = np.bincount(indices[rows], minlength=size)
            n_null = 0
        else:
            bins, n_null = _bincount(indices, validity, offset, size)
        self._add_counts(role, bins, n_null, dictionary)

    def add_bins(
        self,
        role: str,
        bins: np.ndarray,
        dictionary: Any,
        keep: np.ndarray | None = None,
    ) -> None:
        """Count a column from its rows per dictionary index (``bins``: one count per value
        of ``dictionary``, then the null rows), as the core counts a row group it decodes.
        ``keep`` as for :meth:`add_coded` (the null rows are then not counted).
        """
        size = len(dictionary)
        counts = np.asarray(bins[:size], np.int64)
        n_null = int(bins[size]) if len(bins) > size else 0
        if keep is not None:
            counts = np.where(np.asarray(keep[:size], bool), counts, 0)
            n_null = 0
        self._add_counts(role, counts, n_null, dictionary)

    def _add_counts(self, role: str, bins: np.ndarray, n_null: int, dictionary: Any) -> None:
        target = self.counts.setdefault(role, {})
        seen = np.flatnonzero(bins)
        if len(seen):
            from didcore._arrow_compat import number_array

            values = dictionary.take(number_array(seen)).to_pylist()
            for v, c in zip(values, bins[seen].tolist(), strict=True):
                target[v] = target.get(v, 0) + c
        if n_null:
            target[None] = target.get(None, 0) + n_null
        self._prune(role)

    def add_detail(
        self,
        role: str,
        column: tuple[Any, ...],
        dictionary: Any,
        classes: np.ndarray | None = None,
        marker: int = 0,
    ) -> None:
        """:meth:`add_coded` for the columns only a full profile counts (:attr:`full`): with
        ``classes`` (a class per dictionary value), only the values whose class is ``marker``
        (the codes matching no lookup).
        """
        if self.full:
            keep = None if classes is None else np.asarray(classes) == marker
            self.add_coded(role, column, dictionary, keep=keep)

    def add_numbers(self, role: str, column: tuple[Any, ...]) -> None:
        """Count an integer column (``(int32 values, validity, offset)``), keyed by the
        number written as text (``"1"``), nulls under ``None``.
        """
        values, validity, offset = column
        n = len(values)
        valid = _valid(validity, offset, n)
        v = np.asarray(values if valid is None else values[valid])
        small = (v >= 0) & (v < 256)
        bins = np.bincount(v[small], minlength=0)
        target = self.counts.setdefault(role, {})
        for k in np.flatnonzero(bins).tolist():
            key = str(k)
            target[key] = target.get(key, 0) + int(bins[k])
        if not small.all():
            other, counts = np.unique(v[~small], return_counts=True)
            for k, c in zip(other.tolist(), counts.tolist(), strict=True):
                target[str(k)] = target.get(str(k), 0) + c
        if n - len(v):
            target[None] = target.get(None, 0) + (n - len(v))
        self._prune(role)

    def end_batch(self, n_rows: int) -> None:
        """Close a batch of ``n_rows`` rows; the first one is kept as :attr:`first`."""
        self.rows += n_rows
        self.batches += 1
        if self.batches == 1:
            first = copy.copy(self)
            first.counts = {k: dict(v) for k, v in self.counts.items()}
            first.dropped = dict(self.dropped)
            first.first = None
            first.on_first = None
            first.early = True
            self.first = first
            if self.on_first is not None:
                self.on_first(first)

    def _prune(self, role: str) -> None:
        target = self.counts[role]
        if len(target) > KEEP:
            ranked = sorted(target.items(), key=lambda kv: -kv[1])
            self.dropped[role] = self.dropped.get(role, 0) + sum(c for _, c in ranked[KEEP // 2 :])
            self.counts[role] = dict(ranked[: KEEP // 2])

    # ------------------------------------------------------------------ reading
    def top(self, role: str, n: int = TOP) -> list[tuple[str | None, int]]:
        """The ``n`` commonest raw values of a column with their row counts, commonest first
        (ties in value order, so the order is reproducible).
        """
        items = self.counts.get(role, {}).items()
        return sorted(items, key=lambda kv: (-kv[1], "" if kv[0] is None else kv[0]))[:n]

    def __add__(self, other: ValueProfile) -> ValueProfile:
        out = ValueProfile()
        out.rows = self.rows + other.rows
        out.batches = self.batches + other.batches
        for p in (self, other):
            for role, counts in p.counts.items():
                target = out.counts.setdefault(role, {})
                for v, c in counts.items():
                    target[v] = target.get(v, 0) + c
            for role, c in p.dropped.items():
                out.dropped[role] = out.dropped.get(role, 0) + c
        for role in out.counts:
            out._prune(role)
        out.first = self.first or other.first
        out.value_maps = self.value_maps or other.value_maps
        return out

    def to_dict(self, n: int = TOP) -> dict[str, Any]:
        """JSON-ready: rows, and per column its top values as ``[value, rows]`` pairs."""
        return {
            "rows": self.rows,
            "columns": {
                role: [[v, c] for v, c in self.top(role, n)] for role in sorted(self.counts)
            },
        }


def _bincount(indices: np.ndarray, validity: Any, offset: int, size: int) -> tuple[np.ndarray, int]:
    """Rows per dictionary index (``size`` bins) of the valid rows, and the null rows.

    One pass in the core (``_didcore.bincount``) that reads the validity bits as it goes: numpy
    unpacking the bitmap and counting twice cost 2 ms a batch of half a million rows.
    """
    from didcore import _didcore

    bits = None if validity is None else np.asarray(validity, np.uint8)
    bins, nulls = _didcore.bincount(np.ascontiguousarray(indices, np.int32), bits, offset, size)
    return bins, int(nulls)


def _valid(validity: Any, offset: int, n: int) -> np.ndarray | None:
    """The validity bitmap as a bool array of ``n`` rows (None: every row valid)."""
    if validity is None:
        return None
    bits = np.unpackbits(np.asarray(validity, np.uint8), bitorder="little")
    return bits[offset : offset + n].astype(bool)


def describe_values(items: Iterable[tuple[str | None, int]], total: int, n: int = 5) -> str:
    """``'M' 98,102 (49.1%), 'F' 97,511 (48.8%), ...``: values with counts and shares of
    ``total`` rows, for one-line messages (null written as ``null``).
    """
    parts = []
    items = list(items)
    for v, c in items[:n]:
        label = "null" if v is None else shown(v)
        share = f" ({100 * c / total:.1f}%)" if total else ""
        parts.append(f"{label} {c:,}{share}")
    if len(items) > n:
        parts.append(f"and {len(items) - n} more")
    return ", ".join(parts)
