"""Type stubs for the compiled core (``rust/py_api.rs``). Not a public API: use
:func:`didcore.aggregate` and :func:`didcore.standardise`.
"""

from collections.abc import Callable
from typing import Any, Final, final

import numpy as np
import numpy.typing as npt

from didcore.classify import ClassifiedBatch

__all__ = [
    "BLANK",
    "MAX_MEASURES",
    "N_STATES",
    "OTHER_VALID",
    "UNRECOGNISED",
    "Aggregator",
    "KeyIndex",
    "ParquetDecoder",
    "RowGroup",
    "TextEncoder",
    "__version__",
    "bincount",
    "build_profile",
    "expected_counts",
    "state_table",
]

__version__: Final[str]
build_profile: Final[str]
N_STATES: Final[int]
MAX_MEASURES: Final[int]
BLANK: Final[int]
UNRECOGNISED: Final[int]
OTHER_VALID: Final[int]

_Strings = tuple[npt.NDArray[np.int32], npt.NDArray[np.uint8], npt.NDArray[np.uint8] | None, int]

@final
class TextEncoder:
    def __new__(cls) -> TextEncoder: ...
    def __len__(self) -> int: ...
    def encode(self, strings: _Strings) -> npt.NDArray[np.int32]: ...
    def dictionary(
        self,
    ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.uint8], int | None]: ...

@final
class Aggregator:
    def __new__(
        cls,
        n_icb: int,
        n_measure: int,
        max_age: int | None = None,
        n_threads: int | None = None,
        column_names: dict[str, str] | None = None,
    ) -> Aggregator: ...
    @property
    def rows(self) -> int: ...
    def add_batch(self, batch: ClassifiedBatch) -> None: ...
    def submit_row_group(
        self,
        seq: int,
        row_group: RowGroup,
        template: ClassifiedBatch,
        roles: tuple[int, int, int, int, int, int | None, int | None, int | None, int | None],
        profiled: list[int],
        year_bounds: list[int],
        require: tuple[int, int] | None = None,
        converts: list[tuple[int, str, int]] = ...,
    ) -> None: ...
    def wait_row_groups(
        self, max_in_flight: int
    ) -> list[
        tuple[
            int,
            int,
            list[npt.NDArray[np.uint64]],
            list[int],
            tuple[int, str] | None,
            tuple[int, str] | None,
            tuple[int, float] | None,
        ]
    ]: ...
    def finish(self) -> dict[str, Any]: ...

@final
class RowGroup: ...

@final
class KeyIndex:
    def __new__(cls, keys: _Strings) -> KeyIndex: ...
    def __len__(self) -> int: ...
    def find(self, strings: _Strings) -> npt.NDArray[np.int32]: ...
    def find_normalised(self, strings: _Strings) -> npt.NDArray[np.int32] | None: ...

@final
class ParquetDecoder:
    def __new__(
        cls, names: list[str], widths: list[int], n_threads: int | None = None
    ) -> ParquetDecoder: ...
    def open(
        self, footer: bytes
    ) -> list[
        tuple[int, list[tuple[int, int, str | None, int, int | None, tuple[int, int] | None]]]
    ]: ...
    def start(
        self,
        row_group: int,
        chunks: list[bytes | Callable[[int, int], bytes]],
        window: int = ...,
    ) -> None: ...
    def load_dictionaries(self) -> None: ...
    def take_row_group(self) -> RowGroup: ...
    def next(
        self, max_rows: int
    ) -> tuple[int, list[tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8] | None]]] | None: ...
    def dictionary_len(self, column: int) -> int: ...
    def dictionary(
        self, column: int
    ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.uint8], int | None]: ...

def bincount(
    indices: npt.NDArray[np.int32],
    validity: npt.NDArray[np.uint8] | None,
    offset: int,
    size: int,
) -> tuple[npt.NDArray[np.int64], int]: ...
def state_table() -> dict[str, npt.NDArray[np.int8]]: ...
def expected_counts(
    observed: npt.NDArray[np.float64],
    population: npt.NDArray[np.float64],
    groups: npt.NDArray[np.int64],
    n_strata: int,
    n_measure: int,
    n_groups: int,
    n_threads: int | None = None,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]: ...
