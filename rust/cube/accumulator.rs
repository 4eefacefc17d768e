//! The running totals of a run: each worker's `u32` scratch counts, drained into shared `u64`
//! totals only when they must be, and [`Accumulator`], which validates each batch, splits it
//! over the workers and, at the end, turns the state-key histograms into state histograms.

use rayon::prelude::*;

use super::columns::Batch;
use super::kernel::Block;
use super::row_word::{MAX_ICBS, N_KEYS};
use super::state::STATE_OF_KEY;
use super::tables::Tables;
use super::{Dims, MAX_MEASURES, N_AGE, N_IMD, N_SEX};
use crate::error::CoreError;

/// A counter cell: `u32` in a worker's per-batch scratch (half the cache footprint of the hot
/// tables), `u64` in totals.
pub trait Counter: Copy + Default + Send + Sync {
    fn widen(self) -> u64;
}

impl Counter for u32 {
    #[inline]
    fn widen(self) -> u64 {
        u64::from(self)
    }
}

impl Counter for u64 {
    #[inline]
    fn widen(self) -> u64 {
        self
    }
}

/// The running totals of a run, shared by the workers (each drains its scratch counts into
/// them in turn): one copy of the per-provider tables however many workers there are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partial {
    /// `[icb][sex][age][imd][measure]`, row-major.
    pub cube: Vec<u64>,
    /// `[provider][state key]` (see [`N_KEYS`]).
    pub provider_keys: Vec<u64>,
    /// `[icb or n_icb for none][state key]`.
    pub icb_keys: Vec<u64>,
    /// `[provider][icb or n_icb for none]`.
    pub provider_icb: Vec<u64>,
    pub n_providers: usize,
}

impl Partial {
    #[must_use]
    pub fn new(dims: Dims) -> Self {
        Partial {
            cube: vec![0; dims.cube_len()],
            provider_keys: Vec::new(),
            icb_keys: vec![0; (dims.n_icb + 1) * N_KEYS],
            provider_icb: Vec::new(),
            n_providers: 0,
        }
    }

    /// Grow the provider axis (providers are discovered batch by batch).
    pub fn ensure_providers(&mut self, dims: Dims, n_providers: usize) {
        if n_providers > self.n_providers {
            self.provider_keys.resize(n_providers * N_KEYS, 0);
            self.provider_icb.resize(n_providers * (dims.n_icb + 1), 0);
            self.n_providers = n_providers;
        }
    }
}

/// The result of a run ([`Accumulator::finish`]): the state histograms by *state*, with
/// only the states some row is in as columns (a few dozen of the [`N_STATES`](super::N_STATES)), so that
/// they cost a few hundred bytes per provider.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Total {
    /// `[icb][sex][age][imd][measure]`, row-major.
    pub cube: Vec<u64>,
    /// The state code ([`decode_state`](super::decode_state)) of each column of the histograms, ascending.
    pub states: Vec<usize>,
    /// `[provider][column]`.
    pub provider_states: Vec<u64>,
    /// `[icb or n_icb for none][column]`.
    pub icb_states: Vec<u64>,
    /// `[provider][icb or n_icb for none]`.
    pub provider_icb: Vec<u64>,
    pub n_providers: usize,
}

impl Total {
    /// Count of state `state` for provider `provider` (0 for a state that is no column).
    #[must_use]
    pub fn provider_state(&self, provider: usize, state: usize) -> u64 {
        self.states.iter().position(|&s| s == state).map_or(0, |c| {
            self.provider_states[provider * self.states.len() + c]
        })
    }

    /// Count of state `state` for ICB slot `slot`.
    #[must_use]
    pub fn icb_state(&self, slot: usize, state: usize) -> u64 {
        self.states
            .iter()
            .position(|&s| s == state)
            .map_or(0, |c| self.icb_states[slot * self.states.len() + c])
    }
}

/// `[i][key]` histograms (`width` rows) as `[i][column]` of `n_cols` columns.
fn keys_to_columns(keys: &[u64], col_of_key: &[usize; N_KEYS], n_cols: usize) -> Vec<u64> {
    let mut out = vec![0u64; keys.len() / N_KEYS * n_cols];
    for (row, out_row) in keys
        .chunks_exact(N_KEYS)
        .zip(out.chunks_exact_mut(n_cols.max(1)))
    {
        for (key, &n) in row.iter().enumerate() {
            if n != 0 {
                out_row[col_of_key[key]] += n;
            }
        }
    }
    out
}

fn add_into<T: Counter>(acc: &mut [u64], other: &[T]) {
    for (a, b) in acc.iter_mut().zip(other) {
        *a += b.widen();
    }
}

/// One worker: its recent counts and its block buffers. The running totals are shared
/// ([`Accumulator`]'s), so a worker costs a `u32` per provider and state key, not more.
#[derive(Clone, Debug)]
struct Worker {
    scratch: Scratch,
    block: Block,
}

/// A worker's recent counts, in `u32` (half the cache footprint of the hot tables), added
/// into its `u64` totals by [`Scratch::drain_into`] only when they must be: before a cell
/// could overflow, before the tables change shape (new providers, renumbered measure
/// combinations) and at the end. Draining after every batch cost more than counting a
/// batch of 100,000 rows.
#[derive(Clone, Debug, Default)]
pub(super) struct Scratch {
    /// `[state key][provider]`: key-major, unlike [`Partial`], so that the few keys most
    /// rows have are a few runs of cells however many providers there are, and keys no row
    /// had are skipped when draining.
    pub(super) provider_keys: Vec<u32>,
    /// `[state key][icb or n_icb for none]`, likewise.
    pub(super) icb_keys: Vec<u32>,
    /// `[provider][icb or n_icb for none]`.
    pub(super) provider_icb: Vec<u32>,
    pub(super) n_providers: usize,
    /// The cube by measure *combination*, `[combination][icb][sex][age][imd]`, which
    /// [`Scratch::drain_into`] spreads over the measures. Counting combinations costs one
    /// increment per row, however many measures the row is in. Combinations are the outer
    /// axis because most rows fall in a few of them: their cells are then packed together.
    pub(super) combos: Vec<u32>,
}

impl Scratch {
    /// Size the tables for `n_providers` providers and `n_combo` combinations; a table that
    /// changes size is zeroed, so the scratch must have been drained if it had any counts.
    fn ensure(&mut self, dims: Dims, n_providers: usize, n_combo: usize) {
        let n_slots = dims.n_icb + 1;
        for (v, len) in [
            (&mut self.provider_keys, N_KEYS * n_providers),
            (&mut self.icb_keys, N_KEYS * n_slots),
            (&mut self.provider_icb, n_providers * n_slots),
            (
                &mut self.combos,
                dims.n_icb * N_SEX * N_AGE * N_IMD * n_combo,
            ),
        ] {
            if v.len() != len {
                v.clear();
                v.resize(len, 0);
            }
        }
        self.n_providers = n_providers;
    }

    /// Add the counts into `totals`, each combination into each of its measures
    /// (`combo_masks`), and zero them, ready for the next batch.
    fn drain_into(&mut self, dims: Dims, totals: &mut Partial, combo_masks: &[u64]) {
        let n_m = dims.n_measure;
        let n_cells = dims.n_icb * N_SEX * N_AGE * N_IMD;
        let by_combo = self.combos.chunks_exact(n_cells).zip(combo_masks);
        // combination 0 is "in no measure" (and where rows not included land)
        for (counts, &mask) in by_combo.skip(1) {
            let mut bits = mask;
            while bits != 0 {
                let measure = bits.trailing_zeros() as usize;
                for (&n, out) in counts.iter().zip(totals.cube.chunks_exact_mut(n_m)) {
                    out[measure] += u64::from(n);
                }
                bits &= bits - 1;
            }
        }
        self.combos.fill(0);
        totals.ensure_providers(dims, self.n_providers);
        drain_keys(&mut self.provider_keys, &mut totals.provider_keys);
        drain_keys(&mut self.icb_keys, &mut totals.icb_keys);
        add_into(&mut totals.provider_icb, &self.provider_icb);
        self.provider_icb.fill(0);
    }
}

/// Add key-major counts (`[key][i]`) into `[i][key]` totals and zero them. Most keys are
/// seen in no row, and their rows are skipped.
fn drain_keys(counts: &mut [u32], totals: &mut [u64]) {
    let width = counts.len() / N_KEYS;
    if width == 0 {
        return;
    }
    for (key, row) in counts.chunks_exact_mut(width).enumerate() {
        if row.iter().fold(0, |any, &n| any | n) == 0 {
            continue;
        }
        for (i, n) in row.iter_mut().enumerate() {
            totals[i * N_KEYS + key] += u64::from(*n);
            *n = 0;
        }
    }
}

/// Accumulates batches into per-worker partials; [`Accumulator::finish`] merges them.
#[derive(Debug)]
pub struct Accumulator {
    dims: Dims,
    workers: Vec<Worker>,
    /// The workers' counts once drained.
    totals: Partial,
    pub(super) tables: Tables,
    n_providers: usize,
    rows: u64,
    /// Batches given to [`Accumulator::add`], counted or not (to name one in an error).
    batches: u64,
    /// Rows counted into the scratch tables since they were last drained.
    pending: u64,
}

impl Accumulator {
    /// `n_workers` scratch tables are kept; each batch is split into that many row ranges.
    pub fn new(dims: Dims, n_workers: usize) -> Result<Self, CoreError> {
        if dims.max_age < 0 {
            return Err(CoreError::InvalidArgument(format!(
                "max_age is {}: give a whole number of years, 0 or more",
                dims.max_age
            )));
        }
        if dims.n_measure == 0 || dims.n_measure > MAX_MEASURES {
            return Err(CoreError::Shape(format!(
                "{} measures: between 1 and {MAX_MEASURES} are supported",
                dims.n_measure
            )));
        }
        if dims.n_icb == 0 || dims.n_icb > MAX_ICBS {
            return Err(CoreError::Shape(format!(
                "{} ICBs: between 1 and {MAX_ICBS} are supported",
                dims.n_icb
            )));
        }
        let n_workers = n_workers.max(1);
        Ok(Accumulator {
            dims,
            workers: (0..n_workers)
                .map(|_| Worker {
                    scratch: Scratch::default(),
                    block: Block::new(),
                })
                .collect(),
            totals: Partial::new(dims),
            tables: Tables::new(dims),
            n_providers: 0,
            rows: 0,
            batches: 0,
            pending: 0,
        })
    }

    #[must_use]
    pub fn dims(&self) -> Dims {
        self.dims
    }

    #[must_use]
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Validate and count one batch. `n_providers` is the number of provider ids known so far
    /// (every id in the batch is below it). Runs on the current rayon pool. A batch that
    /// fails leaves the counts as they were.
    pub fn add(&mut self, batch: &Batch<'_>, n_providers: usize) -> Result<(), CoreError> {
        self.add_block(batch, n_providers, false)
    }

    /// [`Accumulator::add`], with `same_tables` saying that `batch`'s dictionary tables are
    /// those of the batch added before (the next block of one row group): they are then
    /// not rebuilt (a 30,000-entry LSOA dictionary cost a tenth of counting a block).
    pub fn add_block(
        &mut self,
        batch: &Batch<'_>,
        n_providers: usize,
        same_tables: bool,
    ) -> Result<(), CoreError> {
        self.batches += 1;
        let same_tables = same_tables && !self.tables.provider.is_empty();
        if same_tables {
            batch.validate_columns()?;
        } else {
            batch.validate(self.dims, n_providers)?;
        }
        let n = batch.n_rows;
        if n > u32::MAX as usize {
            // The u32 scratch cells must not overflow; Python never sends batches this big.
            return Err(CoreError::Shape(format!(
                "a batch of {n} rows is larger than {} rows",
                u32::MAX
            )));
        }
        let dims = self.dims;
        self.n_providers = self.n_providers.max(n_providers);
        if self.tables.renumbers(batch)
            || self.pending + n as u64 > u64::from(u32::MAX)
            || self
                .workers
                .iter()
                .any(|w| w.scratch.n_providers != self.n_providers)
        {
            self.drain();
        }
        if !same_tables {
            self.tables.refill(batch)?;
        }
        let n_combo = self.tables.combo_masks.len();
        for worker in &mut self.workers {
            worker.scratch.ensure(dims, self.n_providers, n_combo);
        }
        // Small batches are not worth waking the other workers for.
        let active = if n < 65_536 { 1 } else { self.workers.len() };
        let per = n.div_ceil(active);
        let ranges: Vec<(usize, usize)> = (0..active)
            .map(|w| ((w * per).min(n), ((w + 1) * per).min(n)))
            .collect();
        let tables = &self.tables;
        let count = |workers: &mut [Worker], delta: u32| {
            workers
                .par_iter_mut()
                .zip(ranges.par_iter())
                .map(|(worker, &(start, end))| {
                    let (scratch, block) = (&mut worker.scratch, &mut worker.block);
                    batch.count_range(dims, tables, scratch, block, start, end, delta)
                })
                .collect::<Vec<bool>>()
        };
        if !count(&mut self.workers, 1).iter().all(|&ok| ok) {
            // take the batch's rows back out, then find the row at fault
            count(&mut self.workers, u32::MAX);
            let (column, row, index, dict_len) = ranges
                .iter()
                .find_map(|&(start, end)| batch.bad_index(start, end))
                .ok_or_else(|| {
                    CoreError::Shape("a dictionary index is out of range in no row".into())
                })?;
            return Err(CoreError::BadIndex {
                column: column.into(),
                index,
                dict_len,
                batch: self.batches,
                batch_row: row as u64 + 1,
                row: self.rows + row as u64 + 1,
            });
        }
        self.pending += n as u64;
        self.rows += n as u64;
        Ok(())
    }

    /// Add `other`'s counts (another accumulator of the same dimensions, which counted other
    /// rows: a row group counted on another thread) into these, and empty `other`.
    pub fn absorb(&mut self, other: &mut Accumulator) {
        other.drain();
        self.drain();
        let dims = self.dims;
        self.n_providers = self.n_providers.max(other.n_providers);
        if self.rows == 0 {
            // nothing of its own yet: take the other's totals rather than add them (the
            // per-provider ones can be tens of MB)
            std::mem::swap(&mut self.totals, &mut other.totals);
        }
        self.totals.ensure_providers(dims, self.n_providers);
        let (t, o) = (&mut self.totals, &mut other.totals);
        add_into(&mut t.cube, &o.cube);
        add_into(&mut t.icb_keys, &o.icb_keys);
        add_into(&mut t.provider_keys, &o.provider_keys);
        add_into(&mut t.provider_icb, &o.provider_icb);
        for v in [
            &mut o.cube,
            &mut o.icb_keys,
            &mut o.provider_keys,
            &mut o.provider_icb,
        ] {
            v.fill(0);
        }
        self.rows += other.rows;
        other.rows = 0;
    }

    /// Add every worker's scratch counts into the totals, one worker after the other (this
    /// happens only when the tables change shape: rarely, once the providers are all seen).
    fn drain(&mut self) {
        self.drain_to(None);
    }

    /// Drain into `target`'s totals instead of these (see [`Accumulator::flush_into`]).
    /// Nothing to do when no row was counted since the last drain: then the totals are not
    /// even sized for the providers (a thread's accumulator that is flushed after every row
    /// group never holds per-provider totals of its own: with 20,000 providers they are
    /// 80 MB).
    fn drain_to(&mut self, target: Option<&mut Partial>) {
        if self.pending == 0 {
            return;
        }
        let (dims, masks) = (self.dims, &self.tables.combo_masks);
        let totals = match target {
            Some(t) => t,
            None => &mut self.totals,
        };
        for worker in &mut self.workers {
            worker.scratch.drain_into(dims, totals, masks);
        }
        self.pending = 0;
    }

    /// Move the rows counted since the last flush (a row group's, counted on another thread)
    /// into `target` (an accumulator of the same dimensions), straight from the workers'
    /// scratch counts into its totals.
    pub fn flush_into(&mut self, target: &mut Accumulator) {
        self.drain_to(Some(&mut target.totals));
        target.n_providers = target.n_providers.max(self.n_providers);
        target.rows += self.rows;
        self.rows = 0;
    }

    /// The counts so far (draining the scratch counts first), the state histograms turned
    /// from keys into the states some row is in.
    #[must_use]
    pub fn finish(&mut self) -> Total {
        self.drain();
        let dims = self.dims;
        self.totals.ensure_providers(dims, self.n_providers);
        let t = &self.totals;
        // Every row is in one ICB slot, so the keys of the ICB histograms are all there are.
        let mut seen = [false; N_KEYS];
        for row in t.icb_keys.chunks_exact(N_KEYS) {
            for (s, &n) in seen.iter_mut().zip(row) {
                *s |= n != 0;
            }
        }
        let mut states: Vec<usize> = (0..N_KEYS)
            .filter(|&k| seen[k])
            .map(|k| usize::from(STATE_OF_KEY[k]))
            .collect();
        states.sort_unstable();
        states.dedup();
        let mut col_of_key = [0usize; N_KEYS];
        for (k, col) in col_of_key.iter_mut().enumerate() {
            let state = usize::from(STATE_OF_KEY[k]);
            *col = states.binary_search(&state).unwrap_or(0);
        }
        let n_cols = states.len();
        Total {
            cube: t.cube.clone(),
            provider_states: keys_to_columns(&t.provider_keys, &col_of_key, n_cols),
            icb_states: keys_to_columns(&t.icb_keys, &col_of_key, n_cols),
            provider_icb: t.provider_icb.clone(),
            n_providers: t.n_providers,
            states,
        }
    }
}
