//! The one error type of the Rust core. It knows nothing of Python: `py_api` maps each variant
//! to an exception class of `didcore.errors`.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum CoreError {
    /// Inputs whose shapes or tables disagree: a bug in the caller (the Python layer), never
    /// the user's data, which is classified before it reaches Rust.
    #[error("internal shape error: {0}")]
    Shape(String),
    /// Observed tests in a stratum whose total population is zero (SPEC section 3).
    #[error(
        "stratum {stratum} has {observed} observed tests for measure {measure} but zero population"
    )]
    ZeroPopulation {
        stratum: usize,
        measure: usize,
        observed: f64,
    },
    /// A population that is negative or not a number.
    #[error(
        "population of unit {unit}, stratum {stratum} is {value}: populations must be finite and non-negative"
    )]
    BadPopulation {
        unit: usize,
        stratum: usize,
        value: f64,
    },
    /// The worker thread pool could not be built.
    #[error("could not start worker threads: {0}")]
    ThreadPool(String),
    /// A dictionary-encoded column whose row points outside its dictionary: a corrupt Parquet
    /// file (pyarrow reads some without complaint) or an Arrow array built without checks. The
    /// user's data, not a bug: `py_api` maps it to `CorruptInputError` with the column's name.
    /// `row` counts from 1 over the rows given to this accumulator (earlier batches' too);
    /// `batch_row` from 1 within batch number `batch` (from 1).
    #[error(
        "column {column:?}: row {row} (row {batch_row} of batch {batch}) holds dictionary index \
         {index}, outside its dictionary of {dict_len} values"
    )]
    BadIndex {
        /// The column's role (`gp_practice_code`), or the extract's name for it once
        /// [`CoreError::naming_columns`] has been applied.
        column: String,
        index: i64,
        dict_len: usize,
        batch: u64,
        batch_row: u64,
        row: u64,
    },
    /// A text column whose offsets do not rise inside its data: Arrow data built without
    /// checks by its producer (`validate(full=True)` rejects it). The user's data, not a bug:
    /// `py_api` maps it to `CorruptInputError`, and Python adds the column's name.
    #[error("its text offsets {first}..{last} do not rise inside its {data_len} bytes of data")]
    BadOffsets {
        first: i64,
        last: i64,
        data_len: usize,
    },
    /// An argument the caller chose that cannot be used (e.g. a negative `max_age`): maps to
    /// `InputError`.
    #[error("{0}")]
    InvalidArgument(String),
    /// A Parquet column chunk the core could not decode (`crate::parquet_decode`): corrupt
    /// data maps to `CorruptInputError` naming the column; `unsupported` (valid Parquet the
    /// core does not decode) to `ParquetUnsupportedError`, on which Python reads the row group
    /// through pyarrow instead.
    #[error("column {column:?}: {message}")]
    Parquet {
        column: String,
        unsupported: bool,
        message: String,
    },
    /// A panic in the Rust core, caught before it reached Python: always a bug.
    #[error("panic in the Rust core: {0}")]
    Panic(String),
}

impl CoreError {
    /// The error with each column role it names replaced by the extract's name of that column
    /// (`names`: role -> name, as the caller's `Columns` give them), so that the message names
    /// the column the user knows. Roles not in `names` stay as they are.
    #[must_use]
    pub fn naming_columns<S: std::hash::BuildHasher>(
        self,
        names: &std::collections::HashMap<String, String, S>,
    ) -> Self {
        match self {
            CoreError::BadIndex {
                column,
                index,
                dict_len,
                batch,
                batch_row,
                row,
            } => CoreError::BadIndex {
                column: names.get(&column).cloned().unwrap_or(column),
                index,
                dict_len,
                batch,
                batch_row,
                row,
            },
            other => other,
        }
    }
}
