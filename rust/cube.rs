//! Record batches to count cubes: the derivations of SPEC section 2, one pass over the rows.
//!
//! Python classifies each *dictionary* of a batch once (practice -> ICB, LSOA -> ICB and IMD
//! quintile, modality and exam code -> measures); this module then walks the rows once,
//! looking every value up through those small tables, and adds into
//!
//! * the dense cube `ICB x sex x age band x IMD quintile x measure` (counted per batch by
//!   measure *combination*, one increment per row, and spread over the measures at the end
//!   of the batch),
//! * a histogram of row *states* per provider and per derived ICB, from which every
//!   data-quality counter of Annex A is derived at the end (one increment per table per row
//!   instead of one per counter), and
//! * provider x derived-ICB counts (to allocate providers' missing records to ICBs).
//!
//! The rows of a batch are split into one contiguous range per worker thread and each worker
//! counts into its own `u32` scratch tables, which are added into its [`Partial`] (u64) when
//! every worker has checked its rows; partials persist across batches and are merged once at
//! the end, so nothing is shared or locked on the hot path.
//!
//! Nothing here knows about Python: the inputs are plain slices.

use rayon::prelude::*;

use crate::error::CoreError;

/// Number of sex levels in the cube (male, female).
pub const N_SEX: usize = 2;
/// Number of age bands (0-4, 5-9, ..., 85-89, 90+).
pub const N_AGE: usize = 19;
/// Number of IMD quintiles (1 = most deprived).
pub const N_IMD: usize = 5;
/// Most measures one run can count (a row's measures are a `u64` bit mask).
pub const MAX_MEASURES: usize = 64;

/// Practice/LSOA class: the code was null or blank.
pub const BLANK: i32 = -3;
/// Practice/LSOA class: a code was given but is in no lookup.
pub const UNRECOGNISED: i32 = -2;
/// Practice class: a valid practice outside the English ICBs (Welsh, prisons, MoD, ...).
pub const OTHER_VALID: i32 = -1;

/// How the ICB of a record was found (SPEC section 2, in rule order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum IcbSource {
    GpPractice = 0,
    OtherValidPractice = 1,
    Lsoa = 2,
    Unknown = 3,
}

/// The first exclusion reason that applies to a record, or `Included`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Outcome {
    NoIcb = 0,
    NoImd = 1,
    NoSex = 2,
    NoAge = 3,
    NoMeasure = 4,
    Included = 5,
}

/// Bits of a row state, see [`state_code`]. The state of a row packs its ICB source (4 values),
/// outcome (6 values) and five flags; [`N_STATES`] states in all.
pub const N_STATES: usize = 4 * 6 * 32;
const FLAG_NO_PRACTICE: usize = 1;
const FLAG_NO_LSOA: usize = 2;
const FLAG_MISSING_IMD: usize = 4;
const FLAG_MISSING_SEX: usize = 8;
const FLAG_MISSING_AGE: usize = 16;

/// A row is derived as one `u32` *row word*, the sum of one word per column looked up in the
/// batch's tables (see [`count_block`]). The fields are disjoint, so the sum never carries:
///
/// - bits 0..8: the row's offset within its ICB's block of the cube,
///   `sex * N_AGE * N_IMD + band * N_IMD + imd` (at most 189);
/// - bits 8..16: the *state key*, bits `K_*`, from which [`STATE_OF_KEY`] gives the state;
/// - bits 16..31: the ICB slot (`n_icb` for none);
/// - bit 31, practice words only: [`DEFER`], the ICB comes from the LSOA.
const W_KEY: u32 = 8;
const W_ICB: u32 = 16;
/// State key: the ICB source is 1 or 3 (no ICB).
const K_NO_ICB: u32 = 1;
/// State key: the ICB source is 2 or 3 (the LSOA decided).
const K_BY_LSOA: u32 = 2;
const K_NO_PRACTICE: u32 = 4;
const K_NO_LSOA: u32 = 8;
const K_MISSING_IMD: u32 = 16;
const K_MISSING_SEX: u32 = 32;
const K_MISSING_AGE: u32 = 64;
const K_NO_MEASURE: u32 = 128;
/// State key bits of which any excludes the row.
const K_EXCLUDED: u32 = K_NO_ICB | K_MISSING_IMD | K_MISSING_SEX | K_MISSING_AGE | K_NO_MEASURE;
/// Practice word: the practice decides nothing (blank or unrecognised); the LSOA word's ICB
/// fields are used.
const DEFER: u32 = 1 << 31;
/// The fields of an LSOA word that count whichever decided the ICB: the IMD quintile and
/// the no-LSOA and missing-IMD keys.
const LSOA_ALWAYS: u32 = 0xFF | (K_NO_LSOA | K_MISSING_IMD) << W_KEY;
/// Largest number of ICBs the row word has room for.
const MAX_ICBS: usize = (1 << (31 - W_ICB)) - 2;

/// Number of state keys (see [`W_KEY`]): the state histograms are counted by key, a third
/// the size of a histogram by state, and turned into states by [`Accumulator::finish`].
pub const N_KEYS: usize = 256;

/// The state code ([`state_code`]) of each state key.
static STATE_OF_KEY: [u16; N_KEYS] = state_of_key();

const fn state_of_key() -> [u16; N_KEYS] {
    const fn flag(key: u32, bit: u32, flag: usize) -> usize {
        if key & bit != 0 { flag } else { 0 }
    }
    let mut out = [0u16; N_KEYS];
    let mut key = 0;
    while key < N_KEYS {
        let k = key as u32;
        let source = (k & (K_NO_ICB | K_BY_LSOA)) as usize;
        // the first reason that applies, in the published precedence
        let outcome = if k & K_NO_ICB != 0 {
            Outcome::NoIcb
        } else if k & K_MISSING_IMD != 0 {
            Outcome::NoImd
        } else if k & K_MISSING_SEX != 0 {
            Outcome::NoSex
        } else if k & K_MISSING_AGE != 0 {
            Outcome::NoAge
        } else if k & K_NO_MEASURE != 0 {
            Outcome::NoMeasure
        } else {
            Outcome::Included
        };
        let flags = flag(k, K_NO_PRACTICE, FLAG_NO_PRACTICE)
            | flag(k, K_NO_LSOA, FLAG_NO_LSOA)
            | flag(k, K_MISSING_IMD, FLAG_MISSING_IMD)
            | flag(k, K_MISSING_SEX, FLAG_MISSING_SEX)
            | flag(k, K_MISSING_AGE, FLAG_MISSING_AGE);
        out[key] = state_code(source, outcome as usize, flags) as u16;
        key += 1;
    }
    out
}

/// Decoded row state (the inverse of [`state_code`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(clippy::struct_excessive_bools)] // flags mirror the counters of Annex A one to one
pub struct RowState {
    pub source: u8,
    pub outcome: u8,
    pub no_practice: bool,
    pub no_lsoa: bool,
    pub missing_imd: bool,
    pub missing_sex: bool,
    pub missing_age: bool,
}

/// Flags are the most significant part of the code: most rows have no flag set, so the states
/// they fall in are the first 24 of a provider's or ICB's histogram, a cache line or two, and
/// the histograms stay hot in cache however many providers there are.
#[inline]
const fn state_code(source: usize, outcome: usize, flags: usize) -> usize {
    flags * 24 + source * 6 + outcome
}

/// Decode a state index produced by the counting pass.
#[must_use]
pub fn decode_state(code: usize) -> RowState {
    let flags = code / 24;
    let rest = code % 24;
    RowState {
        source: (rest / 6) as u8,
        outcome: (rest % 6) as u8,
        no_practice: flags & FLAG_NO_PRACTICE != 0,
        no_lsoa: flags & FLAG_NO_LSOA != 0,
        missing_imd: flags & FLAG_MISSING_IMD != 0,
        missing_sex: flags & FLAG_MISSING_SEX != 0,
        missing_age: flags & FLAG_MISSING_AGE != 0,
    }
}

/// An Arrow validity bitmap (LSB first) with a bit offset; `None` means no nulls.
#[derive(Clone, Copy, Debug, Default)]
pub struct Validity<'a> {
    pub bits: Option<&'a [u8]>,
    pub offset: usize,
}

impl Validity<'_> {
    #[inline]
    pub(crate) fn is_valid(&self, row: usize) -> bool {
        match self.bits {
            None => true,
            Some(bits) => {
                let i = row + self.offset;
                bits[i >> 3] & (1 << (i & 7)) != 0
            }
        }
    }

    pub(crate) fn check(&self, len: usize, what: &str) -> Result<(), CoreError> {
        if let Some(bits) = self.bits
            && bits.len() * 8 < self.offset + len
        {
            return Err(CoreError::Shape(format!(
                "{what}: validity bitmap of {} bytes is too short for {len} rows at offset {}",
                bits.len(),
                self.offset
            )));
        }
        Ok(())
    }
}

/// A dictionary-encoded column: per-row indices into a per-batch dictionary.
#[derive(Clone, Copy, Debug)]
pub struct Coded<'a> {
    pub indices: &'a [i32],
    pub validity: Validity<'a>,
}

impl Coded<'_> {
    /// Lengths only: the counting pass checks every index as it looks it up, and
    /// [`Coded::bad_index`] finds the row at fault when one is out of range.
    fn check(&self, len: usize, _dict_len: usize, what: &str) -> Result<(), CoreError> {
        if self.indices.len() < len {
            return Err(CoreError::Shape(format!(
                "{what}: {} indices for {len} rows",
                self.indices.len()
            )));
        }
        self.validity.check(len, what)
    }

    /// The first row of `start..end` whose index is not null and outside a dictionary of
    /// `dict_len` values, with that index. Only called once the counting pass found one, so
    /// it is a plain scan.
    fn bad_index(&self, dict_len: usize, start: usize, end: usize) -> Option<(usize, i64)> {
        self.indices[start..end]
            .iter()
            .enumerate()
            .find(|&(j, &i)| (i < 0 || i as usize >= dict_len) && self.validity.is_valid(start + j))
            .map(|(j, &i)| (start + j, i64::from(i)))
    }
}

/// A plain column of fixed-width values: integers (`Ints`) or dates as days since
/// 1970-01-01 (`Days`, Arrow `date32`).
#[derive(Clone, Copy, Debug)]
pub struct Values<'a, T> {
    pub values: &'a [T],
    pub validity: Validity<'a>,
}

/// An integer column (wider integers are clamped to `i32` in Python: ages and sex codes
/// that large are invalid either way).
pub type Ints<'a> = Values<'a, i32>;
/// A date column (days since 1970-01-01).
pub type Days<'a> = Values<'a, i32>;

impl<T: Copy> Values<'_, T> {
    #[inline]
    fn get(&self, row: usize) -> Option<T> {
        if self.validity.is_valid(row) {
            Some(self.values[row])
        } else {
            None
        }
    }

    pub(crate) fn check(&self, len: usize, what: &str) -> Result<(), CoreError> {
        if self.values.len() < len {
            return Err(CoreError::Shape(format!(
                "{what}: {} values for {len} rows",
                self.values.len()
            )));
        }
        self.validity.check(len, what)
    }
}

/// The sex column: NHS Person Gender Code as strings (classified per dictionary entry:
/// 0 male, 1 female, -1 anything else) or as integers (1 male, 2 female).
#[derive(Clone, Copy, Debug)]
pub enum SexColumn<'a> {
    Coded { column: Coded<'a>, class: &'a [i8] },
    Ints(Ints<'a>),
}

/// Where the age in whole years comes from.
#[derive(Clone, Copy, Debug)]
pub enum AgeColumn<'a> {
    Years(Ints<'a>),
    Dates { birth: Days<'a>, test: Days<'a> },
}

/// One record batch, already classified per dictionary entry.
#[derive(Clone, Copy, Debug)]
pub struct Batch<'a> {
    pub n_rows: usize,
    /// Provider code per row -> global provider id through `provider_ids`.
    pub provider: Coded<'a>,
    pub provider_ids: &'a [u32],
    /// Global id used for rows whose provider code is null.
    pub provider_null_id: u32,
    /// Practice per row -> ICB index, [`OTHER_VALID`], [`UNRECOGNISED`] or [`BLANK`].
    pub practice: Coded<'a>,
    pub practice_class: &'a [i32],
    /// LSOA per row -> ICB index, [`UNRECOGNISED`] or [`BLANK`]; and IMD quintile 0..4 or -1.
    pub lsoa: Coded<'a>,
    pub lsoa_icb: &'a [i32],
    pub lsoa_imd: &'a [i8],
    pub sex: SexColumn<'a>,
    pub age: AgeColumn<'a>,
    /// Modality per row -> modality id (-1: in no measure); exam code -> exam id (0: other).
    pub modality: Coded<'a>,
    pub modality_ids: &'a [i16],
    pub exam: Option<Coded<'a>>,
    pub exam_ids: &'a [i16],
    /// Measures of (modality id, exam id): bit m of `measure_masks[mod * n_exam + exam]`.
    pub measure_masks: &'a [u64],
    pub n_exam: usize,
}

/// The fixed shape of a cube.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    pub n_icb: usize,
    pub n_measure: usize,
    /// Ages above this (in whole years) are treated as invalid; `i64::MAX` for no limit (the
    /// default from Python: SPEC section 2 puts every age from 90 up in the 90+ band).
    pub max_age: i64,
}

impl Dims {
    #[must_use]
    pub fn cube_len(&self) -> usize {
        self.n_icb * N_SEX * N_AGE * N_IMD * self.n_measure
    }
}

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
/// only the states some row is in as columns (a few dozen of the [`N_STATES`]), so that
/// they cost a few hundred bytes per provider.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Total {
    /// `[icb][sex][age][imd][measure]`, row-major.
    pub cube: Vec<u64>,
    /// The state code ([`decode_state`]) of each column of the histograms, ascending.
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
struct Scratch {
    /// `[state key][provider]`: key-major, unlike [`Partial`], so that the few keys most
    /// rows have are a few runs of cells however many providers there are, and keys no row
    /// had are skipped when draining.
    provider_keys: Vec<u32>,
    /// `[state key][icb or n_icb for none]`, likewise.
    icb_keys: Vec<u32>,
    /// `[provider][icb or n_icb for none]`.
    provider_icb: Vec<u32>,
    n_providers: usize,
    /// The cube by measure *combination*, `[combination][icb][sex][age][imd]`, which
    /// [`Scratch::drain_into`] spreads over the measures. Counting combinations costs one
    /// increment per row, however many measures the row is in. Combinations are the outer
    /// axis because most rows fall in a few of them: their cells are then packed together.
    combos: Vec<u32>,
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

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
#[must_use]
pub fn civil_from_days(days: i32) -> (i32, u32, u32) {
    let z = i64::from(days) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = if m <= 2 { y + 1 } else { y };
    (y as i32, m, d)
}

/// Age in whole years on `test` of someone born on `birth` (both days since 1970-01-01).
/// A 29 February birthday is reached on 1 March in common years.
#[must_use]
pub fn age_in_years(birth: i32, test: i32) -> i64 {
    let (by, bm, bd) = civil_from_days(birth);
    let (ty, tm, td) = civil_from_days(test);
    let mut age = i64::from(ty) - i64::from(by);
    if (tm, td) < (bm, bd) {
        age -= 1;
    }
    age
}

/// Age band index 0..18 for a valid age in years, `None` when invalid (negative or > max).
#[inline]
#[must_use]
pub fn age_band(age: i64, max_age: i64) -> Option<usize> {
    if (0..=max_age).contains(&age) {
        Some(((age / 5) as usize).min(N_AGE - 1))
    } else {
        None
    }
}

impl Batch<'_> {
    /// Check every slice against the row count and every dictionary index against its
    /// dictionary, so the counting pass can never index out of bounds.
    pub fn validate(&self, dims: Dims, n_providers: usize) -> Result<(), CoreError> {
        let n = self.n_rows;
        self.provider
            .check(n, self.provider_ids.len(), "provider_code")?;
        if let Some(&bad) = self
            .provider_ids
            .iter()
            .chain(std::iter::once(&self.provider_null_id))
            .find(|&&id| id as usize >= n_providers)
        {
            return Err(CoreError::Shape(format!(
                "provider id {bad} is outside the {n_providers} providers seen"
            )));
        }
        self.practice
            .check(n, self.practice_class.len(), "gp_practice_code")?;
        check_classes(self.practice_class, dims.n_icb, "gp_practice_code", true)?;
        self.lsoa.check(n, self.lsoa_icb.len(), "lsoa11")?;
        check_classes(self.lsoa_icb, dims.n_icb, "lsoa11", false)?;
        if self.lsoa_imd.len() != self.lsoa_icb.len()
            || self
                .lsoa_imd
                .iter()
                .any(|&q| !(-1..N_IMD as i8).contains(&q))
        {
            return Err(CoreError::Shape(
                "lsoa11: IMD table does not match the dictionary".into(),
            ));
        }
        match self.sex {
            SexColumn::Coded { column, class } => {
                column.check(n, class.len(), "sex")?;
                if class.iter().any(|&c| !(-1..N_SEX as i8).contains(&c)) {
                    return Err(CoreError::Shape("sex: class table out of range".into()));
                }
            }
            SexColumn::Ints(ints) => ints.check(n, "sex")?,
        }
        match self.age {
            AgeColumn::Years(ints) => ints.check(n, "age")?,
            AgeColumn::Dates { birth, test } => {
                birth.check(n, "date_of_birth")?;
                test.check(n, "test_date")?;
            }
        }
        self.modality
            .check(n, self.modality_ids.len(), "modality")?;
        let n_mod = self.measure_masks.len() / self.n_exam.max(1);
        if self.n_exam == 0
            || self.measure_masks.len() != n_mod * self.n_exam
            || self
                .modality_ids
                .iter()
                .any(|&m| m < -1 || m as isize >= n_mod as isize)
        {
            return Err(CoreError::Shape(
                "modality: measure table does not match".into(),
            ));
        }
        if let Some(exam) = self.exam {
            exam.check(n, self.exam_ids.len(), "exam_code")?;
        }
        if self
            .exam_ids
            .iter()
            .any(|&e| e < 0 || e as usize >= self.n_exam)
        {
            return Err(CoreError::Shape(
                "exam_code: exam table out of range".into(),
            ));
        }
        let all_bits = if dims.n_measure >= 64 {
            u64::MAX
        } else {
            (1u64 << dims.n_measure) - 1
        };
        if self.measure_masks.iter().any(|&m| m & !all_bits != 0) {
            return Err(CoreError::Shape(
                "measure mask names an unknown measure".into(),
            ));
        }
        Ok(())
    }

    /// The first column, row of `start..end`, index and dictionary length of a dictionary
    /// index out of range (see [`Coded::bad_index`]), if any.
    fn bad_index(&self, start: usize, end: usize) -> Option<(&'static str, usize, i64, usize)> {
        let mut columns = vec![
            ("provider_code", self.provider, self.provider_ids.len()),
            ("gp_practice_code", self.practice, self.practice_class.len()),
            ("lsoa11", self.lsoa, self.lsoa_icb.len()),
            ("modality", self.modality, self.modality_ids.len()),
        ];
        if let SexColumn::Coded { column, class } = self.sex {
            columns.push(("sex", column, class.len()));
        }
        if let Some(exam) = self.exam {
            columns.push(("exam_code", exam, self.exam_ids.len()));
        }
        columns.into_iter().find_map(|(name, column, dict_len)| {
            column
                .bad_index(dict_len, start, end)
                .map(|(row, index)| (name, row, index, dict_len))
        })
    }

    /// Count rows `start..end` into `scratch`, adding `delta` to each count (1, or
    /// `u32::MAX` to take back what an earlier call added). [`Batch::validate`] must have
    /// passed. Returns `false` if a dictionary index was out of range: the rows are counted
    /// all the same (a row with a bad index reads the null entry), so that the same call
    /// with the opposite `delta` takes them back exactly.
    ///
    /// Rows go through in blocks of [`BLOCK`], in two stages: first each column is looked up
    /// through its table into a per-block array ([`Block`]), one tight loop per column, which
    /// is also where every dictionary index is checked; then branch-free loops over the block
    /// derive each row and add it into the tables ([`count_block`]).
    #[must_use]
    #[allow(clippy::too_many_arguments)] // one worker's whole context, kept flat for speed
    fn count_range(
        &self,
        dims: Dims,
        tables: &Tables,
        scratch: &mut Scratch,
        block: &mut Block,
        start: usize,
        end: usize,
        delta: u32,
    ) -> bool {
        let mut ok = true;
        let mut from = start;
        while from < end {
            let len = BLOCK.min(end - from);
            ok &= self.look_up(tables, block, from, len);
            count_block(dims, block, len, scratch, delta);
            from += len;
        }
        ok
    }

    /// Stage one: fill `block` with the table values of rows `from..from + len`.
    fn look_up(&self, tables: &Tables, block: &mut Block, from: usize, len: usize) -> bool {
        let mut ok = gather(
            &self.provider,
            &tables.provider,
            from,
            &mut block.provider[..len],
        );
        ok &= gather(
            &self.practice,
            &tables.practice,
            from,
            &mut block.word[..len],
        );
        ok &= gather(&self.lsoa, &tables.lsoa, from, &mut block.lsoa[..len]);
        let sex = &mut block.sex[..len];
        match self.sex {
            SexColumn::Coded { column, .. } => ok &= gather(&column, &tables.sex, from, sex),
            SexColumn::Ints(ints) => {
                map_values(&ints, from, sex, SEX_MISSING, |v| match v {
                    1 => sex_word(0),
                    2 => sex_word(1),
                    _ => SEX_MISSING,
                });
            }
        }
        let band = &mut block.band[..len];
        match self.age {
            AgeColumn::Years(ints) => {
                map_values(&ints, from, band, AGE_MISSING, |a| {
                    tables.band_of_age(i64::from(a))
                });
            }
            AgeColumn::Dates { birth, test } => {
                for (j, b) in band.iter_mut().enumerate() {
                    let row = from + j;
                    *b = match (birth.get(row), test.get(row)) {
                        (Some(b), Some(t)) => tables.band_of_age(age_in_years(b, t)),
                        _ => AGE_MISSING,
                    };
                }
            }
        }
        // The combination is `combos[m + e]`: by dictionary index (m the modality's index
        // times the exam stride, e the exam code's index) or, when that table would be too
        // big, by id (the parts looked up per dictionary entry).
        let (modality, exam) = (&mut block.modality[..len], &mut block.exam[..len]);
        let combos = if tables.combo_by_index.is_empty() {
            ok &= gather(&self.modality, &tables.modality, from, modality);
            match self.exam {
                Some(column) => ok &= gather(&column, &tables.exam, from, exam),
                None => exam.fill(0),
            }
            &tables.combo_of
        } else {
            let n_modality = self.modality_ids.len();
            ok &= indices(
                &self.modality,
                n_modality,
                tables.exam_stride,
                from,
                modality,
            );
            match self.exam {
                Some(column) => ok &= indices(&column, self.exam_ids.len(), 1, from, exam),
                None => exam.fill(0),
            }
            &tables.combo_by_index
        };
        let last = combos.len() - 1;
        for (c, (&m, &e)) in block.combo[..len]
            .iter_mut()
            .zip(modality.iter().zip(&*exam))
        {
            *c = combos[(m as usize + e as usize).min(last)];
        }
        ok
    }
}

/// Rows per block of the counting pass: the block's arrays (26 bytes a row) stay in L1.
const BLOCK: usize = 1024;

/// The table values of one block of rows (see [`Batch::count_range`]): the parts of each
/// row's word, its provider and its measure combination.
#[derive(Clone, Debug)]
struct Block {
    provider: Vec<u32>,
    /// The practice's word, made the whole row's word by [`count_block`].
    word: Vec<u32>,
    lsoa: Vec<u32>,
    sex: Vec<u16>,
    band: Vec<u16>,
    /// The two parts of the index of the row's measure combination (see [`Batch::look_up`]).
    modality: Vec<u32>,
    exam: Vec<u32>,
    /// Measure combination of the row (see [`Tables::combo_masks`]); 0: in no measure.
    combo: Vec<u16>,
}

impl Block {
    fn new() -> Self {
        Block {
            provider: vec![0; BLOCK],
            word: vec![0; BLOCK],
            lsoa: vec![0; BLOCK],
            sex: vec![0; BLOCK],
            band: vec![0; BLOCK],
            modality: vec![0; BLOCK],
            exam: vec![0; BLOCK],
            combo: vec![0; BLOCK],
        }
    }
}

/// `out[j] = table[index of row from + j]`, where a null row reads the table's extra last
/// entry. Returns `false` if a non-null index is outside the dictionary (the batch is then
/// rejected whole); such a row also reads the null entry, so nothing is indexed out of bounds.
///
/// Every row is looked up as if valid, then null rows are overwritten ([`for_each_null`]):
/// nulls are a few rows in a hundred, and testing each row's validity bit cost more than the
/// look-up itself.
#[inline]
fn gather<T: Copy>(column: &Coded<'_>, table: &[T], from: usize, out: &mut [T]) -> bool {
    let null = table.len() - 1;
    let indices = &column.indices[from..from + out.len()];
    // Negative indices become huge as u32, so one maximum checks both ends.
    let mut highest = 0u32;
    for (o, &i) in out.iter_mut().zip(indices) {
        let i = i as u32;
        highest = highest.max(i);
        *o = table[(i as usize).min(null)];
    }
    let all_in = out.is_empty() || (highest as usize) < null;
    patch_nulls(column, from, out.len(), null, all_in, |j| {
        out[j] = table[null];
    })
}

/// `out[j] = index of row from + j, times scale`, where a null row (or one whose index is
/// out of range) reads `dict_len`, one past the dictionary. Returns `false` as [`gather`]
/// does. With no table to read, this loop vectorises.
#[inline]
fn indices(column: &Coded<'_>, dict_len: usize, scale: u32, from: usize, out: &mut [u32]) -> bool {
    let indices = &column.indices[from..from + out.len()];
    let mut highest = 0u32;
    for (o, &i) in out.iter_mut().zip(indices) {
        let i = i as u32;
        highest = highest.max(i);
        *o = i.min(dict_len as u32) * scale;
    }
    let all_in = out.is_empty() || (highest as usize) < dict_len;
    let null = dict_len as u32 * scale;
    patch_nulls(column, from, out.len(), dict_len, all_in, |j| {
        out[j] = null;
    })
}

/// The end of [`gather`] and [`indices`]: `set_null(j)` for each null row `j` of the `len`
/// rows from `from`; then whether every non-null index is below `dict_len`. `all_in` says
/// whether every index, null rows' too, was: a null row's index may hold anything, so only
/// when it is false are the rows checked one by one.
#[inline]
fn patch_nulls(
    column: &Coded<'_>,
    from: usize,
    len: usize,
    dict_len: usize,
    all_in: bool,
    set_null: impl FnMut(usize),
) -> bool {
    let Some(bits) = column.validity.bits else {
        return all_in;
    };
    let start = column.validity.offset + from;
    for_each_null(bits, start, len, set_null);
    all_in
        || column.indices[from..from + len]
            .iter()
            .enumerate()
            .all(|(j, &i)| {
                let k = start + j;
                bits[k >> 3] >> (k & 7) & 1 == 0 || (i as u32 as usize) < dict_len
            })
}

/// Call `f(j)` for each null row `j` of the `len` rows whose validity bits start at bit
/// `start` of `bits` (LSB first), reading the bitmap 64 rows at a time.
#[inline]
fn for_each_null(bits: &[u8], start: usize, len: usize, mut f: impl FnMut(usize)) {
    let mut j = 0;
    while j < len {
        let k = start + j;
        let (byte, shift) = (k >> 3, k & 7);
        let mut word = [0xFF; 8];
        let avail = (bits.len() - byte).min(8);
        word[..avail].copy_from_slice(&bits[byte..byte + avail]);
        let take = (64 - shift).min(len - j);
        let mask = if take == 64 {
            u64::MAX
        } else {
            (1 << take) - 1
        };
        let mut nulls = !(u64::from_le_bytes(word) >> shift) & mask;
        while nulls != 0 {
            f(j + nulls.trailing_zeros() as usize);
            nulls &= nulls - 1;
        }
        j += take;
    }
}

/// `out[j] = f(value of row from + j)`, or `null` where the row is null (`f` is applied to
/// every row, null or not, so it must accept any value).
#[inline]
fn map_values<T: Copy>(
    column: &Ints<'_>,
    from: usize,
    out: &mut [T],
    null: T,
    f: impl Fn(i32) -> T,
) {
    let values = &column.values[from..from + out.len()];
    for (o, &v) in out.iter_mut().zip(values) {
        *o = f(v);
    }
    if let Some(bits) = column.validity.bits {
        for_each_null(bits, column.validity.offset + from, out.len(), |j| {
            out[j] = null;
        });
    }
}

/// Stage two: derive each row of `block` (SPEC section 2: ICB source, exclusion, measures)
/// and add it into `scratch`. `block` is changed: its practice words become row words.
///
/// The row's word is the sum of its column words (see [`W_KEY`]): the practice word, or the
/// LSOA's ICB fields when the practice [`DEFER`]s, and the LSOA, sex, age and measure fields.
/// Its state key is what the histograms count; [`STATE_OF_KEY`] turns keys into states at the
/// end, with the exclusion precedence and the flags worked out once per key, not per row.
///
/// Branch-free: which exclusion applies to a row is close to random, so branches on it would be
/// mispredicted often. A row adds `delta` (1, or -1 to take a batch back) to its cell's
/// *measure combination* (every row, whatever its outcome, so that there is no branch: rows not
/// included land in cell 0 of combination 0, which is never read) and to each state histogram.
fn count_block(dims: Dims, block: &mut Block, len: usize, scratch: &mut Scratch, delta: u32) {
    let n_slots = dims.n_icb + 1;
    let stride_icb = N_SEX * N_AGE * N_IMD;
    let n_cells = dims.n_icb * stride_icb;
    let n_providers = scratch.n_providers;
    // First the row words, in a loop of plain arithmetic that the compiler vectorises; then
    // the look-ups and increments, which cannot be.
    let parts = block.lsoa[..len]
        .iter()
        .zip(&block.sex[..len])
        .zip(&block.band[..len])
        .zip(&block.combo[..len]);
    for (word, (((&lsoa, &sex), &band), &combo)) in block.word[..len].iter_mut().zip(parts) {
        let practice = *word;
        let lsoa_part = lsoa
            & if practice & DEFER != 0 {
                u32::MAX
            } else {
                LSOA_ALWAYS
            };
        *word = (practice & !DEFER)
            + lsoa_part
            + u32::from(sex)
            + u32::from(band)
            + ((u32::from(combo == 0) * K_NO_MEASURE) << W_KEY);
    }
    let rows = block.provider[..len]
        .iter()
        .zip(&block.word[..len])
        .zip(&block.combo[..len]);
    for ((&provider, &word), &combo) in rows {
        let provider = provider as usize;
        let key = (word >> W_KEY) & 0xFF;
        let icb_slot = (word >> W_ICB) as usize;
        let cell = icb_slot * stride_icb + (word & 0xFF) as usize;
        let at = if key & K_EXCLUDED == 0 {
            usize::from(combo) * n_cells + cell
        } else {
            0
        };
        let key = key as usize;
        for counter in [
            &mut scratch.combos[at],
            &mut scratch.provider_keys[key * n_providers + provider],
            &mut scratch.icb_keys[key * n_slots + icb_slot],
            &mut scratch.provider_icb[provider * n_slots + icb_slot],
        ] {
            *counter = counter.wrapping_add(delta);
        }
    }
}

/// Sex word of a row: sex 0 (male) or 1 (female).
#[inline]
const fn sex_word(sex: usize) -> u16 {
    (sex * N_AGE * N_IMD) as u16
}

/// Sex word of a row with no valid sex.
const SEX_MISSING: u16 = (K_MISSING_SEX << W_KEY) as u16;
/// Age word of a row with no valid age (see [`Tables::band_of_age`]).
const AGE_MISSING: u16 = (K_MISSING_AGE << W_KEY) as u16;

/// A batch's classification tables, each with one extra last entry for null rows. Practice,
/// LSOA, sex and age hold row-word parts (see [`W_KEY`]).
#[derive(Debug)]
pub(crate) struct Tables {
    provider: Vec<u32>,
    practice: Vec<u32>,
    lsoa: Vec<u32>,
    sex: Vec<u16>,
    /// Per modality: its id times the number of exam ids, or the last entry of `combo_of`
    /// for a modality in no measure.
    modality: Vec<u32>,
    /// Per exam code: its exam id.
    exam: Vec<u32>,
    /// Measure combination of each (modality id, exam id), `[modality][exam]`, and one last
    /// entry (combination 0) for rows in no measure's modality.
    combo_of: Vec<u16>,
    /// Measure combination of each (modality index, exam code index) of the batch's
    /// dictionaries, `[m * exam_stride + e]`, index `len` standing for null: one look-up a
    /// row where `combo_of` needs three. Empty when it would be larger than
    /// [`MAX_COMBOS_BY_INDEX`].
    combo_by_index: Vec<u16>,
    exam_stride: u32,
    /// The measures (bit mask) of each combination; combination 0 is the empty mask.
    combo_masks: Vec<u64>,
    /// Age word of each age in years from 0 (see [`Tables::band_of_age`]).
    bands: Vec<u16>,
    max_age: i64,
    n_icb: usize,
}

impl Tables {
    fn new(dims: Dims) -> Self {
        // Ages 0..=max_age are looked up (at most 256 of them; older valid ages are 90+).
        let top = dims.max_age.clamp(-1, 255);
        let bands = (0..=top.max(0))
            .map(|a| age_band(a, dims.max_age).map_or(AGE_MISSING, |b| (b * N_IMD) as u16))
            .collect();
        Tables {
            provider: Vec::new(),
            practice: Vec::new(),
            lsoa: Vec::new(),
            sex: Vec::new(),
            modality: Vec::new(),
            exam: Vec::new(),
            combo_of: Vec::new(),
            combo_by_index: Vec::new(),
            exam_stride: 0,
            combo_masks: Vec::new(),
            bands,
            max_age: dims.max_age,
            n_icb: dims.n_icb,
        }
    }

    /// Fill the tables for `batch`, reusing their buffers (a fresh 200 KB allocation per
    /// batch costs page faults).
    fn refill(&mut self, batch: &Batch<'_>) -> Result<(), CoreError> {
        fn with_null<T: Copy>(v: &mut Vec<T>, table: &[T], null: T) {
            v.clear();
            v.extend_from_slice(table);
            v.push(null);
        }
        with_null(
            &mut self.provider,
            batch.provider_ids,
            batch.provider_null_id,
        );
        let n_icb = self.n_icb;
        self.practice.clear();
        self.practice.extend(
            batch
                .practice_class
                .iter()
                .chain(&[BLANK])
                .map(|&class| practice_word(class, n_icb)),
        );
        self.lsoa.clear();
        self.lsoa.extend(
            batch
                .lsoa_icb
                .iter()
                .zip(batch.lsoa_imd)
                .chain([(&BLANK, &-1)])
                .map(|(&class, &imd)| lsoa_word(class, imd, n_icb)),
        );
        self.sex.clear();
        if let SexColumn::Coded { class, .. } = batch.sex {
            self.sex.extend(
                class
                    .iter()
                    .map(|&c| usize::try_from(c).map_or(SEX_MISSING, sex_word)),
            );
        }
        self.sex.push(SEX_MISSING);
        if self.renumbers(batch) {
            self.combine(batch.measure_masks)?;
        }
        let none = self.combo_of.len() as u32 - 1;
        let n_exam = batch.n_exam as u32;
        self.modality.clear();
        self.modality.extend(
            batch
                .modality_ids
                .iter()
                .chain(&[-1])
                .map(|&m| u32::try_from(m).map_or(none, |m| m * n_exam)),
        );
        self.exam.clear();
        self.exam
            .extend(batch.exam_ids.iter().chain(&[0]).map(|&e| e as u32));
        // with no exam column every row reads exam id 0, the null entry
        let exam = if batch.exam.is_some() {
            &self.exam[..]
        } else {
            &self.exam[self.exam.len() - 1..]
        };
        self.exam_stride = exam.len() as u32;
        self.combo_by_index.clear();
        if self.modality.len().saturating_mul(exam.len()) <= MAX_COMBOS_BY_INDEX {
            let last = self.combo_of.len() - 1;
            for &m in &self.modality {
                self.combo_by_index.extend(
                    exam.iter()
                        .map(|&e| self.combo_of[(m as usize + e as usize).min(last)]),
                );
            }
        }
        Ok(())
    }

    /// Whether `batch`'s measure masks are not the ones the combinations were numbered for.
    fn renumbers(&self, batch: &Batch<'_>) -> bool {
        self.combo_of.len() != batch.measure_masks.len() + 1
            || self
                .combo_of
                .iter()
                .zip(batch.measure_masks)
                .any(|(&c, &mask)| self.combo_masks[usize::from(c)] != mask)
    }

    /// Number the distinct measure masks (combinations), 0 for the empty mask.
    fn combine(&mut self, measure_masks: &[u64]) -> Result<(), CoreError> {
        let mut ids = std::collections::HashMap::from([(0u64, 0u16)]);
        self.combo_masks.clear();
        self.combo_masks.push(0);
        self.combo_of.clear();
        for &mask in measure_masks {
            let id = if let Some(&id) = ids.get(&mask) {
                id
            } else {
                let id = u16::try_from(self.combo_masks.len()).map_err(|_| {
                    CoreError::Shape("more than 65,535 distinct measure combinations".into())
                })?;
                ids.insert(mask, id);
                self.combo_masks.push(mask);
                id
            };
            self.combo_of.push(id);
        }
        self.combo_of.push(0);
        Ok(())
    }

    /// Age word of an age in years: `band * N_IMD`, or [`AGE_MISSING`] when the age is
    /// invalid (see [`age_band`]).
    #[inline]
    fn band_of_age(&self, age: i64) -> u16 {
        if age < 0 || age > self.max_age {
            AGE_MISSING
        } else if let Some(&b) = self.bands.get(age as usize) {
            b
        } else {
            ((N_AGE - 1) * N_IMD) as u16
        }
    }
}

/// Largest [`Tables::combo_by_index`] built: plain-text columns' dictionaries hold every code
/// seen so far in the run, and their product could grow without bound.
const MAX_COMBOS_BY_INDEX: usize = 1 << 20;

/// Practice word of a practice class ([`Batch::practice_class`]; checked by
/// [`Batch::validate`]).
fn practice_word(class: i32, n_icb: usize) -> u32 {
    match class {
        OTHER_VALID => (n_icb as u32) << W_ICB | K_NO_ICB << W_KEY,
        BLANK => DEFER | K_NO_PRACTICE << W_KEY,
        UNRECOGNISED => DEFER,
        icb => (icb as u32) << W_ICB,
    }
}

/// LSOA word of an LSOA class ([`Batch::lsoa_icb`]) and IMD quintile 0..4 (-1: none).
fn lsoa_word(class: i32, imd: i8, n_icb: usize) -> u32 {
    let icb = match class {
        BLANK => (n_icb as u32) << W_ICB | (K_BY_LSOA | K_NO_ICB | K_NO_LSOA) << W_KEY,
        UNRECOGNISED => (n_icb as u32) << W_ICB | (K_BY_LSOA | K_NO_ICB) << W_KEY,
        icb => (icb as u32) << W_ICB | K_BY_LSOA << W_KEY,
    };
    let imd = u32::try_from(imd).map_or(K_MISSING_IMD << W_KEY, |q| q);
    icb | imd
}

fn check_classes(table: &[i32], n_icb: usize, what: &str, other_ok: bool) -> Result<(), CoreError> {
    let lowest = if other_ok {
        BLANK
    } else {
        UNRECOGNISED.min(BLANK)
    };
    for &c in table {
        let ok = (c >= 0 && (c as usize) < n_icb)
            || c == BLANK
            || c == UNRECOGNISED
            || (other_ok && c == OTHER_VALID);
        if !ok || c < lowest {
            return Err(CoreError::Shape(format!(
                "{what}: class {c} is not an ICB index below {n_icb} or a known class"
            )));
        }
    }
    Ok(())
}

/// Accumulates batches into per-worker partials; [`Accumulator::finish`] merges them.
#[derive(Debug)]
pub struct Accumulator {
    dims: Dims,
    workers: Vec<Worker>,
    /// The workers' counts once drained.
    totals: Partial,
    tables: Tables,
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
        self.batches += 1;
        batch.validate(self.dims, n_providers)?;
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
        self.tables.refill(batch)?;
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
                column,
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

    /// Add every worker's scratch counts into the totals, one worker after the other (this
    /// happens only when the tables change shape: rarely, once the providers are all seen).
    fn drain(&mut self) {
        let (dims, masks) = (self.dims, &self.tables.combo_masks);
        for worker in &mut self.workers {
            worker.scratch.drain_into(dims, &mut self.totals, masks);
        }
        self.pending = 0;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A column with no nulls.
    fn coded(indices: &[i32]) -> Coded<'_> {
        Coded {
            indices,
            validity: Validity::default(),
        }
    }

    /// An integer column with no nulls.
    fn ints(values: &[i32]) -> Ints<'_> {
        Ints {
            values,
            validity: Validity::default(),
        }
    }

    fn dims() -> Dims {
        Dims {
            n_icb: 2,
            n_measure: 2,
            max_age: 130,
        }
    }

    #[test]
    fn civil_dates_round_trip_known_values() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_448), (2023, 4, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn age_counts_whole_years_and_leap_birthdays() {
        // born 2000-02-29 (11016); 2023-02-28 is 19416, 2023-03-01 is 19417
        assert_eq!(age_in_years(11_016, 19_416), 22);
        assert_eq!(age_in_years(11_016, 19_417), 23);
        assert_eq!(age_in_years(0, 0), 0);
        assert_eq!(age_in_years(10, 0), -1);
    }

    #[test]
    fn age_bands_cap_at_90_plus() {
        assert_eq!(age_band(0, 130), Some(0));
        assert_eq!(age_band(4, 130), Some(0));
        assert_eq!(age_band(5, 130), Some(1));
        assert_eq!(age_band(89, 130), Some(17));
        assert_eq!(age_band(90, 130), Some(18));
        assert_eq!(age_band(130, 130), Some(18));
        assert_eq!(age_band(131, 130), None);
        assert_eq!(age_band(-1, 130), None);
    }

    #[test]
    fn states_decode() {
        for code in 0..N_STATES {
            let s = decode_state(code);
            let flags = usize::from(s.no_practice)
                | usize::from(s.no_lsoa) << 1
                | usize::from(s.missing_imd) << 2
                | usize::from(s.missing_sex) << 3
                | usize::from(s.missing_age) << 4;
            assert_eq!(
                flags * 24 + usize::from(s.source) * 6 + usize::from(s.outcome),
                code
            );
        }
    }

    /// Measure combinations are numbered per batch: a batch whose masks differ from the last
    /// (three measures overlapping another way) is spread over the measures its own way.
    #[test]
    fn combinations_follow_each_batchs_masks() {
        let d = Dims {
            n_icb: 1,
            n_measure: 3,
            max_age: 130,
        };
        let zeros = [0i32; 4];
        let exam_idx = [0, 1, 1, 0];
        let sexes = [1i32; 4];
        let ages = [30i32; 4];
        let batch = |masks: &'static [u64]| Batch {
            n_rows: 4,
            provider: coded(&zeros),
            provider_ids: &[0],
            provider_null_id: 0,
            practice: coded(&zeros),
            practice_class: &[0],
            lsoa: coded(&zeros),
            lsoa_icb: &[0],
            lsoa_imd: &[0],
            sex: SexColumn::Ints(ints(&sexes)),
            age: AgeColumn::Years(ints(&ages)),
            modality: coded(&zeros),
            modality_ids: &[0],
            exam: Some(coded(&exam_idx)),
            exam_ids: &[0, 1],
            measure_masks: masks,
            n_exam: 2,
        };
        let mut acc = Accumulator::new(d, 1).unwrap();
        acc.add(&batch(&[0b011, 0b111]), 1).unwrap(); // exam 0: m0 m1; exam 1: all three
        acc.add(&batch(&[0b100, 0]), 1).unwrap(); // exam 0: m2; exam 1: none
        let total = acc.finish();
        let cell = &total.cube[(6 * N_IMD) * 3..(6 * N_IMD + 1) * 3]; // male, 30-34, quintile 1
        // m0, m1: 2 + 2 rows in batch one; m2: 2 in batch one and 2 in batch two
        assert_eq!(cell, [4, 4, 4]);
        assert_eq!(total.cube.iter().sum::<u64>(), 12);
        let no_measure: u64 = (0..N_STATES)
            .filter(|&c| decode_state(c).outcome == Outcome::NoMeasure as u8)
            .map(|c| total.provider_state(0, c))
            .sum();
        assert_eq!(no_measure, 2);
    }

    /// The look-up of combinations by dictionary index, and by id when that table would be
    /// too big, count the same rows the same way, null modalities and exam codes included.
    #[test]
    fn combinations_by_index_and_by_id_agree() {
        let d = dims();
        let n = 12;
        let zeros = vec![0i32; n];
        let sexes = vec![1i32; n];
        let ages = vec![40i32; n];
        // rows' (modality id, exam id): every pairing of modality -1/0/1 and exam 0/1/2,
        // and rows 9-11 with a null modality or exam code
        let mod_ids_of_row = [-1i16, -1, -1, 0, 0, 0, 1, 1, 1, 0, 1, 0];
        let exam_ids_of_row = [0i16, 1, 2, 0, 1, 2, 0, 1, 2, 1, 0, 0];
        let modality_valid = [0b1111_1111u8, 0b0000_1011]; // row 10 null
        let exam_valid = [0b1111_1111u8, 0b0000_0101]; // rows 9 and 11 null
        let masks = [0b01u64, 0b11, 0b01, 0b10, 0, 0b10]; // [modality][exam], 2 x 3
        let count = |pad: usize| {
            // dictionaries of `pad` entries or more, the used ids at their ends
            let mut modality_ids = vec![-1i16; pad];
            modality_ids.extend([-1, 0, 1]);
            let mut exam_ids = vec![0i16; pad];
            exam_ids.extend([0, 1, 2]);
            let m_idx: Vec<i32> = mod_ids_of_row
                .iter()
                .map(|&m| (pad as i32) + 1 + i32::from(m))
                .collect();
            let e_idx: Vec<i32> = exam_ids_of_row
                .iter()
                .map(|&e| (pad as i32) + i32::from(e))
                .collect();
            let batch = Batch {
                n_rows: n,
                provider: coded(&zeros),
                provider_ids: &[0],
                provider_null_id: 0,
                practice: coded(&zeros),
                practice_class: &[1],
                lsoa: coded(&zeros),
                lsoa_icb: &[1],
                lsoa_imd: &[3],
                sex: SexColumn::Ints(ints(&sexes)),
                age: AgeColumn::Years(ints(&ages)),
                modality: Coded {
                    indices: &m_idx,
                    validity: Validity {
                        bits: Some(&modality_valid),
                        offset: 0,
                    },
                },
                modality_ids: &modality_ids,
                exam: Some(Coded {
                    indices: &e_idx,
                    validity: Validity {
                        bits: Some(&exam_valid),
                        offset: 0,
                    },
                }),
                exam_ids: &exam_ids,
                measure_masks: &masks,
                n_exam: 3,
            };
            let mut acc = Accumulator::new(d, 1).unwrap();
            acc.add(&batch, 1).unwrap();
            let by_index = !acc.tables.combo_by_index.is_empty();
            (acc.finish(), by_index)
        };
        let (small, small_by_index) = count(0);
        let (big, big_by_index) = count(1100); // 1104 x 1103 entries: too big
        assert!(small_by_index && !big_by_index);
        assert_eq!(small, big);
        // ICB 1, male, 40-44, quintile 4
        let cell = ((N_SEX * N_AGE * N_IMD) + 8 * N_IMD + 3) * 2;
        // measure 0: rows 3, 4, 5, and 9 and 11 (modality 0 with a null exam code: id 0);
        // measure 1: rows 4, 6 and 8. Row 10's modality is null: in no measure.
        assert_eq!(small.cube[cell..cell + 2], [5, 3]);
        assert_eq!(small.cube.iter().sum::<u64>(), 8);
    }

    /// Rows: 0 practice->ICB1, all valid, modality 0 exam 1 (two measures)
    ///       1 no practice, LSOA->ICB0, sex null
    ///       2 other valid practice
    ///       3 unrecognised practice, LSOA unrecognised
    ///       4 practice->ICB1, LSOA null (no IMD)
    ///       5 practice->ICB1, age invalid
    ///       6 practice->ICB1, unknown modality
    #[test]
    fn counts_follow_the_derivation_rules() {
        let practice_idx = [0, 1, 2, 3, 0, 0, 0];
        let practice_class = [1, BLANK, OTHER_VALID, UNRECOGNISED];
        let practice_valid = [0b0111_1101u8]; // row 1 null
        let lsoa_idx = [0, 0, 0, 1, 0, 0, 0];
        let lsoa_valid = [0b0110_1111u8]; // row 4 null
        let lsoa_icb = [0, UNRECOGNISED];
        let lsoa_imd = [2i8, -1];
        let sex_vals = [1i32, 0, 2, 2, 2, 1, 1];
        let sex_valid = [0b0111_1101u8]; // row 1 null
        let ages = [47i32, 30, 30, 30, 30, 200, 30];
        let modality_idx = [0, 0, 0, 0, 0, 0, 1];
        let modality_ids = [0i16, -1];
        let exam_idx = [1, 0, 0, 0, 0, 0, 0];
        let exam_ids = [0i16, 1];
        let masks = [0b01u64, 0b11];
        let provider_idx = [0; 7];
        let provider_ids = [0u32];
        let batch = Batch {
            n_rows: 7,
            provider: coded(&provider_idx),
            provider_ids: &provider_ids,
            provider_null_id: 1,
            practice: Coded {
                indices: &practice_idx,
                validity: Validity {
                    bits: Some(&practice_valid),
                    offset: 0,
                },
            },
            practice_class: &practice_class,
            lsoa: Coded {
                indices: &lsoa_idx,
                validity: Validity {
                    bits: Some(&lsoa_valid),
                    offset: 0,
                },
            },
            lsoa_icb: &lsoa_icb,
            lsoa_imd: &lsoa_imd,
            sex: SexColumn::Ints(Ints {
                values: &sex_vals,
                validity: Validity {
                    bits: Some(&sex_valid),
                    offset: 0,
                },
            }),
            age: AgeColumn::Years(ints(&ages)),
            modality: coded(&modality_idx),
            modality_ids: &modality_ids,
            exam: Some(coded(&exam_idx)),
            exam_ids: &exam_ids,
            measure_masks: &masks,
            n_exam: 2,
        };
        let mut acc = Accumulator::new(dims(), 2).unwrap();
        acc.add(&batch, 2).unwrap();
        let total = acc.finish();
        // Row 0: ICB 1, male, band 9, quintile 3 (index 2), measures 0 and 1.
        let d = dims();
        let idx = |icb: usize, sex: usize, age: usize, imd: usize, m: usize| {
            (((icb * N_SEX + sex) * N_AGE + age) * N_IMD + imd) * d.n_measure + m
        };
        assert_eq!(total.cube[idx(1, 0, 9, 2, 0)], 1);
        assert_eq!(total.cube[idx(1, 0, 9, 2, 1)], 1);
        assert_eq!(total.cube.iter().sum::<u64>(), 2);
        let mut outcomes = [0u64; 6];
        let mut sources = [0u64; 4];
        let n_cols = total.states.len();
        for (&code, &n) in total.states.iter().zip(&total.provider_states[..n_cols]) {
            let s = decode_state(code);
            outcomes[s.outcome as usize] += n;
            sources[s.source as usize] += n;
        }
        // no_icb: rows 2, 3; no_imd: row 4; no_sex: row 1; no_age: row 5; no_measure: row 6
        assert_eq!(outcomes, [2, 1, 1, 1, 1, 1]);
        // gp: 0,4,5,6; other: 2; lsoa: 1; unknown: 3
        assert_eq!(sources, [4, 1, 1, 1]);
        assert_eq!(total.provider_icb[0..3], [1, 4, 2]);
    }

    /// A batch of `n` rows, everything valid and in one-entry dictionaries, with `practice`
    /// as the practice column; the slices it borrows come from `Fixture`.
    struct Fixture {
        zeros: Vec<i32>,
        ones: Vec<i32>,
    }

    impl Fixture {
        fn new(n: usize) -> Self {
            Fixture {
                zeros: vec![0; n],
                ones: vec![1; n],
            }
        }

        fn batch<'a>(&'a self, practice: Coded<'a>, age: Ints<'a>) -> Batch<'a> {
            static IDS: [u32; 1] = [0];
            static CLS: [i32; 1] = [0];
            static IMD: [i8; 1] = [0];
            static MASKS: [u64; 1] = [1];
            static MID: [i16; 1] = [0];
            let ok = coded(&self.zeros);
            Batch {
                n_rows: self.zeros.len(),
                provider: ok,
                provider_ids: &IDS,
                provider_null_id: 0,
                practice,
                practice_class: &CLS,
                lsoa: ok,
                lsoa_icb: &CLS,
                lsoa_imd: &IMD,
                sex: SexColumn::Ints(ints(&self.ones)),
                age: AgeColumn::Years(age),
                modality: ok,
                modality_ids: &MID,
                exam: None,
                exam_ids: &MID,
                measure_masks: &MASKS,
                n_exam: 1,
            }
        }
    }

    fn one_icb(max_age: i64) -> Dims {
        Dims {
            n_icb: 1,
            n_measure: 1,
            max_age,
        }
    }

    fn assert_rows(total: &Total, rows: u64) {
        assert_eq!(total.cube.iter().sum::<u64>(), rows);
        assert_eq!(total.provider_states.iter().sum::<u64>(), rows);
        assert_eq!(total.icb_states.iter().sum::<u64>(), rows);
        assert_eq!(total.provider_icb.iter().sum::<u64>(), rows);
    }

    #[test]
    fn bad_dictionary_index_is_an_error_not_a_panic() {
        // row 3 (row 2 from 0) of the second batch: index 5 of a one-entry dictionary
        let f = Fixture::new(4);
        let idx = [0, 0, 5, 0];
        let mut acc = Accumulator::new(one_icb(130), 1).unwrap();
        let ok = coded(&f.zeros);
        let ages = ints(&f.ones);
        acc.add(&f.batch(ok, ages), 1).unwrap();
        let err = acc.add(&f.batch(coded(&idx), ages), 1).unwrap_err();
        assert!(
            matches!(
                err,
                CoreError::BadIndex {
                    column: "gp_practice_code",
                    index: 5,
                    dict_len: 1,
                    batch: 2,
                    batch_row: 3,
                    row: 7,
                }
            ),
            "{err}"
        );
        // the bad batch's rows were taken back out: only the good batches are counted
        acc.add(&f.batch(ok, ages), 1).unwrap();
        let total = acc.finish();
        assert_eq!(acc.rows(), 8);
        assert_rows(&total, 8);
    }

    /// Negative indices, the extremes of i32, and out-of-range indices of null rows (which
    /// Arrow allows: they are never read), on the one-worker and the many-worker paths.
    #[test]
    fn negative_and_extreme_indices_are_errors_null_rows_are_not() {
        for n in [10, 200_000] {
            let f = Fixture::new(n);
            let ages = ints(&f.ones);
            for bad in [-1, i32::MIN, i32::MAX, 1] {
                let mut acc = Accumulator::new(one_icb(130), 4).unwrap();
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(4)
                    .build()
                    .unwrap();
                let at = n - 3;
                let mut idx = f.zeros.clone();
                idx[at] = bad;
                // as a null row the bad index is fine
                let mut valid = vec![0xFFu8; n.div_ceil(8)];
                valid[at / 8] &= !(1 << (at % 8));
                let nulled = Coded {
                    indices: &idx,
                    validity: Validity {
                        bits: Some(&valid),
                        offset: 0,
                    },
                };
                pool.install(|| acc.add(&f.batch(nulled, ages), 1)).unwrap();
                let err = pool
                    .install(|| acc.add(&f.batch(coded(&idx), ages), 1))
                    .unwrap_err();
                let CoreError::BadIndex {
                    index, batch_row, ..
                } = err
                else {
                    panic!("{err}")
                };
                assert_eq!((index, batch_row), (i64::from(bad), at as u64 + 1));
                let total = acc.finish();
                assert_eq!(acc.rows(), n as u64);
                assert_rows(&total, n as u64);
            }
        }
    }

    /// `max_age` is exact at the top of the range: with no limit (i64::MAX) the oldest age
    /// an `i32` holds is 90+; a limit below an age makes it missing; a negative limit is
    /// refused.
    #[test]
    fn max_age_is_exact_at_the_extremes() {
        let f = Fixture::new(3);
        let ok = coded(&f.zeros);
        let ages = [i32::MAX, 90, 2_000_000_000];
        let count = |max_age: i64| {
            let mut acc = Accumulator::new(one_icb(max_age), 1).unwrap();
            acc.add(&f.batch(ok, ints(&ages)), 1).unwrap();
            acc.finish()
        };
        let band_90 = (N_AGE - 1) * N_IMD; // male, 90+, quintile 1
        assert_eq!(count(i64::MAX).cube[band_90], 3);
        assert_eq!(count(i64::from(i32::MAX) - 1).cube[band_90], 2);
        assert_eq!(count(2_000_000_000).cube[band_90], 2);
        assert_eq!(count(1_999_999_999).cube[band_90], 1);
        assert!(matches!(
            Accumulator::new(one_icb(-1), 1),
            Err(CoreError::InvalidArgument(_))
        ));
    }

    /// The histograms are returned over the states some row is in, ascending, and each
    /// provider's row adds up to its rows, however many providers there are.
    #[test]
    fn histograms_cover_the_states_seen_and_many_providers() {
        let n = 100_000;
        let f = Fixture::new(n);
        let provider_idx: Vec<i32> = (0..n as i32).collect();
        let provider_ids: Vec<u32> = (0..n as u32).collect();
        let ages: Vec<i32> = (0..n as i32).map(|i| i % 7 - 1).collect(); // -1: missing age
        let mut batch = f.batch(coded(&f.zeros), ints(&ages));
        batch.provider = coded(&provider_idx);
        batch.provider_ids = &provider_ids;
        let mut acc = Accumulator::new(one_icb(130), 2).unwrap();
        acc.add(&batch, n).unwrap();
        let total = acc.finish();
        let missing = (n / 7 + 1) as u64;
        assert_eq!(total.cube.iter().sum::<u64>(), n as u64 - missing);
        assert_eq!(total.provider_states.iter().sum::<u64>(), n as u64);
        assert_eq!(total.states.len(), 2); // included, and missing age
        assert!(total.states.windows(2).all(|w| w[0] < w[1]));
        assert!(
            total
                .provider_states
                .chunks_exact(2)
                .all(|row| row.iter().sum::<u64>() == 1)
        );
        let missing_age: u64 = (0..n)
            .map(|p| {
                total
                    .states
                    .iter()
                    .filter(|&&s| decode_state(s).missing_age)
                    .map(|&s| total.provider_state(p, s))
                    .sum::<u64>()
            })
            .sum();
        assert_eq!(missing_age, missing);
        assert_eq!(
            total.icb_state(0, total.states[0]) + total.icb_state(0, total.states[1]),
            n as u64
        );
    }
}
