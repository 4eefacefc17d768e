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
pub(crate) fn pack(value: &[u8]) -> Option<u128> {
    // Built from loads of the value itself, two overlapping ones from each end: copying a
    // variable length into a buffer and loading it as one word stalled on every value (the
    // processor cannot forward the copy's small stores to the wide load), which made looking
    // up PLAIN text 40% slower than hashing its bytes.
    let len = value.len();
    let low = |n: usize| -> u64 {
        // the first n <= 8 bytes, as a little-endian word (0 < n)
        match n {
            8.. => u64::from_le_bytes(value[..8].try_into().unwrap_or_default()),
            4.. => {
                let a = u32::from_le_bytes(value[..4].try_into().unwrap_or_default());
                let b = u32::from_le_bytes(value[n - 4..n].try_into().unwrap_or_default());
                u64::from(a) | (u64::from(b) << (8 * (n - 4)))
            }
            _ => value[..n]
                .iter()
                .enumerate()
                .fold(0, |w, (i, &b)| w | u64::from(b) << (8 * i)),
        }
    };
    let (lo, hi) = match len {
        0 => (0, 0),
        1..=8 => (low(len), 0),
        9..=15 => {
            let lo = u64::from_le_bytes(value[..8].try_into().unwrap_or_default());
            let end = u64::from_le_bytes(value[len - 8..].try_into().unwrap_or_default());
            (lo, end >> (8 * (16 - len)))
        }
        _ => return None,
    };
    Some(u128::from(lo) | u128::from(hi) << 64 | (len as u128) << 120)
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

    /// [`Encoder::find`] of each value as the classifier normalises codes (surrounding
    /// whitespace trimmed, ASCII letters upper-cased, as Arrow's `utf8_trim_whitespace` then
    /// `ascii_upper`), in one pass: the position among the keys, [`NOT_FOUND`], or [`BLANK`]
    /// for a null or a value that is only whitespace.
    ///
    /// Only ASCII whitespace is trimmed here, so a value whose first or last byte left is not
    /// ASCII (where Unicode whitespace could be) gives `Ok(None)`: the caller normalises such
    /// a dictionary with Arrow instead. Bytes inside a value are kept as they are.
    pub fn find_normalised(&self, strings: &Strings<'_>) -> Result<Option<Vec<i32>>, CoreError> {
        let n = strings.len();
        strings.validity.check(n, "text column")?;
        strings.check()?;
        let data = strings.data;
        let white = |b: u8| matches!(b, 0x09..=0x0D | 0x1C..=0x20);
        // Two passes: first each value's packed, upper-cased key (or what else it is), then
        // the probes in a loop of nothing else. A probe misses the cache (the keys of the
        // LSOAs are 2 MB); in a loop of its own the processor has several misses in flight
        // at once, where the branches of trimming between them held it to one or two
        // (21 -> 15-17 ns a value with the table out of cache, 57k LSOA codes).
        let mut keys: Vec<u128> = Vec::with_capacity(n);
        let mut long: Vec<(usize, usize, usize)> = Vec::new();
        for (i, w) in strings.offsets.windows(2).enumerate() {
            if !strings.validity.is_valid(i) {
                keys.push(BLANK_KEY);
                continue;
            }
            let (mut start, mut end) = (w[0] as usize, w[1] as usize);
            while start < end && white(data[start]) {
                start += 1;
            }
            while end > start && white(data[end - 1]) {
                end -= 1;
            }
            if start == end {
                keys.push(BLANK_KEY);
                continue;
            }
            if !data[start].is_ascii() || !data[end - 1].is_ascii() {
                return Ok(None);
            }
            if let Some(key) = key_at(data, start, end) {
                keys.push(ascii_upper_packed(key));
            } else {
                long.push((i, start, end));
                keys.push(LONG_KEY);
            }
        }
        // BLANK_KEY and LONG_KEY are no value's key: a packed key's top byte is its length,
        // at most 15.
        let mut out: Vec<i32> = keys
            .iter()
            .map(|key| match *key {
                BLANK_KEY => BLANK,
                key => self.short.get(&key).map_or(NOT_FOUND, |&id| id),
            })
            .collect();
        let mut upper = Vec::new();
        for (i, start, end) in long {
            upper.clear();
            upper.extend(data[start..end].iter().map(u8::to_ascii_uppercase));
            out[i] = self.long.get(&upper[..]).map_or(NOT_FOUND, |&id| id);
        }
        Ok(Some(out))
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

/// [`Encoder::find_normalised`]'s first pass: a null or blank value, and a value too long to
/// pack (its top byte, where a packed key has its length, 0..=15, says neither is a key).
const BLANK_KEY: u128 = u128::MAX;
const LONG_KEY: u128 = u128::MAX - 1;

/// [`Encoder::find_normalised`]: not among the keys.
pub const NOT_FOUND: i32 = -1;
/// [`Encoder::find_normalised`]: null, or nothing but whitespace.
pub const BLANK: i32 = -2;

/// A packed key ([`key_at`]) with its ASCII lower-case letters upper-cased, all 16 bytes at
/// once: a byte is a-z when, its top bit clear, adding 0x80 - 0x61 sets that bit and adding
/// 0x80 - 0x7B does not (no byte's sum carries into the next). The length byte (at most 15)
/// and non-ASCII bytes are left alone.
fn ascii_upper_packed(key: u128) -> u128 {
    const LOW7: u128 = 0x7F7F_7F7F_7F7F_7F7F_7F7F_7F7F_7F7F_7F7F;
    const TOP: u128 = 0x8080_8080_8080_8080_8080_8080_8080_8080;
    let heptets = key & LOW7;
    let from_a = heptets + 0x1F1F_1F1F_1F1F_1F1F_1F1F_1F1F_1F1F_1F1F;
    let past_z = heptets + 0x0505_0505_0505_0505_0505_0505_0505_0505;
    let lower = from_a & !past_z & !key & TOP;
    key - (lower >> 2)
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
    fn packs_every_length_as_bytes_then_length() {
        let bytes: Vec<u8> = (0..40u8).map(|i| i.wrapping_mul(37) ^ 0xA5).collect();
        for start in 0..4 {
            for len in 0..=17 {
                let value = &bytes[start..start + len];
                let expected = (len <= 15).then(|| {
                    let mut word = [0u8; 16];
                    word[..len].copy_from_slice(value);
                    word[15] = len as u8;
                    u128::from_le_bytes(word)
                });
                assert_eq!(pack(value), expected, "{len} bytes from {start}");
                let end = start + len;
                if len <= 15 {
                    assert_eq!(key_at(&bytes, start, end), expected);
                    assert_eq!(key_at(&bytes[..end], start, end), expected);
                }
            }
        }
    }

    #[test]
    fn finds_values_normalised_as_the_classifier_does() {
        let long = "Computerized Axial Tomography";
        let mut keys = Encoder::new();
        let (mut o, mut d, mut b) = (Vec::new(), Vec::new(), Vec::new());
        let key_list = [
            Some("E01000001"),
            Some("RX1"),
            Some("COMPUTERIZED AXIAL TOMOGRAPHY"),
        ];
        keys.encode(&strings(&key_list, &mut o, &mut d, &mut b))
            .unwrap();
        let long_lower = long.to_lowercase();
        let padded = format!("\t{long_lower} \u{1f}");
        let values = [
            Some("E01000001"),
            Some(" e01000001\r\n"),
            Some("rX1"),
            Some("\x1cRX1\x0b"),
            Some("RX2"),
            Some("   "),
            Some(""),
            None,
            Some(padded.as_str()),
            Some("`{@[ rx1"),
            Some("R\u{e9}X1"),
        ];
        let found = keys
            .find_normalised(&strings(&values, &mut o, &mut d, &mut b))
            .unwrap()
            .unwrap();
        assert_eq!(
            found,
            [
                0, 0, 1, 1, NOT_FOUND, BLANK, BLANK, BLANK, 2, NOT_FOUND, NOT_FOUND
            ]
        );
        // a value that ends in a character outside ASCII is left to Arrow's normalisation
        for odd in ["RX1\u{a0}", "\u{85}RX1", "\u{e9}"] {
            let values = [Some("RX1"), Some(odd)];
            let got = keys.find_normalised(&strings(&values, &mut o, &mut d, &mut b));
            assert_eq!(got.unwrap(), None, "{odd:?}");
        }
        // the packed upper-casing agrees with the byte by byte one on every byte value
        for byte in 0..=255u8 {
            let value = [byte; 15];
            let want = pack(&value.map(|c| c.to_ascii_uppercase())).unwrap();
            assert_eq!(ascii_upper_packed(pack(&value).unwrap()), want, "{byte:#x}");
        }
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
