//! The columns of a record batch as plain views of its Arrow buffers (indices, values,
//! validity bitmaps), the batch's per-dictionary classification tables, and the checks that
//! make every later look-up in bounds.

use super::{BLANK, Dims, N_IMD, N_SEX, OTHER_VALID, UNRECOGNISED};
use crate::error::CoreError;

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

    /// Call `f(j)` for each null row `j` of the `len` rows from row `from`, reading the
    /// bitmap 64 rows at a time (nothing when there are no nulls). [`Validity::check`] must
    /// have passed for them.
    #[inline]
    pub(crate) fn for_each_null(&self, from: usize, len: usize, mut f: impl FnMut(usize)) {
        let Some(bits) = self.bits else {
            return;
        };
        let start = self.offset + from;
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
    pub(super) fn get(&self, row: usize) -> Option<T> {
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

impl Batch<'_> {
    /// Check every slice against the row count and every dictionary index against its
    /// dictionary, so the counting pass can never index out of bounds.
    pub fn validate(&self, dims: Dims, n_providers: usize) -> Result<(), CoreError> {
        self.validate_columns()?;
        self.validate_tables(dims, n_providers)
    }

    /// The row-side half of [`Batch::validate`]: every column's slices against the row count
    /// (what changes from one block of a row group to the next, whose tables do not).
    pub fn validate_columns(&self) -> Result<(), CoreError> {
        let n = self.n_rows;
        let rows = |c: &Coded<'_>, what: &str| c.check(n, 0, what);
        rows(&self.provider, "provider_code")?;
        rows(&self.practice, "gp_practice_code")?;
        rows(&self.lsoa, "lsoa11")?;
        rows(&self.modality, "modality")?;
        if let Some(exam) = &self.exam {
            rows(exam, "exam_code")?;
        }
        match self.sex {
            SexColumn::Coded { column, .. } => rows(&column, "sex")?,
            SexColumn::Ints(ints) => ints.check(n, "sex")?,
        }
        match self.age {
            AgeColumn::Years(ints) => ints.check(n, "age"),
            AgeColumn::Dates { birth, test } => {
                birth.check(n, "date_of_birth")?;
                test.check(n, "test_date")
            }
        }
    }

    /// The table-side half of [`Batch::validate`]: every dictionary table in range.
    fn validate_tables(&self, dims: Dims, n_providers: usize) -> Result<(), CoreError> {
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
    pub(super) fn bad_index(
        &self,
        start: usize,
        end: usize,
    ) -> Option<(&'static str, usize, i64, usize)> {
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
