//! The row word: the bit layout in which a row of a batch is derived by a few additions.
//!
//! Glossary:
//!
//! * *class*: what Python made of one dictionary entry of a practice or LSOA column: an ICB
//!   index, or [`BLANK`], [`UNRECOGNISED`] or (practices only) [`OTHER_VALID`]. The batch's
//!   tables (`super::tables`) turn classes, sexes and ages into *column words*.
//! * *row word*: the `u32` a row is derived as, the sum of its column words (practice, LSOA,
//!   sex, age) and its no-measure bit. Its fields ([`LAYOUT`]) are disjoint and each column
//!   word stays inside the fields it owns, so the sum never carries from one into the next.
//! * *state key* (*key*): the row word's [`KEY`] field, one bit `K_*` per fact about the row
//!   (no ICB, the LSOA decided, no practice, no LSOA, missing IMD, sex or age, no measure).
//!   It is what the counting kernel counts: [`N_KEYS`] keys.
//! * *state*: what is reported of a row (`super::state`): its ICB source, its outcome (the
//!   first exclusion that applies, or included) and five flags. Several keys give one state;
//!   `STATE_OF_KEY` works the precedence out once per key.
//! * *state code* (*code*): a state's index `0..N_STATES`,
//!   `flags * 24 + source * 6 + outcome`; `decode_state` turns a code back into a `RowState`.

use super::{BLANK, N_AGE, N_IMD, N_SEX, OTHER_VALID, UNRECOGNISED};

/// One field of the row word: its lowest bit and its width in bits.
#[derive(Clone, Copy, Debug)]
struct Field {
    shift: u32,
    width: u32,
}

impl Field {
    /// The field's bits within the word (as `u64`, so a field reaching bit 31 does not
    /// overflow the arithmetic).
    const fn mask(self) -> u64 {
        ((1u64 << self.width) - 1) << self.shift
    }
}

/// The row's offset within its ICB's block of the cube,
/// `sex * N_AGE * N_IMD + band * N_IMD + imd` (at most 189).
const CELL: Field = Field { shift: 0, width: 8 };
/// The *state key*, bits `K_*`, from which `STATE_OF_KEY` gives the state.
const KEY: Field = Field { shift: 8, width: 8 };
/// The ICB slot (`n_icb` for none).
const ICB: Field = Field {
    shift: 16,
    width: 15,
};
/// Practice words only: [`DEFER`], the ICB comes from the LSOA.
const DEFER_BIT: Field = Field {
    shift: 31,
    width: 1,
};

/// A row is derived as one `u32` *row word*, the sum of one word per column looked up in the
/// batch's tables (see `count_block`). The fields, low bits first, are disjoint, so the sum
/// never carries:
///
/// | field | bits | holds |
/// |---|---|---|
/// | [`CELL`] | 0..8 | the row's offset within its ICB's block of the cube |
/// | [`KEY`] | 8..16 | the state key |
/// | [`ICB`] | 16..31 | the ICB slot (`n_icb` for none) |
/// | [`DEFER_BIT`] | 31 | practice words only: the ICB comes from the LSOA |
const LAYOUT: [Field; 4] = [CELL, KEY, ICB, DEFER_BIT];

/// Shift of the state key field.
pub(super) const W_KEY: u32 = KEY.shift;
/// Shift of the ICB slot field.
pub(super) const W_ICB: u32 = ICB.shift;
/// The cell field of a row word (also the IMD quintile's bits of an LSOA word).
pub(super) const CELL_MASK: u32 = CELL.mask() as u32;
/// The state key of a row word once shifted down by [`W_KEY`].
pub(super) const KEY_MASK: u32 = (KEY.mask() >> KEY.shift) as u32;
/// State key: the ICB source is 1 or 3 (no ICB).
pub(super) const K_NO_ICB: u32 = 1;
/// State key: the ICB source is 2 or 3 (the LSOA decided).
pub(super) const K_BY_LSOA: u32 = 2;
pub(super) const K_NO_PRACTICE: u32 = 4;
pub(super) const K_NO_LSOA: u32 = 8;
pub(super) const K_MISSING_IMD: u32 = 16;
pub(super) const K_MISSING_SEX: u32 = 32;
pub(super) const K_MISSING_AGE: u32 = 64;
pub(super) const K_NO_MEASURE: u32 = 128;
/// Every state key bit.
const K_ALL: [u32; 8] = [
    K_NO_ICB,
    K_BY_LSOA,
    K_NO_PRACTICE,
    K_NO_LSOA,
    K_MISSING_IMD,
    K_MISSING_SEX,
    K_MISSING_AGE,
    K_NO_MEASURE,
];
/// State key bits of which any excludes the row.
pub(super) const K_EXCLUDED: u32 =
    K_NO_ICB | K_MISSING_IMD | K_MISSING_SEX | K_MISSING_AGE | K_NO_MEASURE;
/// Practice word: the practice decides nothing (blank or unrecognised); the LSOA word's ICB
/// fields are used.
pub(super) const DEFER: u32 = 1 << DEFER_BIT.shift;
/// The fields of an LSOA word that count whichever decided the ICB: the IMD quintile and
/// the no-LSOA and missing-IMD keys.
pub(super) const LSOA_ALWAYS: u32 = CELL_MASK | (K_NO_LSOA | K_MISSING_IMD) << W_KEY;
/// Largest number of ICBs the row word has room for.
pub(super) const MAX_ICBS: usize = (1 << ICB.width) - 2;

/// Number of state keys (the row word's `KEY` field): the state histograms are counted by key, a third
/// the size of a histogram by state, and turned into states by `Accumulator::finish`.
pub const N_KEYS: usize = 1 << KEY.width;

// The layout, checked when the crate compiles: every field inside the word, no two fields
// sharing a bit, every bit in some field.
const _: () = {
    let mut all = 0u64;
    let mut i = 0;
    while i < LAYOUT.len() {
        let field = LAYOUT[i];
        assert!(field.width > 0 && field.shift + field.width <= u32::BITS);
        assert!(
            all & field.mask() == 0,
            "two fields of the row word overlap"
        );
        all |= field.mask();
        i += 1;
    }
    assert!(
        all == u32::MAX as u64,
        "a bit of the row word is in no field"
    );
};

// What goes into the fields fits them, so no addition carries into the next field.
const _: () = {
    // the largest cell offset: female, 90+, quintile 5
    assert!((N_SEX * N_AGE * N_IMD - 1) as u64 <= CELL.mask());
    // the key bits: distinct single bits, all inside the key field, one key per histogram row
    let mut seen = 0u32;
    let mut i = 0;
    while i < K_ALL.len() {
        assert!(K_ALL[i].is_power_of_two() && seen & K_ALL[i] == 0);
        seen |= K_ALL[i];
        i += 1;
    }
    assert!(((seen as u64) << KEY.shift) & !KEY.mask() == 0);
    assert!(N_KEYS == (KEY_MASK as usize) + 1);
    // the ICB slot of "no ICB", `n_icb`, fits for every supported number of ICBs
    assert!(((MAX_ICBS as u64) << ICB.shift) & !ICB.mask() == 0);
    // an LSOA word that does not decide the ICB adds no ICB slot and no ICB source
    assert!(LSOA_ALWAYS as u64 & ICB.mask() == 0);
    assert!(LSOA_ALWAYS & (K_NO_ICB | K_BY_LSOA) << W_KEY == 0);
    // sex and age words are `u16`: their missing-value keys must fit
    assert!(((K_MISSING_SEX | K_MISSING_AGE) << W_KEY) <= u16::MAX as u32);
};

/// Sex word of a row: sex 0 (male) or 1 (female).
#[inline]
pub(super) const fn sex_word(sex: usize) -> u16 {
    (sex * N_AGE * N_IMD) as u16
}

/// Sex word of a row with no valid sex.
pub(super) const SEX_MISSING: u16 = (K_MISSING_SEX << W_KEY) as u16;
/// Age word of a row with no valid age (see [`Tables::band_of_age`](super::tables::Tables::band_of_age)).
pub(super) const AGE_MISSING: u16 = (K_MISSING_AGE << W_KEY) as u16;

/// Practice word of a practice class ([`Batch::practice_class`](super::Batch::practice_class); checked by
/// [`Batch::validate`](super::Batch::validate)).
pub(super) fn practice_word(class: i32, n_icb: usize) -> u32 {
    match class {
        OTHER_VALID => (n_icb as u32) << W_ICB | K_NO_ICB << W_KEY,
        BLANK => DEFER | K_NO_PRACTICE << W_KEY,
        UNRECOGNISED => DEFER,
        icb => (icb as u32) << W_ICB,
    }
}

/// LSOA word of an LSOA class ([`Batch::lsoa_icb`](super::Batch::lsoa_icb)) and IMD quintile 0..4 (-1: none).
pub(super) fn lsoa_word(class: i32, imd: i8, n_icb: usize) -> u32 {
    let icb = match class {
        BLANK => (n_icb as u32) << W_ICB | (K_BY_LSOA | K_NO_ICB | K_NO_LSOA) << W_KEY,
        UNRECOGNISED => (n_icb as u32) << W_ICB | (K_BY_LSOA | K_NO_ICB) << W_KEY,
        icb => (icb as u32) << W_ICB | K_BY_LSOA << W_KEY,
    };
    let imd = u32::try_from(imd).map_or(K_MISSING_IMD << W_KEY, |q| q);
    icb | imd
}
