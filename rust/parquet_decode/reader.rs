//! A run's Parquet decoder: the needed columns of file after file, row group after row
//! group, each batch's columns decoded in parallel.

use std::sync::Arc;

use rayon::prelude::*;

use super::DecodeError;
use super::column::{ChunkSource, ColumnCursor, ColumnOut, Kind};
use super::file::FileLayout;
use super::pool::BufferPool;

/// A decode error and the needed column (its index) it is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnError {
    pub column: usize,
    pub error: DecodeError,
}

/// Decodes the needed columns of a run's Parquet files.
#[derive(Debug)]
pub struct Decoder {
    columns: Vec<(String, Kind)>,
    layout: Option<FileLayout>,
    cursors: Vec<ColumnCursor>,
    outs: Vec<ColumnOut>,
    /// Where the columns' buffers come from, and go back to once their user is done.
    pool: Arc<BufferPool>,
}

impl Decoder {
    #[must_use]
    pub fn new(columns: Vec<(String, Kind)>) -> Self {
        let outs = columns.iter().map(|_| ColumnOut::default()).collect();
        Decoder {
            columns,
            layout: None,
            cursors: Vec::new(),
            outs,
            pool: Arc::default(),
        }
    }

    #[must_use]
    pub fn columns(&self) -> &[(String, Kind)] {
        &self.columns
    }

    /// Start a file: parse its footer and plan its row groups.
    pub fn open(&mut self, footer: &[u8]) -> Result<&FileLayout, DecodeError> {
        self.cursors.clear();
        self.layout = None;
        let layout = FileLayout::parse(footer, &self.columns)?;
        Ok(self.layout.insert(layout))
    }

    /// Start row group `row_group` of the open file, given its needed chunks' bytes (or
    /// their fetches) in the order of the columns.
    pub fn start(&mut self, row_group: usize, chunks: Vec<ChunkSource>) -> Result<(), ColumnError> {
        self.cursors.clear();
        let layout = self.layout.as_ref().ok_or(ColumnError {
            column: 0,
            error: DecodeError::Corrupt("no file is open".into()),
        })?;
        if chunks.len() != self.columns.len() {
            return Err(ColumnError {
                column: 0,
                error: DecodeError::Corrupt(format!(
                    "{} column chunks given for {} columns",
                    chunks.len(),
                    self.columns.len()
                )),
            });
        }
        for (column, (bytes, (_, kind))) in chunks.into_iter().zip(&self.columns).enumerate() {
            let cursor = ColumnCursor::new(layout, row_group, column, *kind, bytes)
                .map_err(|error| ColumnError { column, error })?;
            self.cursors.push(cursor);
        }
        Ok(())
    }

    /// Rows of the current row group not yet decoded.
    #[must_use]
    pub fn rows_left(&self) -> u64 {
        self.cursors.first().map_or(0, ColumnCursor::rows_left)
    }

    /// Decode the next `min(max_rows, rows left)` rows of every column, the columns in
    /// parallel (on the current rayon pool); the rows decoded, 0 at the row group's end.
    /// The columns are then in [`Decoder::take`].
    pub fn next(&mut self, max_rows: usize) -> Result<usize, ColumnError> {
        let n = usize::try_from(self.rows_left())
            .unwrap_or(usize::MAX)
            .min(max_rows);
        if n == 0 || self.cursors.is_empty() {
            return Ok(0);
        }
        for (out, (_, kind)) in self.outs.iter_mut().zip(&self.columns) {
            if out.values.capacity() == 0 {
                out.values = self.pool.take(n * kind.width());
            }
            if out.validity.capacity() == 0 {
                out.validity = self.pool.take(n.div_ceil(8));
            }
        }
        let results: Vec<Result<(), DecodeError>> = self
            .cursors
            .par_iter_mut()
            .zip(self.outs.par_iter_mut())
            .map(|(cursor, out)| cursor.read(n, out))
            .collect();
        for (column, result) in results.into_iter().enumerate() {
            result.map_err(|error| ColumnError { column, error })?;
        }
        Ok(n)
    }

    /// The columns decoded by the last [`Decoder::next`], moved out. Their buffers came from
    /// [`Decoder::pool`], to which they should go back once used.
    pub fn take(&mut self) -> Vec<ColumnOut> {
        self.outs
            .iter_mut()
            .zip(&self.columns)
            .map(|(out, (_, kind))| {
                out.trim(kind.width());
                std::mem::take(out)
            })
            .collect()
    }

    /// Read the dictionary pages of the current row group's chunks (see
    /// [`ColumnCursor::load_dictionary`]), the columns in parallel on the current rayon pool.
    pub fn load_dictionaries(&mut self) -> Result<(), ColumnError> {
        let results: Vec<Result<(), DecodeError>> = self
            .cursors
            .par_iter_mut()
            .map(ColumnCursor::load_dictionary)
            .collect();
        for (column, result) in results.into_iter().enumerate() {
            result.map_err(|error| ColumnError { column, error })?;
        }
        Ok(())
    }

    /// The current row group's cursors, moved out (to be decoded elsewhere: see
    /// `crate::row_groups`); the decoder is then ready for the next row group.
    pub fn take_cursors(&mut self) -> Vec<ColumnCursor> {
        std::mem::take(&mut self.cursors)
    }

    /// The pool the columns' buffers are taken from.
    #[must_use]
    pub fn pool(&self) -> &Arc<BufferPool> {
        &self.pool
    }

    /// The current row group's dictionary of text column `column`: `(offsets, data)` of an
    /// Arrow string array (`None` for a fixed-width column or before a row group starts).
    #[must_use]
    pub fn dictionary(&self, column: usize) -> Option<(&[i32], &[u8])> {
        self.cursors
            .get(column)
            .and_then(ColumnCursor::text_dictionary)
    }
}
