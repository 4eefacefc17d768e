//! A batch's dictionary tables: each dictionary entry of the batch's columns turned once into
//! what the counting kernel adds for a row with that entry (a row-word part, a provider id,
//! a measure combination), with one extra last entry for null rows.

use super::age::age_band;
use super::columns::{Batch, SexColumn};
use super::row_word::{AGE_MISSING, SEX_MISSING, lsoa_word, practice_word, sex_word};
use super::{BLANK, Dims, N_AGE, N_IMD};
use crate::error::CoreError;

/// A batch's classification tables, each with one extra last entry for null rows. Practice,
/// LSOA, sex and age hold row-word parts (see [`W_KEY`](super::row_word::W_KEY)).
#[derive(Debug)]
pub(crate) struct Tables {
    pub(super) provider: Vec<u32>,
    pub(super) practice: Vec<u32>,
    pub(super) lsoa: Vec<u32>,
    pub(super) sex: Vec<u16>,
    /// Per modality: its id times the number of exam ids, or the last entry of `combo_of`
    /// for a modality in no measure.
    pub(super) modality: Vec<u32>,
    /// Per exam code: its exam id.
    pub(super) exam: Vec<u32>,
    /// Measure combination of each (modality id, exam id), `[modality][exam]`, and one last
    /// entry (combination 0) for rows in no measure's modality.
    pub(super) combo_of: Vec<u16>,
    /// Measure combination of each (modality index, exam code index) of the batch's
    /// dictionaries, `[m * exam_stride + e]`, index `len` standing for null: one look-up a
    /// row where `combo_of` needs three. Empty when it would be larger than
    /// [`MAX_COMBOS_BY_INDEX`].
    pub(super) combo_by_index: Vec<u16>,
    pub(super) exam_stride: u32,
    /// The measures (bit mask) of each combination; combination 0 is the empty mask.
    pub(super) combo_masks: Vec<u64>,
    /// Age word of each age in years from 0 (see [`Tables::band_of_age`]).
    bands: Vec<u16>,
    max_age: i64,
    n_icb: usize,
}

impl Tables {
    pub(super) fn new(dims: Dims) -> Self {
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
    pub(super) fn refill(&mut self, batch: &Batch<'_>) -> Result<(), CoreError> {
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
    pub(super) fn renumbers(&self, batch: &Batch<'_>) -> bool {
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
    pub(super) fn band_of_age(&self, age: i64) -> u16 {
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
