//! The DELTA encodings of Parquet: DELTA_BINARY_PACKED (integers; also the lengths inside the
//! two below), DELTA_LENGTH_BYTE_ARRAY (text: the lengths, then the bytes) and
//! DELTA_BYTE_ARRAY (text: each value as a prefix of the one before plus a suffix). Parquet v2
//! writers use them; pyarrow cannot read them into a dictionary, and not at all when the
//! file's stored Arrow schema says dictionary.

use super::DecodeError;

fn corrupt(what: &str) -> DecodeError {
    DecodeError::Corrupt(format!("a DELTA-encoded page: {what}"))
}

/// An unsigned LEB128 number at `*pos`.
fn uleb(data: &[u8], pos: &mut usize) -> Result<u64, DecodeError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *data
            .get(*pos)
            .ok_or_else(|| corrupt("a header is cut short"))?;
        *pos += 1;
        value |= u64::from(byte & 0x7F) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(corrupt("a number is over 10 bytes"))
}

fn zigzag(data: &[u8], pos: &mut usize) -> Result<i64, DecodeError> {
    let v = uleb(data, pos)?;
    Ok((v >> 1) as i64 ^ -((v & 1) as i64))
}

/// `width` bits (up to 64) at bit `bit` of `data`, least significant first; bits past the end
/// read as zero (the caller checked that the miniblock's bytes are there).
fn bits_at(data: &[u8], bit: usize, width: u32) -> u64 {
    if width == 0 {
        return 0;
    }
    let byte = bit >> 3;
    // Up to 56 bits (lengths and most deltas), with 8 bytes there, one u64 load holds the
    // value: shifted by at most 7, it ends by bit 63. The u128 below took a fifth of decoding
    // DELTA text.
    if width <= 56
        && let Some(chunk) = data.get(byte..byte + 8)
    {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        return (word >> (bit & 7)) & ((1u64 << width) - 1);
    }
    let mut w = [0u8; 16];
    let tail = &data[byte.min(data.len())..];
    let n = tail.len().min(16);
    w[..n].copy_from_slice(&tail[..n]);
    let word = u128::from_le_bytes(w) >> (bit & 7);
    let mask = if width == 64 {
        u128::from(u64::MAX)
    } else {
        (1u128 << width) - 1
    };
    (word & mask) as u64
}

/// Decode DELTA_BINARY_PACKED values from the start of `data` into `out` (cleared first);
/// the bytes they took.
pub fn binary_packed(data: &[u8], out: &mut Vec<i64>) -> Result<usize, DecodeError> {
    out.clear();
    let mut pos = 0usize;
    let block = uleb(data, &mut pos)?;
    let miniblocks = uleb(data, &mut pos)?;
    let total = uleb(data, &mut pos)?;
    let first = zigzag(data, &mut pos)?;
    if block == 0 || block % 128 != 0 || miniblocks == 0 || block % miniblocks != 0 {
        return Err(corrupt("block sizes that do not divide"));
    }
    let per = block / miniblocks;
    if per % 32 != 0 || miniblocks > 1 << 16 {
        return Err(corrupt("a miniblock size that is not a multiple of 32"));
    }
    let (miniblocks, per) = (miniblocks as usize, per as usize);
    // every value after the first takes a bit at least, or a miniblock width byte per `per`
    let total = usize::try_from(total).map_err(|_| corrupt("too many values"))?;
    if total > 1 && (total - 1) / per.max(1) > data.len() {
        return Err(corrupt("more values than the page holds"));
    }
    if total == 0 {
        return Ok(pos);
    }
    out.reserve(total.min(1 << 20));
    out.push(first);
    let mut last = first;
    while out.len() < total {
        let min_delta = zigzag(data, &mut pos)?;
        let widths = data
            .get(pos..pos + miniblocks)
            .ok_or_else(|| corrupt("miniblock widths are cut short"))?
            .to_vec();
        pos += miniblocks;
        for &width in &widths {
            if out.len() >= total {
                break;
            }
            let width = u32::from(width);
            if width > 64 {
                return Err(corrupt("a bit width over 64"));
            }
            let bytes = per * width as usize / 8;
            let body = data
                .get(pos..pos + bytes)
                .ok_or_else(|| corrupt("a miniblock is cut short"))?;
            let take = per.min(total - out.len());
            for k in 0..take {
                let delta = bits_at(body, k * width as usize, width);
                last = last.wrapping_add(min_delta).wrapping_add(delta as i64);
                out.push(last);
            }
            pos += bytes;
        }
    }
    Ok(pos)
}

/// DELTA_LENGTH_BYTE_ARRAY: `n` text values, each handed to `f`.
pub fn length_byte_array(
    data: &[u8],
    n: usize,
    lengths: &mut Vec<i64>,
    mut f: impl FnMut(&[u8]) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    let used = binary_packed(data, lengths)?;
    if lengths.len() != n {
        return Err(corrupt("the lengths do not match the values"));
    }
    let mut pos = used;
    for &len in lengths.iter() {
        let len = usize::try_from(len).map_err(|_| corrupt("a negative length"))?;
        let value = data
            .get(pos..pos + len)
            .ok_or_else(|| corrupt("a value is past its page"))?;
        f(value)?;
        pos += len;
    }
    Ok(())
}

/// DELTA_BYTE_ARRAY: `n` text values (each the first `prefix` bytes of the one before, then
/// its suffix), each handed to `f`.
pub fn byte_array(
    data: &[u8],
    n: usize,
    prefixes: &mut Vec<i64>,
    suffixes: &mut Vec<i64>,
    mut f: impl FnMut(&[u8]) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    let used = binary_packed(data, prefixes)?;
    let rest = &data[used..];
    let used2 = binary_packed(rest, suffixes)?;
    if prefixes.len() != n || suffixes.len() != n {
        return Err(corrupt(
            "the prefix and suffix lengths do not match the values",
        ));
    }
    let mut pos = used2;
    let mut value: Vec<u8> = Vec::new();
    for (&p, &s) in prefixes.iter().zip(suffixes.iter()) {
        let p = usize::try_from(p).map_err(|_| corrupt("a negative prefix"))?;
        let s = usize::try_from(s).map_err(|_| corrupt("a negative suffix"))?;
        if p > value.len() {
            return Err(corrupt("a prefix longer than the value before"));
        }
        let suffix = rest
            .get(pos..pos + s)
            .ok_or_else(|| corrupt("a suffix is past its page"))?;
        value.truncate(p);
        value.extend_from_slice(suffix);
        f(&value)?;
        pos += s;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::bits_at;

    #[test]
    fn bits_at_reads_every_width_at_every_offset_up_to_the_end() {
        let data: Vec<u8> = (0..24u32).map(|i| (i * 151 + 29) as u8).collect();
        let bit = |k: usize| u64::from(data.get(k >> 3).map_or(0, |b| b >> (k & 7) & 1));
        for width in 0..=64u32 {
            for start in 0..data.len() * 8 {
                let expected = (0..width as usize).fold(0u64, |v, i| v | bit(start + i) << i);
                assert_eq!(
                    bits_at(&data, start, width),
                    expected,
                    "{width} bits at {start}"
                );
            }
        }
    }
}
