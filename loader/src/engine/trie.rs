//! Tries over folded UTF-16 code units: their construction, level by level, from patterns
//! given in any order ([`Levels`]), and the compact form evaluation walks forward or
//! backward from one position of an input, reporting every pattern the walk spells
//! ([`Trie`]). The automaton (`automaton.rs`) is built from the same [`Levels`].

use alloc::vec::Vec;

use super::{NONE, idx, u32_of};
use crate::error::AllocError;
use crate::mem::{self, push};
use crate::text::fold;

/// A pattern to insert: code units `off..off + len` of the folded string table, read
/// backwards when `rev` (suffix tries), reported as `out`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Pat {
    pub(super) off: u32,
    pub(super) len: u16,
    pub(super) rev: bool,
    pub(super) out: u32,
}

/// One node of a trie built level by level.
#[derive(Clone, Copy, Debug)]
pub(super) struct LNode {
    /// The unit on the edge into this node (0 for the root).
    pub(super) unit: u16,
    /// Its children are nodes `first..first + nchild` (consecutive, sorted by unit).
    pub(super) first: u32,
    pub(super) nchild: u32,
    /// Its outputs are `outs[out_start..out_start + out_len]`.
    pub(super) out_start: u32,
    pub(super) out_len: u32,
}

/// A trie numbered breadth-first, children of a node consecutive and sorted by unit, so
/// edges need no array of their own: the edge into node `c` is `(nodes[c].unit, c)`.
#[derive(Debug)]
pub(super) struct Levels {
    pub(super) nodes: Vec<LNode>,
    pub(super) outs: Vec<u32>,
}

fn unit_at(strings: &[u16], p: &Pat, d: usize) -> u16 {
    let len = usize::from(p.len);
    let i = if p.rev {
        len.saturating_sub(1).saturating_sub(d)
    } else {
        d
    };
    strings
        .get(idx(p.off).saturating_add(i))
        .copied()
        .unwrap_or(0)
}

impl Levels {
    /// The trie of `pats` (empty patterns are left out). Level `d` is made by sorting the
    /// patterns still longer than `d` by (node at depth `d`, unit `d`): each distinct pair
    /// is a new node, so nodes come out breadth-first with their children consecutive and
    /// sorted, in O(total units) with radix sorts. The caller bounds the total units.
    pub(super) fn build(strings: &[u16], pats: &[Pat]) -> Result<Levels, AllocError> {
        let total: usize = pats
            .iter()
            .map(|p| usize::from(p.len))
            .fold(1, usize::saturating_add);
        let mut nodes: Vec<LNode> = mem::with_capacity(total)?;
        push(
            &mut nodes,
            LNode {
                unit: 0,
                first: NONE,
                nchild: 0,
                out_start: 0,
                out_len: 0,
            },
        )?;
        let mut outs: Vec<u32> = mem::with_capacity(pats.len())?;
        // (pattern, node it has reached).
        let mut active: Vec<(u32, u32)> = mem::with_capacity(pats.len())?;
        for (i, p) in pats.iter().enumerate() {
            if p.len > 0 {
                push(&mut active, (u32_of(i)?, 0))?;
            }
        }
        let mut next: Vec<(u32, u32)> = mem::with_capacity(active.len())?;
        let mut d = 0usize;
        while !active.is_empty() {
            let key = |&(p, n): &(u32, u32)| {
                let u = pats.get(idx(p)).map_or(0, |p| unit_at(strings, p, d));
                (u64::from(n) << 16) | u64::from(u)
            };
            mem::radix_sort_by_key(&mut active, key)?;
            next.clear();
            let mut prev = u64::MAX;
            let mut cur = NONE;
            for item in &active {
                let k = key(item);
                let (p, parent) = *item;
                if k != prev {
                    prev = k;
                    cur = u32_of(nodes.len())?;
                    let unit = u16::try_from(k & 0xFFFF).unwrap_or(0);
                    push(
                        &mut nodes,
                        LNode {
                            unit,
                            first: NONE,
                            nchild: 0,
                            out_start: 0,
                            out_len: 0,
                        },
                    )?;
                    if let Some(pn) = nodes.get_mut(idx(parent)) {
                        if pn.first == NONE {
                            pn.first = cur;
                        }
                        pn.nchild = pn.nchild.saturating_add(1);
                    }
                }
                let Some(pat) = pats.get(idx(p)) else {
                    continue;
                };
                if usize::from(pat.len) == d.saturating_add(1) {
                    // Items of one node are consecutive, so its outputs are too.
                    let at = u32_of(outs.len())?;
                    if let Some(n) = nodes.get_mut(idx(cur)) {
                        if n.out_len == 0 {
                            n.out_start = at;
                        }
                        n.out_len = n.out_len.saturating_add(1);
                    }
                    push(&mut outs, pat.out)?;
                } else {
                    push(&mut next, (p, cur))?;
                }
            }
            core::mem::swap(&mut active, &mut next);
            d = d.saturating_add(1);
        }
        Ok(Levels { nodes, outs })
    }
}

/// A node of the walkable trie.
#[derive(Clone, Copy, Debug)]
struct TNode {
    first: u32,
    nchild: u32,
    outs: u32,
    nouts: u32,
    /// The unit of the first child (most nodes below the first levels have one).
    unit: u16,
}

/// A trie walked from one position of an input: forward (prefixes of the input from that
/// position) or backward (suffixes ending there). Each step reads one node and searches
/// its children's units, which are consecutive; the root's children on ASCII units are a
/// table.
#[derive(Debug)]
pub(super) struct Trie {
    nodes: Vec<TNode>,
    /// The unit on the edge into each node.
    units: Vec<u16>,
    outs: Vec<u32>,
    /// The root's child on each ASCII unit (folded), or `NONE`.
    ascii: Vec<u32>,
}

impl Trie {
    pub(super) fn new(l: &Levels) -> Result<Trie, AllocError> {
        let mut nodes: Vec<TNode> = mem::with_capacity(l.nodes.len())?;
        let mut units: Vec<u16> = mem::with_capacity(l.nodes.len())?;
        for n in &l.nodes {
            let unit = match n.nchild {
                0 => 0,
                _ => l.nodes.get(idx(n.first)).map_or(0, |c| c.unit),
            };
            push(
                &mut nodes,
                TNode {
                    first: n.first,
                    nchild: n.nchild,
                    outs: n.out_start,
                    nouts: n.out_len,
                    unit,
                },
            )?;
            push(&mut units, n.unit)?;
        }
        let mut outs: Vec<u32> = mem::with_capacity(l.outs.len())?;
        mem::extend_from_slice(&mut outs, &l.outs)?;
        let mut ascii: Vec<u32> = mem::with_capacity(128)?;
        for _ in 0..128 {
            push(&mut ascii, NONE)?;
        }
        let mut t = Trie {
            nodes,
            units,
            outs,
            ascii,
        };
        if let Some(&root) = t.nodes.first() {
            for k in 0..root.nchild {
                let c = root.first.saturating_add(k);
                let u = t.units.get(idx(c)).copied().unwrap_or(u16::MAX);
                if let Some(slot) = t.ascii.get_mut(usize::from(u)) {
                    *slot = c;
                }
            }
        }
        Ok(t)
    }

    /// The child of `n` on folded unit `c`.
    #[inline]
    fn child(&self, n: &TNode, c: u16) -> Option<u32> {
        if n.nchild == 0 {
            return None;
        }
        if n.unit == c {
            return Some(n.first);
        }
        if n.nchild == 1 {
            return None;
        }
        let start = idx(n.first);
        let kids = self.units.get(start..start.saturating_add(idx(n.nchild)))?;
        let pos = if kids.len() <= 8 {
            kids.iter().position(|&u| u == c)?
        } else {
            kids.binary_search(&c).ok()?
        };
        n.first.checked_add(u32::try_from(pos).ok()?)
    }

    #[inline]
    fn root_child(&self, c: u16) -> Option<u32> {
        match self.ascii.get(usize::from(c)) {
            Some(&NONE) => None,
            Some(&k) => Some(k),
            None => self.child(self.nodes.first()?, c),
        }
    }

    #[inline]
    fn report(&self, n: &TNode, at: usize, f: &mut impl FnMut(u32, usize)) {
        if n.nouts == 0 {
            return;
        }
        let s = idx(n.outs);
        for &o in self
            .outs
            .get(s..s.saturating_add(idx(n.nouts)))
            .unwrap_or(&[])
        {
            f(o, at);
        }
    }

    /// Walks `input` forward from `from`; calls `f(pattern, end)` for every pattern equal
    /// to `input[from..end]`.
    #[inline]
    pub(super) fn walk_fwd(&self, input: &[u16], from: usize, mut f: impl FnMut(u32, usize)) {
        let mut i = from;
        let Some(&u) = input.get(i) else { return };
        let Some(mut s) = self.root_child(fold(u)) else {
            return;
        };
        loop {
            i = i.saturating_add(1);
            let Some(n) = self.nodes.get(idx(s)) else {
                return;
            };
            self.report(n, i, &mut f);
            let Some(&u) = input.get(i) else { return };
            match self.child(n, fold(u)) {
                Some(c) => s = c,
                None => return,
            }
        }
    }

    /// Walks `input` backward from `end`; calls `f(pattern, start)` for every pattern
    /// equal to `input[start..end]`.
    #[inline]
    pub(super) fn walk_bwd(&self, input: &[u16], end: usize, mut f: impl FnMut(u32, usize)) {
        let Some(mut i) = end.checked_sub(1) else {
            return;
        };
        let Some(&u) = input.get(i) else { return };
        let Some(mut s) = self.root_child(fold(u)) else {
            return;
        };
        loop {
            let Some(n) = self.nodes.get(idx(s)) else {
                return;
            };
            self.report(n, i, &mut f);
            let Some(j) = i.checked_sub(1) else { return };
            i = j;
            let Some(&u) = input.get(i) else { return };
            match self.child(n, fold(u)) {
                Some(c) => s = c,
                None => return,
            }
        }
    }

    pub(super) fn heap_bytes(&self) -> usize {
        fn b<T>(v: &Vec<T>) -> usize {
            v.capacity().saturating_mul(core::mem::size_of::<T>())
        }
        b(&self.nodes)
            .saturating_add(b(&self.units))
            .saturating_add(b(&self.outs))
            .saturating_add(b(&self.ascii))
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

    /// Forward and backward walks report exactly the patterns a naive comparison finds at
    /// every position, for random patterns over a small alphabet (case and non-ASCII
    /// units included), inserted in random order.
    #[test]
    fn walks_agree_with_naive_comparison() {
        let alphabet: [u16; 8] = [0x61, 0x41, 0x5C, 0x2E, 0xE9, 0xC9, 0x0434, 0x62];
        let mut seed = 0x1234_5678_9ABC_DEF1u64;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        for round in 0..300 {
            let mut strings: Vec<u16> = Vec::new();
            let mut pats: Vec<Pat> = Vec::new();
            for i in 0..1 + next(20) {
                let len = 1 + next(5);
                let off = strings.len() as u32;
                for _ in 0..len {
                    strings.push(fold(alphabet[next(alphabet.len())]));
                }
                pats.push(Pat {
                    off,
                    len: len as u16,
                    rev: round % 2 == 1,
                    out: i as u32,
                });
            }
            // Duplicates share a node; a prefix of another pattern ends inside its path.
            if pats.len() > 1 {
                let p = pats[0];
                pats.push(Pat {
                    out: 99,
                    len: p.len.max(2) - 1,
                    ..p
                });
                pats.push(Pat { out: 98, ..p });
            }
            let t = Trie::new(&Levels::build(&strings, &pats).unwrap()).unwrap();
            for _ in 0..6 {
                let input: Vec<u16> = (0..next(12))
                    .map(|_| alphabet[next(alphabet.len())])
                    .collect();
                for at in 0..=input.len() {
                    let mut got = Vec::new();
                    let mut want = Vec::new();
                    for p in &pats {
                        let s = &strings[p.off as usize..][..p.len as usize];
                        let window = if p.rev {
                            at.checked_sub(s.len()).map(|b| &input[b..at])
                        } else {
                            input.get(at..at + s.len())
                        };
                        if window.is_some_and(|w| w.iter().zip(s).all(|(&i, &q)| fold(i) == q)) {
                            want.push(p.out);
                        }
                    }
                    if round % 2 == 1 {
                        t.walk_bwd(&input, at, |o, start| {
                            got.push(o);
                            let len = pats.iter().find(|p| p.out == o).unwrap().len;
                            assert_eq!(start + len as usize, at);
                        });
                    } else {
                        t.walk_fwd(&input, at, |o, end| {
                            got.push(o);
                            let len = pats.iter().find(|p| p.out == o).unwrap().len;
                            assert_eq!(at + len as usize, end);
                        });
                    }
                    got.sort();
                    want.sort();
                    assert_eq!(got, want, "round {round} at {at} in {input:x?}");
                }
            }
        }
    }
}
