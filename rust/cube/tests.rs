use super::*;
use crate::error::CoreError;

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
                ref column,
                index: 5,
                dict_len: 1,
                batch: 2,
                batch_row: 3,
                row: 7,
            } if column == "gp_practice_code"
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
