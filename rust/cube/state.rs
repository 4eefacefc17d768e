//! Row states: what is reported of a row (its ICB source, its outcome and five flags), their
//! codes, and the table that turns each state key of the row word into its state.

use super::row_word::{
    K_BY_LSOA, K_MISSING_AGE, K_MISSING_IMD, K_MISSING_SEX, K_NO_ICB, K_NO_LSOA, K_NO_MEASURE,
    K_NO_PRACTICE, N_KEYS,
};

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

/// The state code ([`state_code`]) of each state key.
pub(super) static STATE_OF_KEY: [u16; N_KEYS] = state_of_key();

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
    /// How the ICB was found, in the rule order of SPEC section 2: 0 GP practice, 1 other
    /// valid practice (no ICB), 2 LSOA, 3 unknown.
    pub source: u8,
    /// [`Outcome`] as its number.
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
