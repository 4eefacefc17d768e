"""The batch classifier: each record batch's code columns classified, dictionary by
dictionary, for the Rust counting pass (:class:`BatchClassifier`), and what it hands the core
(:class:`ClassifiedBatch`, mirrored field by field by ``ClassifiedBatch`` in rust/py_api.rs).

Every dictionary (the distinct codes of a column in a batch) is classified once with Arrow
compute kernels (practice -> ICB, LSOA -> ICB and IMD quintile, sex code, modality and exam
code -> measures); the core then walks the rows. The derivation rules are in docs/inputs.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from didcore._arrow_compat import (
    integer_dtype,
    is_string_view,
    number_array,
    text_array,
    text_scalar,
)
from didcore.arrow_buffers import (
    _bool_values,
    _buffers,
    _check_dictionary_indices,
    _dictionary_array,
    _string_buffers,
    _valid_rows,
)
from didcore.errors import (
    ColumnTypeError,
    CorruptInputError,
    TooManyProvidersWarning,
    UnreadableValuesWarning,
    shown,
)
from didcore.io import Columns, is_binary_type
from didcore.lookup import Lookups
from didcore.parquet_native import CHECKED_INDICES
from didcore.values import (
    Fractions,
    _bad_utf8,
    _classify_sex,
    _dates,
    _is_text,
    _not_utf8,
    _past_max_age,
    _plain_dictionary,
    _rows_holding,
    _text_numbers,
    _whole_numbers,
)

if TYPE_CHECKING:
    import numpy.typing as npt
    import pyarrow as pa

MISSING_PROVIDER = "(missing)"
#: The provider row of the codes past ``max_providers`` (see :class:`TooManyProvidersWarning`).
OTHER_PROVIDERS = "(other providers)"
#: Default ``aggregate(max_providers=...)``: distinct provider codes counted one by one. England
#: has a few hundred providers; each costs about 2 KB plus 1 KB per counting thread while
#: counting (docs/architecture.md, "Memory"), so 20,000 bound that to tens of megabytes.
MAX_PROVIDERS = 20_000
#: How many folded provider codes are remembered, to count them for the warning.
_FOLDED_KEPT = 100_000

#: A dictionary-encoded column as the core reads it, viewed in place
#: (:func:`~didcore.arrow_buffers._buffers`): ``(int32 indices, validity bitmap or None, bit
#: offset)``.
Coded = tuple["npt.NDArray[np.int32]", "npt.NDArray[np.uint8] | None", int]
#: A plain int32 column (whole numbers, or dates as days since 1970-01-01), viewed likewise.
Ints = tuple["npt.NDArray[np.int32]", "npt.NDArray[np.uint8] | None", int]


@dataclass(frozen=True, slots=True)
class ClassifiedBatch:
    """One record batch classified for the counting core: the one argument of
    ``_didcore.Aggregator.add_batch``. Its Rust mirror (``ClassifiedBatch`` in rust/py_api.rs)
    reads each field as the attribute of the same name: the two field lists must agree.

    The tables indexed by a column's dictionary value (``*_class``, ``*_ids``, ``lsoa_*``) have
    one entry per value of that column's dictionary in this batch. Sex is given either coded
    (``sex_coded`` with ``sex_class``) or as numbers (``sex_ints``); age either in years
    (``age_years``) or as dates of birth and test (``birth`` with ``test``).
    """

    #: Rows in the batch.
    n_rows: int
    provider: Coded
    #: The provider row of each provider dictionary value.
    provider_ids: npt.NDArray[np.uint32]
    #: The provider row of a null provider code ("(missing)"); 0 when the column has no nulls.
    provider_null_id: int
    #: Provider rows handed out so far (ids are handed out while classifying).
    n_providers: int
    practice: Coded
    #: The ICB index of each practice value; UNRECOGNISED, OTHER_VALID or BLANK (rules 1, 2).
    practice_class: npt.NDArray[np.int32]
    lsoa: Coded
    #: The ICB index of each LSOA value; UNRECOGNISED or BLANK (rule 3).
    lsoa_icb: npt.NDArray[np.int32]
    #: The IMD quintile minus one of each LSOA value; -1 when unknown.
    lsoa_imd: npt.NDArray[np.int8]
    modality: Coded
    #: The modality id of each modality value (row of ``measure_masks``); -1 in no rule.
    modality_ids: npt.NDArray[np.int16]
    #: The exam id of each exam code value (column of ``measure_masks``); 0 any other code.
    exam_ids: npt.NDArray[np.int16]
    #: Modality id x exam id (``n_exam`` columns), flattened: the bit mask of the measures.
    measure_masks: npt.NDArray[np.uint64]
    n_exam: int
    exam: Coded | None = None
    sex_coded: Coded | None = None
    #: Of each sex value: 0 male, 1 female, -1 anything else.
    sex_class: npt.NDArray[np.int8] | None = None
    sex_ints: Ints | None = None
    age_years: Ints | None = None
    birth: Ints | None = None
    test: Ints | None = None


class BatchClassifier:
    """Classifies each column's dictionary of a batch once, for the Rust counting pass.

    Each classification is cached against the last dictionary seen in that column, so a
    dictionary that repeats across batches (a Table's chunks, or row groups written with a
    shared dictionary) costs one comparison instead of a lookup.
    """

    def __init__(
        self,
        lookups: Lookups,
        columns: Columns,
        use_age: bool,
        *,
        max_age: int | None = None,
        max_providers: int = MAX_PROVIDERS,
    ) -> None:
        import pyarrow as pa

        from didcore import _didcore

        self._pa = pa
        self.lookups = lookups
        self.columns = columns
        self.use_age = use_age
        self._blank = _didcore.BLANK
        self._unrecognised = _didcore.UNRECOGNISED
        icb_index = {c: i for i, c in enumerate(lookups.icb_codes)}

        # practice: lookup first (rule 1), then the other-valid list (rule 2)
        keys = list(lookups.practice_icb)
        classes = [icb_index[lookups.practice_icb[k]] for k in keys]
        for k in sorted(lookups.other_practices):
            if k not in lookups.practice_icb:
                keys.append(k)
                classes.append(_didcore.OTHER_VALID)
        self._practice_keys = text_array(keys)
        self._practice_table = np.asarray(classes, np.int32)

        lsoa_keys = list(dict.fromkeys([*lookups.lsoa_icb, *lookups.lsoa_quintile]))
        self._lsoa_keys = text_array(lsoa_keys)
        self._lsoa_icb_table = np.asarray(
            [
                icb_index[lookups.lsoa_icb[k]] if k in lookups.lsoa_icb else self._unrecognised
                for k in lsoa_keys
            ],
            np.int32,
        )
        self._lsoa_imd_table = np.asarray(
            [lookups.lsoa_quintile.get(k, 0) - 1 for k in lsoa_keys], np.int8
        )

        # measures: modality id x exam id -> bit mask of measures; exam id 0 = any other code
        modalities = list(dict.fromkeys(r.modality for r in lookups.measure_rules))
        exams = list(dict.fromkeys(r.exam_code for r in lookups.measure_rules if r.exam_code))
        measure_index = {m: i for i, m in enumerate(lookups.measures)}
        masks = np.zeros((len(modalities), len(exams) + 1), np.uint64)
        for r in lookups.measure_rules:
            bit = np.uint64(1) << np.uint64(measure_index[r.measure])
            row = modalities.index(r.modality)
            if r.exam_code is None:
                masks[row, :] |= bit
            else:
                masks[row, exams.index(r.exam_code) + 1] |= bit
        self._modality_keys = text_array(modalities)
        self._exam_keys = text_array(exams)
        self._masks = masks.ravel()
        self._n_exam = len(exams) + 1

        import os
        import threading

        #: held while classifying, and by whoever else adds to the profile meanwhile
        self.lock = threading.RLock()
        self._threads = min(os.cpu_count() or 1, 4)
        self._pool: Any = None
        self._encoded: dict[str, Any] = {}
        self._encoders: dict[str, Any] = {}
        self._dictionaries: dict[str, Any] = {}
        # hash indexes of the lookup key arrays (by id: the arrays live as long as self)
        self._key_indexes: dict[int, Any] = {}
        self._last: dict[str, tuple[Any, Any]] = {}
        self._providers: dict[str, int] = {}
        self.provider_codes: list[str] = []
        # Ages above max_age are missing; the codes past max_providers share one provider row,
        # and the first _FOLDED_KEPT of them are remembered to say how many there were.
        self.max_age = max_age
        self.max_providers = max_providers
        self._folded: set[str] = set()
        self._n_codes = 0  # codes with a row of their own
        # the batch being classified (from 1) and the rows before it, for error messages
        self._batch_no = 0
        self._rows_before = 0
        #: the extract's file when it is one file, named in errors about its data
        self.source: str | None = None
        self._batch_rows = 0
        #: the last batch's date columns read as date32 (for ages from dates of birth), by
        #: column: the financial-year tally of aggregate() reuses the test dates
        self.dates: dict[str, Any] = {}
        self._cache: dict[str, tuple[Any, Any]] = {}
        # column -> [rows whose value could not be read as an age or a date, an example]
        self.unreadable: dict[str, list[Any]] = {}
        # raw values of sex, modality, exam code (and unmatched codes) for the guards
        from didcore.profile import ValueProfile

        self.profile = ValueProfile()
        self.value_maps: dict[str, dict[str, str]] = {}
        self._classify_sex = _classify_sex

    def set_value_maps(self, maps: dict[str, dict[str, str]]) -> None:
        """Recode values (``{role: {from: to}}``, :mod:`didcore.valuemaps`) before they are
        classified: each mapped role's classification is given the mapped dictionary.
        """
        from didcore.valuemaps import mapped_classifier

        self.value_maps = dict(maps)
        self.profile.value_maps = self.value_maps  # the guards judge raw values through them
        for role, method in _MAPPED_CLASSIFIERS.items():
            if role in maps:
                setattr(self, method, mapped_classifier(getattr(self, method), maps[role]))

    # ------------------------------------------------------------------ per batch
    def classify(self, batch: pa.RecordBatch) -> ClassifiedBatch:
        """The batch classified, for ``Aggregator.add_batch``.

        Text whose bytes are not UTF-8 (a Parquet or in-memory string column from a writer
        that does not check) fails deep inside Arrow's kernels or Python's decoder; that is
        turned into a :class:`ColumnTypeError` naming the column (found only then, so valid
        input pays nothing for the check).
        """
        with self.lock:
            return self._checked(batch)

    def classify_dictionaries(
        self, dictionaries: pa.RecordBatch, provider_nulls: bool
    ) -> ClassifiedBatch:
        """A row group's dictionaries classified (``dictionaries``: a batch of no rows
        holding them), for the core to count the row group as it decodes it
        (:mod:`didcore.row_groups`). ``provider_nulls``: whether its provider column has
        null rows (they then need the "(missing)" provider). Provider ids are handed out as
        for a batch of the row group; the value profile is the core's to count.
        """
        with self.lock:
            profile = self.profile
            self.profile = type(profile)()  # the rows are profiled from the core's counts
            try:
                return self._checked(dictionaries, provider_nulls)
            finally:
                self.profile = profile

    def _checked(self, batch: pa.RecordBatch, provider_nulls: bool | None = None) -> Any:
        try:
            return self._classify(batch, provider_nulls)
        except (UnicodeDecodeError, self._pa.ArrowInvalid) as exc:
            if isinstance(exc, self._pa.ArrowInvalid) and "utf8" not in str(exc).lower():
                raise
            for name, arr in zip(batch.schema.names, batch.columns, strict=True):
                problem = _not_utf8(self._pa, arr)
                if problem:
                    raise ColumnTypeError(f"column {name!r}: {problem}") from exc
            raise

    def _classify(
        self, batch: pa.RecordBatch, provider_nulls: bool | None = None
    ) -> ClassifiedBatch:
        """``provider_nulls`` given: ``batch`` holds a row group's dictionaries, no rows."""
        c = self.columns
        args: dict[str, Any] = {"n_rows": batch.num_rows}
        self.dates = {}
        if provider_nulls is None:
            self._rows_before += self._batch_rows
            self._batch_no += 1
            self._batch_rows = batch.num_rows
        batch = self._binary_as_text(batch)
        self._encoded = self._encode_plain(batch)

        arr, dictionary = self._coded(batch, c.provider_code)
        args["provider"] = arr
        # (a code's id never changes once handed out, so an equal dictionary's are reused)
        args["provider_ids"] = self._cached(c.provider_code, dictionary, self._provider_ids)
        # Only a column with null rows needs (and so registers) the "(missing)" provider.
        has_nulls = arr[1] is not None if provider_nulls is None else provider_nulls
        args["provider_null_id"] = self._provider_id(MISSING_PROVIDER) if has_nulls else 0

        arr, dictionary = self._coded(batch, c.gp_practice_code)
        args["practice"] = arr
        args["practice_class"] = self._cached(
            c.gp_practice_code, dictionary, self._classify_practice
        )
        unmatched = args["practice_class"], self._unrecognised
        self.profile.add_detail("gp_practice_code_unmatched", arr, dictionary, *unmatched)

        arr, dictionary = self._coded(batch, c.lsoa11)
        args["lsoa"] = arr
        args["lsoa_icb"], args["lsoa_imd"] = self._cached(c.lsoa11, dictionary, self._classify_lsoa)
        self.profile.add_detail(
            "lsoa11_unmatched", arr, dictionary, args["lsoa_icb"], self._unrecognised
        )

        self._sex(batch, args)
        self._age(batch, args)

        arr, dictionary = self._coded(batch, c.modality)
        args["modality"] = arr
        args["modality_ids"] = self._cached(c.modality, dictionary, self._classify_modality)
        self.profile.add_coded("modality", arr, dictionary)
        arr, dictionary = self._coded(batch, c.exam_code)
        args["exam"] = arr
        args["exam_ids"] = self._cached(c.exam_code, dictionary, self._classify_exam)
        self.profile.add_detail("exam_code", arr, dictionary)
        self.profile.end_batch(batch.num_rows)
        args["measure_masks"] = self._masks
        args["n_exam"] = self._n_exam
        # Ids are handed out while classifying, so this is known only now.
        args["n_providers"] = len(self.provider_codes)
        return ClassifiedBatch(**args)

    def _cached(self, column: str, dictionary: Any, fn: Any) -> Any:
        """``fn(dictionary)`` (a table with one entry per dictionary value), reused where it can.

        A plain text column's dictionary is its encoder's run-long one, classified value by
        value as it grows. Any other dictionary (a Parquet row group has its own) is
        classified whole, unless it equals the last one of the column, or extends it (a row
        group's, grown by PLAIN pages since the last batch: its new tail alone is classified,
        where classifying it whole each batch was a tenth of a run's CPU with row groups of
        five million rows). (Mapping row groups' values onto a run-long dictionary instead
        was slower: dirty codes make it grow every batch.)
        """
        if dictionary is self._dictionaries.get(column):
            return self._grown(column, dictionary, fn)
        last = self._last.get(column)
        if last is not None and (last[0] is dictionary or last[0].equals(dictionary)):
            return last[1]
        result = None if last is None else _extended(*last, dictionary, fn)
        if result is None:
            result = fn(dictionary)
        self._last[column] = (dictionary, result)
        return result

    def _run_dictionary(self, key: str, encoder: Any) -> Any:
        """An encoder's dictionary as an Arrow array, rebuilt only when it has grown."""
        cached = self._dictionaries.get(key)
        if cached is None or len(cached) != len(encoder):
            cached = self._dictionaries[key] = _dictionary_array(self._pa, *encoder.dictionary())
        return cached

    def _grown(self, key: str, dictionary: Any, fn: Any) -> Any:
        """``fn(dictionary)`` for a run-long dictionary: reused while it is unchanged, and
        extended by its new tail alone when it has grown (they only grow).
        """
        hit = self._cache.get(key)
        if hit is not None:
            previous, result = hit
            if previous is dictionary:
                return result
            if len(dictionary) == len(previous) and dictionary.equals(previous):
                return result
            grown = _extended(previous, result, dictionary, fn)
            if grown is not None:
                self._cache[key] = (dictionary, grown)
                return grown
        result = fn(dictionary)
        self._cache[key] = (dictionary, result)
        return result

    # ------------------------------------------------------------------ columns
    def _column(self, batch: pa.RecordBatch, name: str) -> Any:
        return batch.column(batch.schema.get_field_index(name))

    def _binary_as_text(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """The batch with its binary columns (and dictionaries of binary) read as UTF-8 text.

        Parquet stores text as byte arrays with a UTF-8 annotation, and some writers (older
        Spark and Hive among them) leave the annotation out; pyarrow then reads the column as
        binary. Bytes that are not UTF-8 are an error naming the column.
        """
        pa = self._pa
        columns = list(batch.columns)
        changed = False
        for i, arr in enumerate(columns):
            t = arr.type
            is_dict = pa.types.is_dictionary(t)
            if not is_binary_type(t.value_type if is_dict else t):
                continue
            try:
                # a dictionary's values are cast, not the whole array: Arrow cannot cast a
                # dictionary of binary views whole
                columns[i] = _plain_dictionary(pa, arr) if is_dict else arr.cast(pa.string())
            except pa.ArrowInvalid as exc:
                name = batch.schema.field(i).name
                raise ColumnTypeError(f"column {name!r}: {_bad_utf8(arr)}") from exc
            changed = True
        return pa.RecordBatch.from_arrays(columns, names=batch.schema.names) if changed else batch

    def _encode_plain(self, batch: pa.RecordBatch) -> dict[str, Any]:
        """Dictionary-encode the batch's plain text code columns, several at once.

        Hashing every row of a plain string column is the costly part of the plain-string
        path. Each column has a Rust ``TextEncoder`` that keeps one dictionary for the whole
        run, so the dictionary (and its classification) changes only when a new code turns
        up; the encoders release the GIL, so the columns are encoded on parallel threads.
        """
        pa = self._pa
        c = self.columns
        names = [
            n for n in (*c.codes, c.exam_code, c.sex) if _is_text(pa, self._column(batch, n).type)
        ]
        if not names:
            return {}
        if len(names) == 1 or self._threads <= 1:
            return {n: self._encode_column(batch, n) for n in names}
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="didcore-encode")
        futures = {n: self._pool.submit(self._encode_column, batch, n) for n in names}
        return {n: f.result() for n, f in futures.items()}

    def _encode_column(self, batch: pa.RecordBatch, name: str) -> Any:
        """One plain text column as a dictionary array over its run-long dictionary."""
        from didcore import _didcore

        pa = self._pa
        arr = self._column(batch, name)
        if arr.type != pa.string():  # large_string, string_view
            arr = arr.cast(pa.string())
        encoder = self._encoders.get(name)
        if encoder is None:
            encoder = self._encoders[name] = _didcore.TextEncoder()
        try:
            ids = encoder.encode(_string_buffers(pa, arr))
        except CorruptInputError as exc:
            raise CorruptInputError(f"column {name!r}: {exc}") from None
        dictionary = self._run_dictionary(name, encoder)
        # the encoder's indices are all inside its dictionary: no need to check them again
        return pa.DictionaryArray.from_arrays(number_array(ids), dictionary, safe=False)

    def close(self) -> None:
        """Stop the encoding threads, if any were started."""
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None

    def _coded(self, batch: pa.RecordBatch, name: str) -> tuple[tuple[Any, ...], Any]:
        """Dictionary-encode a code column; return the Rust column argument and dictionary."""
        pa = self._pa
        import pyarrow.compute as pc

        arr = self._encoded.get(name)
        if arr is not None:  # plain text, encoded over the run-long dictionary
            return _buffers(arr.indices, np.int32), self._dictionaries[name]
        arr = self._column(batch, name)
        t = arr.type
        if pa.types.is_dictionary(t):
            # Parquet decoded by the core (didcore.parquet_native) comes with its indices
            # already checked against their dictionary.
            meta = batch.schema.field(name).metadata
            if not (meta and CHECKED_INDICES in meta):
                self._check_indices(name, arr)
            if not _is_text(pa, t.value_type):
                arr = arr.cast(pa.dictionary(t.index_type, pa.string()))
        elif _is_text(pa, t) or pa.types.is_integer(t):
            # Codes written as numbers. (Plain text code columns were encoded over their
            # run-long dictionaries by _encode_plain already; this also serves any other.)
            if pa.types.is_integer(t):
                arr = arr.cast(pa.string())
            arr = pc.dictionary_encode(arr)
        elif pa.types.is_null(t):
            arr = pa.DictionaryArray.from_arrays(pa.nulls(len(arr), pa.int32()), text_array([]))
        else:
            raise ColumnTypeError(
                f"column {name!r} has type {t}; expected text codes (string or dictionary)"
            )
        if arr.type.index_type != pa.int32():
            # unchecked: the indices were checked above, and a null row's may hold anything
            arr = arr.cast(pa.dictionary(pa.int32(), arr.type.value_type), safe=False)
        dictionary = arr.dictionary
        if dictionary.type != pa.string():
            dictionary = dictionary.cast(pa.string())
        indices = arr.indices
        return _buffers(indices, np.int32), dictionary

    def _check_indices(self, name: str, arr: Any) -> None:
        """Refuse a dictionary array whose non-null rows point outside its dictionary
        (:func:`_check_dictionary_indices`), naming the row over the run and in its batch.
        """
        _check_dictionary_indices(
            name, arr, f" of batch {self._batch_no}", self._rows_before, self.source
        )

    def _normalise(self, dictionary: Any) -> Any:
        from didcore.codes import normalise_array

        return normalise_array(dictionary)

    def _positions(self, dictionary: Any, keys: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Where each normalised dictionary value is in ``keys``: (position, found, blank)."""
        index = self._key_index(keys)
        if dictionary.type == self._pa.string():
            # normalised and found in one pass in the core, unless a value ends in a
            # character that is not ASCII (Unicode whitespace is Arrow's to trim)
            pos = index.find_normalised(_string_buffers(self._pa, dictionary))
            if pos is not None:
                return np.maximum(pos, 0).astype(np.intp), pos >= 0, pos == -2
        norm = self._normalise(dictionary)
        if norm.type != self._pa.string():
            norm = norm.cast(self._pa.string())
        pos = index.find(_string_buffers(self._pa, norm))
        found = pos >= 0
        where = np.maximum(pos, 0).astype(np.intp)
        return where, found, _blank_mask(norm)

    def _key_index(self, keys: Any) -> Any:
        """The Rust hash index of a key array (``pc.index_in``'s value set, hashed once a
        run instead of once a call: with a Parquet file's dictionaries growing batch by
        batch, Arrow's lookup cost half a microsecond a value).
        """
        from didcore import _didcore

        index = self._key_indexes.get(id(keys))
        if index is None:
            index = self._key_indexes[id(keys)] = _didcore.KeyIndex(_string_buffers(self._pa, keys))
        return index

    def _take(
        self, positions: tuple[np.ndarray, np.ndarray, np.ndarray], table: np.ndarray, missing: int
    ) -> np.ndarray:
        """``table[position]``, ``missing`` where not found, BLANK where blank."""
        where, found, blank = positions
        values = table[where] if len(table) else np.full(len(where), missing, table.dtype)
        out = np.where(found, values, missing).astype(table.dtype)
        out[blank] = self._blank
        return out

    def _lookup(self, dictionary: Any, keys: Any, table: np.ndarray, missing: int) -> np.ndarray:
        """``table[index of normalised value in keys]``; ``missing`` if absent; BLANK if blank."""
        return self._take(self._positions(dictionary, keys), table, missing)

    def _classify_practice(self, dictionary: Any) -> np.ndarray:
        return self._lookup(
            dictionary, self._practice_keys, self._practice_table, self._unrecognised
        )

    def _classify_lsoa(self, dictionary: Any) -> tuple[np.ndarray, np.ndarray]:
        positions = self._positions(dictionary, self._lsoa_keys)  # one hash lookup for both
        icb = self._take(positions, self._lsoa_icb_table, self._unrecognised)
        imd = self._take(positions, self._lsoa_imd_table.astype(np.int32), -1)
        imd[imd == self._blank] = -1
        return icb, imd.astype(np.int8)

    def _classify_modality(self, dictionary: Any) -> np.ndarray:
        ids = np.arange(len(self._modality_keys), dtype=np.int16)
        out = self._lookup(dictionary, self._modality_keys, ids, -1)
        out[out == self._blank] = -1
        return out.astype(np.int16)

    def _classify_exam(self, dictionary: Any) -> np.ndarray:
        ids = np.arange(1, len(self._exam_keys) + 1, dtype=np.int16)
        out = self._lookup(dictionary, self._exam_keys, ids, 0)
        out[out == self._blank] = 0
        return out.astype(np.int16)

    def _provider_id(self, code: str) -> int:
        """The provider row of ``code``: its own while fewer than ``max_providers`` codes have
        one, else the shared "(other providers)" row; "(missing)" always has its own (so at
        most ``max_providers + 2`` rows).
        Folded codes are not kept (memory stays bounded whatever the column holds), but the
        first ``_FOLDED_KEPT`` are remembered to say how many there were.
        """
        pid = self._providers.get(code)
        if pid is None:
            if code != MISSING_PROVIDER and self._n_codes >= self.max_providers:
                if len(self._folded) < _FOLDED_KEPT:
                    self._folded.add(code)
                code = OTHER_PROVIDERS
                pid = self._providers.get(code)
                if pid is not None:
                    return pid
            elif code != MISSING_PROVIDER:
                self._n_codes += 1
            pid = self._providers[code] = len(self.provider_codes)
            self.provider_codes.append(code)
        return pid

    def _provider_ids(self, dictionary: Any) -> np.ndarray:
        norm = self._normalise(dictionary).to_pylist()
        return np.asarray(
            [self._provider_id(v if v else MISSING_PROVIDER) for v in norm], np.uint32
        )

    def _sex(self, batch: pa.RecordBatch, args: dict[str, Any]) -> None:
        pa = self._pa
        name = self.columns.sex
        t = self._column(batch, name).type
        value_type = t.value_type if pa.types.is_dictionary(t) else t
        # a mapped integer column is read as text, so that its map applies
        mapped = "sex" in self.value_maps and pa.types.is_integer(value_type)
        if _is_text(pa, value_type) or pa.types.is_null(t) or mapped:
            arr, dictionary = self._coded(batch, name)
            args["sex_coded"] = arr
            args["sex_class"] = self._cached(name, dictionary, self._classify_sex)
            self.profile.add_coded("sex", arr, dictionary)
        elif (
            pa.types.is_integer(value_type)
            or pa.types.is_floating(value_type)
            or pa.types.is_decimal(value_type)
        ):
            args["sex_ints"] = self._ints(batch, name, fractions="invalid")
            self.profile.add_numbers("sex", args["sex_ints"])
        else:
            raise ColumnTypeError(
                f"column {name!r} has type {t}; expected NHS gender codes as text or integers"
            )

    def _age(self, batch: pa.RecordBatch, args: dict[str, Any]) -> None:
        c = self.columns
        if self.use_age:
            args["age_years"] = self._ints(batch, c.age, fractions="floor")
        else:
            args["birth"] = self._days(batch, c.date_of_birth)
            args["test"] = self._days(batch, c.test_date)

    def _ints(self, batch: pa.RecordBatch, name: str, fractions: Fractions) -> tuple[Any, ...]:
        """An integer column as int32 values for the core (zero-copy when it is int32).

        Wider values are clamped into int32: a sex code that large is invalid, and an age
        that large is 90+ with no ``max_age`` (with one, an age past it is made -1, missing,
        before the clamping, so that the limit holds however wide the age). Floating columns
        (pandas stores integers with missing values as floats) are read as ``_whole_numbers``
        says, ``fractions`` saying what a fractional value is. Text that is not a number is
        null: a missing value, noted in :attr:`unreadable` for ages.
        """
        pa = self._pa
        arr = self._column(batch, name)
        t = arr.type
        if pa.types.is_dictionary(t):
            self._check_indices(name, arr)
            arr = _plain_dictionary(pa, arr)
            arr = arr.cast(arr.type.value_type)
            t = arr.type
        if pa.types.is_null(t):
            arr = pa.nulls(len(arr), pa.int32())
            t = arr.type
        elif pa.types.is_floating(t) or pa.types.is_decimal(t):
            arr = self._numbers(name, arr, fractions)
            t = arr.type
        elif _is_text(pa, t):  # a CSV's ages (didcore.io reads them as text)
            arr = self._text_ints(name, arr, fractions)
            t = arr.type
        elif not pa.types.is_integer(t):
            raise ColumnTypeError(
                f"column {name!r} has type {t}; expected whole numbers (integers)"
            )
        values, validity, offset = _buffers(arr, integer_dtype(t))
        if values.dtype != np.int32:
            info = np.iinfo(np.int32)
            too_old = None
            if fractions == "floor" and self.max_age is not None and values.dtype.itemsize >= 4:
                # An age past max_age is missing however wide it is: decided here, before the
                # clamping below would bring it within max_age (the core sees int32).
                too_old = values > self.max_age
            if values.dtype.kind == "u" and values.dtype.itemsize >= 4:
                values = np.minimum(values, info.max)
            elif values.dtype.itemsize > 4:
                values = np.clip(values, info.min, info.max)
            values = values.astype(np.int32)
            if too_old is not None:
                values[too_old] = -1
        return values, validity, offset

    def _text_ints(self, name: str, arr: Any, fractions: Fractions) -> Any:
        """Numbers written as text as int64 (or float64 from ``_numbers``), text that is not a
        number null and noted as unreadable for ages.

        The usual case, digits alone (blank cells are null), is one cast. Arrow's cast to
        integers also reads hexadecimal ("0x10" as 16), which is not an age, so the cast is
        taken only when every value is ASCII digits: otherwise (spaces, signs, "41.0", hex,
        text) each value is parsed as a decimal number, whatever the rest of the batch holds.
        """
        pa = self._pa
        import pyarrow.compute as pc

        if is_string_view(arr.type):  # the string kernels take string and large_string
            arr = arr.cast(pa.string())
        if pc.all(pc.ascii_is_decimal(arr)).as_py() is not False:
            try:
                return arr.cast(pa.int64())
            except pa.ArrowInvalid:  # more digits than int64 holds
                pass
        numbers, n_bad, example = _text_numbers(pa, arr)
        if fractions == "floor":
            self._note_unreadable(name, n_bad, example)
        return self._numbers(name, numbers, fractions)

    def _numbers(self, name: str, arr: Any, fractions: Fractions) -> Any:
        """``_whole_numbers``, noting an age column's infinities as unreadable.

        An age past ``max_age`` is made -1 (missing) first, compared exactly: the clamping
        into int32 that follows would otherwise bring a huge one within a huge ``max_age``.
        """
        if fractions == "floor" and self.max_age is not None:
            arr = _past_max_age(self._pa, arr, self.max_age)
        arr, n_bad, example = _whole_numbers(self._pa, arr, fractions)
        if fractions == "floor":
            self._note_unreadable(name, n_bad, example)
        return arr

    def _note_unreadable(self, name: str, n: int, example: Any) -> None:
        if n:
            seen = self.unreadable.setdefault(name, [0, example])
            seen[0] += n

    def warn_too_many_providers(self) -> None:
        """A :class:`~didcore.errors.TooManyProvidersWarning` if provider codes were folded."""
        if not self._folded:
            return
        import warnings

        n = len(self._folded)
        folded = f"{n:,} more" if n < _FOLDED_KEPT else f"more than {n:,} further"
        warnings.warn(
            TooManyProvidersWarning(
                f"column {self.columns.provider_code!r} holds more than "
                f"{self.max_providers:,} distinct codes: {folded} codes were counted together "
                f"as provider {OTHER_PROVIDERS!r}; is it the provider column? (raise "
                "max_providers to count them one by one)"
            ),
            stacklevel=4,
        )

    def warn_unreadable(self) -> None:
        """One :class:`~didcore.errors.UnreadableValuesWarning` per column that held values
        which are not ages or dates (counted as missing age).
        """
        import warnings

        for name, (n, example) in self.unreadable.items():
            kind = "a number" if name == self.columns.age else "an ISO date (YYYY-MM-DD)"
            what = _rows_holding(n, f"a value that is not {kind}")
            warnings.warn(
                UnreadableValuesWarning(
                    f"column {name!r}: {what} (e.g. {shown(example)}); counted as missing age"
                ),
                stacklevel=3,
            )
        self.warn_too_many_providers()

    def _days(self, batch: pa.RecordBatch, name: str) -> tuple[Any, ...]:
        column = self._column(batch, name)
        if self._pa.types.is_dictionary(column.type):
            self._check_indices(name, column)
        arr, n_bad, example = _dates(self._pa, column, name)
        self._note_unreadable(name, n_bad, example)
        self.dates[name] = arr
        return _buffers(arr, np.int32)


def _extended(previous: Any, result: Any, dictionary: Any, fn: Any) -> Any:
    """``fn(dictionary)`` from ``result = fn(previous)`` when ``dictionary`` extends
    ``previous`` (its first values are those): ``result`` and ``fn`` of the new tail alone
    (a table, or a tuple of tables, with one entry per dictionary value); else None.
    """
    n = len(previous)
    if len(dictionary) <= n or not dictionary.slice(0, n).equals(previous):
        return None
    tail = fn(dictionary.slice(n))
    if isinstance(result, tuple):
        return tuple(np.concatenate(p) for p in zip(result, tail, strict=True))
    return np.concatenate([result, tail])


# Value-mapped roles -> the BatchClassifier method that classifies their dictionaries.
_MAPPED_CLASSIFIERS = {
    "sex": "_classify_sex",
    "modality": "_classify_modality",
    "exam_code": "_classify_exam",
    "gp_practice_code": "_classify_practice",
    "lsoa11": "_classify_lsoa",
}


def _blank_mask(norm: Any) -> np.ndarray:
    import pyarrow.compute as pc

    # an Arrow "" and the bitmaps read in place: a Python "" and to_numpy import pandas
    # where it is installed (didcore._arrow_compat)
    empty = pc.equal(norm, text_scalar("").cast(norm.type))
    return ~_valid_rows(norm) | (_valid_rows(empty) & _bool_values(empty))
