"""Parquet row groups counted by the core as it decodes them (``rust/row_groups.rs``).

For the usual Parquet extract (every text column dictionary-encoded, the age as whole
numbers, the dates as dates) no batch needs to pass through Python: the reader yields each
row group as a :class:`~didcore.parquet_native.RowGroupToCount`, the classifier classifies its
dictionaries (in row-group order, so provider ids are handed out as for batches), and the core
decodes and counts its rows a block at a time on its own threads, row groups in parallel. What
Python did per batch comes back per row group: the rows per dictionary index of the profiled
columns (the value profile) and the rows per financial year (the multiple-years guard).

A row group the core stops inside (a page it does not decode after all, a dictionary grown
past its classification) has its remaining rows read through pyarrow and counted as batches.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import numpy as np

from didcore.errors import CorruptInputError

if TYPE_CHECKING:
    from didcore.classify import BatchClassifier, ClassifiedBatch
    from didcore.io import Columns
    from didcore.parquet_native import CountingRoles, RowGroupToCount


def counting_roles(
    cols: Columns, use_age: bool, dated: bool, *, by_year: bool = False, declared: int | None = None
) -> CountingRoles:
    """The columns a run counts row groups by (see :class:`CountingRoles`); ``by_year``:
    counting each financial year into its own cube (``declared``: the year of an extract
    without test dates).
    """
    from didcore.parquet_native import CountingRoles

    text = (cols.provider_code, cols.gp_practice_code, cols.lsoa11, cols.sex, cols.modality)
    dates: tuple[str, ...] = (cols.test_date,) if dated else ()
    if not use_age:
        dates = (cols.date_of_birth, cols.test_date)
    return CountingRoles(
        text=(*text, cols.exam_code),
        provider=cols.provider_code,
        ints=(cols.age,) if use_age else (),
        dates=dates,
        by_year=by_year,
        test_date=cols.test_date if dated else None,
        declared=declared,
        year_of=_year_of if by_year else None,
    )


def _year_of(first: int, last: int) -> int | None:
    """The financial year (start) of test dates ``first..last`` (days since 1970-01-01) when
    they are all usable and in one year, else None.
    """
    from didcore.years import financial_year_starts, usable_days

    lo, hi = usable_days()
    if first < lo or last > hi or first > last:
        return None
    a, b = (int(y) for y in financial_year_starts(np.array([first, last], np.int32)))
    return a if a == b else None


class RowGroupCounting:
    """Hands row groups to the core (``Aggregator.submit_row_group``) and takes back what
    each did, on the counting thread: at most ``n_threads`` row groups are counted at once
    (each holds its chunks' bytes). The first one is waited for, so that the early guards
    (``ValueProfile.on_first``) judge it before more is counted.
    """

    def __init__(
        self,
        agg: Any,
        classifier: BatchClassifier,
        tally: Any,
        n_threads: int,
        count_batch: Any = None,
    ) -> None:
        """``agg``: the aggregator row groups are counted into, unless :meth:`submit` names
        another (a financial year's); ``tally``: the run's ``_YearTally`` (one cube), or
        None; ``count_batch(batch)``: counts a batch of the rows the core stopped before (by
        default classified, tallied and added to ``agg``).
        """
        from didcore.years import usable_days

        self.agg = agg
        self.count_batch = count_batch or self._count_batch
        self._aggs: dict[int, Any] = {}
        self.classifier = classifier
        # the run's profile (classify_dictionaries puts another in its place meanwhile)
        self.profile = classifier.profile
        self.tally = tally
        self.max_in_flight = max(1, n_threads)
        self._pending: dict[int, tuple[RowGroupToCount, ClassifiedBatch]] = {}
        self._rest: list[tuple[RowGroupToCount, int, str]] = []
        self._seq = 0
        self.bounds, self.starts = year_bounds(*usable_days())

    def submit(self, item: RowGroupToCount, template: ClassifiedBatch, agg: Any = None) -> None:
        """Count ``item`` (its dictionaries classified as ``template``) in the core, into
        ``agg`` (by default the one given at the start).
        """
        agg = self.agg if agg is None else agg
        self._aggs[id(agg)] = agg
        c = self.classifier.columns
        where = {n: j for j, n in enumerate(item.names)}
        use_age = self.classifier.use_age
        roles = (
            where[c.provider_code],
            where[c.gp_practice_code],
            where[c.lsoa11],
            where[c.sex],
            where[c.modality],
            where.get(c.exam_code),
            where[c.age] if use_age else None,
            None if use_age else where[c.date_of_birth],
            where.get(c.test_date),
        )
        profiled = [roles[3], roles[4]]
        if self.profile.full:
            profiled += [where[c.exam_code], roles[1], roles[2]]
        seq = self._seq
        self._seq += 1
        self._pending[seq] = (item, template)
        bounds = self.bounds if self.tally is not None else []
        agg.submit_row_group(
            seq, item.chunks, template, roles, profiled, bounds, item.require, item.converts
        )
        first = seq == 0 and self.profile.batches == 0
        self._collect(agg.wait_row_groups(0 if first else self.max_in_flight))

    def finish(self) -> None:
        """Wait for every row group, then count through pyarrow the rows of those the core
        stopped inside.
        """
        from didcore.parquet_native import READS

        for agg in self._aggs.values():
            self._collect(agg.wait_row_groups(0))
        for item, done, why in self._rest:
            READS.pyarrow += 1
            READS.reasons[why] += 1
            rest = item.fallback(item.index).slice(done)
            for batch in rest.to_batches():
                self.count_batch(batch)
        self._rest.clear()

    def _count_batch(self, batch: Any) -> None:
        with self.classifier.lock:
            args = self.classifier.classify(batch)
            if self.tally is not None:
                self.tally.add(batch, self.classifier.dates.get(self.tally.column))
        self.agg.add_batch(args)

    def _collect(self, finished: list[tuple[Any, ...]]) -> None:
        for seq, rows, histograms, years, stopped, corrupt, unreadable in finished:
            item, template = self._pending.pop(seq)
            if corrupt is not None:
                column, message = corrupt
                raise CorruptInputError(
                    f"{item.path}: row group {item.index + 1}: column {item.names[column]!r}: "
                    f"{message}: the file is corrupt; write it out again from its source"
                )
            with self.classifier.lock:
                self._profile(item, template, histograms, rows)
                if unreadable is not None:  # infinite floating ages, as the classifier notes
                    self.classifier._note_unreadable(self.classifier.columns.age, *unreadable)
                if (
                    years
                    and self.tally is not None
                    and self.classifier.columns.test_date in item.names
                ):
                    self.tally.add_counts(
                        {s: int(n) for s, n in zip(self.starts, years, strict=False) if n}
                    )
            if stopped is not None:
                column, why = stopped
                if item.distrust is not None and column in self._text_columns(item):
                    item.distrust()  # the footer's dictionaries were presumed: no more
                self._rest.append((item, rows, f"column {item.names[column]!r}: {why}"))

    def _text_columns(self, item: RowGroupToCount) -> set[int]:
        c = self.classifier.columns
        text = (c.provider_code, c.gp_practice_code, c.lsoa11, c.sex, c.modality, c.exam_code)
        return {j for j, name in enumerate(item.names) if name in text}

    def _profile(
        self,
        item: RowGroupToCount,
        template: ClassifiedBatch,
        histograms: list[np.ndarray],
        rows: int,
    ) -> None:
        """Add the row group's counts per dictionary value to the value profile, as the
        batch path's classifier adds a batch's.
        """
        profile = self.profile
        c = self.classifier.columns
        batch = item.dictionaries

        def dictionary(name: str) -> Any:
            return batch.column(batch.schema.get_field_index(name)).dictionary

        profile.add_bins("sex", histograms[0], dictionary(c.sex))
        profile.add_bins("modality", histograms[1], dictionary(c.modality))
        if profile.full:
            unknown = self.classifier._unrecognised
            profile.add_bins("exam_code", histograms[2], dictionary(c.exam_code))
            profile.add_bins(
                "gp_practice_code_unmatched",
                histograms[3],
                dictionary(c.gp_practice_code),
                keep=np.asarray(template.practice_class) == unknown,
            )
            profile.add_bins(
                "lsoa11_unmatched",
                histograms[4],
                dictionary(c.lsoa11),
                keep=np.asarray(template.lsoa_icb) == unknown,
            )
        if rows:
            profile.end_batch(rows)


def year_bounds(first: int, last: int) -> tuple[list[int], list[int]]:
    """The financial years of the usable test dates ``first..last`` (days since 1970-01-01)
    as the core tallies them: their boundaries (the first usable day, each 1 April after it,
    the day after the last usable day) and each year's start year.
    """
    from didcore.years import financial_year_starts

    epoch = dt.date(1970, 1, 1)
    lo, hi = (int(y) for y in financial_year_starts(np.array([first, last], np.int32)))
    inner = [(dt.date(y, 4, 1) - epoch).days for y in range(lo + 1, hi + 1)]
    return [first, *inner, last + 1], list(range(lo, hi + 1))
