//! Parquet parts: a dataset's files as a [`Store`] hands them out (memory maps, locally),
//! their footers read and checked, and the columns of a row group decoded to Arrow for the
//! rows asked for. The one place the scan reads a file; [`super::pages`] reads text pages
//! from the same bytes.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray};
use arrow::record_batch::{RecordBatch, RecordBatchReader};
use bytes::Bytes;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection,
};
use parquet::arrow::ProjectionMask;
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData};
use parquet::file::reader::ChunkReader;
use parquet::file::statistics::Statistics;

use crate::ingest::schema::TIMESTAMP;
use crate::scan::error::{ScanError, ScanErrorKind};
use crate::store::{Blob, Store};

/// A Parquet file of a dataset, its bytes at hand and its footer read.
pub struct Part {
    /// Path relative to the dataset root, as hits refer to it.
    pub rel: String,
    blob: Blob,
    pub(super) meta: ArrowReaderMetadata,
}

impl Part {
    /// Part `rel` of the dataset in `store`.
    pub fn open(store: &dyn Store, rel: &str) -> Result<Part, ScanError> {
        let blob = store
            .read(rel)
            .map_err(|e| ScanError::at(rel, None, ScanErrorKind::Store(e)))?;
        Part::from_blob(blob, rel)
    }

    /// A part from bytes already read.
    pub fn from_blob(blob: Blob, rel: &str) -> Result<Part, ScanError> {
        let meta = read_footer(blob.bytes()).map_err(|kind| ScanError::at(rel, None, kind))?;
        Ok(Part {
            rel: rel.to_string(),
            blob,
            meta,
        })
    }

    /// The file's bytes.
    pub(super) fn data(&self) -> &Bytes {
        self.blob.bytes()
    }

    pub fn row_groups(&self) -> usize {
        self.meta.metadata().num_row_groups()
    }

    pub fn row_group_rows(&self, rg: usize) -> usize {
        self.meta.metadata().row_group(rg).num_rows().max(0) as usize
    }

    /// Lets the pages of row group `rg` leave this process's resident memory (they stay in
    /// the page cache): without it the resident size of a hunt grows with the data read.
    pub fn release(&self, rg: usize) {
        let Some(group) = self.meta.metadata().row_groups().get(rg) else {
            return;
        };
        let ranges = group.columns().iter().map(|c| c.byte_range());
        let start = ranges.clone().map(|(s, _)| s).min().unwrap_or(0) as usize;
        let end = ranges.map(|(s, l)| s + l).max().unwrap_or(0) as usize;
        self.blob.release(start..end);
    }

    pub fn row_group_bytes(&self, rg: usize) -> u64 {
        self.meta.metadata().row_group(rg).compressed_size().max(0) as u64
    }

    /// The top-level column names.
    pub fn columns(&self) -> Vec<String> {
        self.meta
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }

    /// Columns whose values are null in every row of this file, per the footer statistics.
    pub fn all_null_columns(&self) -> BTreeSet<String> {
        let md = self.meta.metadata();
        let descr = md.file_metadata().schema_descr();
        let mut all_null: HashMap<String, bool> = HashMap::new();
        for rg in md.row_groups() {
            for (i, col) in rg.columns().iter().enumerate() {
                let name = descr.column(i).path().parts()[0].clone();
                let null_here = col
                    .statistics()
                    .and_then(Statistics::null_count_opt)
                    .is_some_and(|n| n >= rg.num_rows() as u64 && rg.num_rows() > 0);
                *all_null.entry(name).or_insert(true) &= null_here;
            }
        }
        all_null
            .into_iter()
            .filter(|(_, all)| *all)
            .map(|(n, _)| n)
            .collect()
    }

    /// The `@timestamp` bounds of a row group from its statistics.
    pub fn time_bounds(&self, rg: usize) -> Option<(i64, i64)> {
        let md = self.meta.metadata();
        let descr = md.file_metadata().schema_descr();
        let i =
            (0..descr.num_columns()).find(|&i| descr.column(i).path().parts()[0] == TIMESTAMP)?;
        match md.row_group(rg).column(i).statistics()? {
            Statistics::Int64(s) => Some((*s.min_opt()?, *s.max_opt()?)),
            _ => None,
        }
    }

    /// The leaf index of top-level column `name` when it is a single, unnested leaf.
    pub(super) fn flat_leaf(&self, name: &str) -> Option<usize> {
        let descr = self.meta.parquet_schema();
        (0..descr.num_columns()).find(|&i| {
            let column = descr.column(i);
            let parts = column.path().parts();
            parts.len() == 1 && parts[0] == name
        })
    }

    /// Decodes `names` (those this file has) of row group `rg`, for the selected rows only.
    pub(super) fn read(
        &self,
        rg: usize,
        names: &[&str],
        selection: Option<&[usize]>,
    ) -> Result<HashMap<String, ArrayRef>, ScanErrorKind> {
        let descr = self.meta.parquet_schema();
        let leaves: Vec<usize> = (0..descr.num_columns())
            .filter(|&i| names.contains(&descr.column(i).path().parts()[0].as_str()))
            .collect();
        if leaves.is_empty() {
            return Ok(HashMap::new());
        }
        let rows = self.row_group_rows(rg);
        let mut builder = ParquetRecordBatchReaderBuilder::new_with_metadata(
            self.blob.bytes().clone(),
            self.meta.clone(),
        )
        .with_row_groups(vec![rg])
        .with_projection(ProjectionMask::leaves(descr, leaves))
        .with_batch_size(rows.max(1));
        if let Some(selected) = selection {
            let mut keep = vec![false; rows];
            for &r in selected {
                keep[r] = true;
            }
            let filter = BooleanArray::from(keep);
            builder = builder.with_row_selection(RowSelection::from_filters(&[filter]));
        }
        let reader = builder.build()?;
        let schema = reader.schema();
        let arrow = |source| ScanErrorKind::Arrow {
            column: None,
            source,
        };
        let batches = reader
            .collect::<Result<Vec<RecordBatch>, _>>()
            .map_err(arrow)?;
        let batch = arrow::compute::concat_batches(&schema, &batches).map_err(arrow)?;
        Ok(schema
            .fields()
            .iter()
            .zip(batch.columns())
            .map(|(f, a)| (f.name().clone(), Arc::clone(a)))
            .collect())
    }
}

/// Reads the footer (and page index, when there is one) of a Parquet file, with its byte
/// ranges checked ([`check_byte_ranges`]). The Arrow and Parquet readers panic on some
/// damaged footers (a schema with an impossible type, say) rather than return an error;
/// such a panic is caught here and becomes the error.
pub fn read_footer<R: ChunkReader>(reader: &R) -> Result<ArrowReaderMetadata, ScanErrorKind> {
    let load = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        ArrowReaderMetadata::load(
            reader,
            ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional),
        )
    }));
    let meta = match load {
        Ok(Ok(meta)) => meta,
        Ok(Err(e)) => return Err(ScanErrorKind::Footer(e)),
        Err(_) => return Err(ScanErrorKind::FooterPanicked),
    };
    check_byte_ranges(meta.metadata(), reader.len())?;
    Ok(meta)
}

/// Checks that every column chunk the footer describes lies inside the file: damaged
/// footers can hold negative or overlong offsets, on which the Parquet reader asserts
/// (panics) instead of returning an error.
pub fn check_byte_ranges(meta: &ParquetMetaData, file_len: u64) -> Result<(), ScanErrorKind> {
    for (rg, group) in meta.row_groups().iter().enumerate() {
        for (c, column) in group.columns().iter().enumerate() {
            let start = column
                .dictionary_page_offset()
                .unwrap_or(column.data_page_offset());
            let len = column.compressed_size();
            let inside = start >= 0
                && len >= 0
                && (start as u64)
                    .checked_add(len as u64)
                    .is_some_and(|end| end <= file_len);
            if !inside {
                return Err(ScanErrorKind::ChunkOutsideFile {
                    row_group: rg,
                    column: c,
                    start,
                    len,
                    file_len,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::StringArray;
    use parquet::file::metadata::{ColumnChunkMetaData, ParquetMetaDataBuilder, RowGroupMetaData};

    #[test]
    fn footers_whose_column_chunks_lie_outside_the_file_are_refused() {
        // Found by fuzzing: the Parquet reader asserts on a negative chunk offset.
        let array = Arc::new(StringArray::from(vec!["x"])) as ArrayRef;
        let batch = RecordBatch::try_from_iter([("a", array)]).expect("batch");
        let mut buf = Vec::new();
        let mut w =
            parquet::arrow::ArrowWriter::try_new(&mut buf, batch.schema(), None).expect("writer");
        w.write(&batch).expect("write");
        w.close().expect("close");
        let bytes = Bytes::from(buf);
        let len = bytes.len() as i64;
        let meta = read_footer(&bytes).expect("a whole file");
        let md = meta.metadata();
        let descr = md.file_metadata().schema_descr_ptr();
        for (offset, size) in [(-3, 10), (4, -1), (4, len), (i64::MAX, 1)] {
            let column = ColumnChunkMetaData::builder(descr.column(0))
                .set_data_page_offset(offset)
                .set_total_compressed_size(size)
                .build()
                .expect("column");
            let group = RowGroupMetaData::builder(Arc::clone(&descr))
                .set_num_rows(1)
                .set_column_metadata(vec![column])
                .build()
                .expect("row group");
            let damaged = ParquetMetaDataBuilder::new(md.file_metadata().clone())
                .add_row_group(group)
                .build();
            let e = check_byte_ranges(&damaged, len as u64).expect_err("outside the file");
            let e = e.to_string();
            assert!(e.contains("row group 0, column 0"), "{e}");
        }
    }
}
