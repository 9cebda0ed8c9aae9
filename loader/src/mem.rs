//! Fallible collection helpers with no panic path.
//!
//! `Vec::push` and `extend_from_slice` carry an infallible growth path (grow, then
//! `handle_alloc_error`, which panics: a bugcheck in the kernel) even right after a
//! successful `try_reserve`, because the optimizer cannot see that the capacity is there.
//! These helpers check the capacity explicitly in front of the call, so the growth path is
//! provably dead and the optimizer removes it; `proof/` checks that it did. `sort_unstable`
//! likewise keeps a panic for inconsistent orderings, so sorting uses [`heapsort_by`], or
//! [`radix_sort_by_key`] for large arrays with integer keys (compilation's sorts).

use alloc::vec::Vec;

use crate::error::AllocError;

/// An empty vector with room for exactly `n` elements, or an error.
pub fn with_capacity<T>(n: usize) -> Result<Vec<T>, AllocError> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| AllocError)?;
    Ok(v)
}

/// Appends `x`, growing fallibly if needed.
#[inline]
pub fn push<T>(v: &mut Vec<T>, x: T) -> Result<(), AllocError> {
    if v.len() == v.capacity() {
        v.try_reserve(1).map_err(|_| AllocError)?;
    }
    if v.len() < v.capacity() {
        v.push(x);
        Ok(())
    } else {
        Err(AllocError)
    }
}

/// Bytes a vector holds on the heap (its capacity, spare room included).
pub fn heap_bytes<T>(v: &Vec<T>) -> usize {
    v.capacity().saturating_mul(core::mem::size_of::<T>())
}

/// `n` copies of `x`, or an error.
pub fn filled<T: Copy>(x: T, n: usize) -> Result<Vec<T>, AllocError> {
    let mut v = with_capacity(n)?;
    while v.len() < n && v.len() < v.capacity() {
        v.push(x);
    }
    Ok(v)
}

/// Appends a copy of `xs`, growing fallibly if needed.
#[inline]
pub fn extend_from_slice<T: Copy>(v: &mut Vec<T>, xs: &[T]) -> Result<(), AllocError> {
    v.try_reserve(xs.len()).map_err(|_| AllocError)?;
    // One guarded push at a time: `Vec::extend_from_slice` keeps a reserve call (and its
    // capacity-overflow panic) the optimizer cannot remove, which the proof rejects.
    for &x in xs {
        if v.len() < v.capacity() {
            v.push(x);
        } else {
            return Err(AllocError);
        }
    }
    Ok(())
}

/// Sorts in place by `less`, in O(n log n), without allocating and without any panic path
/// (an inconsistent `less` gives some order, never a panic).
pub fn heapsort_by<T>(v: &mut [T], mut less: impl FnMut(&T, &T) -> bool) {
    let len = v.len();
    let mut start = len / 2;
    while start > 0 {
        start = start.saturating_sub(1);
        sift_down(v, start, len, &mut less);
    }
    let mut end = len;
    while end > 1 {
        end = end.saturating_sub(1);
        if end < v.len() {
            v.swap(0, end);
        }
        sift_down(v, 0, end, &mut less);
    }
}

/// Sorts `v` by `key`, stably, in one counting pass per byte of the key that is not the
/// same in every element: O(n) per pass, sequential memory access (a heapsort of a million
/// entries spends most of its time waiting for memory). Needs a scratch copy of `v` and
/// 2 KiB of counts, both allocated fallibly; on an allocation failure `v` is unchanged.
pub fn radix_sort_by_key<T: Copy>(
    v: &mut Vec<T>,
    key: impl Fn(&T) -> u64,
) -> Result<(), AllocError> {
    if v.len() < 2 {
        return Ok(());
    }
    let (mut any, mut all) = (0u64, u64::MAX);
    for x in v.iter() {
        let k = key(x);
        any |= k;
        all &= k;
    }
    let varying = any ^ all;
    if varying == 0 {
        return Ok(());
    }
    let mut tmp: Vec<T> = with_capacity(v.len())?;
    extend_from_slice(&mut tmp, v)?;
    let mut counts: Vec<usize> = with_capacity(256)?;
    for _ in 0..256 {
        push(&mut counts, 0)?;
    }
    let digit = |k: u64, shift: u32| usize::try_from((k >> shift) & 0xFF).unwrap_or(0);
    let mut in_v = true;
    for shift in (0..64u32).step_by(8) {
        if (varying >> shift) & 0xFF == 0 {
            continue;
        }
        let (src, dst): (&[T], &mut [T]) = if in_v {
            (v.as_slice(), tmp.as_mut_slice())
        } else {
            (tmp.as_slice(), v.as_mut_slice())
        };
        counts.iter_mut().for_each(|c| *c = 0);
        for x in src {
            if let Some(c) = counts.get_mut(digit(key(x), shift)) {
                *c = c.saturating_add(1);
            }
        }
        let mut at = 0usize;
        for c in counts.iter_mut() {
            let n = *c;
            *c = at;
            at = at.saturating_add(n);
        }
        for x in src {
            if let Some(c) = counts.get_mut(digit(key(x), shift)) {
                if let Some(slot) = dst.get_mut(*c) {
                    *slot = *x;
                }
                *c = c.saturating_add(1);
            }
        }
        in_v = !in_v;
    }
    if !in_v && v.len() == tmp.len() {
        v.copy_from_slice(&tmp);
    }
    Ok(())
}

fn sift_down<T>(v: &mut [T], mut root: usize, end: usize, less: &mut impl FnMut(&T, &T) -> bool) {
    let end = end.min(v.len());
    loop {
        let Some(mut child) = root.checked_mul(2).and_then(|c| c.checked_add(1)) else {
            return;
        };
        if child >= end {
            return;
        }
        if let Some(right) = child.checked_add(1)
            && right < end
            && let (Some(l), Some(r)) = (v.get(child), v.get(right))
            && less(l, r)
        {
            child = right;
        }
        match (v.get(root), v.get(child)) {
            (Some(a), Some(b)) if less(a, b) => {
                if root < end && child < end {
                    v.swap(root, child);
                }
                root = child;
            }
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heapsort_sorts() {
        let mut seed = 12345u64;
        for n in [0usize, 1, 2, 3, 7, 64, 1000] {
            let mut v: Vec<u64> = (0..n)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed % 50
                })
                .collect();
            let mut want = v.clone();
            want.sort_unstable();
            heapsort_by(&mut v, |a, b| a < b);
            assert_eq!(v, want);
        }
    }

    #[test]
    #[allow(clippy::unwrap_used)]
    fn radix_sort_sorts_stably() {
        let mut seed = 987654321u64;
        for n in [0usize, 1, 2, 3, 255, 256, 257, 5000] {
            for spread in [1u64, 7, 300, 1 << 20, u64::MAX] {
                let mut v: Vec<(u64, usize)> = (0..n)
                    .map(|i| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        (seed % spread.max(1), i)
                    })
                    .collect();
                let mut want = v.clone();
                want.sort_by_key(|x| x.0); // stable: equal keys keep their order
                radix_sort_by_key(&mut v, |x| x.0).unwrap();
                assert_eq!(v, want, "n {n}, spread {spread}");
            }
        }
    }

    #[test]
    fn fallible_push_and_extend() {
        let mut v: Vec<u16> = with_capacity(1).unwrap_or_default();
        assert_eq!(push(&mut v, 1), Ok(()));
        assert_eq!(push(&mut v, 2), Ok(()));
        assert_eq!(extend_from_slice(&mut v, &[3, 4]), Ok(()));
        assert_eq!(v, [1, 2, 3, 4]);
        assert_eq!(with_capacity::<u64>(usize::MAX).err(), Some(AllocError));
    }
}
