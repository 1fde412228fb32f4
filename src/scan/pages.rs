//! Text values read straight from a column chunk's decompressed pages.
//!
//! Decoding a big text column into an Arrow string array copies every value into a growing
//! buffer, which costs about as much again as decompressing it. For the text matcher the
//! values can stay where decompression put them: this module walks the pages of a flat,
//! optional or required `BYTE_ARRAY` column chunk (data pages v1 and v2, `PLAIN` and
//! dictionary encodings), decodes the definition levels and dictionary indices (the RLE /
//! bit-packing hybrid of the Parquet format) and hands each value to the caller with its row
//! number and, for dictionary-encoded values, the dictionary index, so that a value repeated
//! on many rows is matched once. Pages whose rows the scan does not need (decided by other
//! columns, or outside `--from`/`--to`) are skipped without being decompressed, by their row
//! spans in the offset index. Other layouts are left to the Arrow reader.

use std::sync::Arc;

use bytes::Bytes;
use parquet::basic::{Encoding, Type as PhysicalType};
use parquet::column::page::Page;
use parquet::file::metadata::ParquetMetaData;
use parquet::file::properties::ReaderProperties;
use parquet::file::reader::RowGroupReader;
use parquet::file::serialized_reader::SerializedRowGroupReader;

/// Receives each value: its row in the row group, its bytes, and its dictionary index when
/// it came from the dictionary.
pub type ValueSink<'a> = dyn FnMut(usize, &[u8], Option<u32>) + 'a;

/// Whether leaf column `col` of `meta` can be read by [`for_each_value`] in row group `rg`.
pub fn supported(meta: &ParquetMetaData, rg: usize, col: usize) -> bool {
    let descr = meta.file_metadata().schema_descr().column(col);
    let chunk = meta.row_group(rg).column(col);
    descr.physical_type() == PhysicalType::BYTE_ARRAY
        && descr.max_rep_level() == 0
        && descr.max_def_level() <= 1
        && chunk.encodings().all(|e| {
            matches!(
                e,
                Encoding::PLAIN
                    | Encoding::RLE
                    | Encoding::RLE_DICTIONARY
                    | Encoding::PLAIN_DICTIONARY
            )
        })
}

/// Why a column chunk's pages could not be read.
#[derive(Debug)]
pub enum PageError {
    /// The Parquet reader could not read or decompress a page.
    Parquet(parquet::errors::ParquetError),
    /// Bytes that contradict the page's own header: what ran past what.
    Damaged(&'static str),
    /// A bit width no RLE / bit-packed run can have.
    BitWidth(u8),
    /// An encoding [`supported`] does not admit, on a page of a chunk that claimed otherwise.
    Encoding(Encoding),
}

impl std::fmt::Display for PageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PageError::Parquet(e) => write!(f, "{e}"),
            PageError::Damaged(what) => write!(f, "damaged page: {what}"),
            PageError::BitWidth(w) => write!(f, "damaged page: a bit width of {w}"),
            PageError::Encoding(e) => write!(f, "unexpected {e} encoding of a text page"),
        }
    }
}

impl std::error::Error for PageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PageError::Parquet(e) => Some(e),
            _ => None,
        }
    }
}

impl From<parquet::errors::ParquetError> for PageError {
    fn from(e: parquet::errors::ParquetError) -> Self {
        PageError::Parquet(e)
    }
}

/// Calls `f(row, bytes, dictionary_index)` for every non-null value of leaf column `col` in
/// row group `rg`, in row order. The column must be [`supported`]. A data page whose rows
/// `wanted(first, end)` declines is skipped undecompressed when the offset index gives its
/// row span (values of such pages may not reach `f`).
pub fn for_each_value(
    data: &Bytes,
    meta: &ParquetMetaData,
    rg: usize,
    col: usize,
    wanted: &dyn Fn(usize, usize) -> bool,
    f: &mut ValueSink,
) -> Result<(), PageError> {
    let nullable = meta
        .file_metadata()
        .schema_descr()
        .column(col)
        .max_def_level()
        == 1;
    let offsets = meta
        .offset_index()
        .and_then(|o| o.get(rg))
        .map(Vec::as_slice);
    let reader = SerializedRowGroupReader::new(
        Arc::new(data.clone()),
        meta.row_group(rg),
        offsets,
        Arc::new(ReaderProperties::builder().build()),
    )?;
    let mut pages = reader.get_column_page_reader(col)?;
    let mut dictionary: Option<Dictionary> = None;
    let mut levels = Vec::new();
    let mut indices = Vec::new();
    let mut row = 0usize;
    while let Some(next) = pages.peek_next_page()? {
        if let (false, Some(n)) = (next.is_dict, next.num_rows) {
            if !wanted(row, row + n) {
                pages.skip_next_page()?;
                row += n;
                continue;
            }
        }
        let Some(page) = pages.get_next_page()? else {
            break;
        };
        let Some(page) = data_page(page, nullable, &mut levels, &mut dictionary)? else {
            continue;
        };
        let present = match page.defs {
            true => levels.iter().filter(|&&l| l == 1).count(),
            false => page.count,
        };
        let first = row;
        let mut rows = (row..row + page.count).filter(|&r| !page.defs || levels[r - first] == 1);
        match page.encoding {
            Encoding::PLAIN => plain_values(&page.values, present, &mut rows, f)?,
            Encoding::RLE_DICTIONARY | Encoding::PLAIN_DICTIONARY => {
                let dictionary = dictionary.as_ref().ok_or(PageError::Damaged(
                    "a dictionary-encoded page without a dictionary",
                ))?;
                let values = &page.values;
                let width = *values
                    .first()
                    .ok_or(PageError::Damaged("an empty dictionary-encoded page"))?;
                decode_hybrid(&values[1..], width, present, &mut indices)?;
                dictionary_values(dictionary, &indices, &mut rows, f)?;
            }
            other => return Err(PageError::Encoding(other)),
        }
        row += page.count;
    }
    Ok(())
}

/// A dictionary page's bytes and the span of each of its values.
type Dictionary = (Bytes, Vec<(usize, usize)>);

/// A data page's values, with its definition levels decoded into the caller's buffer.
struct DataPage {
    values: Bytes,
    encoding: Encoding,
    /// Values and nulls on the page.
    count: usize,
    /// Whether the levels say which rows are null.
    defs: bool,
}

/// The values of `page` with its levels in `levels`; `None` for a dictionary page, which
/// becomes `dictionary`.
fn data_page(
    page: Page,
    nullable: bool,
    levels: &mut Vec<u32>,
    dictionary: &mut Option<Dictionary>,
) -> Result<Option<DataPage>, PageError> {
    const LEVELS_PAST: PageError = PageError::Damaged("definition levels past the page");
    match page {
        Page::DictionaryPage {
            buf, num_values, ..
        } => {
            let spans = plain_spans(&buf, num_values as usize)?;
            *dictionary = Some((buf, spans));
            Ok(None)
        }
        Page::DataPage {
            buf,
            num_values,
            encoding,
            ..
        } => {
            let count = num_values as usize;
            if !nullable {
                return Ok(Some(DataPage {
                    values: buf,
                    encoding,
                    count,
                    defs: false,
                }));
            }
            let len = read_u32(&buf, 0)? as usize;
            let defs = buf.get(4..4 + len).ok_or(LEVELS_PAST)?;
            decode_hybrid(defs, 1, count, levels)?;
            Ok(Some(DataPage {
                values: buf.slice(4 + len..),
                encoding,
                count,
                defs: true,
            }))
        }
        Page::DataPageV2 {
            buf,
            num_values,
            encoding,
            def_levels_byte_len,
            rep_levels_byte_len,
            ..
        } => {
            let count = num_values as usize;
            let start = rep_levels_byte_len as usize;
            let end = start + def_levels_byte_len as usize;
            if nullable {
                let defs = buf.get(start..end).ok_or(LEVELS_PAST)?;
                decode_hybrid(defs, 1, count, levels)?;
            }
            if end > buf.len() {
                return Err(PageError::Damaged("levels past the page"));
            }
            Ok(Some(DataPage {
                values: buf.slice(end..),
                encoding,
                count,
                defs: nullable,
            }))
        }
    }
}

/// Hands `present` PLAIN byte arrays to `f`, one per row of `rows`.
fn plain_values(
    values: &[u8],
    present: usize,
    rows: &mut impl Iterator<Item = usize>,
    f: &mut ValueSink,
) -> Result<(), PageError> {
    let mut at = 0usize;
    for _ in 0..present {
        let len = read_u32(values, at)? as usize;
        let value = values
            .get(at + 4..at + 4 + len)
            .ok_or(PageError::Damaged("a value runs past the page"))?;
        at += 4 + len;
        if let Some(r) = rows.next() {
            f(r, value, None);
        }
    }
    Ok(())
}

/// Hands the dictionary value of each of `indices` to `f`, one per row of `rows`.
fn dictionary_values(
    (dict, spans): &Dictionary,
    indices: &[u32],
    rows: &mut impl Iterator<Item = usize>,
    f: &mut ValueSink,
) -> Result<(), PageError> {
    for &i in indices {
        let &(start, end) = spans
            .get(i as usize)
            .ok_or(PageError::Damaged("a dictionary index past the dictionary"))?;
        if let Some(r) = rows.next() {
            f(r, &dict[start..end], Some(i));
        }
    }
    Ok(())
}

fn read_u32(buf: &[u8], at: usize) -> Result<u32, PageError> {
    let b = buf
        .get(at..at + 4)
        .ok_or(PageError::Damaged("a length past the page"))?;
    Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Byte ranges of `count` PLAIN byte arrays.
fn plain_spans(buf: &[u8], count: usize) -> Result<Vec<(usize, usize)>, PageError> {
    let mut spans = Vec::with_capacity(count);
    let mut at = 0usize;
    for _ in 0..count {
        let len = read_u32(buf, at)? as usize;
        if at + 4 + len > buf.len() {
            return Err(PageError::Damaged("a dictionary value runs past the page"));
        }
        spans.push((at + 4, at + 4 + len));
        at += 4 + len;
    }
    Ok(spans)
}

/// Decodes `count` values of the RLE / bit-packing hybrid encoding, `width` bits each.
pub fn decode_hybrid(
    data: &[u8],
    width: u8,
    count: usize,
    out: &mut Vec<u32>,
) -> Result<(), PageError> {
    out.clear();
    if width > 32 {
        return Err(PageError::BitWidth(width));
    }
    let width = width as usize;
    let mut at = 0usize;
    while out.len() < count {
        let (header, used) = uleb128(data.get(at..).unwrap_or(&[]))?;
        at += used;
        if header & 1 == 0 {
            let run = (header >> 1) as usize;
            let bytes = width.div_ceil(8);
            let raw = data
                .get(at..at + bytes)
                .ok_or(PageError::Damaged("an RLE run past the data"))?;
            at += bytes;
            let mut value = 0u32;
            for (i, b) in raw.iter().enumerate() {
                value |= u32::from(*b) << (8 * i);
            }
            let take = run.min(count - out.len());
            out.extend(std::iter::repeat_n(value, take));
        } else {
            let values = (header >> 1) as usize * 8;
            let bytes = values * width / 8;
            let packed = data
                .get(at..at + bytes)
                .ok_or(PageError::Damaged("bit-packed values past the data"))?;
            at += bytes;
            let mask = if width == 32 {
                u64::MAX
            } else {
                (1u64 << width) - 1
            };
            for i in 0..values.min(count - out.len()) {
                let bit = i * width;
                let mut word = 0u64;
                for (k, b) in packed.iter().skip(bit / 8).take(5).enumerate() {
                    word |= u64::from(*b) << (8 * k);
                }
                out.push(((word >> (bit % 8)) & mask) as u32);
            }
        }
    }
    Ok(())
}

fn uleb128(data: &[u8]) -> Result<(u64, usize), PageError> {
    let mut value = 0u64;
    for (i, b) in data.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    Err(PageError::Damaged("a run header past the data"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, StringArray};
    use arrow::record_batch::RecordBatch;
    use parquet::arrow::arrow_reader::ArrowReaderMetadata;
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::{WriterProperties, WriterVersion};

    /// Every row's value as the pages give it back, for a file written with `props`.
    fn round_trip(values: &[Option<String>], props: WriterProperties) -> Vec<Option<String>> {
        round_trip_rows(values, props, &|_| true)
    }

    /// The same, reading only pages that hold a row `keep` accepts.
    fn round_trip_rows(
        values: &[Option<String>],
        props: WriterProperties,
        keep: &dyn Fn(usize) -> bool,
    ) -> Vec<Option<String>> {
        let array: ArrayRef = Arc::new(StringArray::from(values.to_vec()));
        let batch = RecordBatch::try_from_iter([("t", array)]).expect("batch");
        let mut buf = Vec::new();
        let mut w = ArrowWriter::try_new(&mut buf, batch.schema(), Some(props)).expect("writer");
        w.write(&batch).expect("write");
        w.close().expect("close");
        let data = Bytes::from(buf);
        let options = parquet::arrow::arrow_reader::ArrowReaderOptions::new()
            .with_page_index_policy(parquet::file::metadata::PageIndexPolicy::Optional);
        let meta = ArrowReaderMetadata::load(&data, options).expect("meta");
        let md = meta.metadata();
        let mut out = vec![None; values.len()];
        let mut first = 0;
        for rg in 0..md.num_row_groups() {
            assert!(
                supported(md, rg, 0),
                "{:?}",
                md.row_group(rg).column(0).encodings().collect::<Vec<_>>()
            );
            let mut seen: std::collections::HashMap<u32, String> = Default::default();
            let wanted = |start: usize, end: usize| (first + start..first + end).any(keep);
            for_each_value(&data, md, rg, 0, &wanted, &mut |row, bytes, dict| {
                let text = String::from_utf8(bytes.to_vec()).expect("utf-8");
                if let Some(i) = dict {
                    assert_eq!(seen.entry(i).or_insert_with(|| text.clone()), &text);
                }
                out[first + row] = Some(text);
            })
            .expect("pages");
            first += md.row_group(rg).num_rows() as usize;
        }
        out
    }

    #[test]
    fn page_values_land_on_their_rows_in_every_layout() {
        let values: Vec<Option<String>> = (0..5000)
            .map(|i| match i % 7 {
                0 => None,
                1 | 2 => Some(format!("popular {}", i % 3)),
                _ => Some(format!("value {i} {}", "x".repeat(i % 50))),
            })
            .collect();
        // (writer version, dictionary, dictionary page limit): v1 with dictionary fallback to
        // PLAIN pages, v1 PLAIN only, v2 pages all dictionary-encoded.
        for (version, dictionary, limit) in [
            (WriterVersion::PARQUET_1_0, true, 4096),
            (WriterVersion::PARQUET_1_0, false, 4096),
            (WriterVersion::PARQUET_2_0, true, 1 << 20),
        ] {
            let props = WriterProperties::builder()
                .set_writer_version(version)
                .set_dictionary_enabled(dictionary)
                .set_dictionary_page_size_limit(limit)
                .set_data_page_size_limit(2048)
                .set_max_row_group_row_count(Some(1500))
                .build();
            assert_eq!(
                round_trip(&values, props),
                values,
                "{version:?} dictionary {dictionary}"
            );
        }
    }

    #[test]
    fn pages_without_a_wanted_row_are_skipped_and_the_rest_keep_their_rows() {
        let values: Vec<Option<String>> = (0..5000)
            .map(|i| (i % 11 != 0).then(|| format!("value {i} {}", "y".repeat(i % 40))))
            .collect();
        let keep = |row: usize| (2100..2200).contains(&row) || row == 4321;
        // v1 PLAIN pages; v2 pages all dictionary-encoded (v2 without a dictionary would be
        // DELTA_BYTE_ARRAY, which the Arrow reader takes).
        for version in [WriterVersion::PARQUET_1_0, WriterVersion::PARQUET_2_0] {
            let props = WriterProperties::builder()
                .set_writer_version(version)
                .set_dictionary_enabled(version == WriterVersion::PARQUET_2_0)
                .set_dictionary_page_size_limit(1 << 20)
                .set_data_page_size_limit(2048)
                .set_data_page_row_count_limit(128)
                .set_write_batch_size(64)
                .set_max_row_group_row_count(Some(1500))
                .build();
            let out = round_trip_rows(&values, props, &keep);
            for (row, got) in out.iter().enumerate() {
                if keep(row) || got.is_some() {
                    assert_eq!(got, &values[row], "{version:?} row {row}");
                }
            }
            let read = out.iter().filter(|v| v.is_some()).count();
            assert!(
                read < 1000,
                "{version:?}: {read} values read for 101 wanted rows"
            );
        }
    }

    #[test]
    fn hybrid_runs_and_bit_packing_decode() {
        let mut out = Vec::new();
        // RLE: 5 × value 3 (width 2), then one bit-packed group of 8 values 0..7 (width 3).
        let data = [0x0a, 0x03, 0x03, 0b1000_1000, 0b1100_0110, 0b1111_1010];
        decode_hybrid(&data, 3, 13, &mut out).expect("decode");
        assert_eq!(out, vec![3, 3, 3, 3, 3, 0, 1, 2, 3, 4, 5, 6, 7]);
        assert!(decode_hybrid(&[0x03], 3, 8, &mut out).is_err(), "truncated");
        assert!(
            decode_hybrid(&[0x80], 1, 1, &mut out).is_err(),
            "unfinished header"
        );
    }
}
