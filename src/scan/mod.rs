//! The scan: a [`Plan`] evaluated over one (file, row group) unit at a time.
//!
//! A unit is decoded in two phases. First the cheap columns: `@timestamp` (for `--from`/
//! `--to`) and every column whose leaves are keyword, numeric or date tests. Each leaf becomes
//! one bit per row; a column's distinct values are tested once each (a value repeated on a
//! thousand rows costs one test). The versions are then evaluated in three-valued logic with
//! the big text columns still unknown: rows every version has decided, true or false, never
//! decode those columns. The big columns are decoded only for the remaining rows (a Parquet
//! row selection, which skips whole pages where it can) and matched by their
//! [`TextMatcher`]. Last, the versions are evaluated exactly, and the triage fields are
//! decoded for the hit rows alone.
//!
//! Files are memory-mapped once and shared by the units of every thread.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, ListArray, StringArray,
    TimestampMicrosecondArray,
};
use arrow::buffer::BooleanBuffer;
use arrow::record_batch::{RecordBatch, RecordBatchReader};
use bytes::Bytes;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection,
};
use parquet::arrow::ProjectionMask;
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData};
use parquet::file::reader::ChunkReader;
use parquet::file::statistics::Statistics;

use crate::ingest::doc::format_float;
use crate::ingest::format_micros;
use crate::ingest::schema::{self, TIMESTAMP};
use crate::plan::text::{Hits, Scratch, TextMatcher};
use crate::plan::{Expr, Leaf, Plan, Test, ValueForms};

pub mod memo;
pub mod pages;
pub mod script;

use memo::{TextMemo, ValueKey};
use script::ScriptSummary;

/// A Parquet file of a dataset, mapped into memory with its footer read.
pub struct Part {
    /// Path relative to the dataset root, as hits refer to it.
    pub rel: String,
    map: Arc<memmap2::Mmap>,
    data: Bytes,
    meta: ArrowReaderMetadata,
}

/// The mapping as the byte source of [`Bytes`] slices, shared with the [`Part`].
struct SharedMap(Arc<memmap2::Mmap>);

impl AsRef<[u8]> for SharedMap {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Part {
    pub fn open(root: &Path, rel: &str) -> Result<Part, String> {
        let path = root.join(rel);
        let file = std::fs::File::open(&path).map_err(|e| format!("cannot open: {e}"))?;
        // SAFETY: parts are written once (staged, then renamed) and never modified in place.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| format!("cannot map: {e}"))?;
        let map = Arc::new(map);
        let data = Bytes::from_owner(SharedMap(Arc::clone(&map)));
        let meta = read_footer(&data)?;
        Ok(Part {
            rel: rel.to_string(),
            map,
            data,
            meta,
        })
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
        if start < end && end <= self.map.len() {
            // SAFETY: the mapping is shared and read-only, so dropped pages are read again
            // from the file on the next access (by any thread) with the same contents.
            let _ = unsafe {
                self.map.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    start,
                    end - start,
                )
            };
        }
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
    fn flat_leaf(&self, name: &str) -> Option<usize> {
        let descr = self.meta.parquet_schema();
        (0..descr.num_columns()).find(|&i| {
            let column = descr.column(i);
            let parts = column.path().parts();
            parts.len() == 1 && parts[0] == name
        })
    }

    /// Decodes `names` (those this file has) of row group `rg`, for the selected rows only.
    fn read(
        &self,
        rg: usize,
        names: &[&str],
        selection: Option<&[usize]>,
    ) -> Result<HashMap<String, ArrayRef>, String> {
        let descr = self.meta.parquet_schema();
        let leaves: Vec<usize> = (0..descr.num_columns())
            .filter(|&i| names.contains(&descr.column(i).path().parts()[0].as_str()))
            .collect();
        if leaves.is_empty() {
            return Ok(HashMap::new());
        }
        let rows = self.row_group_rows(rg);
        let mut builder = ParquetRecordBatchReaderBuilder::new_with_metadata(
            self.data.clone(),
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
        let reader = builder.build().map_err(|e| e.to_string())?;
        let schema = reader.schema();
        let batches = reader
            .collect::<Result<Vec<RecordBatch>, _>>()
            .map_err(|e| e.to_string())?;
        let batch = arrow::compute::concat_batches(&schema, &batches).map_err(|e| e.to_string())?;
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
pub fn read_footer<R: ChunkReader>(reader: &R) -> Result<ArrowReaderMetadata, String> {
    let load = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        ArrowReaderMetadata::load(
            reader,
            ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional),
        )
    }));
    let meta = match load {
        Ok(Ok(meta)) => meta,
        Ok(Err(e)) => return Err(format!("not a readable Parquet file: {e}")),
        Err(_) => return Err("not a readable Parquet file: its footer is damaged".into()),
    };
    check_byte_ranges(meta.metadata(), reader.len())
        .map_err(|e| format!("not a readable Parquet file: {e}"))?;
    Ok(meta)
}

/// Checks that every column chunk the footer describes lies inside the file: damaged
/// footers can hold negative or overlong offsets, on which the Parquet reader asserts
/// (panics) instead of returning an error.
pub fn check_byte_ranges(meta: &ParquetMetaData, file_len: u64) -> Result<(), String> {
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
                return Err(format!(
                    "row group {rg}, column {c}: bytes {start}..+{len} are not inside the \
                     file ({file_len} bytes)"
                ));
            }
        }
    }
    Ok(())
}

/// `[from, to)` in microseconds since the epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TimeRange {
    pub from_us: Option<i64>,
    pub to_us: Option<i64>,
}

impl TimeRange {
    pub fn contains(&self, us: i64) -> bool {
        self.from_us.is_none_or(|f| us >= f) && self.to_us.is_none_or(|t| us < t)
    }

    /// Whether `[lo, hi]` can hold a time of the range.
    pub fn overlaps(&self, lo: i64, hi: i64) -> bool {
        self.from_us.is_none_or(|f| hi >= f) && self.to_us.is_none_or(|t| lo < t)
    }

    pub fn is_all(&self) -> bool {
        self.from_us.is_none() && self.to_us.is_none()
    }
}

/// One version matching one event.
#[derive(Debug, Clone, PartialEq)]
pub struct RowHit {
    /// Index of the version in the plan.
    pub version: usize,
    /// Row number in the file.
    pub row: u64,
    pub timestamp_us: i64,
    /// The [`Scanner`]'s hit fields, in order.
    pub fields: Vec<Option<String>>,
    /// Labels of the version's non-negated leaves true on this row.
    pub matched: Vec<String>,
}

/// What is evaluated on one column.
struct ColumnPlan {
    name: String,
    /// Leaves tested value by value.
    leaves: Vec<usize>,
    /// Leaves of analyzed text, in matcher order.
    text: Vec<usize>,
    matcher: Option<TextMatcher>,
    /// What the matcher found in values seen before, in any unit.
    memo: TextMemo,
    /// Decoded in the second phase, for undecided rows only.
    late: bool,
}

/// What a unit holds for the hunt.
#[derive(Debug, Default)]
pub struct UnitHits {
    /// Every hit of every version, in row order.
    pub hits: Vec<RowHit>,
    /// With [`Scanner::summarise_scripts`]: the script of each row hit, by row number in
    /// the file (rows without the column or a value have none).
    pub scripts: Vec<(u64, ScriptSummary)>,
}

/// A plan ready to scan units.
pub struct Scanner<'a> {
    plan: &'a Plan,
    /// The column whose value of each hit row is summarised, if asked.
    script_column: Option<String>,
    /// The columns read for every hit row (the hit table's triage fields).
    hit_fields: Vec<String>,
    columns: Vec<ColumnPlan>,
    /// Versions that can fire, grouped by identical programs (consecutive versions of a
    /// rule often leave the query unchanged): each group is evaluated once.
    live: Vec<Vec<usize>>,
}

impl<'a> Scanner<'a> {
    /// The scanner of `plan`, whose hits carry the values of `hit_fields` (the hit table's
    /// triage fields).
    pub fn new(plan: &'a Plan, hit_fields: &[&str]) -> Result<Scanner<'a>, String> {
        let mut columns = Vec::new();
        for (name, ids) in plan.leaves_by_column() {
            let (text, leaves): (Vec<usize>, Vec<usize>) = ids
                .iter()
                .partition(|&&id| matches!(plan.leaves[id].test, Test::Text { .. }));
            let analyzer = text.iter().find_map(|&id| match &plan.leaves[id].test {
                Test::Text { analyzer, .. } => Some(*analyzer),
                _ => None,
            });
            let values: Vec<_> = text
                .iter()
                .filter_map(|&id| match &plan.leaves[id].test {
                    Test::Text { query, .. } => Some(query.clone()),
                    _ => None,
                })
                .collect();
            let matcher = match analyzer {
                Some(analyzer) => Some(TextMatcher::new(analyzer, &values)?),
                None => None,
            };
            columns.push(ColumnPlan {
                name: name.to_string(),
                late: !text.is_empty() || schema::is_big_text(name),
                leaves,
                memo: TextMemo::with_capacity(if matcher.is_some() {
                    memo::MEMO_ENTRIES
                } else {
                    0
                }),
                text,
                matcher,
            });
        }
        let mut groups: Vec<Vec<usize>> = Vec::new();
        let mut by_program: HashMap<String, usize> = HashMap::new();
        for v in (0..plan.versions.len()).filter(|&v| plan.versions[v].cannot_fire.is_none()) {
            let key = format!("{:?}", plan.versions[v].expr);
            match by_program.get(&key) {
                Some(&g) => groups[g].push(v),
                None => {
                    by_program.insert(key, groups.len());
                    groups.push(vec![v]);
                }
            }
        }
        Ok(Scanner {
            plan,
            script_column: None,
            hit_fields: hit_fields.iter().map(|f| f.to_string()).collect(),
            columns,
            live: groups,
        })
    }

    /// Summarises the `column` value (the script) of every hit row as well.
    pub fn summarise_scripts(&mut self, column: &str) {
        self.script_column = Some(column.to_string());
    }

    /// Whether any version can fire at all.
    pub fn has_work(&self) -> bool {
        !self.live.is_empty()
    }

    /// Every hit of every version in row group `rg` of `part`, in row order.
    pub fn scan(
        &self,
        part: &Part,
        rg: usize,
        range: &TimeRange,
        scratch: &mut Scratch,
    ) -> Result<UnitHits, String> {
        let rows = part.row_group_rows(rg);
        if rows == 0 || self.live.is_empty() {
            return Ok(UnitHits::default());
        }
        let mut bits: Vec<Option<BooleanBuffer>> = vec![None; self.plan.leaves.len()];
        // Phase 1: time and the cheap columns.
        let mut early: Vec<&str> = self
            .columns
            .iter()
            .filter(|c| !c.late)
            .map(|c| c.name.as_str())
            .collect();
        early.push(TIMESTAMP);
        let arrays = part.read(rg, &early, None)?;
        let timestamps = arrays
            .get(TIMESTAMP)
            .map(|a| plain(a.as_ref()).unwrap_or_else(|| Arc::clone(a)))
            .and_then(|a| {
                a.as_any()
                    .downcast_ref::<TimestampMicrosecondArray>()
                    .cloned()
            })
            .ok_or("no @timestamp column of a timestamp type")?;
        for (name, array) in &arrays {
            matchable(name, array.as_ref())?;
        }
        let in_range = if range.is_all() {
            BooleanBuffer::new_set(rows)
        } else {
            BooleanBuffer::collect_bool(rows, |r| {
                timestamps.is_valid(r) && range.contains(timestamps.value(r))
            })
        };
        if in_range.count_set_bits() == 0 {
            return Ok(UnitHits::default());
        }
        for column in self.columns.iter().filter(|c| !c.late) {
            if let Some(array) = arrays.get(&column.name) {
                self.eval_leaves(column, array.as_ref(), None, rows, &mut bits);
            }
        }
        // Which rows still depend on a late column?
        let late_leaves: BTreeSet<usize> = self
            .columns
            .iter()
            .filter(|c| c.late)
            .flat_map(|c| c.leaves.iter().chain(&c.text).copied())
            .collect();
        if !late_leaves.is_empty() {
            let mut undecided = BooleanBuffer::new_unset(rows);
            let wanted = in_range.count_set_bits();
            for group in &self.live {
                let (t, f) = eval3(
                    &self.plan.versions[group[0]].expr,
                    &bits,
                    &late_leaves,
                    rows,
                );
                undecided = &undecided | &(&!&(&t | &f) & &in_range);
                // Every row in range needs the late columns already: no version can add one.
                if undecided.count_set_bits() == wanted {
                    break;
                }
            }
            let needed: Vec<usize> = undecided.set_indices().collect();
            if !needed.is_empty() {
                // Text-only columns are matched on their pages where the layout allows;
                // the rest go through Arrow.
                let mut through_arrow = Vec::new();
                for column in self.columns.iter().filter(|c| c.late) {
                    let leaf = part.flat_leaf(&column.name).filter(|&leaf| {
                        column.leaves.is_empty() && pages::supported(part.meta.metadata(), rg, leaf)
                    });
                    match leaf {
                        Some(leaf) => self.eval_text_pages(
                            column, part, rg, leaf, &undecided, scratch, &mut bits,
                        )?,
                        None => through_arrow.push(column),
                    }
                }
                if !through_arrow.is_empty() {
                    let names: Vec<&str> = through_arrow.iter().map(|c| c.name.as_str()).collect();
                    // A row selection pays for itself when it skips most rows; decoding
                    // every row and filtering a few out costs more than keeping them.
                    let selection = (needed.len() * 4 < rows).then_some(needed.as_slice());
                    let arrays = part.read(rg, &names, selection)?;
                    for (name, array) in &arrays {
                        matchable(name, array.as_ref())?;
                    }
                    for column in through_arrow {
                        if let Some(array) = arrays.get(&column.name) {
                            self.eval_leaves(column, array.as_ref(), selection, rows, &mut bits);
                            self.eval_text(
                                column,
                                array.as_ref(),
                                selection,
                                rows,
                                scratch,
                                &mut bits,
                            );
                        }
                    }
                }
            }
        }
        // Exact evaluation.
        let mut hits_by_group = Vec::new();
        let mut hit_rows = BTreeSet::new();
        for group in &self.live {
            let hits = &eval2(&self.plan.versions[group[0]].expr, &bits, rows) & &in_range;
            if hits.count_set_bits() > 0 {
                hit_rows.extend(hits.set_indices());
                hits_by_group.push((group, hits));
            }
        }
        if hit_rows.is_empty() {
            return Ok(UnitHits::default());
        }
        let hit_rows: Vec<usize> = hit_rows.into_iter().collect();
        let selection = (hit_rows.len() < rows).then_some(hit_rows.as_slice());
        let mut names: Vec<&str> = self.hit_fields.iter().map(String::as_str).collect();
        names.extend(self.script_column.as_deref());
        let triage = part.read(rg, &names, selection)?;
        let first_row: u64 = (0..rg).map(|g| part.row_group_rows(g) as u64).sum();
        let mut scripts = Vec::new();
        if let Some(text) = self.script_column.as_ref().and_then(|c| triage.get(c)) {
            for (at, &r) in hit_rows.iter().enumerate() {
                let mut summary = None;
                for_each_value(&text.slice(at, 1), &mut |_, v| {
                    summary.get_or_insert_with(|| ScriptSummary::of(v));
                });
                scripts.extend(summary.map(|s| (first_row + r as u64, s)));
            }
        }
        let fields_of_row: HashMap<usize, Vec<Option<String>>> = hit_rows
            .iter()
            .enumerate()
            .map(|(at, &r)| {
                let fields = self
                    .hit_fields
                    .iter()
                    .map(|f| triage.get(f).and_then(|a| first_text(a.as_ref(), at)))
                    .collect();
                (r, fields)
            })
            .collect();
        let mut out = Vec::new();
        for (group, hits) in hits_by_group {
            for &v in group {
                let version = &self.plan.versions[v];
                for r in hits.set_indices() {
                    let matched = version
                        .positive
                        .iter()
                        .filter(|(id, _)| bits[*id].as_ref().is_some_and(|b| b.value(r)))
                        .map(|(_, label)| label.clone())
                        .collect();
                    out.push(RowHit {
                        version: v,
                        row: first_row + r as u64,
                        timestamp_us: timestamps.value(r),
                        fields: fields_of_row.get(&r).cloned().unwrap_or_default(),
                        matched,
                    });
                }
            }
        }
        Ok(UnitHits { hits: out, scripts })
    }

    /// Value-by-value leaves of `column`; `rows_of` maps array positions to rows when only
    /// some rows were decoded.
    fn eval_leaves(
        &self,
        column: &ColumnPlan,
        array: &dyn Array,
        rows_of: Option<&[usize]>,
        rows: usize,
        bits: &mut [Option<BooleanBuffer>],
    ) {
        if column.leaves.is_empty() {
            return;
        }
        let leaves: Vec<&Leaf> = column
            .leaves
            .iter()
            .map(|&id| &self.plan.leaves[id])
            .collect();
        let mut out: Vec<Vec<bool>> = vec![vec![false; rows]; leaves.len()];
        let mut memo: foldhash::HashMap<String, Vec<bool>> = Default::default();
        for_each_value(array, &mut |pos, value| {
            let row = rows_of.map_or(pos, |m| m[pos]);
            let results = match memo.get(value) {
                Some(r) => r,
                None => {
                    let mut forms = ValueForms::new(value);
                    let r = leaves.iter().map(|l| l.matches_forms(&mut forms)).collect();
                    memo.entry(value.to_string()).or_insert(r)
                }
            };
            for (i, &hit) in results.iter().enumerate() {
                out[i][row] |= hit;
            }
        });
        for (&id, column_bits) in column.leaves.iter().zip(out) {
            bits[id] = Some(BooleanBuffer::from(column_bits));
        }
    }

    fn eval_text(
        &self,
        column: &ColumnPlan,
        array: &dyn Array,
        rows_of: Option<&[usize]>,
        rows: usize,
        scratch: &mut Scratch,
        bits: &mut [Option<BooleanBuffer>],
    ) {
        let Some(matcher) = &column.matcher else {
            return;
        };
        let mut out: Vec<Vec<bool>> = vec![vec![false; rows]; matcher.len()];
        let mut value_hits = Hits::new(matcher.len());
        let mut found = Vec::new();
        for_each_value(array, &mut |pos, value| {
            let row = rows_of.map_or(pos, |m| m[pos]);
            if text_leaves(
                column,
                value.as_bytes(),
                scratch,
                &mut value_hits,
                &mut found,
            )
            .is_ok()
            {
                for &leaf in &found {
                    out[leaf][row] = true;
                }
            }
        });
        for (&id, column_bits) in column.text.iter().zip(out) {
            bits[id] = Some(BooleanBuffer::from(column_bits));
        }
    }

    /// The text leaves of `column` on the rows in `needed`, read from the pages of leaf
    /// column `leaf`; a dictionary value is matched once for all its rows.
    #[allow(clippy::too_many_arguments)]
    fn eval_text_pages(
        &self,
        column: &ColumnPlan,
        part: &Part,
        rg: usize,
        leaf: usize,
        needed: &BooleanBuffer,
        scratch: &mut Scratch,
        bits: &mut [Option<BooleanBuffer>],
    ) -> Result<(), String> {
        let Some(matcher) = &column.matcher else {
            return Ok(());
        };
        let rows = needed.len();
        let mut out: Vec<Vec<bool>> = vec![vec![false; rows]; matcher.len()];
        let mut value_hits = Hits::new(matcher.len());
        let mut found = Vec::new();
        let mut by_dictionary: Vec<Option<Vec<usize>>> = Vec::new();
        let mut problem: Option<String> = None;
        let wanted = |first: usize, end: usize| {
            first >= rows || needed.slice(first, end.min(rows) - first).count_set_bits() > 0
        };
        pages::for_each_value(
            &part.data,
            part.meta.metadata(),
            rg,
            leaf,
            &wanted,
            &mut |row, bytes, dictionary_index| {
                if row >= rows {
                    problem.get_or_insert(format!("{}: more values than rows", column.name));
                    return;
                }
                if !needed.value(row) || problem.is_some() {
                    return;
                }
                let not_utf8 = |_| format!("{}: row {row} is not UTF-8", column.name);
                let hits: &[usize] = match dictionary_index {
                    Some(i) => {
                        let i = i as usize;
                        if by_dictionary.len() <= i {
                            by_dictionary.resize(i + 1, None);
                        }
                        if by_dictionary[i].is_none() {
                            if let Err(e) =
                                text_leaves(column, bytes, scratch, &mut value_hits, &mut found)
                            {
                                problem = Some(not_utf8(e));
                                return;
                            }
                            by_dictionary[i] = Some(found.clone());
                        }
                        by_dictionary[i].as_deref().unwrap_or_default()
                    }
                    None => {
                        if let Err(e) =
                            text_leaves(column, bytes, scratch, &mut value_hits, &mut found)
                        {
                            problem = Some(not_utf8(e));
                            return;
                        }
                        &found
                    }
                };
                for &leaf in hits {
                    out[leaf][row] = true;
                }
            },
        )?;
        if let Some(p) = problem {
            return Err(p);
        }
        for (&id, column_bits) in column.text.iter().zip(out) {
            bits[id] = Some(BooleanBuffer::from(column_bits));
        }
        Ok(())
    }
}

/// The text leaves of `column` that `bytes` matches, into `found`: from the column's memo
/// when the value was seen before, else matched (and remembered).
fn text_leaves(
    column: &ColumnPlan,
    bytes: &[u8],
    scratch: &mut Scratch,
    value_hits: &mut Hits,
    found: &mut Vec<usize>,
) -> Result<(), std::str::Utf8Error> {
    found.clear();
    let Some(matcher) = &column.matcher else {
        return Ok(());
    };
    let key = ValueKey::of(bytes).filter(|_| column.memo.active());
    if let Some(key) = key {
        if column.memo.get(key, found) {
            return Ok(());
        }
    }
    value_hits.clear();
    matcher.eval_bytes(bytes, scratch, value_hits)?;
    found.extend_from_slice(value_hits.leaves());
    if let Some(key) = key {
        column.memo.insert(key, found);
    }
    Ok(())
}

/// The same values in one of the types [`for_each_value`] reads directly, for the other
/// ways writers store them: large, view and dictionary-encoded strings, large lists,
/// narrower integers and floats, booleans, times in other units. `None`: a type that holds
/// no values a query can match (a struct, a map, bytes).
fn plain(array: &dyn Array) -> Option<ArrayRef> {
    use arrow::datatypes::{DataType, Field, TimeUnit};
    let to = match array.data_type() {
        DataType::LargeUtf8 | DataType::Utf8View | DataType::Boolean => DataType::Utf8,
        DataType::Dictionary(_, values) if plain_value_type(values) => DataType::Utf8,
        DataType::LargeList(item) | DataType::FixedSizeList(item, _)
            if plain_value_type(item.data_type()) =>
        {
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
        }
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => DataType::Int64,
        DataType::Float16 | DataType::Float32 => DataType::Float64,
        DataType::Timestamp(unit, tz) if *unit != TimeUnit::Microsecond => {
            DataType::Timestamp(TimeUnit::Microsecond, tz.clone())
        }
        _ => return None,
    };
    arrow::compute::cast(array, &to).ok()
}

/// Whether values of `t` can be read as text (directly or through [`plain`]).
fn plain_value_type(t: &arrow::datatypes::DataType) -> bool {
    use arrow::datatypes::DataType;
    matches!(
        t,
        DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Boolean
            | DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Float32
            | DataType::Float64
    )
}

/// An error naming `column` when its type holds nothing a query can match: the unit fails
/// (and is reported) rather than matching nothing without a word.
fn matchable(column: &str, array: &dyn Array) -> Result<(), String> {
    use arrow::datatypes::DataType;
    let direct = match array.data_type() {
        DataType::Utf8 | DataType::Int64 | DataType::Float64 | DataType::Null => true,
        DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, _) => true,
        DataType::List(item) => plain_value_type(item.data_type()),
        _ => false,
    };
    if direct || plain(&array.slice(0, 0)).is_some() {
        Ok(())
    } else {
        Err(format!(
            "column `{column}` is of type {}, which holds no value a query can match",
            array.data_type()
        ))
    }
}

/// Calls `f(position, text)` for every non-null value (every element of a list), numbers and
/// times as text the way the reference evaluator reads them; other encodings of such values
/// go through [`plain`].
fn for_each_value(array: &dyn Array, f: &mut dyn FnMut(usize, &str)) {
    let any = array.as_any();
    if let Some(a) = any.downcast_ref::<StringArray>() {
        for i in 0..a.len() {
            if a.is_valid(i) {
                f(i, a.value(i));
            }
        }
    } else if let Some(a) = any.downcast_ref::<ListArray>() {
        for i in 0..a.len() {
            if a.is_valid(i) {
                let items = a.value(i);
                for_each_value(items.as_ref(), &mut |_, v| f(i, v));
            }
        }
    } else if let Some(a) = any.downcast_ref::<Int64Array>() {
        for i in 0..a.len() {
            if a.is_valid(i) {
                f(i, &a.value(i).to_string());
            }
        }
    } else if let Some(a) = any.downcast_ref::<Float64Array>() {
        for i in 0..a.len() {
            if a.is_valid(i) {
                f(i, &format_float(a.value(i)));
            }
        }
    } else if let Some(a) = any.downcast_ref::<TimestampMicrosecondArray>() {
        for i in 0..a.len() {
            if a.is_valid(i) {
                f(i, &format_micros(a.value(i)));
            }
        }
    } else if let Some(a) = plain(array) {
        for_each_value(a.as_ref(), f);
    }
}

/// The first value of position `at` as text.
fn first_text(array: &dyn Array, at: usize) -> Option<String> {
    let mut out = None;
    for_each_value(&array.slice(at, 1), &mut |_, v| {
        if out.is_none() {
            out = Some(v.to_string());
        }
    });
    out
}

fn leaf_bits(bits: &[Option<BooleanBuffer>], id: usize, rows: usize) -> BooleanBuffer {
    bits[id]
        .clone()
        .unwrap_or_else(|| BooleanBuffer::new_unset(rows))
}

/// Exact evaluation: a leaf never computed (its column absent from this file) is false.
fn eval2(e: &Expr, bits: &[Option<BooleanBuffer>], rows: usize) -> BooleanBuffer {
    match e {
        Expr::True => BooleanBuffer::new_set(rows),
        Expr::False => BooleanBuffer::new_unset(rows),
        Expr::Leaf(id) => leaf_bits(bits, *id, rows),
        Expr::Not(inner) => !&eval2(inner, bits, rows),
        Expr::And(items) => items.iter().fold(BooleanBuffer::new_set(rows), |acc, i| {
            &acc & &eval2(i, bits, rows)
        }),
        Expr::Or(items) => items.iter().fold(BooleanBuffer::new_unset(rows), |acc, i| {
            &acc | &eval2(i, bits, rows)
        }),
        Expr::AtLeast(n, items) => {
            let each: Vec<BooleanBuffer> = items.iter().map(|i| eval2(i, bits, rows)).collect();
            BooleanBuffer::collect_bool(rows, |r| each.iter().filter(|b| b.value(r)).count() >= *n)
        }
    }
}

/// Kleene evaluation with the `unknown` leaves not yet computed: (surely true, surely false).
fn eval3(
    e: &Expr,
    bits: &[Option<BooleanBuffer>],
    unknown: &BTreeSet<usize>,
    rows: usize,
) -> (BooleanBuffer, BooleanBuffer) {
    let none = || BooleanBuffer::new_unset(rows);
    let all = || BooleanBuffer::new_set(rows);
    match e {
        Expr::True => (all(), none()),
        Expr::False => (none(), all()),
        Expr::Leaf(id) if unknown.contains(id) => (none(), none()),
        Expr::Leaf(id) => {
            let b = leaf_bits(bits, *id, rows);
            let f = !&b;
            (b, f)
        }
        Expr::Not(inner) => {
            let (t, f) = eval3(inner, bits, unknown, rows);
            (f, t)
        }
        Expr::And(items) => items.iter().fold((all(), none()), |(t, f), i| {
            let (ti, fi) = eval3(i, bits, unknown, rows);
            (&t & &ti, &f | &fi)
        }),
        Expr::Or(items) => items.iter().fold((none(), all()), |(t, f), i| {
            let (ti, fi) = eval3(i, bits, unknown, rows);
            (&t | &ti, &f & &fi)
        }),
        Expr::AtLeast(n, items) => {
            let each: Vec<_> = items
                .iter()
                .map(|i| eval3(i, bits, unknown, rows))
                .collect();
            let t = BooleanBuffer::collect_bool(rows, |r| {
                each.iter().filter(|(t, _)| t.value(r)).count() >= *n
            });
            let f = BooleanBuffer::collect_bool(rows, |r| {
                each.iter().filter(|(_, f)| !f.value(r)).count() < *n
            });
            (t, f)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
            assert!(e.contains("row group 0, column 0"), "{e}");
        }
    }
}
