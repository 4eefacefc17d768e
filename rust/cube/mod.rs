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
//!
//! The modules, in the order a batch goes through them: `columns` (the batch's column views
//! and their validation), `tables` (the batch's dictionaries turned into look-up tables of
//! row-word parts), `row_word` (the bit layout those parts add up in, and a glossary of
//! key, state and code), `kernel` (the counting pass), `accumulator` (scratch counts,
//! totals, the end of a run), with `state` (row states) and `age` (ages and bands).

mod accumulator;
mod age;
mod columns;
mod kernel;
mod row_word;
mod state;
mod tables;
#[cfg(test)]
mod tests;

pub use accumulator::{Accumulator, Counter, Partial, Total};
pub use age::{age_band, age_in_years, civil_from_days};
pub use columns::{AgeColumn, Batch, Coded, Days, Ints, SexColumn, Validity, Values};
pub use row_word::N_KEYS;
pub use state::{N_STATES, Outcome, RowState, decode_state};

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
