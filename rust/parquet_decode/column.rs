//! One column chunk decoded page by page into the rows of a batch.

use std::sync::Arc;

use bytes::Bytes;
use parquet::basic::Encoding;
use parquet::column::page::{Page, PageReader};
use parquet::errors::ParquetError;
use parquet::file::reader::{ChunkReader, Length};
use parquet::file::serialized_reader::SerializedPageReader;

use super::delta;
use super::file::FileLayout;
use super::rle::{Hybrid, bits_from, low_bits};
use super::{DecodeError, no_panic};
use std::collections::HashMap;

use foldhash::fast::FixedState;

/// What a column is decoded as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `BYTE_ARRAY` text: `i32` ids into the run's dictionary of the column.
    Text,
    /// Fixed-width values of this many bytes (4: `INT32`/`FLOAT`, 8: `INT64`/`DOUBLE`).
    Fixed(usize),
}

impl Kind {
    /// Bytes per row of the decoded values.
    #[must_use]
    pub fn width(self) -> usize {
        match self {
            Kind::Text => 4,
            Kind::Fixed(w) => w,
        }
    }
}

/// Decoded rows of one column: `width` little-endian bytes a row (an `i32` id for text), and
/// an Arrow validity bitmap (bit set: the row has a value; null rows' values are zero).
///
/// The rows' values are `values[..rows * width]`. While rows are decoded, `values` may run
/// further with stale bytes of a buffer used before: it is reused without zeroing (every
/// row's bytes are written), which was 6-8% of the decoding's CPU as a `memset`.
/// [`Decoder::take`](super::Decoder::take) cuts it to the rows.
#[derive(Clone, Debug, Default)]
pub struct ColumnOut {
    pub values: Vec<u8>,
    pub validity: Vec<u8>,
    pub rows: usize,
    pub nulls: usize,
}

impl ColumnOut {
    /// Make room for `rows` more rows: `values` (its bytes for them to be written) and
    /// `validity` (bits cleared) grow.
    fn grow(&mut self, rows: usize, width: usize) {
        let total = self.rows + rows;
        if self.values.len() < total * width {
            self.values.resize(total * width, 0);
        }
        self.validity.resize(total.div_ceil(8), 0);
    }

    /// Cut `values` to the rows' bytes (see [`ColumnOut`]).
    pub(super) fn trim(&mut self, width: usize) {
        self.values.truncate(self.rows * width);
    }

    /// Append rows `from..from + count` of `src`.
    fn append_from(&mut self, src: &ColumnOut, from: usize, count: usize, width: usize) {
        let at = self.rows;
        self.grow(count, width);
        self.values[at * width..(at + count) * width]
            .copy_from_slice(&src.values[from * width..(from + count) * width]);
        // 64 rows' bits at a time (a bit at a time was a tenth of the decoding: the rows of
        // a page that runs past a batch's end are all copied so)
        let mut j = 0;
        while j < count {
            let n = (count - j).min(64);
            let word = bits_from(&src.validity, from + j) & low_bits(n);
            or_bits(&mut self.validity, at + j, word);
            self.nulls += n - word.count_ones() as usize;
            j += n;
        }
        self.rows += count;
    }

    /// No rows (the values' bytes are kept, to be written over: see [`ColumnOut`]).
    pub fn clear(&mut self) {
        self.validity.clear();
        self.rows = 0;
        self.nulls = 0;
    }
}

/// Reads `length` bytes of a column chunk from `offset` (counted from the chunk's first
/// byte): Python's positioned reads, for a chunk too big to be read whole (see
/// [`ChunkSource::Windowed`]). Fewer bytes back means the file ends before them.
pub type Fetch = Arc<dyn Fn(u64, usize) -> Result<Bytes, String> + Send + Sync>;

/// A column chunk's bytes as given to [`ColumnCursor::new`].
pub enum ChunkSource {
    /// All of them, read at once (the usual chunk, a few MB).
    Whole(Bytes),
    /// Read a window of at least this many bytes at a time as the pages are decoded, so that
    /// memory does not grow with the chunk: a row group of 50 million rows (as pandas wrote
    /// with pyarrow before 15) held 1.2 GB of chunks read whole.
    Windowed(Fetch, usize),
}

impl std::fmt::Debug for ChunkSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChunkSource::Whole(b) => write!(f, "Whole({} bytes)", b.len()),
            ChunkSource::Windowed(_, window) => write!(f, "Windowed({window} bytes)"),
        }
    }
}

/// Bytes read at a time for a page header met past the window (headers are tens of bytes).
const HEADER_BYTES: usize = 64 << 10;

/// A column chunk's bytes, read from the file at offset `start`, as the crate's page reader
/// wants a file: offsets are the file's.
struct ChunkBytes {
    start: u64,
    len: u64,
    data: Data,
}

enum Data {
    Whole(Bytes),
    /// The fetch, the least bytes to read at a time, and the window last read: its offset
    /// in the chunk, and its bytes.
    Windowed(Fetch, usize, std::sync::Mutex<(u64, Bytes)>),
}

impl ChunkBytes {
    /// `at` (a file offset) as an offset in the chunk, where `length` bytes from it are in
    /// the chunk.
    fn offset(&self, at: u64, length: usize) -> parquet::errors::Result<u64> {
        at.checked_sub(self.start)
            .filter(|&o| o.checked_add(length as u64).is_some_and(|e| e <= self.len))
            .ok_or_else(|| {
                ParquetError::EOF(format!(
                    "{length} bytes at offset {at} are outside the column chunk"
                ))
            })
    }
}

/// `length` bytes of the chunk from `o` (already checked to be in it): from the window when
/// it holds them, else from a new window read from `o`, of at least `want` bytes.
fn windowed(
    fetch: &Fetch,
    window: &std::sync::Mutex<(u64, Bytes)>,
    chunk_len: u64,
    o: u64,
    length: usize,
    want: usize,
) -> parquet::errors::Result<Bytes> {
    let mut window = window
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let (at, bytes) = &*window;
    if o >= *at && o + length as u64 <= at + bytes.len() as u64 {
        let from = usize::try_from(o - at).unwrap_or(usize::MAX);
        return Ok(bytes.slice(from..from + length));
    }
    // (the window is dropped before the next is read: one window a chunk at a time)
    *window = (o, Bytes::new());
    let size = usize::try_from(chunk_len - o)
        .unwrap_or(usize::MAX)
        .min(want.max(length));
    let read = fetch(o, size).map_err(ParquetError::General)?;
    if read.len() < length {
        return Err(ParquetError::EOF(format!(
            "the file ends {} bytes into a read of {size} bytes of the column chunk",
            read.len()
        )));
    }
    let out = read.slice(..length);
    *window = (o, read);
    Ok(out)
}

impl Length for ChunkBytes {
    fn len(&self) -> u64 {
        self.start + self.len
    }
}

/// What [`ChunkBytes::get_read`] gives: the bytes from an offset, read further as needed
/// (a windowed chunk's page header may run past its window).
struct ChunkRead {
    bytes: Bytes,
    /// Where in the chunk the bytes after `bytes` are, and the fetch to read them (None: a
    /// whole chunk, whose bytes run to its end).
    next: u64,
    more: Option<(Fetch, u64)>,
}

impl std::io::Read for ChunkRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.bytes.is_empty()
            && let Some((fetch, chunk_len)) = &self.more
            && self.next < *chunk_len
        {
            let size = usize::try_from(chunk_len - self.next)
                .unwrap_or(usize::MAX)
                .min(HEADER_BYTES);
            self.bytes = fetch(self.next, size).map_err(std::io::Error::other)?;
            self.next += self.bytes.len() as u64;
        }
        let n = buf.len().min(self.bytes.len());
        buf[..n].copy_from_slice(&self.bytes[..n]);
        bytes::Buf::advance(&mut self.bytes, n);
        Ok(n)
    }
}

impl ChunkReader for ChunkBytes {
    type T = ChunkRead;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        let o = self.offset(start, 0)?;
        match &self.data {
            Data::Whole(bytes) => Ok(ChunkRead {
                bytes: bytes.slice(usize::try_from(o).unwrap_or(usize::MAX)..),
                next: self.len,
                more: None,
            }),
            Data::Windowed(fetch, want, window) => {
                let length = usize::try_from(self.len - o)
                    .unwrap_or(usize::MAX)
                    .min(HEADER_BYTES)
                    .min(*want);
                let bytes = windowed(fetch, window, self.len, o, length, *want)?;
                Ok(ChunkRead {
                    next: o + bytes.len() as u64,
                    bytes,
                    more: Some((Arc::clone(fetch), self.len)),
                })
            }
        }
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        let o = self.offset(start, length)?;
        match &self.data {
            Data::Whole(bytes) => {
                let o = usize::try_from(o).unwrap_or(usize::MAX);
                Ok(bytes.slice(o..o + length))
            }
            Data::Windowed(fetch, want, window) => {
                windowed(fetch, window, self.len, o, length, *want)
            }
        }
    }
}

/// A column chunk being decoded: its pages, its dictionary (mapped to output values), and
/// rows decoded from a page but not yet handed out.
pub struct ColumnCursor {
    kind: Kind,
    max_def: i16,
    pages: SerializedPageReader<ChunkBytes>,
    /// A numeric chunk's dictionary as output values (`width` bytes an entry; empty for
    /// text, whose rows' values are their indices).
    dict: Vec<u8>,
    dict_len: Option<usize>,
    pending: ColumnOut,
    pending_at: usize,
    /// Rows of the row group not yet decoded from pages, and in all.
    rows_left: u64,
    rows_total: u64,
    /// A page's definition levels as a bitmap (bit set: the row has a value).
    present: Vec<u64>,
    indices: Vec<u32>,
    /// A PLAIN page's values (indices into `text` for text).
    plain: Vec<u8>,
    /// A text chunk's dictionary.
    text: TextDict,
}

impl std::fmt::Debug for ColumnCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ColumnCursor")
            .field("kind", &self.kind)
            .field("rows_left", &self.rows_left)
            .finish_non_exhaustive()
    }
}

impl ColumnCursor {
    /// A cursor over needed column `column` of row group `row_group`, whose bytes (as planned
    /// by `layout`) come from `source`.
    pub fn new(
        layout: &FileLayout,
        row_group: usize,
        column: usize,
        kind: Kind,
        source: ChunkSource,
    ) -> Result<Self, DecodeError> {
        let rg = layout
            .meta
            .row_groups()
            .get(row_group)
            .ok_or_else(|| DecodeError::Corrupt(format!("no row group {row_group}")))?;
        let leaf = layout
            .leaves
            .get(column)
            .copied()
            .flatten()
            .ok_or_else(|| DecodeError::Unsupported("not a top-level column".into()))?;
        let meta = rg
            .columns()
            .get(leaf)
            .ok_or_else(|| DecodeError::Corrupt("no column chunk".into()))?;
        let (start, len) = meta.byte_range();
        let data = match source {
            ChunkSource::Whole(bytes) if bytes.len() as u64 != len => {
                return Err(DecodeError::Corrupt(format!(
                    "{} bytes given for a column chunk of {len} bytes",
                    bytes.len()
                )));
            }
            ChunkSource::Whole(bytes) => Data::Whole(bytes),
            ChunkSource::Windowed(fetch, want) => {
                Data::Windowed(fetch, want.max(1), std::sync::Mutex::new((0, Bytes::new())))
            }
        };
        let num_rows = u64::try_from(rg.num_rows()).unwrap_or(0);
        let reader = Arc::new(ChunkBytes { start, len, data });
        let pages = no_panic("a column chunk", || {
            Ok(SerializedPageReader::new(
                reader,
                meta,
                usize::try_from(num_rows).unwrap_or(usize::MAX),
                None,
            )?)
        })?;
        Ok(ColumnCursor {
            kind,
            max_def: meta.column_descr().max_def_level(),
            pages,
            dict: Vec::new(),
            dict_len: None,
            pending: ColumnOut::default(),
            pending_at: 0,
            rows_left: num_rows,
            rows_total: num_rows,
            present: Vec::new(),
            indices: Vec::new(),
            plain: Vec::new(),
            text: TextDict {
                offsets: vec![0],
                ..TextDict::default()
            },
        })
    }

    /// Rows of the row group not yet handed out.
    #[must_use]
    pub fn rows_left(&self) -> u64 {
        self.rows_left + (self.pending.rows - self.pending_at) as u64
    }

    /// Append the next `n` rows to `out` (cleared first).
    pub fn read(&mut self, n: usize, out: &mut ColumnOut) -> Result<(), DecodeError> {
        out.clear();
        let width = self.kind.width();
        out.values
            .reserve((n * width).saturating_sub(out.values.len()));
        while out.rows < n {
            let ready = self.pending.rows - self.pending_at;
            if ready > 0 {
                let take = ready.min(n - out.rows);
                out.append_from(&self.pending, self.pending_at, take, width);
                self.pending_at += take;
                continue;
            }
            let page = no_panic("a page", || Ok(self.pages.get_next_page()?))?;
            let Some(page) = page else {
                return Err(DecodeError::Corrupt(format!(
                    "the column chunk ends {} rows short of its row group",
                    self.rows_left
                )));
            };
            match page {
                Page::DictionaryPage {
                    buf,
                    num_values,
                    encoding,
                    ..
                } => {
                    self.dictionary(&buf, num_values as usize, encoding)?;
                }
                Page::DataPage {
                    buf,
                    num_values,
                    encoding,
                    def_level_encoding,
                    ..
                } => {
                    let rows = num_values as usize;
                    let (levels, values) = if self.max_def == 0 {
                        (None, &buf[..])
                    } else {
                        if def_level_encoding != Encoding::RLE {
                            return Err(DecodeError::Unsupported(format!(
                                "definition levels encoded {def_level_encoding}"
                            )));
                        }
                        let len = buf
                            .get(..4)
                            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
                            .ok_or_else(|| DecodeError::Corrupt("a page is cut short".into()))?;
                        let levels = buf.get(4..4 + len).ok_or_else(|| {
                            DecodeError::Corrupt("definition levels past the page".into())
                        })?;
                        (Some(levels), &buf[4 + len..])
                    };
                    self.data_page(rows, levels, values, encoding, n, out)?;
                }
                Page::DataPageV2 {
                    buf,
                    num_values,
                    num_rows,
                    encoding,
                    def_levels_byte_len,
                    rep_levels_byte_len,
                    ..
                } => {
                    if rep_levels_byte_len != 0 || num_values != num_rows {
                        return Err(DecodeError::Unsupported("repetition levels".into()));
                    }
                    let def = def_levels_byte_len as usize;
                    let levels = buf.get(..def).ok_or_else(|| {
                        DecodeError::Corrupt("definition levels past the page".into())
                    })?;
                    let levels = (self.max_def > 0).then_some(levels);
                    let values = &buf[def..];
                    let rows = num_rows as usize;
                    self.data_page(rows, levels, values, encoding, n, out)?;
                }
            }
        }
        if self.rows_left == 0 && self.pending_at == self.pending.rows {
            // The row group is done: a further data page would be rows it does not have.
            let next = no_panic("a page", || Ok(self.pages.get_next_page()?))?;
            if next.is_some_and(|p| p.is_data_page()) {
                return Err(DecodeError::Corrupt(
                    "the column chunk holds more rows than its row group".into(),
                ));
            }
        }
        Ok(())
    }

    /// A dictionary page: the chunk's dictionary (text: its entries, checked as UTF-8, as an
    /// Arrow string array's offsets and data; numbers: their bytes).
    fn dictionary(&mut self, buf: &[u8], n: usize, encoding: Encoding) -> Result<(), DecodeError> {
        if !matches!(encoding, Encoding::PLAIN | Encoding::PLAIN_DICTIONARY) {
            return Err(DecodeError::Unsupported(format!(
                "a dictionary page encoded {encoding}"
            )));
        }
        self.dict.clear();
        match self.kind {
            Kind::Text => {
                self.text.clear();
                for value in PlainText::new(buf, n) {
                    self.text.append(value?)?;
                }
                self.text.check_utf8()?;
                // a text row's value is its index itself (`place_ids`): no look-up table
            }
            Kind::Fixed(w) => {
                let bytes = buf.get(..n * w).ok_or_else(|| {
                    DecodeError::Corrupt(format!("a dictionary page of {n} values is cut short"))
                })?;
                self.dict.extend_from_slice(bytes);
            }
        }
        self.dict_len = Some(n);
        Ok(())
    }

    /// Read the chunk's dictionary page now, if it starts with one (before any row is asked
    /// for), so that [`ColumnCursor::text_dictionary`] holds the row group's dictionary.
    pub fn load_dictionary(&mut self) -> Result<(), DecodeError> {
        if self.dict_len.is_some() {
            return Ok(());
        }
        let next = no_panic("a page", || Ok(self.pages.peek_next_page()?))?;
        if !next.is_some_and(|p| p.is_dict) {
            return Ok(());
        }
        let page = no_panic("a page", || Ok(self.pages.get_next_page()?))?;
        if let Some(Page::DictionaryPage {
            buf,
            num_values,
            encoding,
            ..
        }) = page
        {
            self.dictionary(&buf, num_values as usize, encoding)?;
        }
        Ok(())
    }

    /// Bytes a decoded row takes (see [`Kind::width`]).
    #[must_use]
    pub fn width(&self) -> usize {
        self.kind.width()
    }

    /// Entries in a text chunk's dictionary so far (0 for a fixed-width column): it grows
    /// when a PLAIN page brings values it did not hold.
    #[must_use]
    pub fn text_len(&self) -> usize {
        if self.kind == Kind::Text {
            self.text.len()
        } else {
            0
        }
    }

    /// The chunk's text dictionary: `(offsets, data)` of an Arrow string array (`None` for a
    /// fixed-width column). Text rows' values are indices into it.
    #[must_use]
    pub fn text_dictionary(&self) -> Option<(&[i32], &[u8])> {
        (self.kind == Kind::Text).then(|| (&self.text.offsets[..], &self.text.data[..]))
    }

    /// A data page of `rows` rows: into `out` when it fits in the `n` rows asked for, else
    /// into `pending` for the next call.
    #[allow(clippy::too_many_arguments)]
    fn data_page(
        &mut self,
        rows: usize,
        levels: Option<&[u8]>,
        values: &[u8],
        encoding: Encoding,
        n: usize,
        out: &mut ColumnOut,
    ) -> Result<(), DecodeError> {
        if rows as u64 > self.rows_left {
            return Err(DecodeError::Corrupt(
                "the column chunk holds more rows than its row group".into(),
            ));
        }
        self.rows_left -= rows as u64;
        // rows present (definition level 1)
        let present = match levels {
            None => rows,
            Some(levels) => Hybrid::new(levels, 1)?.read_bitmap(rows, &mut self.present)?,
        };
        let fits = out.rows + rows <= n;
        let mut pending = std::mem::take(&mut self.pending);
        if !fits {
            pending.clear();
            self.pending_at = 0;
        }
        let dest = if fits { &mut *out } else { &mut pending };
        let result = self.values(rows, present, levels.is_some(), values, encoding, dest);
        self.pending = pending;
        result
    }

    /// Decode `present` values and spread them over `rows` rows appended to `dest`.
    #[allow(clippy::too_many_arguments)]
    fn values(
        &mut self,
        rows: usize,
        present: usize,
        has_levels: bool,
        values: &[u8],
        encoding: Encoding,
        dest: &mut ColumnOut,
    ) -> Result<(), DecodeError> {
        let width = self.kind.width();
        // The present values as `source[indices[k]]` (the chunk's dictionary, or this page's
        // own values in order), placed at their rows below.
        let source: &[u8] = match encoding {
            Encoding::PLAIN_DICTIONARY | Encoding::RLE_DICTIONARY => {
                let dict_len = self.dict_len.ok_or_else(|| {
                    DecodeError::Corrupt("a dictionary-encoded page before any dictionary".into())
                })?;
                let (&bit_width, data) = values
                    .split_first()
                    .ok_or_else(|| DecodeError::Corrupt("an empty page".into()))?;
                self.indices.resize(present, 0);
                Hybrid::new(data, u32::from(bit_width))?.read(&mut self.indices)?;
                // one pass over all indices (a loop that vectorises) first; the row at
                // fault only then
                if let Some(k) = any_past(&self.indices, dict_len, bit_width)
                    .then(|| self.indices.iter().position(|&i| i as usize >= dict_len))
                    .flatten()
                {
                    // the row of the k-th value present, counted from 1 over the row group
                    let in_page = if has_levels {
                        let bits = &self.present;
                        (0..rows)
                            .filter(|&j| bits[j >> 6] >> (j & 63) & 1 == 1)
                            .nth(k)
                            .unwrap_or(k)
                    } else {
                        k
                    };
                    let first = self.rows_total - self.rows_left - rows as u64;
                    let entries = if dict_len == 1 { "entry" } else { "entries" };
                    return Err(DecodeError::Corrupt(format!(
                        "row {} points to entry {} of its dictionary, which has {dict_len} {entries}",
                        first + in_page as u64 + 1,
                        self.indices[k]
                    )));
                }
                &self.dict
            }
            Encoding::PLAIN => {
                self.plain.clear();
                match self.kind {
                    Kind::Text => {
                        // Text written PLAIN (no dictionary, or past its size limit): each
                        // value is found in, or added to, the chunk's dictionary.
                        for value in PlainText::new(values, present) {
                            let id = self.text.id_of(value?)?;
                            self.plain.extend_from_slice(&id.to_le_bytes());
                        }
                    }
                    Kind::Fixed(w) => {
                        let bytes = values.get(..present * w).ok_or_else(|| {
                            DecodeError::Corrupt(format!("a page of {present} values is cut short"))
                        })?;
                        self.plain.extend_from_slice(bytes);
                    }
                }
                self.indices.clear();
                self.indices.extend(0..present as u32);
                &self.plain
            }
            Encoding::DELTA_BINARY_PACKED
            | Encoding::DELTA_LENGTH_BYTE_ARRAY
            | Encoding::DELTA_BYTE_ARRAY => {
                self.plain.clear();
                self.delta(values, present, encoding)?;
                self.indices.clear();
                self.indices.extend(0..present as u32);
                &self.plain
            }
            other => {
                return Err(DecodeError::Unsupported(format!("a page encoded {other}")));
            }
        };
        // one index past the values, read (and masked out) after the last row with a value
        self.indices.push(0);
        let at = dest.rows;
        dest.grow(rows, width);
        let out = &mut dest.values[at * width..(at + rows) * width];
        let levels = (has_levels && present < rows).then_some(&self.present[..]);
        let ids = self.kind == Kind::Text
            && matches!(
                encoding,
                Encoding::PLAIN_DICTIONARY | Encoding::RLE_DICTIONARY
            );
        match width {
            // a text row's value is its dictionary index itself
            4 if ids => place_ids(&self.indices, levels, out),
            4 => place::<4>(source, &self.indices, levels, out),
            8 => place::<8>(source, &self.indices, levels, out),
            _ => return Err(DecodeError::Unsupported(format!("{width}-byte values"))),
        }
        if let Some(levels) = levels {
            for (c, &word) in levels.iter().enumerate() {
                or_bits(&mut dest.validity, at + c * 64, word);
            }
            dest.nulls += rows - present;
        } else {
            set_bits(&mut dest.validity, at, rows);
        }
        dest.rows += rows;
        Ok(())
    }

    /// A DELTA-encoded page's `present` values into `plain`: integers as `width`-byte values,
    /// text as indices into the chunk's dictionary (found, or added, as PLAIN text is).
    fn delta(
        &mut self,
        values: &[u8],
        present: usize,
        encoding: Encoding,
    ) -> Result<(), DecodeError> {
        let (text, plain) = (&mut self.text, &mut self.plain);
        let mut add = |value: &[u8]| -> Result<(), DecodeError> {
            let id = text.id_of(value)?;
            plain.extend_from_slice(&id.to_le_bytes());
            Ok(())
        };
        let (mut a, mut b) = (Vec::new(), Vec::new());
        match (self.kind, encoding) {
            (Kind::Text, Encoding::DELTA_LENGTH_BYTE_ARRAY) => {
                delta::length_byte_array(values, present, &mut a, &mut add)
            }
            (Kind::Text, Encoding::DELTA_BYTE_ARRAY) => {
                delta::byte_array(values, present, &mut a, &mut b, &mut add)
            }
            (Kind::Fixed(w @ (4 | 8)), Encoding::DELTA_BINARY_PACKED) => {
                delta::binary_packed(values, &mut a)?;
                if a.len() != present {
                    return Err(DecodeError::Corrupt(format!(
                        "a DELTA-encoded page holds {} values for {present}",
                        a.len()
                    )));
                }
                for v in &a {
                    plain.extend_from_slice(&v.to_le_bytes()[..w]);
                }
                Ok(())
            }
            (kind, encoding) => Err(DecodeError::Unsupported(format!(
                "a page encoded {encoding} for {kind:?}"
            ))),
        }
    }
}

/// Put `source[indices[k]]` (values of `W` bytes) in the rows of `out` that have a value:
/// every row when `present` is `None`, else the rows whose bit is set in that bitmap (the
/// others zero). The indices are within `source` (checked by the caller), and `indices` has
/// one entry more than there are values (read, and masked out, after the last one).
fn place<const W: usize>(source: &[u8], indices: &[u32], present: Option<&[u64]>, out: &mut [u8]) {
    let (source, _) = source.as_chunks::<W>();
    if present.is_some() && source.is_empty() {
        // every row null (a row with a value would have failed the index check)
        out.fill(0);
        return;
    }
    spread(|i| source[i as usize], indices, present, out);
}

/// [`place`] for text, whose values are the indices themselves: no look-up table.
fn place_ids(indices: &[u32], present: Option<&[u64]>, out: &mut [u8]) {
    spread(u32::to_le_bytes, indices, present, out);
}

/// `value(indices[k])` for the `k`-th row that has a value (see [`place`]), 0 in the others.
/// Rows go 64 at a time: most such stretches have no null and are a straight run; in most of
/// the others a few nulls split the rows into runs, each copied straight.
#[inline]
fn spread<const W: usize>(
    value: impl Fn(u32) -> [u8; W],
    indices: &[u32],
    present: Option<&[u64]>,
    out: &mut [u8],
) {
    let (out, _) = out.as_chunks_mut::<W>();
    let copy = |outs: &mut [[u8; W]], from: &[u32]| {
        for (o, &i) in outs.iter_mut().zip(from) {
            *o = value(i);
        }
    };
    let Some(bits) = present else {
        copy(out, indices);
        return;
    };
    let mut k = 0usize;
    for (outs, &word) in out.chunks_mut(64).zip(bits) {
        let len = outs.len();
        let mut holes = !word & low_bits(len);
        if holes.count_ones() <= SPARSE_NULLS {
            // the runs of rows with a value between the nulls (an extract has a few nulls in
            // a hundred rows: with the branch-free loop below for every such stretch, the page
            // loop was 23% of the decoding's CPU; with this, 16%)
            let mut j = 0;
            loop {
                let end = if holes == 0 {
                    len
                } else {
                    holes.trailing_zeros() as usize
                };
                copy(&mut outs[j..end], &indices[k..k + (end - j)]);
                k += end - j;
                if end == len {
                    break;
                }
                outs[end] = [0; W];
                j = end + 1;
                holes &= holes - 1;
            }
            continue;
        }
        // Branch-free where nulls are many: they fall at random, and a branch on each row was
        // mispredicted often enough to cost more than reading a value and masking it.
        for (j, o) in outs.iter_mut().enumerate() {
            let has = word >> j & 1;
            *o = masked(value(indices[k]), has);
            k += has as usize;
        }
    }
}

/// Whether any of `indices`, unpacked at `bit_width` bits, is `dict_len` or more.
///
/// Up to 24 bits every index is under 2^31 (a bit-packed one under 2^width, a repeated one
/// in at most three bytes, whatever a damaged file puts in their high bits), so the test is
/// a signed comparison, which SSE2 has as one instruction: the unsigned maximum it lacks
/// took seven a vector, and was 45% of the page loop's time on a two-value column (since
/// then the wheels' baseline is x86-64-v2, which has it; other targets may not).
fn any_past(indices: &[u32], dict_len: usize, bit_width: u8) -> bool {
    match i32::try_from(dict_len) {
        Ok(len) if bit_width <= 24 => {
            let last = len - 1;
            indices
                .iter()
                .fold(0u32, |any, &i| any | u32::from(i.cast_signed() > last))
                != 0
        }
        _ => indices.iter().any(|&i| i as usize >= dict_len),
    }
}

/// Nulls in a stretch of 64 rows up to which [`spread`] copies the runs between them.
const SPARSE_NULLS: u32 = 12;

/// `v` if `keep` is 1, else zeros, as one word-wide AND (a byte at a time, the compiler kept
/// four separate byte operations).
#[inline]
fn masked<const W: usize>(v: [u8; W], keep: u64) -> [u8; W] {
    let mut wide = [0u8; 8];
    wide[..W].copy_from_slice(&v);
    let kept = (u64::from_le_bytes(wide) & keep.wrapping_neg()).to_le_bytes();
    let mut o = [0u8; W];
    o.copy_from_slice(&kept[..W]);
    o
}

/// OR `word` into `bits` from bit `at` (its set bits must fall inside `bits`).
fn or_bits(bits: &mut [u8], at: usize, word: u64) {
    let (byte, shift) = (at >> 3, at & 7);
    let wide = u128::from(word) << shift;
    for (k, b) in wide.to_le_bytes().iter().take(9).enumerate() {
        if *b != 0 {
            bits[byte + k] |= b;
        }
    }
}

/// Set bits `from..from + count` of `bits`.
fn set_bits(bits: &mut [u8], from: usize, count: usize) {
    let end = from + count;
    let mut i = from;
    while i < end && i & 7 != 0 {
        bits[i >> 3] |= 1 << (i & 7);
        i += 1;
    }
    while i + 8 <= end {
        bits[i >> 3] = 0xFF;
        i += 8;
    }
    while i < end {
        bits[i >> 3] |= 1 << (i & 7);
        i += 1;
    }
}

/// The `n` PLAIN byte arrays of `buf` (each a 4-byte little-endian length, then the bytes).
struct PlainText<'a> {
    buf: &'a [u8],
    pos: usize,
    left: usize,
}

impl<'a> PlainText<'a> {
    fn new(buf: &'a [u8], n: usize) -> Self {
        PlainText {
            buf,
            pos: 0,
            left: n,
        }
    }
}

impl<'a> Iterator for PlainText<'a> {
    type Item = Result<&'a [u8], DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let pos = self.pos;
        let Some(len) = self
            .buf
            .get(pos..pos + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        else {
            self.left = 0;
            return Some(Err(DecodeError::Corrupt(
                "a text value's length is cut short".into(),
            )));
        };
        let Some(value) = self.buf.get(pos + 4..pos + 4 + len) else {
            self.left = 0;
            return Some(Err(DecodeError::Corrupt(
                "a text value is past its page".into(),
            )));
        };
        self.pos = pos + 4 + len;
        Some(Ok(value))
    }
}

/// A text column chunk's dictionary as an Arrow string array (`offsets`, `data`): its
/// dictionary page's values in order, then any value of a PLAIN page not among them (found
/// through `map`, built from the entries only once a PLAIN page comes).
#[derive(Debug, Default)]
struct TextDict {
    offsets: Vec<i32>,
    data: Vec<u8>,
    map: Option<TextMap>,
}

/// Entry of each value of a [`TextDict`]: values of up to 15 bytes (codes) by their packed
/// key (`crate::encode::pack`), which sits in the table itself, so a probe compares one
/// `u128` instead of hashing and comparing bytes behind a pointer; longer values by their
/// bytes. Text written PLAIN or DELTA is looked up here row by row: on 10M rows of DELTA
/// text, finding the entries took 40% of the decoding's time with the bytes as keys.
#[derive(Debug, Default)]
struct TextMap {
    short: HashMap<u128, i32, FixedState>,
    long: HashMap<Box<[u8]>, i32, FixedState>,
}

impl TextMap {
    fn get(&self, value: &[u8]) -> Option<i32> {
        match crate::encode::pack(value) {
            Some(key) => self.short.get(&key).copied(),
            None => self.long.get(value).copied(),
        }
    }

    /// Map `value` to `id` unless it is mapped already (a repeated entry keeps its first).
    fn insert_first(&mut self, value: &[u8], id: i32) {
        match crate::encode::pack(value) {
            Some(key) => {
                self.short.entry(key).or_insert(id);
            }
            None => {
                if !self.long.contains_key(value) {
                    self.long.insert(value.into(), id);
                }
            }
        }
    }
}

impl TextDict {
    fn clear(&mut self) {
        self.offsets.clear();
        self.offsets.push(0);
        self.data.clear();
        self.map = None;
    }

    fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// Append `value`; text that is not UTF-8 is [`DecodeError::Unsupported`], so that
    /// pyarrow's path reads the row group and reports it as it does.
    fn push(&mut self, value: &[u8]) -> Result<i32, DecodeError> {
        if std::str::from_utf8(value).is_err() {
            return Err(not_utf8());
        }
        self.append(value)
    }

    /// Check that every entry is UTF-8, after [`TextDict::append`]s: at once when the whole
    /// text is ASCII (codes always are; an entry at a time, the checks were 2% of the
    /// decoding), else entry by entry (valid text can end inside a character that the next
    /// entry's bytes would complete).
    fn check_utf8(&self) -> Result<(), DecodeError> {
        if self.data.is_ascii() {
            return Ok(());
        }
        let bad = self
            .offsets
            .windows(2)
            .any(|w| std::str::from_utf8(&self.data[w[0] as usize..w[1] as usize]).is_err());
        if bad { Err(not_utf8()) } else { Ok(()) }
    }

    /// Append `value`, not yet checked as UTF-8 (see [`TextDict::check_utf8`]).
    fn append(&mut self, value: &[u8]) -> Result<i32, DecodeError> {
        if self.offsets.is_empty() {
            self.offsets.push(0);
        }
        let id = i32::try_from(self.len())
            .map_err(|_| DecodeError::Unsupported("more than 2^31 text values".into()))?;
        let end = i32::try_from(self.data.len() + value.len())
            .map_err(|_| DecodeError::Unsupported("more than 2 GiB of text".into()))?;
        self.data.extend_from_slice(value);
        self.offsets.push(end);
        if let Some(map) = &mut self.map {
            map.insert_first(value, id);
        }
        Ok(id)
    }

    /// The index of `value`, appended if new (the first entry of a repeated value).
    fn id_of(&mut self, value: &[u8]) -> Result<i32, DecodeError> {
        if self.map.is_none() {
            let mut map = TextMap {
                short: HashMap::with_capacity_and_hasher(self.len(), FixedState::default()),
                long: HashMap::default(),
            };
            for (i, w) in self.offsets.windows(2).enumerate() {
                map.insert_first(&self.data[w[0] as usize..w[1] as usize], i as i32);
            }
            self.map = Some(map);
        }
        if let Some(id) = self.map.as_ref().and_then(|m| m.get(value)) {
            return Ok(id);
        }
        self.push(value)
    }
}

fn not_utf8() -> DecodeError {
    DecodeError::Unsupported("text that is not UTF-8".into())
}

#[cfg(test)]
mod tests {
    use super::{TextDict, place, place_ids};

    #[test]
    fn indices_past_the_dictionary_are_found_at_every_width() {
        use super::any_past;
        assert!(!any_past(&[0, 3, 9], 10, 4));
        assert!(any_past(&[0, 10, 1], 10, 4));
        assert!(any_past(&[0], 0, 1));
        assert!(!any_past(&[], 0, 1));
        // the largest a repeated run's three bytes hold, at 24 bits
        assert!(any_past(&[1, 0x00FF_FFFF], 10, 24));
        // from 25 bits on, four bytes: past 2^31 (negative as signed) is still found
        for width in [25, 31, 32] {
            assert!(any_past(&[1, 0x8000_0000], 10, width), "{width} bits");
            assert!(any_past(&[u32::MAX], 10, width), "{width} bits");
            assert!(!any_past(&[9, 0], 10, width), "{width} bits");
        }
    }

    #[test]
    fn a_dictionary_is_checked_as_utf8_entry_by_entry_unless_it_is_ascii() {
        let mut dict = TextDict::default();
        for v in [&b"E01000001"[..], b" rxh ", b""] {
            dict.append(v).unwrap();
        }
        assert!(dict.check_utf8().is_ok());
        dict.append("Caf\u{e9}".as_bytes()).unwrap();
        assert!(dict.check_utf8().is_ok());
        // each entry half of one character: the text as a whole is UTF-8, the entries not
        let e_acute = "\u{e9}".as_bytes();
        dict.append(&e_acute[..1]).unwrap();
        dict.append(&e_acute[1..]).unwrap();
        assert!(std::str::from_utf8(&dict.data).is_ok());
        assert!(dict.check_utf8().is_err());
    }

    /// A small deterministic generator (xorshift), so the tests need no crate.
    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    /// Rows with a value where `bits` says, with `nulls_in_64` nulls a 64-row stretch on
    /// average; the rows' values from `place`/`place_ids` checked against a plain loop.
    #[test]
    fn values_are_spread_over_the_rows_with_a_value_at_every_density_of_nulls() {
        let mut state = 0x9E37_79B9_7F4A_7C15;
        for nulls_in_64 in [0, 1, 3, 11, 12, 13, 20, 40, 63, 64] {
            for rows in [1, 63, 64, 65, 200, 1000] {
                let mut bits = vec![0u64; usize::div_ceil(rows, 64)];
                let mut present = 0;
                for j in 0..rows {
                    if next(&mut state) % 64 >= nulls_in_64 {
                        bits[j >> 6] |= 1 << (j & 63);
                        present += 1;
                    }
                }
                let dict: Vec<u8> = (0..50u64)
                    .flat_map(|v| (v * 1000 + 7).to_le_bytes())
                    .collect();
                let mut indices: Vec<u32> = (0..present)
                    .map(|_| (next(&mut state) % 50) as u32)
                    .collect();
                indices.push(0); // the one past the values that the loops may read
                let mut k = 0;
                let (mut want4, mut want8) = (Vec::new(), Vec::new());
                for j in 0..rows {
                    if bits[j >> 6] >> (j & 63) & 1 == 1 {
                        want4.extend_from_slice(&indices[k].to_le_bytes());
                        let at = indices[k] as usize * 8;
                        want8.extend_from_slice(&dict[at..at + 8]);
                        k += 1;
                    } else {
                        want4.extend_from_slice(&[0; 4]);
                        want8.extend_from_slice(&[0; 8]);
                    }
                }
                // stale bytes in the output, as in a reused buffer: every row is written
                let mut got4 = vec![0xAB; rows * 4];
                place_ids(&indices, Some(&bits), &mut got4);
                assert_eq!(got4, want4, "{nulls_in_64} nulls in 64, {rows} rows");
                let mut got8 = vec![0xCD; rows * 8];
                place::<8>(&dict, &indices, Some(&bits), &mut got8);
                assert_eq!(got8, want8, "{nulls_in_64} nulls in 64, {rows} rows");
            }
        }
    }
}
