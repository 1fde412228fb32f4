//! The scan: a [`Plan`] evaluated over one (file, row group) unit at a time, or over one
//! Arrow batch.
//!
//! A unit is decoded in two phases. First the cheap columns: `@timestamp` (for `--from`/
//! `--to`) and every column whose leaves are keyword, numeric or date tests. Each leaf becomes
//! one bit per row; a column's distinct values are tested once each (a value repeated on a
//! thousand rows costs one test). The versions are then evaluated in three-valued logic
//! ([`logic`]) with the big text columns still unknown: rows every version has decided, true
//! or false, never decode those columns. The big columns are decoded only for the remaining
//! rows (a Parquet row selection, which skips whole pages where it can, or [`pages`] straight
//! from the file) and matched by their [`TextMatcher`]. Last, the versions are evaluated
//! exactly, and the hit fields are decoded for the hit rows alone.
//!
//! [`Scanner::scan_batch`] runs the same leaves and programs over a batch already in memory
//! (an embedding's, Spark's or a test's), all columns at once; a test checks that both paths
//! find the same hits. [`part`] owns the files (memory-mapped once and shared by the units of
//! every thread), [`values`] reads Arrow values as text. Nothing here knows a rule language.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, TimestampMicrosecondArray, UInt64Array};
use arrow::buffer::BooleanBuffer;
use arrow::record_batch::RecordBatch;

use crate::ingest::schema::{self, TIMESTAMP};
use crate::plan::text::{Hits, Scratch, TextMatcher};
use crate::plan::{Leaf, Plan, Test, ValueForms};

pub mod error;
pub mod logic;
pub mod memo;
pub mod pages;
pub mod part;
pub mod script;
pub mod values;

pub use error::{MatcherError, ScanError, ScanErrorKind};
use logic::{eval2, eval3};
use memo::{TextMemo, ValueKey};
pub use part::{check_byte_ranges, read_footer, Part};
use script::ScriptSummary;
use values::{all_texts, first_text, for_each_value, matchable, plain};

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
    /// The [`Scanner`]'s hit fields, in order; one allocation per row, shared by the
    /// versions that hit it.
    pub fields: Arc<[Option<String>]>,
    /// Labels of the version's non-negated leaves true on this row.
    pub matched: Vec<Arc<str>>,
    /// Every value of each of the [`Scanner::read_keys`] fields, in order (none asked: empty).
    pub keys: Arc<[Vec<String>]>,
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
pub struct Scanner {
    plan: Arc<Plan>,
    /// The column whose value of each hit row is summarised, if asked.
    script_column: Option<String>,
    /// The columns read for every hit row (the hit table's triage fields).
    hit_fields: Vec<String>,
    /// Columns read whole (every value) for every hit row: sequences' join keys.
    key_fields: Vec<String>,
    columns: Vec<ColumnPlan>,
    /// Versions that can fire, grouped by identical programs (consecutive versions of a
    /// rule often leave the query unchanged): each group is evaluated once.
    live: Vec<Vec<usize>>,
}

impl Scanner {
    /// The scanner of `plan`, whose hits carry the values of `hit_fields` (the hit table's
    /// triage fields).
    pub fn new(plan: Arc<Plan>, hit_fields: &[&str]) -> Result<Scanner, MatcherError> {
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
                Some(analyzer) => {
                    Some(
                        TextMatcher::new(analyzer, &values).map_err(|source| MatcherError {
                            column: name.to_string(),
                            source,
                        })?,
                    )
                }
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
            key_fields: Vec::new(),
            columns,
            live: groups,
        })
    }

    /// The plan scanned for.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Summarises the `column` value (the script) of every hit row as well.
    pub fn summarise_scripts(&mut self, column: &str) {
        self.script_column = Some(column.to_string());
    }

    /// Also reads every value of `fields` for every hit row, into [`RowHit::keys`].
    pub fn read_keys(&mut self, fields: Vec<String>) {
        self.key_fields = fields;
    }

    /// Whether any version can fire at all.
    pub fn has_work(&self) -> bool {
        !self.live.is_empty()
    }

    /// Every hit of every version in row group `rg` of `part`, in row order: the fast path,
    /// reading pages straight from the file and the late columns only for undecided rows.
    pub fn scan(
        &self,
        part: &Part,
        rg: usize,
        range: &TimeRange,
        scratch: &mut Scratch,
    ) -> Result<UnitHits, ScanError> {
        self.scan_unit(part, rg, range, scratch)
            .map_err(|kind| ScanError::at(&part.rel, Some(rg), kind))
    }

    fn scan_unit(
        &self,
        part: &Part,
        rg: usize,
        range: &TimeRange,
        scratch: &mut Scratch,
    ) -> Result<UnitHits, ScanErrorKind> {
        let rows = part.row_group_rows(rg);
        if rows == 0 || self.live.is_empty() {
            return Ok(UnitHits::default());
        }
        let mut bits: Vec<Option<BooleanBuffer>> = vec![None; self.plan.leaves.len()];
        let mut early: Vec<&str> = self.columns(false).map(|c| c.name.as_str()).collect();
        early.push(TIMESTAMP);
        let arrays = part.read(rg, &early, None)?;
        let timestamps = timestamps(arrays.get(TIMESTAMP))?;
        for (name, array) in &arrays {
            matchable(name, array.as_ref())?;
        }
        let in_range = in_range(&timestamps, range, rows);
        if in_range.count_set_bits() == 0 {
            return Ok(UnitHits::default());
        }
        for column in self.columns(false) {
            if let Some(array) = arrays.get(&column.name) {
                self.eval_leaves(column, array.as_ref(), None, rows, &mut bits);
            }
        }
        let undecided = self.undecided(&bits, &in_range, rows);
        if undecided.count_set_bits() > 0 {
            self.late_phase(part, rg, &undecided, scratch, &mut bits)?;
        }
        let hits = self.exact(&bits, &in_range, rows);
        if hits.rows.is_empty() {
            return Ok(UnitHits::default());
        }
        let hit_rows = hits.rows.clone();
        let selection = (hit_rows.len() < rows).then_some(hit_rows.as_slice());
        let mut names: Vec<&str> = self.hit_fields.iter().map(String::as_str).collect();
        names.extend(self.script_column.as_deref());
        names.extend(self.key_fields.iter().map(String::as_str));
        let fields = part.read(rg, &names, selection)?;
        let first_row: u64 = (0..rg).map(|g| part.row_group_rows(g) as u64).sum();
        Ok(self.unit_hits(hits, &bits, &timestamps, &fields, selection, first_row))
    }

    /// Every hit of every version on the rows of `batch`, in row order, with row numbers
    /// counted from `first_row`: the same evaluation over columns already in memory (an
    /// embedding's batch; any Arrow encoding [`values`] reads), no file, no thread.
    /// Columns are found by their ECS name; one the plan needs that the batch lacks is null.
    pub fn scan_batch(
        &self,
        batch: &RecordBatch,
        first_row: u64,
        range: &TimeRange,
        scratch: &mut Scratch,
    ) -> Result<UnitHits, ScanError> {
        self.scan_arrays(batch, first_row, range, scratch)
            .map_err(ScanError::in_batch)
    }

    fn scan_arrays(
        &self,
        batch: &RecordBatch,
        first_row: u64,
        range: &TimeRange,
        scratch: &mut Scratch,
    ) -> Result<UnitHits, ScanErrorKind> {
        let rows = batch.num_rows();
        if rows == 0 || self.live.is_empty() {
            return Ok(UnitHits::default());
        }
        let arrays: HashMap<String, ArrayRef> = batch
            .schema()
            .fields()
            .iter()
            .zip(batch.columns())
            .map(|(f, a)| (f.name().clone(), Arc::clone(a)))
            .collect();
        let timestamps = timestamps(arrays.get(TIMESTAMP))?;
        let in_range = in_range(&timestamps, range, rows);
        let mut bits: Vec<Option<BooleanBuffer>> = vec![None; self.plan.leaves.len()];
        for column in &self.columns {
            if let Some(array) = arrays.get(&column.name) {
                matchable(&column.name, array.as_ref())?;
                self.eval_leaves(column, array.as_ref(), None, rows, &mut bits);
                self.eval_text(column, array.as_ref(), None, rows, scratch, &mut bits);
            }
        }
        let hits = self.exact(&bits, &in_range, rows);
        if hits.rows.is_empty() {
            return Ok(UnitHits::default());
        }
        let mut fields = HashMap::new();
        let names = self
            .hit_fields
            .iter()
            .chain(&self.script_column)
            .chain(&self.key_fields);
        let picked: UInt64Array = hits.rows.iter().map(|&r| r as u64).collect();
        for name in names {
            if let Some(array) = arrays.get(name) {
                let taken = arrow::compute::take(array.as_ref(), &picked, None).map_err(|e| {
                    ScanErrorKind::Arrow {
                        column: Some(name.clone()),
                        source: e,
                    }
                })?;
                fields.insert(name.clone(), taken);
            }
        }
        let all_rows: Vec<usize> = hits.rows.clone();
        Ok(self.unit_hits(
            hits,
            &bits,
            &timestamps,
            &fields,
            Some(&all_rows),
            first_row,
        ))
    }

    /// The columns decoded early (`late` false) or late.
    fn columns(&self, late: bool) -> impl Iterator<Item = &ColumnPlan> {
        self.columns.iter().filter(move |c| c.late == late)
    }

    /// The rows in range that some version cannot decide without the late columns.
    fn undecided(
        &self,
        bits: &[Option<BooleanBuffer>],
        in_range: &BooleanBuffer,
        rows: usize,
    ) -> BooleanBuffer {
        let late_leaves: BTreeSet<usize> = self
            .columns(true)
            .flat_map(|c| c.leaves.iter().chain(&c.text).copied())
            .collect();
        let mut undecided = BooleanBuffer::new_unset(rows);
        if late_leaves.is_empty() {
            return undecided;
        }
        let wanted = in_range.count_set_bits();
        for group in &self.live {
            let expr = &self.plan.versions[group[0]].expr;
            let (t, f) = eval3(expr, bits, &late_leaves, rows);
            undecided = &undecided | &(&!&(&t | &f) & in_range);
            // Every row in range needs the late columns already: no version can add one.
            if undecided.count_set_bits() == wanted {
                break;
            }
        }
        undecided
    }

    /// The late columns, for the `undecided` rows only: text-only columns matched on their
    /// pages where the layout allows, the rest decoded through Arrow.
    fn late_phase(
        &self,
        part: &Part,
        rg: usize,
        undecided: &BooleanBuffer,
        scratch: &mut Scratch,
        bits: &mut [Option<BooleanBuffer>],
    ) -> Result<(), ScanErrorKind> {
        let rows = undecided.len();
        let mut through_arrow = Vec::new();
        for column in self.columns(true) {
            let leaf = part.flat_leaf(&column.name).filter(|&leaf| {
                column.leaves.is_empty() && pages::supported(part.meta.metadata(), rg, leaf)
            });
            match leaf {
                Some(leaf) => {
                    self.eval_text_pages(column, part, rg, leaf, undecided, scratch, bits)?
                }
                None => through_arrow.push(column),
            }
        }
        if through_arrow.is_empty() {
            return Ok(());
        }
        let needed: Vec<usize> = undecided.set_indices().collect();
        let names: Vec<&str> = through_arrow.iter().map(|c| c.name.as_str()).collect();
        // A row selection pays for itself when it skips most rows; decoding every row and
        // filtering a few out costs more than keeping them.
        let selection = (needed.len() * 4 < rows).then_some(needed.as_slice());
        let arrays = part.read(rg, &names, selection)?;
        for (name, array) in &arrays {
            matchable(name, array.as_ref())?;
        }
        for column in through_arrow {
            if let Some(array) = arrays.get(&column.name) {
                self.eval_leaves(column, array.as_ref(), selection, rows, bits);
                self.eval_text(column, array.as_ref(), selection, rows, scratch, bits);
            }
        }
        Ok(())
    }

    /// Each group of identical programs evaluated exactly, on the rows in range.
    fn exact(
        &self,
        bits: &[Option<BooleanBuffer>],
        in_range: &BooleanBuffer,
        rows: usize,
    ) -> GroupHits<'_> {
        let mut by_group = Vec::new();
        let mut hit_rows = BTreeSet::new();
        for group in &self.live {
            let hits = &eval2(&self.plan.versions[group[0]].expr, bits, rows) & in_range;
            if hits.count_set_bits() > 0 {
                hit_rows.extend(hits.set_indices());
                by_group.push((group.as_slice(), hits));
            }
        }
        GroupHits {
            by_group,
            rows: hit_rows.into_iter().collect(),
        }
    }

    /// The hits of a unit, with the hit fields (and scripts, when asked) of their rows read
    /// from `fields`, whose arrays hold `selection`'s rows (every row when none).
    fn unit_hits(
        &self,
        hits: GroupHits,
        bits: &[Option<BooleanBuffer>],
        timestamps: &TimestampMicrosecondArray,
        fields: &HashMap<String, ArrayRef>,
        selection: Option<&[usize]>,
        first_row: u64,
    ) -> UnitHits {
        let at = |r: usize| selection.map_or(Some(r), |s| s.binary_search(&r).ok());
        let mut scripts = Vec::new();
        if let Some(text) = self.script_column.as_ref().and_then(|c| fields.get(c)) {
            for &r in &hits.rows {
                let mut summary = None;
                let Some(i) = at(r) else { continue };
                for_each_value(&text.slice(i, 1), &mut |_, v| {
                    summary.get_or_insert_with(|| ScriptSummary::of(v));
                });
                scripts.extend(summary.map(|s| (first_row + r as u64, s)));
            }
        }
        let fields_of_row: HashMap<usize, Arc<[Option<String>]>> = hits
            .rows
            .iter()
            .map(|&r| {
                let values = self
                    .hit_fields
                    .iter()
                    .map(|f| {
                        let array = fields.get(f)?;
                        first_text(array.as_ref(), at(r)?)
                    })
                    .collect();
                (r, values)
            })
            .collect();
        let keys_of_row: HashMap<usize, Arc<[Vec<String>]>> = match self.key_fields.is_empty() {
            true => HashMap::new(),
            false => hits
                .rows
                .iter()
                .map(|&r| {
                    let values = self
                        .key_fields
                        .iter()
                        .map(|f| match (fields.get(f), at(r)) {
                            (Some(array), Some(i)) => all_texts(array.as_ref(), i),
                            _ => Vec::new(),
                        })
                        .collect();
                    (r, values)
                })
                .collect(),
        };
        let mut out = Vec::new();
        for (group, rows) in hits.by_group {
            for &v in group {
                let version = &self.plan.versions[v];
                for r in rows.set_indices() {
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
                        keys: keys_of_row.get(&r).cloned().unwrap_or_default(),
                    });
                }
            }
        }
        UnitHits { hits: out, scripts }
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
    ) -> Result<(), ScanErrorKind> {
        let Some(matcher) = &column.matcher else {
            return Ok(());
        };
        let rows = needed.len();
        let mut out: Vec<Vec<bool>> = vec![vec![false; rows]; matcher.len()];
        let mut value_hits = Hits::new(matcher.len());
        let mut found = Vec::new();
        let mut by_dictionary: Vec<Option<Vec<usize>>> = Vec::new();
        let mut problem: Option<ScanErrorKind> = None;
        let wanted = |first: usize, end: usize| {
            first >= rows || needed.slice(first, end.min(rows) - first).count_set_bits() > 0
        };
        pages::for_each_value(
            part.data(),
            part.meta.metadata(),
            rg,
            leaf,
            &wanted,
            &mut |row, bytes, dictionary_index| {
                if row >= rows {
                    problem.get_or_insert(ScanErrorKind::MoreValuesThanRows {
                        column: column.name.clone(),
                    });
                    return;
                }
                if !needed.value(row) || problem.is_some() {
                    return;
                }
                let not_utf8 = |_| ScanErrorKind::NotUtf8 {
                    column: column.name.clone(),
                    row,
                };
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
        )
        .map_err(|source| ScanErrorKind::Pages {
            column: column.name.clone(),
            source,
        })?;
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

/// The hits of the groups of versions of one unit, and every row any of them hit.
struct GroupHits<'s> {
    by_group: Vec<(&'s [usize], BooleanBuffer)>,
    rows: Vec<usize>,
}

/// The `@timestamp` column as microseconds, whatever its unit.
fn timestamps(array: Option<&ArrayRef>) -> Result<TimestampMicrosecondArray, ScanErrorKind> {
    array
        .map(|a| plain(a.as_ref()).unwrap_or_else(|| Arc::clone(a)))
        .and_then(|a| {
            a.as_any()
                .downcast_ref::<TimestampMicrosecondArray>()
                .cloned()
        })
        .ok_or(ScanErrorKind::NoTimestamps)
}

/// The rows whose time lies in `range`.
fn in_range(
    timestamps: &TimestampMicrosecondArray,
    range: &TimeRange,
    rows: usize,
) -> BooleanBuffer {
    if range.is_all() {
        return BooleanBuffer::new_set(rows);
    }
    BooleanBuffer::collect_bool(rows, |r| {
        timestamps.is_valid(r) && range.contains(timestamps.value(r))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cond::fields::FieldTypes;
    use crate::ingest::dataset;
    use crate::plan::{Columns, Role, Target};
    use crate::rules::pack::{self, Status};
    use arrow::datatypes::{DataType, Field, Schema};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use std::path::Path;

    /// `batch` with its string columns re-encoded as `to` (what Daft or DataFusion hand over).
    fn recast(batch: &RecordBatch, to: &DataType) -> RecordBatch {
        let mut fields = Vec::new();
        let mut columns = Vec::new();
        for (f, a) in batch.schema().fields().iter().zip(batch.columns()) {
            let (field, array) = match f.data_type() {
                DataType::Utf8 => (
                    Field::new(f.name(), to.clone(), true),
                    arrow::compute::cast(a, to).expect("cast"),
                ),
                _ => (f.as_ref().clone(), Arc::clone(a)),
            };
            fields.push(field);
            columns.push(array);
        }
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("batch")
    }

    #[test]
    fn a_batch_in_memory_gets_the_hits_the_file_path_gets() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/sample");
        let manifest = dataset::read_manifest(&root).expect("the shipped sample");
        let pack = pack::load(&[], &Default::default()).expect("built-in pack");
        let targets: Vec<Target> = pack
            .versions
            .iter()
            .filter_map(|v| match &v.status {
                Status::Ready(c) => Some(Target {
                    rule: &v.rule,
                    cond: &c.cond,
                    role: Role::Version,
                    mapped: c.mapped.as_deref(),
                    step: None,
                }),
                _ => None,
            })
            .collect();
        let parts: Vec<Part> = manifest
            .parts()
            .map(|p| Part::open(&crate::store::LocalStore::new(&root), &p.path).expect("part"))
            .collect();
        let mut columns = Columns::default();
        parts.iter().for_each(|p| columns.names.extend(p.columns()));
        let index: Vec<String> = match &manifest.index {
            Some(i) => vec![i.clone()],
            None => manifest.indices.keys().cloned().collect(),
        };
        let plan = Plan::compile(&targets, &columns, FieldTypes::default(), &index);
        let scanner = Scanner::new(Arc::new(plan), crate::sink::TRIAGE_FIELDS).expect("scanner");
        let mut scratch = Scratch::default();
        let mut total = 0;
        for part in &parts {
            let bytes = std::fs::read(root.join(&part.rel)).expect("read");
            let mut first_row = 0;
            for rg in 0..part.row_groups() {
                let from_file = scanner
                    .scan(part, rg, &TimeRange::default(), &mut scratch)
                    .expect("file path");
                let reader =
                    ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes.clone()))
                        .expect("reader")
                        .with_row_groups(vec![rg])
                        .with_batch_size(1 << 20)
                        .build()
                        .expect("reader");
                let batches: Vec<RecordBatch> = reader.map(|b| b.expect("batch")).collect();
                let batch =
                    arrow::compute::concat_batches(&batches[0].schema(), &batches).expect("concat");
                for to in [None, Some(DataType::LargeUtf8), Some(DataType::Utf8View)] {
                    let batch = match &to {
                        Some(t) => recast(&batch, t),
                        None => batch.clone(),
                    };
                    let in_memory = scanner
                        .scan_batch(&batch, first_row, &TimeRange::default(), &mut scratch)
                        .expect("batch path");
                    assert_eq!(
                        in_memory.hits, from_file.hits,
                        "{} rg {rg} as {to:?}",
                        part.rel
                    );
                }
                total += from_file.hits.len();
                first_row += part.row_group_rows(rg) as u64;
            }
        }
        assert!(total > 1000, "only {total} hits");
    }
}
