//! The decoder against files written by the crate's own writer: dictionary and plain pages,
//! pages v1 and v2, nulls, several codecs; and damaged bytes as errors, never panics.

use std::sync::Arc;

use bytes::Bytes;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::data_type::{ByteArray, ByteArrayType, Int32Type};
use parquet::file::properties::{WriterProperties, WriterVersion};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

use super::{ChunkSource, ColumnOut, DecodeError, Decoder, Fetch, Kind};

/// Row `i`: code `C{i % 5}` (null every 7th row), number `i * 3` (null every 4th row).
fn code(i: usize) -> Option<String> {
    (i % 7 != 3).then(|| format!("C{}", i % 5))
}

fn number(i: usize) -> Option<i32> {
    (i % 4 != 1).then(|| i as i32 * 3)
}

fn write(rows: usize, group: usize, props: WriterProperties) -> Vec<u8> {
    let schema = Arc::new(
        parse_message_type(
            "message m { optional binary code (UTF8); optional int32 number; required int32 id; }",
        )
        .unwrap(),
    );
    let mut out = Vec::new();
    let mut w = SerializedFileWriter::new(&mut out, schema, Arc::new(props)).unwrap();
    for start in (0..rows).step_by(group) {
        let end = (start + group).min(rows);
        let mut rg = w.next_row_group().unwrap();
        let mut col = rg.next_column().unwrap().unwrap();
        let values: Vec<ByteArray> = (start..end)
            .filter_map(code)
            .map(|s| ByteArray::from(s.as_str()))
            .collect();
        let defs: Vec<i16> = (start..end).map(|i| i16::from(code(i).is_some())).collect();
        col.typed::<ByteArrayType>()
            .write_batch(&values, Some(&defs), None)
            .unwrap();
        col.close().unwrap();
        let mut col = rg.next_column().unwrap().unwrap();
        let values: Vec<i32> = (start..end).filter_map(number).collect();
        let defs: Vec<i16> = (start..end)
            .map(|i| i16::from(number(i).is_some()))
            .collect();
        col.typed::<Int32Type>()
            .write_batch(&values, Some(&defs), None)
            .unwrap();
        col.close().unwrap();
        let mut col = rg.next_column().unwrap().unwrap();
        let ids: Vec<i32> = (start..end).map(|i| i as i32).collect();
        col.typed::<Int32Type>()
            .write_batch(&ids, None, None)
            .unwrap();
        col.close().unwrap();
        rg.close().unwrap();
    }
    w.close().unwrap();
    out
}

fn footer(file: &[u8]) -> &[u8] {
    let n = file.len();
    let len = u32::from_le_bytes(file[n - 8..n - 4].try_into().unwrap()) as usize;
    &file[n - 8 - len..n - 8]
}

fn columns() -> Vec<(String, Kind)> {
    vec![
        ("code".into(), Kind::Text),
        ("number".into(), Kind::Fixed(4)),
        ("id".into(), Kind::Fixed(4)),
    ]
}

fn bit(out: &ColumnOut, j: usize) -> bool {
    out.validity[j >> 3] >> (j & 7) & 1 == 1
}

/// A chunk's bytes, whole or (`window` given) read that many bytes at a time by a fetch.
fn source(bytes: &[u8], window: Option<usize>) -> ChunkSource {
    let bytes = Bytes::copy_from_slice(bytes);
    match window {
        None => ChunkSource::Whole(bytes),
        Some(window) => {
            let fetch: Fetch = Arc::new(move |offset, length| {
                let start = (offset as usize).min(bytes.len());
                Ok(bytes.slice(start..(start + length).min(bytes.len())))
            });
            ChunkSource::Windowed(fetch, window)
        }
    }
}

/// Decode the whole file `max_rows` at a time and check every row.
fn check_file(file: &[u8], max_rows: usize) -> Result<usize, DecodeError> {
    check_file_windowed(file, max_rows, None)
}

/// [`check_file`], the chunks read `window` bytes at a time if given.
fn check_file_windowed(
    file: &[u8],
    max_rows: usize,
    window: Option<usize>,
) -> Result<usize, DecodeError> {
    let mut dec = Decoder::new(columns());
    let plan = dec.open(footer(file))?.row_groups.clone();
    let mut row = 0usize;
    for (g, rg) in plan.iter().enumerate() {
        if let Some(why) = rg.chunks.iter().find_map(|c| c.unsupported.clone()) {
            return Err(DecodeError::Unsupported(why));
        }
        let chunks = rg
            .chunks
            .iter()
            .map(|c| source(&file[c.start as usize..(c.start + c.len) as usize], window))
            .collect();
        dec.start(g, chunks).map_err(|e| e.error)?;
        loop {
            let n = dec.next(max_rows).map_err(|e| e.error)?;
            if n == 0 {
                break;
            }
            let outs = dec.take();
            let (offsets, data) = dec.dictionary(0).unwrap();
            for j in 0..n {
                let i = row + j;
                let id = i32::from_le_bytes(outs[0].values[j * 4..j * 4 + 4].try_into().unwrap());
                let text = bit(&outs[0], j).then(|| {
                    let k = id as usize;
                    String::from_utf8(data[offsets[k] as usize..offsets[k + 1] as usize].to_vec())
                        .unwrap()
                });
                assert_eq!(text, code(i), "row {i}");
                let v = i32::from_le_bytes(outs[1].values[j * 4..j * 4 + 4].try_into().unwrap());
                assert_eq!(bit(&outs[1], j).then_some(v), number(i), "row {i}");
                let v = i32::from_le_bytes(outs[2].values[j * 4..j * 4 + 4].try_into().unwrap());
                assert_eq!(v, i as i32);
            }
            row += n;
        }
    }
    Ok(row)
}

fn props(version: WriterVersion, dictionary: bool, codec: Compression) -> WriterProperties {
    WriterProperties::builder()
        .set_writer_version(version)
        .set_dictionary_enabled(dictionary)
        .set_compression(codec)
        .set_data_page_row_count_limit(97)
        .set_write_batch_size(31)
        .build()
}

#[test]
fn decodes_what_the_crate_writes() {
    let codecs = [
        Compression::UNCOMPRESSED,
        Compression::SNAPPY,
        Compression::ZSTD(ZstdLevel::default()),
        Compression::LZ4_RAW,
    ];
    for version in [WriterVersion::PARQUET_1_0, WriterVersion::PARQUET_2_0] {
        for dictionary in [true, false] {
            for codec in codecs {
                let file = write(1_000, 300, props(version, dictionary, codec));
                for max_rows in [1_000_000, 50, 1] {
                    // (v2 without a dictionary writes DELTA_BYTE_ARRAY text pages)
                    assert_eq!(
                        check_file(&file, max_rows),
                        Ok(1_000),
                        "{version:?} {codec:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn delta_encodings_are_decoded() {
    for text in [
        Encoding::DELTA_LENGTH_BYTE_ARRAY,
        Encoding::DELTA_BYTE_ARRAY,
    ] {
        let props = WriterProperties::builder()
            .set_dictionary_enabled(false)
            .set_column_encoding("code".into(), text)
            .set_column_encoding("number".into(), Encoding::DELTA_BINARY_PACKED)
            .set_column_encoding("id".into(), Encoding::DELTA_BINARY_PACKED)
            .set_data_page_row_count_limit(97)
            .set_write_batch_size(31)
            .build();
        let file = write(1_000, 300, props);
        for max_rows in [1_000_000, 50, 1] {
            assert_eq!(check_file(&file, max_rows), Ok(1_000), "{text:?}");
        }
    }
}

#[test]
fn a_byte_stream_split_chunk_is_planned_for_pyarrow() {
    let props = WriterProperties::builder()
        .set_dictionary_enabled(false)
        .set_column_encoding("number".into(), Encoding::BYTE_STREAM_SPLIT)
        .build();
    let file = write(100, 100, props);
    let mut dec = Decoder::new(columns());
    let plan = dec.open(footer(&file)).unwrap();
    assert!(plan.row_groups[0].chunks[1].unsupported.is_some());
}

#[test]
fn damaged_bytes_are_errors_not_panics() {
    let file = write(
        2_000,
        700,
        props(WriterVersion::PARQUET_1_0, true, Compression::SNAPPY),
    );
    let data_end = file.len() - 8 - footer(&file).len();
    let mut errors = 0;
    let mut state = 0x9E37_79B9_u32;
    for _ in 0..400 {
        let mut bad = file.clone();
        for _ in 0..3 {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let at = 4 + state as usize % (data_end - 4);
            bad[at] ^= 1 << (state >> 29);
        }
        for window in [None, Some(97)] {
            match check_file_lenient(&bad, window) {
                Ok(()) => {}
                Err(DecodeError::Corrupt(_) | DecodeError::Unsupported(_)) => errors += 1,
            }
        }
    }
    assert!(errors > 100, "{errors}");
}

#[test]
fn windowed_chunks_decode_as_whole_ones() {
    for version in [WriterVersion::PARQUET_1_0, WriterVersion::PARQUET_2_0] {
        for dictionary in [true, false] {
            let props = props(version, dictionary, Compression::SNAPPY);
            let file = write(3_000, 1_100, props);
            // a window smaller than a page header, one that splits pages, one of many pages
            for window in [1, 7, 100, 4_096, 1 << 20] {
                assert_eq!(
                    check_file_windowed(&file, 256, Some(window)),
                    Ok(3_000),
                    "{version:?} dictionary {dictionary} window {window}"
                );
            }
        }
    }
}

#[test]
fn a_windowed_chunk_cut_short_is_corrupt() {
    let file = write(
        2_000,
        2_000,
        props(WriterVersion::PARQUET_1_0, true, Compression::SNAPPY),
    );
    let mut dec = Decoder::new(columns());
    let plan = dec.open(footer(&file)).unwrap().row_groups.clone();
    let chunks = plan[0]
        .chunks
        .iter()
        .map(|c| {
            let (s, e) = (c.start as usize, (c.start + c.len) as usize);
            // the file ends half way through each chunk
            source(&file[s..s + (e - s) / 2], Some(64))
        })
        .collect();
    dec.start(0, chunks).unwrap();
    let result = loop {
        match dec.next(100) {
            Ok(0) => break Ok(()),
            Ok(_) => {}
            Err(e) => break Err(e.error),
        }
    };
    assert!(matches!(result, Err(DecodeError::Corrupt(_))), "{result:?}");
    // a fetch that fails says why
    let failing: Fetch = Arc::new(|_, _| Err("the disk is gone".into()));
    let chunks = (0..3)
        .map(|_| ChunkSource::Windowed(Arc::clone(&failing), 64))
        .collect();
    dec.start(0, chunks).unwrap();
    let err = dec.next(100).map_err(|e| e.error).unwrap_err();
    assert!(err.to_string().contains("the disk is gone"), "{err}");
}

/// Decode everything, not checking the values (damaged ones may decode to anything).
fn check_file_lenient(file: &[u8], window: Option<usize>) -> Result<(), DecodeError> {
    let mut dec = Decoder::new(columns());
    let plan = dec.open(footer(file))?.row_groups.clone();
    for (g, rg) in plan.iter().enumerate() {
        if rg.chunks.iter().any(|c| c.unsupported.is_some()) {
            continue;
        }
        let chunks = rg
            .chunks
            .iter()
            .map(|c| {
                let (s, e) = (c.start as usize, (c.start + c.len) as usize);
                source(file.get(s..e).unwrap_or_default(), window)
            })
            .collect();
        dec.start(g, chunks).map_err(|e| e.error)?;
        while dec.next(333).map_err(|e| e.error)? > 0 {}
    }
    Ok(())
}
