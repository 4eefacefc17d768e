//! A Parquet file's footer, and the plan it gives: for each row group, where each needed
//! column chunk's bytes are and whether this decoder can read it.

use std::sync::Arc;

use parquet::basic::{Encoding, Type};
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};

use super::column::Kind;
use super::{DecodeError, no_panic};

/// One needed column chunk of a row group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkPlan {
    /// Its bytes in the file: `start..start + len`.
    pub start: u64,
    pub len: u64,
    /// Why this decoder does not read it (the row group then goes through pyarrow).
    pub unsupported: Option<String>,
    /// Whether every data page is dictionary-encoded, so that the chunk's dictionary is whole
    /// once its dictionary page is read and can be classified before its rows are decoded:
    /// [`Coding::Dictionary`] when the footer says so, [`Coding::Presumed`] when it has a
    /// dictionary page but cannot say (see [`dictionary_coding`]).
    pub dictionary_only: Coding,
    /// Null rows, from the footer's statistics (`None` without them).
    pub nulls: Option<u64>,
    /// The smallest and largest value of an integer (or date) chunk, from the footer's
    /// statistics (`None` without them).
    pub range: Option<(i64, i64)>,
}

/// What the footer says of a chunk's data pages' encodings (see [`ChunkPlan::dictionary_only`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Coding {
    /// Some pages are not dictionary-encoded, or it has no dictionary page.
    Other = 0,
    /// A dictionary page, and no page encoding statistics to say more: most writers that
    /// leave them out (polars) encode a chunk with its dictionary or without one throughout,
    /// so the chunk is presumed dictionary-encoded; a PLAIN page met all the same is found as
    /// the rows are decoded (the dictionary grows).
    Presumed = 1,
    /// Every data page dictionary-encoded, by the page encoding statistics or by the chunk's
    /// list of encodings holding no other (DuckDB lists `PLAIN_DICTIONARY` alone).
    Dictionary = 2,
}

/// One row group: its rows and its needed column chunks, in the order asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowGroupPlan {
    pub num_rows: u64,
    pub chunks: Vec<ChunkPlan>,
}

/// A parsed footer and the plan for the needed columns.
#[derive(Clone, Debug)]
pub struct FileLayout {
    pub(super) meta: Arc<ParquetMetaData>,
    /// Leaf column index of each needed column (`None`: not a top-level leaf).
    pub(super) leaves: Vec<Option<usize>>,
    pub row_groups: Vec<RowGroupPlan>,
}

/// Encodings a chunk may list for this decoder to read it (`RLE` and `BIT_PACKED` are the
/// levels' encodings; a page with `BIT_PACKED` levels is refused when it is met).
#[allow(deprecated)] // BIT_PACKED: old writers list it for levels they never wrote
const READABLE: [Encoding; 8] = [
    Encoding::PLAIN,
    Encoding::DELTA_BINARY_PACKED,
    Encoding::DELTA_LENGTH_BYTE_ARRAY,
    Encoding::DELTA_BYTE_ARRAY,
    Encoding::PLAIN_DICTIONARY,
    Encoding::RLE_DICTIONARY,
    Encoding::RLE,
    Encoding::BIT_PACKED,
];

impl FileLayout {
    /// Parse the footer's metadata (`footer`: the bytes before the file's last eight) and plan
    /// the columns `columns` (top-level names, each with the kind the caller wants it as).
    pub fn parse(footer: &[u8], columns: &[(String, Kind)]) -> Result<Self, DecodeError> {
        let meta = no_panic("the footer", || {
            Ok(ParquetMetaDataReader::decode_metadata(footer)?)
        })?;
        let schema = meta.file_metadata().schema_descr();
        let leaves: Vec<Option<usize>> = columns
            .iter()
            .map(|(name, _)| {
                (0..schema.num_columns()).find(|&i| {
                    let column = schema.column(i);
                    let parts = column.path().parts();
                    parts.len() == 1 && parts[0] == *name
                })
            })
            .collect();
        let mut row_groups = Vec::with_capacity(meta.num_row_groups());
        for rg in meta.row_groups() {
            let num_rows = u64::try_from(rg.num_rows())
                .map_err(|_| DecodeError::Corrupt(format!("{} rows", rg.num_rows())))?;
            let chunks = columns
                .iter()
                .zip(&leaves)
                .map(|((name, kind), leaf)| {
                    let Some(leaf) = *leaf else {
                        return ChunkPlan::refused(format!("column {name:?} is nested or absent"));
                    };
                    let Some(chunk) = rg.columns().get(leaf) else {
                        return ChunkPlan::refused(format!("column {name:?} has no chunk"));
                    };
                    if let Some(odd) = odd_range(chunk) {
                        return ChunkPlan::refused(odd);
                    }
                    let (start, len) = chunk.byte_range();
                    ChunkPlan {
                        start,
                        len,
                        unsupported: why_not(chunk, *kind),
                        dictionary_only: dictionary_coding(chunk),
                        nulls: chunk
                            .statistics()
                            .and_then(parquet::file::statistics::Statistics::null_count_opt),
                        range: chunk.statistics().and_then(int_range),
                    }
                })
                .collect();
            row_groups.push(RowGroupPlan { num_rows, chunks });
        }
        Ok(FileLayout {
            meta: Arc::new(meta),
            leaves,
            row_groups,
        })
    }
}

impl ChunkPlan {
    fn refused(why: String) -> Self {
        ChunkPlan {
            start: 0,
            len: 0,
            unsupported: Some(why),
            dictionary_only: Coding::Other,
            nulls: None,
            range: None,
        }
    }
}

/// How the chunk's data pages are encoded (see [`Coding`]), by its page encoding statistics
/// (written by pyarrow, parquet-java, arrow-rs and others; the crate keeps them as a mask of
/// the data pages' encodings) or, without them, its list of encodings, which names the
/// dictionary page's own PLAIN too for most writers.
fn dictionary_coding(chunk: &parquet::file::metadata::ColumnChunkMetaData) -> Coding {
    if chunk.dictionary_page_offset().is_none() {
        return Coding::Other;
    }
    if let Some(mask) = chunk.page_encoding_stats_mask() {
        return if mask.is_only(Encoding::PLAIN_DICTIONARY) || mask.is_only(Encoding::RLE_DICTIONARY)
        {
            Coding::Dictionary
        } else {
            Coding::Other
        };
    }
    let (mut dictionary, mut plain) = (false, false);
    for encoding in chunk.encodings() {
        match encoding {
            Encoding::PLAIN_DICTIONARY | Encoding::RLE_DICTIONARY => dictionary = true,
            Encoding::PLAIN => plain = true,
            // the levels' encodings
            #[allow(deprecated)]
            Encoding::RLE | Encoding::BIT_PACKED => {}
            _ => return Coding::Other,
        }
    }
    match (dictionary, plain) {
        (true, false) => Coding::Dictionary,
        (true, true) => Coding::Presumed,
        _ => Coding::Other,
    }
}

/// An integer chunk's smallest and largest values, from its statistics.
fn int_range(stats: &parquet::file::statistics::Statistics) -> Option<(i64, i64)> {
    use parquet::file::statistics::Statistics;
    match stats {
        Statistics::Int32(s) => Some((i64::from(*s.min_opt()?), i64::from(*s.max_opt()?))),
        Statistics::Int64(s) => Some((*s.min_opt()?, *s.max_opt()?)),
        _ => None,
    }
}

/// What is odd about where the footer puts a chunk, if anything: a negative offset or size
/// (the crate's `byte_range` would panic), or a dictionary page offset that is not before the
/// first data page (some writers set it to 0 with no dictionary; pyarrow then ignores it,
/// where the crate would read the chunk from there). Such a chunk goes to pyarrow.
fn odd_range(chunk: &parquet::file::metadata::ColumnChunkMetaData) -> Option<String> {
    let data = chunk.data_page_offset();
    if data < 0 || chunk.compressed_size() < 0 {
        return Some(format!(
            "a chunk at offset {data} of {} bytes",
            chunk.compressed_size()
        ));
    }
    match chunk.dictionary_page_offset() {
        Some(dict) if dict <= 0 || dict >= data => Some(format!(
            "a dictionary page offset of {dict}, with the data pages at {data}"
        )),
        _ => None,
    }
}

/// Why a chunk cannot be read as `kind`, if it cannot.
fn why_not(chunk: &parquet::file::metadata::ColumnChunkMetaData, kind: Kind) -> Option<String> {
    let descr = chunk.column_descr();
    if descr.max_rep_level() != 0 || descr.max_def_level() > 1 {
        return Some("a nested or repeated column".into());
    }
    let physical = chunk.column_type();
    let fits = match kind {
        Kind::Text => physical == Type::BYTE_ARRAY,
        Kind::Fixed(4) => matches!(physical, Type::INT32 | Type::FLOAT),
        Kind::Fixed(8) => matches!(physical, Type::INT64 | Type::DOUBLE),
        Kind::Fixed(_) => false,
    };
    if !fits {
        return Some(format!("physical type {physical} is not read as {kind:?}"));
    }
    if let Some(e) = chunk.encodings().find(|e| !READABLE.contains(e)) {
        return Some(format!("encoding {e}"));
    }
    None
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use parquet::file::metadata::ColumnChunkMetaData;
    use parquet::schema::parser::parse_message_type;
    use parquet::schema::types::SchemaDescriptor;

    use super::odd_range;

    fn chunk(data: i64, dictionary: Option<i64>, size: i64) -> ColumnChunkMetaData {
        let schema = parse_message_type("message m { optional binary code (UTF8); }").unwrap();
        let descr = SchemaDescriptor::new(Arc::new(schema));
        ColumnChunkMetaData::builder(descr.column(0))
            .set_data_page_offset(data)
            .set_dictionary_page_offset(dictionary)
            .set_total_compressed_size(size)
            .build()
            .unwrap()
    }

    #[test]
    fn odd_chunk_ranges_go_to_pyarrow() {
        assert_eq!(odd_range(&chunk(4, None, 100)), None);
        assert_eq!(odd_range(&chunk(200, Some(4), 300)), None);
        // a writer's 0 for "no dictionary", and a dictionary after the data: pyarrow's to read
        assert!(odd_range(&chunk(200, Some(0), 300)).is_some());
        assert!(odd_range(&chunk(200, Some(250), 300)).is_some());
        // negative offsets or sizes (the crate's byte_range would panic)
        assert!(odd_range(&chunk(-5, None, 100)).is_some());
        assert!(odd_range(&chunk(4, None, -1)).is_some());
    }
}
