//! Parquet row groups counted where they are decoded: a row group's column chunks are
//! decoded a block of rows at a time into buffers of the job's own, and each block is counted
//! at once, while it is in cache, into the counting thread's accumulator. Row groups run in
//! parallel, one a thread; no row passes through Python.
//!
//! Python classifies each chunk's dictionary first (the dictionary pages are read before any
//! row: [`Decoder::load_dictionaries`](crate::parquet_decode::Decoder::load_dictionaries)),
//! in row-group order, so provider ids are handed out as on the batch path; a [`Job`] holds
//! those tables ([`Classes`]) with the chunks' cursors. Only row groups whose text chunks are
//! dictionary-encoded throughout come here (their dictionaries cannot grow while decoded);
//! should one grow all the same, the job stops before that block and says how many rows it
//! counted, and Python counts the rest through pyarrow.
//!
//! Besides the counts, a job returns what the batch path's Python kept per batch: each
//! profiled column's rows per dictionary index (the value profile of the guards) and the rows
//! per financial year of the test dates (the multiple-years guard).
//!
//! Nothing here knows about Python.

use std::borrow::Cow;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use crate::cube::{Accumulator, AgeColumn, Batch, Coded, Dims, SexColumn, Validity, Values};
use crate::error::CoreError;
use crate::parquet_decode::{ColumnCursor, ColumnError, ColumnOut, DecodeError};

/// Rows decoded and counted at a time: the block's columns (4 bytes a row each) then stay in
/// a core's L2 cache between the decoding and the counting.
pub const BLOCK_ROWS: usize = 131_072;

/// Which decoded column (its index among the decoder's columns) holds each role.
#[derive(Clone, Debug)]
pub struct Roles {
    pub provider: usize,
    pub practice: usize,
    pub lsoa: usize,
    pub sex: usize,
    pub modality: usize,
    pub exam: Option<usize>,
    /// Age in years, or (date of birth, test date).
    pub age: Result<usize, (usize, usize)>,
    /// The test date (the financial years' tally), when the extract has one.
    pub test_date: Option<usize>,
}

/// A row group's dictionary tables: what a classified batch carries besides its rows (see
/// `didcore.classify.ClassifiedBatch`, whose fields these are).
#[derive(Clone, Debug, Default)]
pub struct Classes {
    pub provider_ids: Vec<u32>,
    pub provider_null_id: u32,
    pub n_providers: usize,
    pub practice_class: Vec<i32>,
    pub lsoa_icb: Vec<i32>,
    pub lsoa_imd: Vec<i8>,
    pub sex_class: Vec<i8>,
    pub modality_ids: Vec<i16>,
    pub exam_ids: Vec<i16>,
    pub measure_masks: Vec<u64>,
    pub n_exam: usize,
}

/// How a fixed-width column's decoded values become the `i32`s the counting takes, as
/// Python's classifier makes them of a batch's column (`didcore.classify`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Convert {
    /// Whole numbers: 4-byte values as they are; 8-byte ones clamped into `i32`, an age past
    /// [`Job::max_age`] made -1 (missing) first, however wide.
    #[default]
    Whole,
    /// A floating age (`float` or `double`, as pandas stores whole numbers with gaps): NaN is
    /// null; an infinity is null and unreadable ([`Outcome::unreadable`]); any other value is
    /// its completed years, `floor(v)`, made -1 (missing) when past [`Job::max_age`], and
    /// clamped into `i32`.
    FloatAge,
    /// A timestamp with no time zone, this many ticks a day: days since 1970-01-01, rounded
    /// down, as Arrow casts a timestamp to `date32` (a day out of `i32`'s range stops the
    /// job, for pyarrow to say what it makes of it).
    Days(i64),
}

/// One row group to count.
#[derive(Debug)]
pub struct Job {
    pub cursors: Vec<ColumnCursor>,
    pub rows: usize,
    pub roles: Roles,
    pub classes: Classes,
    /// Columns whose rows are counted per dictionary index (the value profile).
    pub profiled: Vec<usize>,
    /// Financial-year boundaries as days since 1970-01-01, ascending: year `i` holds the
    /// test dates `bounds[i] <= d < bounds[i + 1]`; other and null dates are in no year.
    pub year_bounds: Vec<i32>,
    /// The first and last test date every row must have (days since 1970-01-01): a row
    /// group counted into one financial year's cube on the footer's word. A block with a
    /// null or another date stops the job before it is counted.
    pub require: Option<(i32, i32)>,
    /// Per decoded column, how its values become `i32`s (empty: all [`Convert::Whole`]).
    pub converts: Vec<Convert>,
    /// Ages past this are missing (None: no limit), as Python's classifier is told.
    pub max_age: Option<i64>,
}

/// What a job did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    /// Rows counted (all of the row group's, unless `stopped`).
    pub rows: usize,
    /// Per profiled column: rows per dictionary index, then the null rows.
    pub histograms: Vec<Vec<u64>>,
    /// Rows per financial year (`year_bounds`' intervals), then the rows in none.
    pub years: Vec<u64>,
    /// The column and the reason the job stopped before its row group's end (a page it does
    /// not decode, a dictionary grown past its classification): the rest is Python's.
    pub stopped: Option<(usize, String)>,
    /// Rows of a floating age column holding an infinity (counted as missing ages), and the
    /// first such value, for the warning Python gives about values that are not ages.
    pub unreadable: (u64, Option<f64>),
}

/// Why a job failed: a column chunk that cannot be right, or counts that could not be made.
#[derive(Debug)]
pub enum JobError {
    Decode(ColumnError),
    Count(CoreError),
}

impl Job {
    /// Decode and count the row group into `acc` (whose dimensions the classes were made
    /// for), `block_rows` rows at a time.
    pub fn run(mut self, acc: &mut Accumulator, block_rows: usize) -> Result<Outcome, JobError> {
        let block_rows = block_rows.max(1);
        let mut outs: Vec<ColumnOut> = self.cursors.iter().map(|_| ColumnOut::default()).collect();
        let mut outcome = Outcome {
            histograms: self
                .profiled
                .iter()
                .map(|&j| vec![0; dict_len(&self.classes, &self.roles, j) + 1])
                .collect(),
            years: vec![0; self.year_bounds.len().max(1)],
            ..Outcome::default()
        };
        let mut first = true;
        while outcome.rows < self.rows {
            let n = block_rows.min(self.rows - outcome.rows);
            for (column, (cursor, out)) in self.cursors.iter_mut().zip(&mut outs).enumerate() {
                match cursor.read(n, out) {
                    Ok(()) => {}
                    Err(DecodeError::Unsupported(why)) => {
                        outcome.stopped = Some((column, why));
                        return Ok(outcome);
                    }
                    Err(error) => return Err(JobError::Decode(ColumnError { column, error })),
                }
            }
            if let Some(column) = self.grown() {
                outcome.stopped = Some((column, "its dictionary grew past a PLAIN page".into()));
                return Ok(outcome);
            }
            // (a block's unreadable ages are the outcome's only once the block is counted: a
            // job stopped before it leaves its rows to pyarrow, which notes them itself)
            let mut unreadable = (0, None);
            let mut converted: Vec<Option<Vec<i32>>> = vec![None; outs.len()];
            for (j, out) in outs.iter_mut().enumerate() {
                let width = self.cursors[j].width();
                converted[j] = match self.converts.get(j).copied().unwrap_or_default() {
                    Convert::Whole if width == 4 => None,
                    Convert::Whole => Some(clamped(&out.values, n, self.age_limit(j))),
                    Convert::FloatAge => {
                        Some(float_ages(out, n, width, self.max_age, &mut unreadable))
                    }
                    Convert::Days(ticks) => {
                        let Some(days) = days(&out.values, n, width, ticks) else {
                            let why = "a timestamp past date32's range".into();
                            outcome.stopped = Some((j, why));
                            return Ok(outcome);
                        };
                        Some(days)
                    }
                };
            }
            let ints: Vec<Cow<'_, [i32]>> = outs
                .iter()
                .zip(converted)
                .map(|(o, c)| c.map_or_else(|| as_i32(&o.values, n), Cow::Owned))
                .collect();
            if let (Some((lo, hi)), Some(t)) = (self.require, self.roles.test_date) {
                let outside = outs[t].nulls > 0 || ints[t][..n].iter().any(|&d| d < lo || d > hi);
                if outside {
                    let why = "test dates outside the footer's statistics".into();
                    outcome.stopped = Some((t, why));
                    return Ok(outcome);
                }
            }
            outcome.unreadable.0 += unreadable.0;
            if outcome.unreadable.1.is_none() {
                outcome.unreadable.1 = unreadable.1;
            }
            let batch = self.batch(&outs, &ints, n);
            acc.add_block(&batch, self.classes.n_providers, !first)
                .map_err(JobError::Count)?;
            first = false;
            for (&j, bins) in self.profiled.iter().zip(&mut outcome.histograms) {
                count_indices(&ints[j], validity(&outs[j]), n, bins);
            }
            // (without bounds, a row group counted into one year's cube: no tally wanted)
            if let (Some(t), true) = (self.roles.test_date, self.year_bounds.len() >= 2) {
                tally_years(
                    &ints[t],
                    validity(&outs[t]),
                    n,
                    &self.year_bounds,
                    &mut outcome.years,
                );
            }
            outcome.rows += n;
        }
        Ok(outcome)
    }

    /// The limit past which column `j`'s values are missing ages: [`Job::max_age`] for the
    /// age column, none for any other.
    fn age_limit(&self, j: usize) -> Option<i64> {
        if self.roles.age == Ok(j) {
            self.max_age
        } else {
            None
        }
    }

    /// A text column whose dictionary now holds more entries than its classification.
    fn grown(&self) -> Option<usize> {
        let r = &self.roles;
        let mut text = vec![r.provider, r.practice, r.lsoa, r.sex, r.modality];
        text.extend(r.exam);
        text.into_iter()
            .find(|&j| self.cursors[j].text_len() > dict_len(&self.classes, r, j))
    }

    fn batch<'a>(
        &'a self,
        outs: &'a [ColumnOut],
        ints: &'a [Cow<'a, [i32]>],
        rows: usize,
    ) -> Batch<'a> {
        let coded = |j: usize| Coded {
            indices: &ints[j][..rows],
            validity: validity(&outs[j]),
        };
        let values = |j: usize| Values {
            values: &ints[j][..rows],
            validity: validity(&outs[j]),
        };
        let (r, c) = (&self.roles, &self.classes);
        Batch {
            n_rows: rows,
            provider: coded(r.provider),
            provider_ids: &c.provider_ids,
            provider_null_id: c.provider_null_id,
            practice: coded(r.practice),
            practice_class: &c.practice_class,
            lsoa: coded(r.lsoa),
            lsoa_icb: &c.lsoa_icb,
            lsoa_imd: &c.lsoa_imd,
            sex: SexColumn::Coded {
                column: coded(r.sex),
                class: &c.sex_class,
            },
            age: match r.age {
                Ok(a) => AgeColumn::Years(values(a)),
                Err((birth, test)) => AgeColumn::Dates {
                    birth: values(birth),
                    test: values(test),
                },
            },
            modality: coded(r.modality),
            modality_ids: &c.modality_ids,
            exam: r.exam.map(coded),
            exam_ids: &c.exam_ids,
            measure_masks: &c.measure_masks,
            n_exam: c.n_exam,
        }
    }
}

/// A job's end: its sequence number and what it did.
pub type Finished = (u64, Result<Outcome, JobError>);

/// Jobs running on a rayon pool, each counting into the accumulator of the thread it runs on
/// (one a thread: no two jobs share one, and a thread's counts stay in its cache), and their
/// outcomes until collected.
#[derive(Debug)]
pub struct JobPool {
    accs: Vec<Mutex<Accumulator>>,
    /// Where each row group's counts go once it is counted (from its thread's scratch).
    totals: Mutex<Accumulator>,
    state: Mutex<PoolState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct PoolState {
    in_flight: usize,
    finished: Vec<Finished>,
}

impl JobPool {
    /// A pool for `n_threads` threads counting into accumulators of dimensions `dims`.
    pub fn new(dims: Dims, n_threads: usize) -> Result<Self, CoreError> {
        let accs = (0..n_threads.max(1))
            .map(|_| Accumulator::new(dims, 1).map(Mutex::new))
            .collect::<Result<_, _>>()?;
        Ok(JobPool {
            accs,
            totals: Mutex::new(Accumulator::new(dims, 1)?),
            state: Mutex::default(),
            changed: Condvar::new(),
        })
    }

    /// Start `job` on `pool` (of at most as many threads as this has accumulators) and return
    /// at once; its outcome is kept for [`JobPool::wait`]. A panic in it is its error.
    pub fn spawn(self: &Arc<Self>, pool: &rayon::ThreadPool, seq: u64, job: Job) {
        self.lock().in_flight += 1;
        let this = Arc::clone(self);
        pool.spawn(move || {
            let slot = rayon::current_thread_index().unwrap_or(0) % this.accs.len();
            let result = catch_unwind(AssertUnwindSafe(|| {
                let mut acc = this.accs[slot]
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                let outcome = job.run(&mut acc, BLOCK_ROWS);
                // the thread's scratch counts into the pool's totals now: one set of
                // per-provider totals for the run, however many threads
                let mut totals = this.totals.lock().unwrap_or_else(PoisonError::into_inner);
                acc.flush_into(&mut totals);
                outcome
            }))
            .unwrap_or_else(|panic| {
                let msg = panic
                    .downcast_ref::<&str>()
                    .map(ToString::to_string)
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                Err(JobError::Count(CoreError::Panic(msg)))
            });
            let mut state = this.lock();
            state.in_flight -= 1;
            state.finished.push((seq, result));
            drop(state);
            this.changed.notify_all();
        });
    }

    /// Wait until at most `max_in_flight` jobs are running; the jobs finished since the last
    /// call, in the order they were started.
    pub fn wait(&self, max_in_flight: usize) -> Vec<Finished> {
        let mut state = self.lock();
        while state.in_flight > max_in_flight {
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        let mut done = std::mem::take(&mut state.finished);
        done.sort_by_key(|(seq, _)| *seq);
        done
    }

    /// Jobs running now.
    pub fn in_flight(&self) -> usize {
        self.lock().in_flight
    }

    /// Add every thread's counts into `acc` (once every job has finished: [`JobPool::wait`]
    /// with 0), leaving them empty.
    pub fn absorb_into(&self, acc: &mut Accumulator) {
        let mut totals = self.totals.lock().unwrap_or_else(PoisonError::into_inner);
        for a in &self.accs {
            a.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .flush_into(&mut totals);
        }
        acc.absorb(&mut totals);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Entries of the classified dictionary of column `j` (0 for a column with none).
fn dict_len(c: &Classes, r: &Roles, j: usize) -> usize {
    if j == r.provider {
        c.provider_ids.len()
    } else if j == r.practice {
        c.practice_class.len()
    } else if j == r.lsoa {
        c.lsoa_icb.len()
    } else if j == r.sex {
        c.sex_class.len()
    } else if j == r.modality {
        c.modality_ids.len()
    } else if Some(j) == r.exam {
        c.exam_ids.len()
    } else {
        0
    }
}

fn validity(out: &ColumnOut) -> Validity<'_> {
    Validity {
        bits: (out.nulls > 0).then_some(&out.validity[..]),
        offset: 0,
    }
}

/// The first `n` 4-byte values of `bytes` (little-endian) as `i32`s: the bytes themselves
/// when aligned (a `Vec<u8>` from the allocator always is, in practice), else a copy.
fn as_i32(bytes: &[u8], n: usize) -> Cow<'_, [i32]> {
    let bytes = &bytes[..n * 4];
    match bytemuck::try_cast_slice::<u8, i32>(bytes) {
        Ok(ints) if cfg!(target_endian = "little") => Cow::Borrowed(ints),
        _ => Cow::Owned(
            bytes
                .chunks_exact(4)
                .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        ),
    }
}

/// The first `n` 8-byte values of `bytes` (`int64` ages) clamped into `i32`, each past
/// `limit` made -1 first (missing), as Python does for a batch's: an age that large is then
/// missing however wide, and otherwise 90+ (or missing, past `max_age`) either way.
fn clamped(bytes: &[u8], n: usize, limit: Option<i64>) -> Vec<i32> {
    bytes[..n * 8]
        .chunks_exact(8)
        .map(|b| {
            let v = i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
            if limit.is_some_and(|limit| v > limit) {
                -1
            } else {
                i32::try_from(v).unwrap_or(if v < 0 { i32::MIN } else { i32::MAX })
            }
        })
        .collect()
}

/// The first `n` floating ages of `out` (`width` 4 or 8 bytes) as completed years (see
/// [`Convert::FloatAge`]): NaN and infinite rows are made null in `out`, infinite ones counted
/// in `unreadable` (with the first one met).
fn float_ages(
    out: &mut ColumnOut,
    n: usize,
    width: usize,
    max_age: Option<i64>,
    unreadable: &mut (u64, Option<f64>),
) -> Vec<i32> {
    // `floor(v) > max_age` decided exactly however `max_age as f64` rounds: if it rounded
    // up, the ages past `max_age` are those from it on; if down, those above it
    let (limit, from_limit) = match max_age {
        None => (f64::INFINITY, false),
        Some(max_age) => {
            let limit = max_age as f64;
            (limit, (limit as i128) > i128::from(max_age))
        }
    };
    let bytes = &out.values[..n * width];
    let mut ages = Vec::with_capacity(n);
    let mut gaps = Vec::new();
    // one loop a width, branch-free but for the rare value that is not finite
    let mut add = |k: usize, v: f64| {
        let v = v.floor();
        let past = if from_limit { v >= limit } else { v > limit };
        if !v.is_finite() {
            gaps.push(k);
        }
        // `as` saturates (clamped into i32, as Python clamps) and makes NaN 0
        ages.push(if past { -1 } else { v as i32 });
    };
    if width == 4 {
        for (k, b) in bytes.chunks_exact(4).enumerate() {
            add(k, f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])));
        }
    } else {
        for (k, b) in bytes.chunks_exact(8).enumerate() {
            add(
                k,
                f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
            );
        }
    }
    let value = |k: usize| -> f64 {
        let b = &bytes[k * width..(k + 1) * width];
        if width == 4 {
            f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        } else {
            f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
        }
    };
    let gaps: Vec<(usize, f64)> = gaps.into_iter().map(|k| (k, value(k))).collect();
    for (k, v) in gaps {
        ages[k] = 0;
        if out.validity[k >> 3] >> (k & 7) & 1 == 0 {
            continue; // a null row's bytes are zero, but say nothing of them
        }
        out.validity[k >> 3] &= !(1 << (k & 7));
        out.nulls += 1;
        if v.is_infinite() {
            unreadable.0 += 1;
            unreadable.1.get_or_insert(v);
        }
    }
    ages
}

/// The first `n` timestamps of `bytes` (`width` 8, `ticks` a day) as days since 1970-01-01,
/// rounded down; None if one is out of `i32`'s range. The quotient is estimated in floating
/// point and corrected exactly (a 64-bit division a row was a tenth of a run's CPU).
fn days(bytes: &[u8], n: usize, width: usize, ticks: i64) -> Option<Vec<i32>> {
    if width != 8 || ticks <= 0 {
        return None;
    }
    let per_day = ticks as f64;
    let mut fits = true;
    let days = bytes[..n * 8]
        .chunks_exact(8)
        .map(|b| {
            let v = i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
            // off by at most one (the estimate's error is below a day), so one step corrects it
            let q = (v as f64 / per_day).floor() as i64;
            let r = i128::from(v) - i128::from(q) * i128::from(ticks);
            let q = q + i64::from(r >= i128::from(ticks)) - i64::from(r < 0);
            fits &= i32::try_from(q).is_ok();
            q as i32
        })
        .collect();
    fits.then_some(days)
}

/// Add each row's dictionary index to `bins` (its last entry: the null rows). The decoder
/// has checked every index against its dictionary, and `bins` has one entry more than the
/// classification, which [`Job::grown`] holds the dictionary to.
fn count_indices(indices: &[i32], valid: Validity<'_>, n: usize, bins: &mut [u64]) {
    let null = bins.len() - 1;
    let slot = |i: i32| usize::try_from(i).map_or(null, |i| i.min(null));
    // every row by its index, then the null rows (few, read 64 at a time) moved to the end
    for &i in &indices[..n] {
        bins[slot(i)] += 1;
    }
    valid.for_each_null(0, n, |row| {
        bins[slot(indices[row])] -= 1;
        bins[null] += 1;
    });
}

/// Add each row's financial year (see [`Job::year_bounds`]) to `years` (its last entry: no
/// year). Most blocks are of one year: their first and last dates say so at once.
fn tally_years(days: &[i32], valid: Validity<'_>, n: usize, bounds: &[i32], years: &mut [u64]) {
    let none = years.len() - 1;
    let year_of = |d: i32| -> usize {
        match bounds.partition_point(|&b| b <= d) {
            0 => none,
            k if k >= bounds.len() => none,
            k => k - 1,
        }
    };
    let days = &days[..n];
    if valid.bits.is_none() {
        let (lo, hi) = days
            .iter()
            .fold((i32::MAX, i32::MIN), |(lo, hi), &d| (lo.min(d), hi.max(d)));
        if n > 0 && year_of(lo) == year_of(hi) && year_of(lo) != none {
            years[year_of(lo)] += n as u64;
            return;
        }
    }
    for (row, &d) in days.iter().enumerate() {
        let slot = if valid.is_valid(row) {
            year_of(d)
        } else {
            none
        };
        years[slot] += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::{
        ColumnOut, Validity, as_i32, clamped, count_indices, days, float_ages, tally_years,
    };

    #[test]
    fn years_are_tallied_by_their_bounds_and_nulls_and_others_in_none() {
        // years [10, 20) and [20, 30); the last slot: in no year
        let bounds = [10, 20, 30];
        let mut years = vec![0; 3];
        tally_years(
            &[10, 19, 20, 29, 30, 9],
            Validity::default(),
            6,
            &bounds,
            &mut years,
        );
        assert_eq!(years, [2, 2, 2]);
        let mut years = vec![0; 3];
        tally_years(&[12, 13, 14], Validity::default(), 3, &bounds, &mut years);
        assert_eq!(years, [3, 0, 0]);
        // a null row (bit 1 clear) counts in no year whatever its value
        let bits = [0b101u8];
        let valid = Validity {
            bits: Some(&bits),
            offset: 0,
        };
        let mut years = vec![0; 3];
        tally_years(&[12, 12, 25], valid, 3, &bounds, &mut years);
        assert_eq!(years, [1, 1, 1]);
    }

    #[test]
    fn indices_are_binned_with_nulls_last() {
        let bits = [0b1011u8];
        let valid = Validity {
            bits: Some(&bits),
            offset: 0,
        };
        let mut bins = vec![0; 3];
        count_indices(&[0, 1, 0, 1], valid, 4, &mut bins);
        assert_eq!(bins, [1, 2, 1]);
    }

    #[test]
    fn unaligned_bytes_are_read_as_well() {
        let bytes: Vec<u8> = [7i32, -1, 3].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(&*as_i32(&bytes, 3), &[7, -1, 3]);
        let mut shifted = vec![0u8];
        shifted.extend_from_slice(&bytes);
        assert_eq!(&*as_i32(&shifted[1..], 2), &[7, -1]);
    }

    fn le<T: Copy, const W: usize>(values: &[T], to: fn(T) -> [u8; W]) -> Vec<u8> {
        values.iter().flat_map(|&v| to(v)).collect()
    }

    #[test]
    fn wide_ages_are_clamped_after_the_limit() {
        let wide = le(
            &[40i64, 1 << 40, -(1 << 40), 5_000_000_000],
            i64::to_le_bytes,
        );
        assert_eq!(clamped(&wide, 4, None), [40, i32::MAX, i32::MIN, i32::MAX]);
        // past a limit wider than i32: missing, not clamped back within it
        assert_eq!(
            clamped(&wide, 4, Some(4_000_000_000)),
            [40, -1, i32::MIN, -1]
        );
    }

    fn column(bytes: Vec<u8>, rows: usize, nulls: &[usize]) -> ColumnOut {
        let mut validity = vec![0xff; rows.div_ceil(8)];
        for &k in nulls {
            validity[k >> 3] &= !(1 << (k & 7));
        }
        ColumnOut {
            values: bytes,
            validity,
            rows,
            nulls: nulls.len(),
        }
    }

    #[test]
    fn floating_ages_are_completed_years_and_infinities_unreadable() {
        let values = [
            40.7,
            f64::NAN,
            f64::INFINITY,
            -0.5,
            1e20,
            0.0,
            f64::NEG_INFINITY,
            91.0,
        ];
        // row 5 is null (its bytes zero, as decoded)
        let mut out = column(le(&values, f64::to_le_bytes), 8, &[5]);
        let mut unreadable = (0, None);
        let ages = float_ages(&mut out, 8, 8, Some(90), &mut unreadable);
        assert_eq!(ages[..2], [40, 0]);
        assert_eq!(ages[3..6], [-1, -1, 0]);
        assert_eq!(ages[7], -1, "past max_age: missing");
        assert_eq!(unreadable, (2, Some(f64::INFINITY)));
        // NaN and the infinities are now null, beside the null row
        assert_eq!(out.nulls, 4);
        assert_eq!(out.validity[0], 0b1001_1001);
        // float32, no limit: clamped into i32
        let singles = le(&[40.2f32, 3e9, -3e9], f32::to_le_bytes);
        let mut out = column(singles, 3, &[]);
        let ages = float_ages(&mut out, 3, 4, None, &mut (0, None));
        assert_eq!(ages, [40, i32::MAX, i32::MIN]);
        // the widest limit: an age past it is missing, where no limit keeps it (90+)
        let huge = le(&[1e19f64], f64::to_le_bytes);
        let mut out = column(huge.clone(), 1, &[]);
        assert_eq!(
            float_ages(&mut out, 1, 8, Some(i64::MAX), &mut (0, None)),
            [-1]
        );
        let mut out = column(huge, 1, &[]);
        assert_eq!(float_ages(&mut out, 1, 8, None, &mut (0, None)), [i32::MAX]);
        // a limit that rounds up as a double: ages from it on are past it
        let big = (1i64 << 60) + 1;
        let mut out = column(le(&[(1u64 << 60) as f64], f64::to_le_bytes), 1, &[]);
        assert_eq!(
            float_ages(&mut out, 1, 8, Some(big), &mut (0, None)),
            [i32::MAX]
        );
        let mut out = column(le(&[(1u64 << 60) as f64], f64::to_le_bytes), 1, &[]);
        assert_eq!(
            float_ages(&mut out, 1, 8, Some((1i64 << 60) - 1), &mut (0, None)),
            [-1]
        );
    }

    #[test]
    fn timestamps_are_days_rounded_down() {
        let day = 86_400_000_000_000i64; // nanoseconds
        let stamps = le(&[-1, 0, day - 1, day, -day, -day - 1], i64::to_le_bytes);
        assert_eq!(days(&stamps, 6, 8, day), Some(vec![-1, 0, 0, 1, -1, -2]));
        let far = le(&[i64::MAX], i64::to_le_bytes);
        assert_eq!(days(&far, 1, 8, 86_400_000), None, "past date32's range");
        assert_eq!(days(&far, 1, 8, day), Some(vec![106_751]));
    }
}
