//! Parquet column chunks decoded in the core: the pages of each needed column chunk of a row
//! group, handed over as bytes (Python reads them with one positioned read a chunk), are
//! decompressed, their definition levels and dictionary indices decoded, and each column
//! given back as plain arrays the counting kernel reads:
//!
//! * a *text* column (`BYTE_ARRAY`) as `i32` indices into the chunk's dictionary (its
//!   dictionary page's values, each checked as UTF-8, then any value of a PLAIN page not
//!   among them), handed over as an Arrow string array: the rows' indices are the page's own,
//!   so no row's text is hashed or copied, and Python classifies each dictionary value once
//!   (mapping every chunk's dictionary onto one dictionary for the run, tried first, cost a
//!   hash probe, mostly a cache miss, per value per chunk: a fifth of the decoding);
//! * a *fixed-width* column (`INT32`, `INT64`, `FLOAT`, `DOUBLE`: ages, sex as numbers,
//!   dates) as its values' little-endian bytes, which Python wraps in the file's Arrow type;
//!
//! each with an Arrow validity bitmap when the rows hold nulls.
//!
//! The crate reads the footer, the page headers and decompresses (every codec pyarrow
//! writes); the rest is here, the DELTA encodings too (`delta.rs`). What this does not decode
//! (BYTE_STREAM_SPLIT, nested columns, other physical types, text that is not UTF-8) is
//! [`DecodeError::Unsupported`]: Python reads that row group through pyarrow instead. Data
//! that cannot be right (a page header or compressed block that does not parse, an index past
//! its dictionary, fewer values than rows) is [`DecodeError::Corrupt`]. Nothing here panics
//! on any input: a panic inside the crate is caught and reported as corrupt data.
//!
//! Nothing here knows about Python.

mod column;
mod delta;
mod file;
mod pool;
mod reader;
mod rle;
#[cfg(test)]
mod tests;

pub use column::{ChunkSource, ColumnCursor, ColumnOut, Fetch, Kind};
pub use file::{ChunkPlan, Coding, FileLayout, RowGroupPlan};
pub use pool::BufferPool;
pub use reader::{ColumnError, Decoder};

use thiserror::Error;

/// Why a column chunk could not be decoded here.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Valid Parquet this decoder does not handle: the row group is read through pyarrow.
    #[error("{0}")]
    Unsupported(String),
    /// Data that cannot be valid Parquet.
    #[error("{0}")]
    Corrupt(String),
}

impl From<parquet::errors::ParquetError> for DecodeError {
    fn from(err: parquet::errors::ParquetError) -> Self {
        use parquet::errors::ParquetError;
        match err {
            ParquetError::NYI(msg) => DecodeError::Unsupported(msg),
            other => DecodeError::Corrupt(other.to_string()),
        }
    }
}

/// Run `f`, a panic in it (inside the crate, on bytes it did not expect) becoming
/// [`DecodeError::Corrupt`].
pub(crate) fn no_panic<T>(
    what: &str,
    f: impl FnOnce() -> Result<T, DecodeError>,
) -> Result<T, DecodeError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let msg = panic
            .downcast_ref::<&str>()
            .map(ToString::to_string)
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(DecodeError::Corrupt(format!("{what}: {msg}")))
    })
}
