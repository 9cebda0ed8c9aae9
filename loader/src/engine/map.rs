//! A hash map from 64-bit keys to 32-bit values for compilation: open addressing, grown
//! fallibly, and a bounded probe. A key whose probe runs past the bound is not entered
//! (the caller treats it as new), so crafted collisions cost linear time, never
//! quadratic; every use keeps exact results when an entry is missing (it only shares
//! less).

use alloc::vec::Vec;

use crate::error::AllocError;
use crate::mem;

const EMPTY: u64 = u64::MAX;
/// Slots probed before a key is given up on.
const PROBES: usize = 32;

#[derive(Debug)]
pub(super) struct Map {
    keys: Vec<u64>,
    vals: Vec<u32>,
    len: usize,
}

/// Mixes a key into a slot hash (the finalizer of MurmurHash3).
fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    x ^= x >> 33;
    x = x.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    x ^ (x >> 33)
}

impl Map {
    pub(super) fn new() -> Map {
        Map {
            keys: Vec::new(),
            vals: Vec::new(),
            len: 0,
        }
    }

    fn grow(&mut self) -> Result<(), AllocError> {
        let cap = self.keys.len().saturating_mul(2).max(64);
        let mut keys: Vec<u64> = mem::with_capacity(cap)?;
        let mut vals: Vec<u32> = mem::with_capacity(cap)?;
        for _ in 0..cap {
            mem::push(&mut keys, EMPTY)?;
            mem::push(&mut vals, 0)?;
        }
        let old_keys = core::mem::replace(&mut self.keys, keys);
        let old_vals = core::mem::replace(&mut self.vals, vals);
        self.len = 0;
        for (&k, &v) in old_keys.iter().zip(&old_vals) {
            if k != EMPTY {
                self.enter(k, v, |_| false);
            }
        }
        Ok(())
    }

    /// The value of an entry with `key` for which `same` holds; otherwise enters `new`
    /// under `key` (when the probe bound allows) and returns it.
    pub(super) fn get_or_insert(
        &mut self,
        key: u64,
        new: u32,
        same: impl FnMut(u32) -> bool,
    ) -> Result<u32, AllocError> {
        if self.len.saturating_mul(2) >= self.keys.len() {
            self.grow()?;
        }
        Ok(self.enter(key, new, same))
    }

    fn enter(&mut self, key: u64, new: u32, mut same: impl FnMut(u32) -> bool) -> u32 {
        let key = if key == EMPTY { EMPTY - 1 } else { key };
        let mask = self.keys.len().saturating_sub(1);
        let h = usize::try_from(mix(key)).unwrap_or(0);
        for i in 0..PROBES {
            let slot = h.wrapping_add(i) & mask;
            match (self.keys.get(slot).copied(), self.vals.get(slot).copied()) {
                (Some(EMPTY), _) => {
                    if let (Some(k), Some(v)) = (self.keys.get_mut(slot), self.vals.get_mut(slot)) {
                        *k = key;
                        *v = new;
                        self.len = self.len.saturating_add(1);
                    }
                    return new;
                }
                (Some(k), Some(v)) if k == key && same(v) => return v,
                _ => {}
            }
        }
        new
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::arithmetic_side_effects,
    clippy::as_conversions
)]
mod tests {
    use super::*;

    #[test]
    fn equal_keys_share_and_colliding_keys_stay_apart() {
        let mut m = Map::new();
        for i in 0..10_000u64 {
            assert_eq!(
                m.get_or_insert(i * 7, i as u32, |_| true).unwrap(),
                i as u32
            );
        }
        for i in 0..10_000u64 {
            assert_eq!(m.get_or_insert(i * 7, 0, |_| true).unwrap(), i as u32);
        }
        // One key, values told apart by `same`: each distinct value is entered until the
        // probe bound, after which new values come back unentered.
        let mut m = Map::new();
        for v in 0..100u32 {
            assert_eq!(m.get_or_insert(5, v, |x| x == v).unwrap(), v);
        }
        assert_eq!(m.get_or_insert(5, 1000, |x| x == 3).unwrap(), 3);
        assert_eq!(m.get_or_insert(5, 1000, |x| x == 99).unwrap(), 1000);
    }
}
