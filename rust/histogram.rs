//! Rows per dictionary index, for the value profile the guards read (`didcore.profile`): one
//! pass over a batch's indices that skips the null rows by their validity bits, instead of
//! numpy unpacking the bitmap and counting twice.

use crate::cube::Validity;
use crate::error::CoreError;

/// Rows of each index `0..size` among the valid rows of `indices`, and the null rows.
/// Indices outside `0..size` in valid rows are not counted (the callers checked them).
pub fn bincount(
    indices: &[i32],
    validity: Validity<'_>,
    size: usize,
) -> Result<(Vec<u64>, u64), CoreError> {
    let n = indices.len();
    validity.check(n, "dictionary indices")?;
    // Four histograms, rows taken in turn: with a handful of values (sex, modality) one
    // histogram's next increment of the same bin waits for the last (store to load); four
    // interleaved ones counted a batch 3x faster.
    let stride = size + 1;
    let last = size; // out-of-range indices and null rows land here and are dropped
    let mut lanes = vec![0u64; 4 * stride];
    for (j, &i) in indices.iter().enumerate() {
        lanes[(j & 3) * stride + (i as u32 as usize).min(last)] += 1;
    }
    // Every row was counted by its index, null or not; each null row (a few in a hundred)
    // then moves to the dropped bin. Reading each row's validity bit in the loop above made
    // it 1.55 ns a row instead of 1.05 (2^18-row batches of sex and modality codes).
    let mut nulls = 0u64;
    validity.for_each_null(0, n, |j| {
        let lane = (j & 3) * stride;
        lanes[lane + (indices[j] as u32 as usize).min(last)] -= 1;
        lanes[lane + last] += 1;
        nulls += 1;
    });
    let bins = (0..size)
        .map(|b| (0..4).map(|lane| lanes[lane * stride + b]).sum())
        .collect();
    Ok((bins, nulls))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_valid_rows_and_nulls() {
        let bits = [0b1110_1101u8, 0b0000_0001];
        let v = Validity {
            bits: Some(&bits),
            offset: 0,
        };
        let (bins, nulls) = bincount(&[0, 9, 1, 1, -5, 2, 2, 0, 1], v, 3).unwrap();
        // rows 1 and 4 are null (indices 9 and -5, ignored)
        assert_eq!(bins, vec![2, 3, 2]);
        assert_eq!(nulls, 2);
        let (bins, nulls) = bincount(&[0, 2, 7], Validity::default(), 3).unwrap();
        assert_eq!((bins, nulls), (vec![1, 0, 1], 0));
        let short = Validity {
            bits: Some(&bits[..1]),
            offset: 4,
        };
        assert!(bincount(&[0; 9], short, 1).is_err());
    }
}
