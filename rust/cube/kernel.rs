//! The counting kernel: the rows of a batch in blocks, each column looked up through the
//! batch's tables into a block array (stage one, where every dictionary index is checked),
//! then each row's word derived and counted into a worker's scratch tables (stage two,
//! branch-free).

use super::accumulator::Scratch;
use super::age::age_in_years;
use super::columns::{AgeColumn, Batch, Coded, Ints, SexColumn};
use super::row_word::{
    AGE_MISSING, CELL_MASK, DEFER, K_EXCLUDED, K_NO_MEASURE, KEY_MASK, LSOA_ALWAYS, SEX_MISSING,
    W_ICB, W_KEY, sex_word,
};
use super::tables::Tables;
use super::{Dims, N_AGE, N_IMD, N_SEX};

impl Batch<'_> {
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
    pub(super) fn count_range(
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
pub(super) const BLOCK: usize = 1024;

/// The table values of one block of rows (see [`Batch::count_range`]): the parts of each
/// row's word, its provider and its measure combination.
#[derive(Clone, Debug)]
pub(super) struct Block {
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
    pub(super) fn new() -> Self {
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
/// Every row is looked up as if valid, then null rows are overwritten
/// ([`Validity::for_each_null`](super::Validity::for_each_null)): nulls are a few rows in a
/// hundred, and testing each row's validity bit cost more than the look-up itself.
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
    column.validity.for_each_null(from, len, set_null);
    all_in
        || column.indices[from..from + len]
            .iter()
            .enumerate()
            .all(|(j, &i)| {
                let k = start + j;
                bits[k >> 3] >> (k & 7) & 1 == 0 || (i as u32 as usize) < dict_len
            })
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
    column.validity.for_each_null(from, out.len(), |j| {
        out[j] = null;
    });
}

/// Stage two: derive each row of `block` (SPEC section 2: ICB source, exclusion, measures)
/// and add it into `scratch`. `block` is changed: its practice words become row words.
///
/// The row's word is the sum of its column words (see [`W_KEY`]): the practice word, or the
/// LSOA's ICB fields when the practice [`DEFER`]s, and the LSOA, sex, age and measure fields.
/// Its state key is what the histograms count; [`STATE_OF_KEY`](super::state::STATE_OF_KEY) turns keys into states at the
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
        let key = (word >> W_KEY) & KEY_MASK;
        let icb_slot = (word >> W_ICB) as usize;
        let cell = icb_slot * stride_icb + (word & CELL_MASK) as usize;
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
