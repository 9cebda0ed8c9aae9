//! The Aho-Corasick automaton over folded UTF-16 code units that finds every occurrence of
//! a set of literals in one pass over an input: its build (from a breadth-first trie:
//! fail and dictionary links, dense rows within a byte budget) and its scan.

use alloc::vec::Vec;

use super::trie::Levels;
use super::{NONE, idx, u32_of};
use crate::error::AllocError;
use crate::mem::{self, push};
use crate::text::fold;

const ROOT: u32 = 0;

/// Flag on a transition's target: the state has outputs (its own or on its dictionary
/// chain), so the scan reports them.
const OUT: u32 = 1 << 31;

#[derive(Clone, Copy, Debug)]
struct Node {
    edge_start: u32,
    edge_len: u32,
    fail: u32,
    /// Next node on the fail chain that has outputs (dictionary suffix link).
    dict: u32,
    out_start: u32,
    out_len: u32,
    /// The first edge again (when `edge_len > 0`), read with the node: a sparse state's
    /// step down a literal costs one read.
    first: u32,
    first_unit: u16,
}

/// Aho-Corasick automaton over folded UTF-16 code units, in flat arrays. States are
/// numbered breadth-first, so the shallow states (where a scan spends most of its steps:
/// after every mismatch it falls back near the root) come first. The first `ndense`
/// states have a complete transition row over the *classes* of ASCII units (every unit
/// that occurs in no literal shares class 0; the others, folded, one class each): a step
/// from them is one table read, with no fail link followed. The deeper states keep sparse
/// sorted edges and fail links, which reach a dense state within a few steps. The rows are
/// on the heap and their number is bounded by a byte budget (see [`Automaton::build`]).
///
/// Transitions hold *scan values*, not state numbers: a dense state without outputs is
/// its row's offset (below `limit`), so the common step is `v = dense[v + class]` with one
/// comparison; a sparse state without outputs is `limit + s`; any state with outputs is
/// `OUT | s`. Everything at or above `limit` leaves the tight loop ([`Automaton::run`]).
#[derive(Debug)]
pub(super) struct Automaton {
    nodes: Vec<Node>,
    /// `(folded unit, target)`, sorted by unit within a node.
    edges: Vec<(u16, u32)>,
    outs: Vec<u32>,
    /// Class of each ASCII code unit as it occurs in an input (case folded in).
    /// 128 entries; on the heap, as `start`: an automaton is built and moved through
    /// frames of the kernel's load path (the kernel check's stack budget).
    class: Vec<u8>,
    /// Per ASCII unit: some literal begins with it (folded). At the root, the scan skips
    /// the others without stepping.
    start: Vec<bool>,
    /// The only unit any literal begins with, when there is one (a path's literals often
    /// all begin with `\`): the root then skips four units per test.
    only: Option<u16>,
    /// Classes per dense row (at least 1).
    stride: u32,
    /// States `0..ndense` have rows in `dense`.
    ndense: u32,
    /// `ndense * stride`: scan values below it are dense row offsets.
    limit: u32,
    /// `dense[s * stride + class]`: the scan value of the next state.
    dense: Vec<u32>,
}

/// The first position from `i` where `input` holds `t` (or its end), four units per test.
#[inline]
fn skip_to(input: &[u16], mut i: usize, t: u16) -> usize {
    const LO: u64 = 0x0001_0001_0001_0001;
    const HI: u64 = 0x8000_8000_8000_8000;
    let pat = u64::from(t).wrapping_mul(LO);
    while let Some(&[a, b, c, d]) = input.get(i..i.wrapping_add(4)) {
        let x = u64::from(a) | u64::from(b) << 16 | u64::from(c) << 32 | u64::from(d) << 48;
        let y = x ^ pat; // a zero lane where the unit is `t`
        if y.wrapping_sub(LO) & !y & HI != 0 {
            break;
        }
        i = i.wrapping_add(4);
    }
    while input.get(i).is_some_and(|&u| u != t) {
        i = i.wrapping_add(1);
    }
    i
}

/// Folds an ASCII unit (the hot path's fold; other units go through [`fold`]).
#[inline]
fn fold_ascii(u: u16) -> u16 {
    if (0x61..=0x7A).contains(&u) {
        u ^ 0x20
    } else {
        u
    }
}

impl Automaton {
    fn node(&self, s: u32) -> Option<&Node> {
        self.nodes.get(idx(s))
    }

    /// Target of the edge of `s` on `c` (flagged), if any.
    #[inline]
    fn child(&self, s: u32, c: u16) -> Option<u32> {
        let n = self.node(s)?;
        let end = n.edge_start.checked_add(n.edge_len)?;
        let edges = self.edges.get(idx(n.edge_start)..idx(end))?;
        // Most nodes below the root have one or two children: a scan beats a search.
        if edges.len() <= 8 {
            return edges.iter().find(|&&(ch, _)| ch == c).map(|&(_, t)| t);
        }
        edges
            .binary_search_by(|&(ch, _)| ch.cmp(&c))
            .ok()
            .and_then(|i| edges.get(i))
            .map(|&(_, t)| t)
    }

    /// The state a scan value stands for.
    #[inline]
    fn decode(&self, v: u32) -> u32 {
        if v & OUT != 0 {
            v & !OUT
        } else if v < self.limit {
            v.checked_div(self.stride).unwrap_or(ROOT)
        } else {
            v.wrapping_sub(self.limit)
        }
    }

    /// The scan value of state `s` (see the type's documentation).
    fn encode(&self, s: u32) -> u32 {
        if self
            .node(s)
            .is_some_and(|n| n.out_len > 0 || n.dict != NONE)
        {
            s | OUT
        } else if s < self.ndense {
            s.saturating_mul(self.stride)
        } else {
            self.limit.saturating_add(s)
        }
    }

    /// The step from state `s` on input unit `u`: the dense row when `s` has one and `u`
    /// is ASCII, otherwise edges and fail links until a dense state answers or the root
    /// is reached. Returns a scan value.
    #[inline(never)]
    fn step(&self, mut s: u32, u: u16) -> u32 {
        let (c, cls) = match self.class.get(usize::from(u)) {
            Some(0) => return ROOT, // no literal has this unit
            Some(&k) => (fold_ascii(u), Some(k)),
            None => (fold(u), None),
        };
        loop {
            if let (Some(k), true) = (cls, s < self.ndense) {
                let at = idx(s)
                    .wrapping_mul(idx(self.stride))
                    .wrapping_add(usize::from(k));
                return self.dense.get(at).copied().unwrap_or(ROOT);
            }
            if let Some(t) = self.child(s, c) {
                return t;
            }
            if s == ROOT {
                return ROOT;
            }
            s = self.node(s).map_or(ROOT, |n| n.fail);
        }
    }

    /// Builds the automaton over the trie `l`. At most `dense_bytes` go to dense rows (at
    /// least the root's when that fits).
    pub(super) fn build(l: &Levels, dense_bytes: usize) -> Result<Self, AllocError> {
        let bfs = l.breadth_first()?;
        let l = &bfs;
        if l.nodes.len() >= idx(OUT) {
            return Err(AllocError);
        }
        let mut outs: Vec<u32> = mem::with_capacity(l.outs.len())?;
        mem::extend_from_slice(&mut outs, &l.outs)?;
        // Node `c`'s incoming edge is `edges[c - 1]`: children are consecutive, so a
        // node's edges are the run starting at its first child's.
        let mut edges: Vec<(u16, u32)> = mem::with_capacity(l.nodes.len().saturating_sub(1))?;
        for (c, n) in l.nodes.iter().enumerate().skip(1) {
            push(&mut edges, (n.unit, u32_of(c)?))?;
        }
        let mut nodes: Vec<Node> = mem::with_capacity(l.nodes.len())?;
        for n in &l.nodes {
            let node = Node {
                edge_start: if n.nchild == 0 {
                    0
                } else {
                    n.first.saturating_sub(1)
                },
                edge_len: n.nchild,
                fail: ROOT,
                dict: NONE,
                out_start: n.out_start,
                out_len: n.out_len,
                first: NONE,
                first_unit: 0,
            };
            push(&mut nodes, node)?;
        }
        let mut a = Automaton {
            nodes,
            edges,
            outs,
            class: mem::filled(0u8, 128)?,
            start: mem::filled(false, 128)?,
            only: None,
            stride: 1,
            ndense: 0,
            limit: 0,
            dense: Vec::new(),
        };
        // Fail and dictionary links, in breadth-first order (the node order itself): a
        // node's fail target is shallower, so it is done before the node.
        for u in 0..a.nodes.len() {
            let u = u32_of(u)?;
            let Some(un) = a.node(u).copied() else { break };
            let end = un.edge_start.saturating_add(un.edge_len);
            for e in idx(un.edge_start)..idx(end) {
                let Some(&(c, v)) = a.edges.get(e) else { break };
                let fail = if u == ROOT {
                    ROOT
                } else {
                    let mut f = un.fail;
                    loop {
                        if let Some(x) = a.child(f, c) {
                            break x;
                        }
                        if f == ROOT {
                            break ROOT;
                        }
                        f = a.node(f).map_or(ROOT, |n| n.fail);
                    }
                };
                let dict = match a.node(fail) {
                    Some(fnode) if fail != ROOT && fnode.out_len > 0 => fail,
                    Some(fnode) => fnode.dict,
                    None => NONE,
                };
                if let Some(vn) = a.nodes.get_mut(idx(v)) {
                    vn.fail = fail;
                    vn.dict = dict;
                }
            }
        }
        // Classes of the ASCII units the literals use, in unit order.
        let mut units = mem::filled(false, 128)?;
        for &(c, _) in &a.edges {
            if let Some(slot) = units.get_mut(usize::from(c)) {
                *slot = true;
            }
        }
        let mut of_unit = mem::filled(0u8, 128)?;
        let mut stride = 1u8;
        for (c, &used) in units.iter().enumerate() {
            if let (true, Some(slot)) = (used, of_unit.get_mut(c)) {
                *slot = stride;
                stride = stride.saturating_add(1);
            }
        }
        for u in 0u16..128 {
            let k = of_unit
                .get(usize::from(fold_ascii(u)))
                .copied()
                .unwrap_or(0);
            if let Some(slot) = a.class.get_mut(usize::from(u)) {
                *slot = k;
            }
        }
        a.stride = u32::from(stride);
        let mut begins = 0usize;
        for u in 0u16..128 {
            let b = a.child(ROOT, fold_ascii(u)).is_some();
            if let Some(slot) = a.start.get_mut(usize::from(u)) {
                *slot = b;
            }
            if b {
                begins = begins.saturating_add(1);
                a.only = Some(u);
            }
        }
        let wide = a.node(ROOT).is_some_and(|r| {
            let end = r.edge_start.saturating_add(r.edge_len);
            a.edges
                .get(idx(r.edge_start)..idx(end))
                .is_some_and(|e| e.iter().any(|&(c, _)| c >= 128))
        });
        // A letter has two units (cases); a non-ASCII unit may fold to an ASCII letter
        // (`ı` to `I`) but to no other ASCII unit (`no_other_unit_folds_to_ascii_punctuation`).
        if begins != 1
            || wide
            || a.only.is_some_and(|u| {
                char::from_u32(u32::from(u)).is_none_or(|c| c.is_ascii_alphabetic())
            })
        {
            a.only = None;
        }
        // Dense rows for the first states, within the budget (and every scan value below
        // `OUT`).
        let row = usize::from(stride).saturating_mul(core::mem::size_of::<u32>());
        let room = idx(OUT)
            .saturating_sub(a.nodes.len())
            .checked_div(usize::from(stride))
            .unwrap_or(0);
        let ndense = dense_bytes
            .checked_div(row)
            .unwrap_or(0)
            .min(a.nodes.len())
            .min(room);
        a.ndense = u32_of(ndense)?;
        a.limit = u32_of(ndense.saturating_mul(usize::from(stride)))?;
        // Edges now hold scan values.
        for e in 0..a.edges.len() {
            let Some(&(_, v)) = a.edges.get(e) else { break };
            let enc = a.encode(v);
            if let Some(edge) = a.edges.get_mut(e) {
                edge.1 = enc;
            }
        }
        for s in 0..a.nodes.len() {
            let Some(n) = a.nodes.get(s).copied() else {
                break;
            };
            if let (true, Some(&(c, t))) = (n.edge_len > 0, a.edges.get(idx(n.edge_start)))
                && let Some(node) = a.nodes.get_mut(s)
            {
                node.first = t;
                node.first_unit = c;
            }
        }
        a.dense = mem::with_capacity(ndense.saturating_mul(usize::from(stride)))?;
        for s in 0..ndense {
            let s32 = u32_of(s)?;
            let fail = a.node(s32).map_or(ROOT, |n| n.fail);
            push(&mut a.dense, ROOT)?; // class 0
            for (c, &k) in of_unit.iter().enumerate() {
                if k == 0 {
                    continue;
                }
                let c = u16::try_from(c).unwrap_or(0);
                let t = match a.child(s32, c) {
                    Some(t) => t,
                    None if s == 0 => ROOT,
                    None => {
                        let at = idx(fail)
                            .saturating_mul(usize::from(stride))
                            .saturating_add(usize::from(k));
                        a.dense.get(at).copied().unwrap_or(ROOT)
                    }
                };
                push(&mut a.dense, t)?;
            }
        }
        Ok(a)
    }

    /// Steps from scan value `v` over `input` from position `i` while the input is ASCII
    /// and the state has no outputs and is either the root (skipping units no literal
    /// begins with), dense (one table read per unit) or sparse and the unit follows its
    /// first edge (the walk down a long literal). Returns
    /// the value and the position it stopped at (the unit there not consumed).
    #[inline]
    fn run(&self, input: &[u16], mut i: usize, mut v: u32) -> (u32, usize) {
        let dense = self.dense.as_slice();
        let limit = self.limit;
        loop {
            if v == ROOT {
                // Units that begin no literal leave the root where it is: a loop with no
                // dependency from one unit to the next, several units per cycle.
                if let Some(t) = self.only {
                    i = skip_to(input, i, t);
                }
                while let Some(&u) = input.get(i) {
                    if self.start.get(usize::from(u)).copied().unwrap_or(true) {
                        break;
                    }
                    i = i.wrapping_add(1);
                }
            }
            let Some(&u) = input.get(i) else { break };
            let Some(&cls) = self.class.get(usize::from(u)) else {
                break;
            };
            if v < limit {
                v = dense
                    .get(idx(v).wrapping_add(usize::from(cls)))
                    .copied()
                    .unwrap_or(ROOT);
            } else if v & OUT != 0 {
                break;
            } else {
                let Some(n) = self.node(v.wrapping_sub(limit)) else {
                    break;
                };
                if n.edge_len == 0 || n.first_unit != fold_ascii(u) {
                    break;
                }
                v = n.first;
            }
            i = i.wrapping_add(1);
        }
        (v, i)
    }

    /// Calls `f(literal, end)` for every pattern occurrence in `input` ending before `end`.
    #[inline]
    pub(super) fn scan(&self, input: &[u16], mut f: impl FnMut(u32, usize)) {
        let mut v = ROOT;
        let mut i = 0;
        loop {
            (v, i) = self.run(input, i, v);
            let s = self.decode(v);
            if v & OUT != 0 {
                let mut t = s;
                while let Some(n) = self.node(t) {
                    let run_end = n.out_start.saturating_add(n.out_len);
                    let outs = self.outs.get(idx(n.out_start)..idx(run_end)).unwrap_or(&[]);
                    for &o in outs {
                        f(o, i);
                    }
                    t = n.dict;
                }
            }
            let Some(&u) = input.get(i) else { break };
            i = i.saturating_add(1);
            v = self.step(s, u);
        }
    }

    pub(super) fn heap_bytes(&self) -> usize {
        use crate::mem::heap_bytes as b;
        b(&self.nodes)
            .saturating_add(b(&self.edges))
            .saturating_add(b(&self.outs))
            .saturating_add(b(&self.dense))
            .saturating_add(b(&self.class))
            .saturating_add(b(&self.start))
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
    use super::super::trie::Pat;
    use super::*;

    /// What lets the root skip to the one unit every literal begins with: no unit outside
    /// ASCII folds to an ASCII unit that is not a letter.
    #[test]
    fn no_other_unit_folds_to_ascii_punctuation() {
        for u in 128..=u16::MAX {
            let f = fold(u);
            assert!(
                f >= 128 || (f as u8).is_ascii_alphabetic(),
                "{u:#x} folds to {f:#x}"
            );
        }
    }

    /// The automaton reports exactly the occurrences a naive search finds, whatever share
    /// of its states is dense (none, the root only, a few, all), on mixed-case, non-ASCII
    /// and unknown units.
    #[test]
    fn automaton_agrees_with_naive_search_at_every_dense_budget() {
        let alphabet: [u16; 10] = [0x61, 0x62, 0x41, 0x5C, 0x2E, 0xE9, 0xC9, 0x0434, 0x01, 0x63];
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        for round in 0..300 {
            let mut pats: Vec<Vec<u16>> = Vec::new();
            for _ in 0..1 + next(12) {
                let len = 1 + next(6);
                let p: Vec<u16> = (0..len)
                    .map(|_| fold(alphabet[next(alphabet.len() - 1)]))
                    .collect();
                pats.push(p);
            }
            // Every fourth round, every literal begins with `\`: the root skips to it.
            if round % 4 == 0 {
                pats.iter_mut().for_each(|p| p.insert(0, 0x5C));
            }
            // In any order, duplicates included (each reports its own output).
            if round % 3 == 0 {
                pats.push(pats[0].clone());
            }
            let strings: Vec<u16> = pats.concat();
            let mut off = 0u32;
            let refs: Vec<Pat> = pats
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let pat = Pat {
                        off,
                        len: p.len() as u16,
                        rev: false,
                        out: i as u32,
                    };
                    off += p.len() as u32;
                    pat
                })
                .collect();
            let levels = Levels::build(&strings, &refs, true).unwrap();
            let inputs: Vec<Vec<u16>> = (0..8)
                .map(|_| {
                    (0..next(40))
                        .map(|_| alphabet[next(alphabet.len())])
                        .collect()
                })
                .collect();
            for budget in [0usize, 4, 40, 120, 400, 1 << 20] {
                let a = Automaton::build(&levels, budget).unwrap();
                for input in &inputs {
                    let mut got = Vec::new();
                    a.scan(input, |o, end| got.push((o, end)));
                    got.sort();
                    let mut want = Vec::new();
                    for (j, p) in pats.iter().enumerate() {
                        for end in p.len()..=input.len() {
                            let w = &input[end - p.len()..end];
                            if w.iter().zip(p).all(|(&i, &q)| fold(i) == q) {
                                want.push((j as u32, end));
                            }
                        }
                    }
                    want.sort();
                    assert_eq!(
                        got, want,
                        "round {round}, budget {budget}, {pats:?} in {input:?}"
                    );
                }
            }
        }
    }
}
