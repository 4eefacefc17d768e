//! Plain (non-dictionary) text columns to dictionary indices, one encoder per column that
//! lives across batches.
//!
//! A CSV or an in-memory table holds its codes as plain strings: every row's bytes must be
//! hashed to learn which code it is. Arrow's `dictionary_encode` does that per batch and
//! hands back a new dictionary each time, which then has to be classified again. An
//! [`Encoder`] keeps one dictionary for the whole run (values in order of first appearance,
//! plus one null entry), so a batch that brings no new code leaves the dictionary, and its
//! classification, as they were.
//!
//! Values are kept exactly as given (not normalised): the dictionary is classified like any
//! other, so both paths normalise codes in one place.

use std::collections::HashMap;

use foldhash::fast::FixedState;

use crate::cube::Validity;
use crate::error::CoreError;

/// An Arrow `string` array (32-bit offsets): value `i` is `data[offsets[i]..offsets[i + 1]]`.
#[derive(Clone, Copy, Debug)]
pub struct Strings<'a> {
    /// `len + 1` offsets, already advanced to the array's offset.
    pub offsets: &'a [i32],
    pub data: &'a [u8],
    pub validity: Validity<'a>,
}

impl Strings<'_> {
    /// Number of values.
    #[must_use]
    pub fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Check that the offsets rise from 0 or more and stay inside the data, so that every
    /// value's range can be sliced without failing.
    fn check(&self) -> Result<(), CoreError> {
        let first = self.offsets.first().copied().unwrap_or(0);
        let last = self.offsets.last().copied().unwrap_or(0);
        let rising = self.offsets.windows(2).all(|w| w[0] <= w[1]);
        if first < 0 || !rising || usize::try_from(last).map_or(true, |l| l > self.data.len()) {
            return Err(CoreError::BadOffsets {
                first: i64::from(first),
                last: i64::from(last),
                data_len: self.data.len(),
            });
        }
        Ok(())
    }
}

/// Masks keeping the low `len` bytes of a `u128`, `len` 0..=15.
const LOW_BYTES: [u128; 16] = {
    let mut masks = [0u128; 16];
    let mut len = 1;
    while len < 16 {
        masks[len] = (1u128 << (8 * len)) - 1;
        len += 1;
    }
    masks
};

/// A value of up to 15 bytes packed with its length into a `u128`: codes (practices, LSOAs,
/// providers, exam codes, sex) are that short, and a packed key sits in the hash table
/// itself, so a probe never chases a pointer to the key's bytes.
#[inline]
fn pack(value: &[u8]) -> Option<u128> {
    let len = u8::try_from(value.len()).ok().filter(|&n| n <= 15)?;
    let mut bytes = [0u8; 16];
    bytes[..value.len()].copy_from_slice(value);
    bytes[15] = len;
    Some(u128::from_le_bytes(bytes))
}

/// The packed key ([`pack`]) of the value `data[start..end]` (bounds checked by the caller),
/// `None` if it is longer than 15 bytes. Usually the 16 bytes from the value's start are in
/// the buffer: then one load and a mask, not a copy of a variable length (which cost
/// several times the hash probe).
#[inline]
fn key_at(data: &[u8], start: usize, end: usize) -> Option<u128> {
    let len = end - start;
    match data.get(start..start + 16) {
        Some(chunk) if len <= 15 => {
            let mut word = [0u8; 16];
            word.copy_from_slice(chunk);
            Some(u128::from_le_bytes(word) & LOW_BYTES[len] | (len as u128) << 120)
        }
        _ => pack(&data[start..end]),
    }
}

/// One text column's dictionary, grown batch by batch.
#[derive(Clone, Debug, Default)]
pub struct Encoder {
    short: HashMap<u128, i32, FixedState>,
    long: HashMap<Box<[u8]>, i32, FixedState>,
    /// The dictionary as an Arrow `string` array: offsets (`len + 1`), data and which entry,
    /// if any, is the null one.
    offsets: Vec<i32>,
    data: Vec<u8>,
    null: Option<i32>,
}

impl Encoder {
    #[must_use]
    pub fn new() -> Self {
        Encoder {
            offsets: vec![0],
            ..Encoder::default()
        }
    }

    /// Number of dictionary entries (distinct values seen, and the null entry if any).
    #[must_use]
    pub fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The dictionary: `(offsets, data, index of the null entry)`.
    #[must_use]
    pub fn dictionary(&self) -> (&[i32], &[u8], Option<i32>) {
        (&self.offsets, &self.data, self.null)
    }

    /// Append an entry holding `value` (empty for the null entry); its index.
    fn push(&mut self, value: &[u8]) -> Result<i32, CoreError> {
        let id = i32::try_from(self.len())
            .map_err(|_| CoreError::Shape("more than 2^31 distinct values".into()))?;
        let end = i32::try_from(self.data.len() + value.len())
            .map_err(|_| CoreError::Shape("more than 2 GiB of distinct text".into()))?;
        self.data.extend_from_slice(value);
        self.offsets.push(end);
        Ok(id)
    }

    /// The index of a short `value` packed as `key`, added to the dictionary if new.
    #[inline]
    fn id_of_short(&mut self, key: u128, value: &[u8]) -> Result<i32, CoreError> {
        if let Some(&id) = self.short.get(&key) {
            return Ok(id);
        }
        let id = self.push(value)?;
        self.short.insert(key, id);
        Ok(id)
    }

    /// The index of a long `value`, added to the dictionary if new.
    fn id_of_long(&mut self, value: &[u8]) -> Result<i32, CoreError> {
        if let Some(&id) = self.long.get(value) {
            return Ok(id);
        }
        let id = self.push(value)?;
        self.long.insert(value.into(), id);
        Ok(id)
    }

    /// The index of each value of `strings` in the dictionary, -1 for a value it does not
    /// hold and for a null row; the dictionary is left as it is. This is Arrow's
    /// `index_in` against the dictionary's values, with a packed-key hash table built once.
    pub fn find(&self, strings: &Strings<'_>) -> Result<Vec<i32>, CoreError> {
        let n = strings.len();
        strings.validity.check(n, "text column")?;
        strings.check()?;
        let data = strings.data;
        Ok(strings
            .offsets
            .windows(2)
            .enumerate()
            .map(|(i, w)| {
                if strings.validity.is_valid(i) {
                    let (start, end) = (w[0] as usize, w[1] as usize);
                    match key_at(data, start, end) {
                        Some(key) => self.short.get(&key),
                        None => self.long.get(&data[start..end]),
                    }
                    .map_or(-1, |&id| id)
                } else {
                    -1
                }
            })
            .collect())
    }

    /// The dictionary index of every value of `strings`, growing the dictionary with the
    /// values it has not seen; null rows get the null entry.
    pub fn encode(&mut self, strings: &Strings<'_>) -> Result<Vec<i32>, CoreError> {
        let n = strings.len();
        strings.validity.check(n, "text column")?;
        strings.check()?;
        let data = strings.data;
        let mut out = Vec::with_capacity(n);
        for (i, w) in strings.offsets.windows(2).enumerate() {
            // checked above: 0 <= w[0] <= w[1] <= data.len()
            let (start, end) = (w[0] as usize, w[1] as usize);
            let id = if strings.validity.is_valid(i) {
                match key_at(data, start, end) {
                    Some(key) => self.id_of_short(key, &data[start..end])?,
                    None => self.id_of_long(&data[start..end])?,
                }
            } else if let Some(id) = self.null {
                id
            } else {
                let id = self.push(&[])?;
                self.null = Some(id);
                id
            };
            out.push(id);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings<'a>(
        values: &[Option<&str>],
        offsets: &'a mut Vec<i32>,
        data: &'a mut Vec<u8>,
        bits: &'a mut Vec<u8>,
    ) -> Strings<'a> {
        offsets.clear();
        data.clear();
        bits.clear();
        bits.resize(values.len().div_ceil(8), 0);
        offsets.push(0);
        for (i, v) in values.iter().enumerate() {
            if let Some(v) = v {
                data.extend_from_slice(v.as_bytes());
                bits[i / 8] |= 1 << (i % 8);
            }
            offsets.push(i32::try_from(data.len()).unwrap());
        }
        Strings {
            offsets,
            data,
            validity: Validity {
                bits: Some(bits),
                offset: 0,
            },
        }
    }

    fn entry(enc: &Encoder, id: i32) -> Option<String> {
        let (offsets, data, null) = enc.dictionary();
        if null == Some(id) {
            return None;
        }
        let i = usize::try_from(id).unwrap();
        let (s, e) = (offsets[i] as usize, offsets[i + 1] as usize);
        Some(String::from_utf8(data[s..e].to_vec()).unwrap())
    }

    #[test]
    fn encodes_across_batches_with_one_dictionary() {
        let long = "Computerized Axial Tomography";
        let mut enc = Encoder::new();
        let (mut o, mut d, mut b) = (Vec::new(), Vec::new(), Vec::new());
        let first = [
            Some("RX1"),
            None,
            Some(" rx1"),
            Some("RX1"),
            Some(long),
            Some(""),
        ];
        let ids = enc
            .encode(&strings(&first, &mut o, &mut d, &mut b))
            .unwrap();
        assert_eq!(ids, vec![0, 1, 2, 0, 3, 4]);
        let second = [Some(long), Some("NEW"), None, Some("RX1"), Some("RX1\0")];
        let ids2 = enc
            .encode(&strings(&second, &mut o, &mut d, &mut b))
            .unwrap();
        assert_eq!(ids2, vec![3, 5, 1, 0, 6]);
        assert_eq!(enc.len(), 7);
        for (values, ids) in [(&first[..], &ids), (&second[..], &ids2)] {
            for (v, &id) in values.iter().zip(ids.iter()) {
                assert_eq!(entry(&enc, id).as_deref(), *v);
            }
        }
    }

    #[test]
    fn find_looks_up_without_adding() {
        let mut enc = Encoder::new();
        let (mut o, mut d, mut b) = (Vec::new(), Vec::new(), Vec::new());
        let long = "a value longer than fifteen bytes";
        enc.encode(&strings(
            &[Some("A"), Some("BB"), Some(long)],
            &mut o,
            &mut d,
            &mut b,
        ))
        .unwrap();
        let probe = [Some("BB"), None, Some("C"), Some(long), Some("A")];
        let found = enc.find(&strings(&probe, &mut o, &mut d, &mut b)).unwrap();
        assert_eq!(found, vec![1, -1, -1, 2, 0]);
        assert_eq!(enc.len(), 3);
    }

    #[test]
    fn bad_offsets_are_errors_not_panics() {
        let mut enc = Encoder::new();
        for offsets in [&[0, 5][..], &[2, 1][..], &[-1, 1][..]] {
            let s = Strings {
                offsets,
                data: b"AA",
                validity: Validity::default(),
            };
            assert!(enc.encode(&s).is_err());
        }
        let short_bitmap = [0u8; 1];
        let s = Strings {
            offsets: &[0; 10],
            data: b"",
            validity: Validity {
                bits: Some(&short_bitmap),
                offset: 0,
            },
        };
        assert!(enc.encode(&s).is_err());
    }
}
