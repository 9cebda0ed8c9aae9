//! String references: the string table's bitmap of bad units (NUL, unpaired surrogates),
//! built once, so each reference is checked in `len / 64` word tests; the check of one
//! reference and its precise error.

use alloc::vec::Vec;

use super::check::Parser;
use super::reader::Rd;
use super::{n64, us};
use crate::content::limits;
use crate::error::{AllocError, ContentError, ErrorKind, Location};
use crate::mem;

/// Bitmap over the string table's code units: bit set for a NUL and for a surrogate that
/// is unpaired in the table. A reference `[s, e)` holds a well-formed string exactly when
/// no bit in it is set, unit `s` is not a low surrogate and unit `e - 1` is not a high one
/// (pairing is decided by the neighbours alone). So each reference is checked in
/// `len / 64` word tests, however often the same bytes are referenced.
pub(super) fn bad_units(table: &[u8]) -> Result<Vec<u64>, AllocError> {
    let units = table.len() / 2;
    let mut bits: Vec<u64> = mem::with_capacity(units.div_ceil(64))?;
    let unit = |i: usize| -> u16 {
        let b = i.saturating_mul(2);
        match table.get(b..b.saturating_add(2)) {
            Some(&[lo, hi]) => u16::from_le_bytes([lo, hi]),
            _ => 0xFFFF,
        }
    };
    let is_high = |u: u16| (0xD800..=0xDBFF).contains(&u);
    let is_low = |u: u16| (0xDC00..=0xDFFF).contains(&u);
    let whole = table.get(..units.saturating_mul(2)).unwrap_or(&[]);
    // Four units at a time: is any of them NUL or a surrogate?
    const LANES_LO: u64 = 0x0001_0001_0001_0001;
    const LANES_HI: u64 = 0x8000_8000_8000_8000;
    let zero_lane = |x: u64| x.wrapping_sub(LANES_LO) & !x & LANES_HI != 0;
    let suspect =
        |x: u64| zero_lane(x) || zero_lane((x & 0xF800_F800_F800_F800) ^ 0xD800_D800_D800_D800);
    // 64 units per word; four units that are neither NUL nor surrogates (nearly all) cost
    // one test, the others are looked at one by one, with their neighbours.
    for (w, block) in whole.chunks(128).enumerate() {
        let mut word = 0u64;
        let base = w.saturating_mul(64);
        let quads = block.chunks_exact(8);
        let tail_at = block.len().saturating_sub(quads.remainder().len());
        let mut look: u64 = 0; // bit q: quad q needs a closer look
        for (q, quad) in quads.enumerate() {
            let x = u64::from_le_bytes(quad.try_into().unwrap_or([0; 8]));
            if suspect(x) {
                look |= 1u64
                    .checked_shl(u32::try_from(q).unwrap_or(64))
                    .unwrap_or(0);
            }
        }
        if look == 0 && tail_at == block.len() {
            mem::push(&mut bits, word)?;
            continue;
        }
        for (j, pair) in block.chunks_exact(2).enumerate() {
            let in_tail = j.saturating_mul(2) >= tail_at;
            let quad_bit = 1u64
                .checked_shl(u32::try_from(j / 4).unwrap_or(64))
                .unwrap_or(0);
            if !in_tail && look & quad_bit == 0 {
                continue;
            }
            let &[lo, hi] = pair else { continue };
            let u = u16::from_le_bytes([lo, hi]);
            if u != 0 && u & 0xF800 != 0xD800 {
                continue;
            }
            let i = base.saturating_add(j);
            let bad = u == 0
                || (is_high(u) && !is_low(unit(i.saturating_add(1))))
                || (is_low(u) && (i == 0 || !is_high(unit(i.saturating_sub(1)))));
            if bad {
                word |= 1u64
                    .checked_shl(u32::try_from(j).unwrap_or(64))
                    .unwrap_or(0);
            }
        }
        mem::push(&mut bits, word)?;
    }
    Ok(bits)
}

/// Mask of bits `lo..hi` of a word (`lo <= hi <= 64`).
fn bit_range(lo: usize, hi: usize) -> u64 {
    let n = u32::try_from(hi.saturating_sub(lo)).unwrap_or(64);
    let ones = u64::MAX.checked_shr(64u32.saturating_sub(n)).unwrap_or(0);
    let ones = if n == 0 { 0 } else { ones };
    ones.checked_shl(u32::try_from(lo).unwrap_or(64))
        .unwrap_or(0)
}

impl Parser<'_> {
    /// Checks one string reference; reports at the reference for a bad length or range,
    /// and at the offending code unit for a NUL or an unpaired surrogate.
    pub(super) fn string(&self, r: &mut Rd<'_>, at: &Location) -> Result<(u32, u16), ContentError> {
        let offset = r.u32(at, "string offset")?;
        let len = r.u16(at, "string length")?;
        let e = |kind| ContentError { at: *at, kind };
        if len == 0 {
            return Err(e(ErrorKind::EmptyString));
        }
        if usize::from(len) > limits::MAX_STRING_UNITS {
            return Err(e(ErrorKind::LimitExceeded {
                what: "string length (code units)",
                limit: n64(limits::MAX_STRING_UNITS),
                found: u64::from(len),
            }));
        }
        let start = us(offset);
        let end = start.saturating_add(usize::from(len));
        if start >= end || end > self.strings.len() / 2 {
            return Err(e(ErrorKind::StringOutOfRange {
                offset,
                len,
                table_units: n64(self.strings.len() / 2),
            }));
        }
        if self.well_formed(start, end) {
            return Ok((offset, len));
        }
        Err(self.string_error(start, end, at))
    }

    fn unit(&self, i: usize) -> u16 {
        let b = i.saturating_mul(2);
        match self.strings.get(b..b.saturating_add(2)) {
            Some(&[lo, hi]) => u16::from_le_bytes([lo, hi]),
            _ => 0,
        }
    }

    /// No NUL, no unpaired surrogate in units `start..end` (non-empty, inside the table).
    #[inline]
    fn well_formed(&self, start: usize, end: usize) -> bool {
        if (0xDC00..=0xDFFF).contains(&self.unit(start))
            || (0xD800..=0xDBFF).contains(&self.unit(end.saturating_sub(1)))
        {
            return false;
        }
        let (first, last) = (start / 64, end.saturating_sub(1) / 64);
        (first..=last).all(|w| {
            let base = w.saturating_mul(64);
            let lo = start.max(base).saturating_sub(base);
            let hi = end.min(base.saturating_add(64)).saturating_sub(base);
            self.bad
                .get(w)
                .is_some_and(|&word| word & bit_range(lo, hi) == 0)
        })
    }

    /// The precise error for a string that is not well formed: the first NUL, else the
    /// first unpaired surrogate, at the offending code unit.
    fn string_error(&self, start: usize, end: usize, at: &Location) -> ContentError {
        let str_at = |i: usize| Location {
            offset: self
                .strings_at
                .saturating_add(start.saturating_add(i).saturating_mul(2)),
            ..*at
        };
        let units = (start..end).map(|i| self.unit(i));
        if let Some(i) = units.clone().position(|u| u == 0) {
            return ContentError {
                at: str_at(i),
                kind: ErrorKind::NulInString {
                    index: u32::try_from(i).unwrap_or(u32::MAX),
                },
            };
        }
        let (i, unit) = crate::text::first_unpaired_surrogate_in(units).unwrap_or((0, 0));
        ContentError {
            at: str_at(i),
            kind: ErrorKind::InvalidUtf16 {
                index: u32::try_from(i).unwrap_or(u32::MAX),
                unit,
            },
        }
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::as_conversions
)]
mod tests {
    use super::*;

    /// The word-at-a-time bitmap marks exactly the units a unit-by-unit definition does:
    /// NULs, high surrogates not followed by a low one, low ones not preceded by a high
    /// one; tables of every length (odd byte counts too) around the 64-unit word edges.
    #[test]
    fn bad_units_matches_the_unit_by_unit_definition() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let pool: [u16; 7] = [0x41, 0x0000, 0xD800, 0xDBFF, 0xDC00, 0xDFFF, 0x00E9];
        for round in 0..2000 {
            let len = (next() % 300) as usize;
            let sparse = round % 3 != 0; // mostly ordinary text, sometimes dense with bad units
            let table: Vec<u8> = (0..len)
                .flat_map(|_| {
                    let r = next();
                    let u = if sparse && r % 16 != 0 {
                        0x61 + (r % 26) as u16
                    } else {
                        pool[(r % pool.len() as u64) as usize]
                    };
                    u.to_le_bytes()
                })
                .chain((round % 2 == 1).then_some(0x41u8))
                .collect();
            let units: Vec<u16> = table
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect();
            let high = |u: u16| (0xD800..=0xDBFF).contains(&u);
            let low = |u: u16| (0xDC00..=0xDFFF).contains(&u);
            let mut want = alloc::vec![0u64; units.len().div_ceil(64)];
            for (i, &u) in units.iter().enumerate() {
                let bad = u == 0
                    || (high(u) && !units.get(i + 1).is_some_and(|&n| low(n)))
                    || (low(u) && !(i > 0 && high(units[i - 1])));
                if bad {
                    want[i / 64] |= 1 << (i % 64);
                }
            }
            assert_eq!(
                bad_units(&table).unwrap(),
                want,
                "round {round}: {units:x?}"
            );
        }
    }
}
