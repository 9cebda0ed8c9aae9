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
    /// With `chains: false`: a pattern that goes on alone below this node (it has no
    /// children then), as (pattern, depth of its next unit).
    pub(super) tail: (u32, u16),
}

/// A trie whose children of a node are consecutive and sorted by unit, so edges need no
/// array of their own: the edge into node `c` is `(nodes[c].unit, c)`.
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
    /// The trie of `pats` (empty patterns are left out), children of every node
    /// consecutive and sorted by unit. Level `d` is made by sorting the patterns still
    /// longer than `d` that share their first `d` units with another by (node at depth `d`,
    /// unit `d`): each distinct pair is a new node. A pattern that is alone from some node
    /// on is written out as a chain of nodes at once (`chains`), without more sorting, or
    /// left as a tail of that node: the rest of the pattern, read from the string table
    /// when walked. O(total units) with radix sorts; the caller bounds the total units.
    /// Nodes are not breadth-first (chains come after their level):
    /// [`Levels::breadth_first`] renumbers.
    pub(super) fn build(strings: &[u16], pats: &[Pat], chains: bool) -> Result<Levels, AllocError> {
        let total: usize = pats
            .iter()
            .map(|p| usize::from(p.len))
            .fold(1, usize::saturating_add);
        let mut nodes: Vec<LNode> = mem::with_capacity(total)?;
        let blank = |unit| LNode {
            unit,
            first: NONE,
            nchild: 0,
            out_start: 0,
            out_len: 0,
            tail: (NONE, 0),
        };
        push(&mut nodes, blank(0))?;
        let mut outs: Vec<u32> = mem::with_capacity(pats.len())?;
        // (sort key: node << 16 | unit at depth d, pattern), node at depth d in the key.
        let mut active: Vec<(u64, u32)> = mem::with_capacity(pats.len())?;
        for (i, p) in pats.iter().enumerate() {
            if p.len > 0 {
                push(&mut active, (0, u32_of(i)?))?;
            }
        }
        let mut next: Vec<(u64, u32)> = mem::with_capacity(active.len())?;
        // (pattern, node it is alone under), written out after the level.
        let mut alone: Vec<(u32, u32)> = Vec::new();
        let mut d = 0usize;
        while !active.is_empty() {
            for item in active.iter_mut() {
                let u = pats.get(idx(item.1)).map_or(0, |p| unit_at(strings, p, d));
                item.0 = (item.0 & !0xFFFF) | u64::from(u);
            }
            mem::radix_sort_by_key(&mut active, |x| x.0)?;
            next.clear();
            alone.clear();
            let mut g = 0usize;
            while let Some(&(k, _)) = active.get(g) {
                let end = active
                    .get(g..)
                    .and_then(|rest| rest.iter().position(|x| x.0 != k))
                    .map_or(active.len(), |n| g.saturating_add(n));
                let group = active.get(g..end).unwrap_or(&[]);
                g = end.max(g.saturating_add(1));
                let cur = u32_of(nodes.len())?;
                push(&mut nodes, blank(u16::try_from(k & 0xFFFF).unwrap_or(0)))?;
                let parent = u32::try_from(k >> 16).unwrap_or(NONE);
                if let Some(pn) = nodes.get_mut(idx(parent)) {
                    if pn.first == NONE {
                        pn.first = cur;
                    }
                    pn.nchild = pn.nchild.saturating_add(1);
                }
                let mut going = 0usize;
                for &(_, p) in group {
                    let Some(pat) = pats.get(idx(p)) else {
                        continue;
                    };
                    if usize::from(pat.len) == d.saturating_add(1) {
                        output(&mut nodes, &mut outs, cur, pat.out)?;
                    } else {
                        going = going.saturating_add(1);
                    }
                }
                for &(_, p) in group {
                    if pats
                        .get(idx(p))
                        .is_some_and(|x| usize::from(x.len) > d.saturating_add(1))
                    {
                        if going == 1 {
                            push(&mut alone, (p, cur))?;
                        } else {
                            push(&mut next, (u64::from(cur) << 16, p))?;
                        }
                    }
                }
            }
            for &(p, at) in &alone {
                let Some(pat) = pats.get(idx(p)) else {
                    continue;
                };
                if !chains {
                    if let Some(node) = nodes.get_mut(idx(at)) {
                        node.tail = (p, u16::try_from(d.saturating_add(1)).unwrap_or(u16::MAX));
                    }
                    continue;
                }
                let mut n = at;
                for k in d.saturating_add(1)..usize::from(pat.len) {
                    let c = u32_of(nodes.len())?;
                    push(&mut nodes, blank(unit_at(strings, pat, k)))?;
                    if let Some(pn) = nodes.get_mut(idx(n)) {
                        pn.first = c;
                        pn.nchild = 1;
                    }
                    n = c;
                }
                output(&mut nodes, &mut outs, n, pat.out)?;
            }
            core::mem::swap(&mut active, &mut next);
            d = d.saturating_add(1);
        }
        Ok(Levels { nodes, outs })
    }

    /// The same trie numbered breadth-first (the automaton's fail links and dense rows
    /// need shallow states first); children stay consecutive and sorted.
    pub(super) fn breadth_first(&self) -> Result<Levels, AllocError> {
        let mut order: Vec<u32> = mem::with_capacity(self.nodes.len())?;
        let mut renum: Vec<u32> = mem::with_capacity(self.nodes.len())?;
        for _ in 0..self.nodes.len() {
            push(&mut renum, NONE)?;
        }
        if !self.nodes.is_empty() {
            push(&mut order, 0)?;
        }
        let mut head = 0usize;
        while let Some(&old) = order.get(head) {
            head = head.saturating_add(1);
            if let Some(slot) = renum.get_mut(idx(old)) {
                *slot = u32_of(head.saturating_sub(1))?;
            }
            let Some(n) = self.nodes.get(idx(old)) else {
                continue;
            };
            for k in 0..n.nchild {
                push(&mut order, n.first.saturating_add(k))?;
            }
        }
        let mut nodes: Vec<LNode> = mem::with_capacity(order.len())?;
        let mut outs: Vec<u32> = mem::with_capacity(self.outs.len())?;
        for &old in &order {
            let Some(n) = self.nodes.get(idx(old)).copied() else {
                continue;
            };
            let s = idx(n.out_start);
            let mine = self
                .outs
                .get(s..s.saturating_add(idx(n.out_len)))
                .unwrap_or(&[]);
            let node = LNode {
                first: if n.nchild == 0 {
                    NONE
                } else {
                    renum.get(idx(n.first)).copied().unwrap_or(NONE)
                },
                out_start: u32_of(outs.len())?,
                ..n
            };
            mem::extend_from_slice(&mut outs, mine)?;
            push(&mut nodes, node)?;
        }
        Ok(Levels { nodes, outs })
    }
}

/// Adds output `out` to node `n`, whose outputs must be the last ones added.
fn output(nodes: &mut [LNode], outs: &mut Vec<u32>, n: u32, out: u32) -> Result<(), AllocError> {
    let at = u32_of(outs.len())?;
    if let Some(node) = nodes.get_mut(idx(n)) {
        if node.out_len == 0 {
            node.out_start = at;
        }
        node.out_len = node.out_len.saturating_add(1);
    }
    push(outs, out)
}

fn tail_units<'s>(strings: &'s [u16], t: &Tail) -> &'s [u16] {
    let s = idx(t.start);
    strings
        .get(s..s.saturating_add(usize::from(t.len)))
        .unwrap_or(&[])
}

/// A node of the walkable trie.
#[derive(Clone, Copy, Debug)]
struct TNode {
    first: u32,
    nchild: u32,
    outs: u32,
    nouts: u32,
    /// Index in `tails`, or `NONE`.
    tail: u32,
    /// The unit of the first child (most nodes below the first levels have one).
    unit: u16,
}

/// The rest of a pattern that goes on alone below a node: units `start..start + len` of
/// the folded string table, compared forward (or backward from the last, in a backward
/// trie), then reported as `out`.
#[derive(Clone, Copy, Debug)]
struct Tail {
    start: u32,
    out: u32,
    len: u16,
}

/// A trie walked from one position of an input: forward (prefixes of the input from that
/// position) or backward (suffixes ending there). Each step reads one node and searches
/// its children's units, which are consecutive; the root's children on ASCII units are a
/// table.
#[derive(Debug)]
pub(super) struct Trie {
    nodes: Vec<TNode>,
    tails: Vec<Tail>,
    /// The unit on the edge into each node.
    units: Vec<u16>,
    outs: Vec<u32>,
    /// The root's child on each ASCII unit (folded), or `NONE`.
    ascii: Vec<u32>,
}

impl Trie {
    /// The walkable form of `l` (built with `chains: false` from `pats`, all forward or
    /// all backward as `rev` says).
    pub(super) fn new(l: &Levels, pats: &[Pat], rev: bool) -> Result<Trie, AllocError> {
        let mut nodes: Vec<TNode> = mem::with_capacity(l.nodes.len())?;
        let mut units: Vec<u16> = mem::with_capacity(l.nodes.len())?;
        let mut tails: Vec<Tail> = Vec::new();
        for n in &l.nodes {
            let unit = match n.nchild {
                0 => 0,
                _ => l.nodes.get(idx(n.first)).map_or(0, |c| c.unit),
            };
            let tail = match pats.get(idx(n.tail.0)) {
                Some(p) => {
                    let from = u32::from(n.tail.1);
                    let len = u32::from(p.len).saturating_sub(from);
                    let start = if rev {
                        p.off
                    } else {
                        p.off.saturating_add(from)
                    };
                    push(
                        &mut tails,
                        Tail {
                            start,
                            out: p.out,
                            len: u16::try_from(len).unwrap_or(0),
                        },
                    )?;
                    u32_of(tails.len().saturating_sub(1))?
                }
                None => NONE,
            };
            push(
                &mut nodes,
                TNode {
                    first: n.first,
                    nchild: n.nchild,
                    outs: n.out_start,
                    nouts: n.out_len,
                    tail,
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
            tails,
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
    /// to `input[from..end]`. `strings` is the folded string table the patterns are in.
    #[inline]
    pub(super) fn walk_fwd(
        &self,
        strings: &[u16],
        input: &[u16],
        from: usize,
        mut f: impl FnMut(u32, usize),
    ) {
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
            if let Some(t) = self.tails.get(idx(n.tail)) {
                let want = tail_units(strings, t);
                let end = i.saturating_add(want.len());
                if input
                    .get(i..end)
                    .is_some_and(|got| got.iter().zip(want).all(|(&g, &w)| fold(g) == w))
                {
                    f(t.out, end);
                }
                return;
            }
            let Some(&u) = input.get(i) else { return };
            match self.child(n, fold(u)) {
                Some(c) => s = c,
                None => return,
            }
        }
    }

    /// Walks `input` backward from `end`; calls `f(pattern, start)` for every pattern
    /// equal to `input[start..end]`. `strings` is the folded string table.
    #[inline]
    pub(super) fn walk_bwd(
        &self,
        strings: &[u16],
        input: &[u16],
        end: usize,
        mut f: impl FnMut(u32, usize),
    ) {
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
            if let Some(t) = self.tails.get(idx(n.tail)) {
                let want = tail_units(strings, t);
                if let Some(start) = i.checked_sub(want.len())
                    && input
                        .get(start..i)
                        .is_some_and(|got| got.iter().zip(want).all(|(&g, &w)| fold(g) == w))
                {
                    f(t.out, start);
                }
                return;
            }
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
        use crate::mem::heap_bytes as b;
        b(&self.nodes)
            .saturating_add(b(&self.tails))
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
            let rev = round % 2 == 1;
            let t = Trie::new(&Levels::build(&strings, &pats, false).unwrap(), &pats, rev).unwrap();
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
                        t.walk_bwd(&strings, &input, at, |o, start| {
                            got.push(o);
                            let len = pats.iter().find(|p| p.out == o).unwrap().len;
                            assert_eq!(start + len as usize, at);
                        });
                    } else {
                        t.walk_fwd(&strings, &input, at, |o, end| {
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
