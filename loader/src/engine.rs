//! The compiled rule set and its evaluator.
//!
//! **Compile.** `RuleSet::load` runs the validator with a sink that builds a compact,
//! flat form straight from the file (it never builds the owned `Content`): one folded copy
//! of the string table, and arrays of rules, criteria, exception sets and values that
//! refer to it by offset. Every distinct string value of an `equals`, `starts-with`,
//! `ends-with` or `contains` criterion becomes a *literal* `(field, kind, string)`; per
//! event type, one Aho-Corasick automaton holds every literal of every field (its shallow
//! states have dense rows over the ASCII classes the literals use, within a budget of two
//! bytes per literal unit plus 16 KiB; see [`Automaton`]). Each rule is
//! *anchored* on the non-negated string criterion least likely to hold (estimated from the
//! operator, the field and the value; see [`rarity`]), and each literal of that criterion
//! lists the rule.
//!
//! **Evaluate.** One pass of the automaton over the path finds every literal of the path,
//! name, extension and parent fields at once (the derived inputs are positions in the path
//! when the sensor derived them with `split_path`; otherwise each is scanned alone), one
//! more pass per other string input. The literals that hold go into a small set on the
//! stack. Candidates are the rules listed by those literals, in ascending order, cut at
//! the best match so far. A candidate's other string criteria are membership tests in that
//! set (no text is searched again, the anchor is not re-checked); wildcards, integers and
//! flags are checked directly. First match in file order wins. Evaluation allocates
//! nothing; an event that makes more literals hold than the set has room for is decided by
//! checking every rule directly (correct, slower; never seen on realistic content).

use alloc::vec::Vec;

use crate::content::{Content, Values};
use crate::error::{AllocError, ContentError, ErrorKind, Location};
use crate::eval::{Event, Input, Match};
use crate::format::{Header, Sink, Validated, walk, walk_tables};
use crate::mem::{self, push};
use crate::schema::{Action, EventType, FieldKind, Op};
use crate::text::{self, fold, longest_literal};
use crate::trust::Trust;

const NO_ANCHOR: u8 = u8::MAX;
/// Fields per event type the index can address (the schema has at most 11).
const MAX_FIELDS: usize = 16;
/// Literals that may hold in one event before evaluation falls back to direct checks.
const MAX_HITS: usize = 64;

const ROOT: u32 = 0;
const NONE: u32 = u32::MAX;

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
struct Automaton {
    nodes: Vec<Node>,
    /// `(folded unit, target)`, sorted by unit within a node.
    edges: Vec<(u16, u32)>,
    outs: Vec<u32>,
    /// Class of each ASCII code unit as it occurs in an input (case folded in).
    class: [u8; 128],
    /// Classes per dense row (at least 1).
    stride: u32,
    /// States `0..ndense` have rows in `dense`.
    ndense: u32,
    /// `ndense * stride`: scan values below it are dense row offsets.
    limit: u32,
    /// `dense[s * stride + class]`: the scan value of the next state.
    dense: Vec<u32>,
}

fn idx(x: u32) -> usize {
    usize::try_from(x).unwrap_or(usize::MAX)
}

fn u32_of(x: usize) -> Result<u32, AllocError> {
    u32::try_from(x).map_err(|_| AllocError)
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

    /// Builds the automaton over `pats`: (pattern, output), sorted by pattern. At most
    /// `dense_bytes` go to dense rows (at least the root's when that fits).
    fn build(pats: &[(&[u16], u32)], dense_bytes: usize) -> Result<Self, AllocError> {
        // Trie over sorted patterns: a pattern's next child can only be the most recently
        // added child of its node, so insertion needs no search and children come sorted.
        struct T {
            ch: u16,
            first: u32,
            last: u32,
            sibling: u32,
            out_start: u32,
            out_len: u32,
        }
        let leaf = |ch| T {
            ch,
            first: NONE,
            last: NONE,
            sibling: NONE,
            out_start: 0,
            out_len: 0,
        };
        let total: usize = pats
            .iter()
            .map(|(p, _)| p.len())
            .fold(1, usize::saturating_add);
        if total >= idx(OUT) {
            return Err(AllocError);
        }
        let mut t: Vec<T> = mem::with_capacity(total)?;
        push(&mut t, leaf(0))?;
        let mut outs: Vec<u32> = mem::with_capacity(pats.len())?;
        for (i, (pat, out)) in pats.iter().enumerate() {
            let mut s = ROOT;
            for &c in pat.iter() {
                let cur = t.get(idx(s)).ok_or(AllocError)?;
                let last = cur.last;
                if last != NONE && t.get(idx(last)).is_some_and(|n| n.ch == c) {
                    s = last;
                    continue;
                }
                let new = u32_of(t.len())?;
                push(&mut t, leaf(c))?;
                if let Some(prev) = t.get_mut(idx(last)) {
                    prev.sibling = new;
                }
                if let Some(cur) = t.get_mut(idx(s)) {
                    if cur.first == NONE {
                        cur.first = new;
                    }
                    cur.last = new;
                }
                s = new;
            }
            let end = t.get_mut(idx(s)).ok_or(AllocError)?;
            if end.out_len == 0 {
                end.out_start = u32_of(i)?;
            }
            end.out_len = end.out_len.saturating_add(1);
            push(&mut outs, *out)?;
        }
        // Breadth-first order of the trie nodes: `order[new] = old`, `renum[old] = new`.
        let mut order: Vec<u32> = mem::with_capacity(t.len())?;
        push(&mut order, ROOT)?;
        let mut head = 0usize;
        while let Some(&u) = order.get(head) {
            head = head.saturating_add(1);
            let mut c = t.get(idx(u)).map_or(NONE, |n| n.first);
            while let Some(ch) = t.get(idx(c)) {
                push(&mut order, c)?;
                c = ch.sibling;
            }
        }
        let mut renum: Vec<u32> = mem::with_capacity(t.len())?;
        for _ in 0..t.len() {
            push(&mut renum, NONE)?;
        }
        for (new, &old) in order.iter().enumerate() {
            if let Some(slot) = renum.get_mut(idx(old)) {
                *slot = u32_of(new)?;
            }
        }
        // Flatten children into sorted edge runs, in the new numbering.
        let mut nodes: Vec<Node> = mem::with_capacity(t.len())?;
        let mut edges: Vec<(u16, u32)> = mem::with_capacity(t.len().saturating_sub(1))?;
        for &old in &order {
            let Some(n) = t.get(idx(old)) else { break };
            let edge_start = u32_of(edges.len())?;
            let mut c = n.first;
            while let Some(ch) = t.get(idx(c)) {
                let to = renum.get(idx(c)).copied().ok_or(AllocError)?;
                push(&mut edges, (ch.ch, to))?;
                c = ch.sibling;
            }
            let edge_len = u32_of(edges.len())?.saturating_sub(edge_start);
            let node = Node {
                edge_start,
                edge_len,
                fail: ROOT,
                dict: NONE,
                out_start: n.out_start,
                out_len: n.out_len,
                first: NONE,
                first_unit: 0,
            };
            push(&mut nodes, node)?;
        }
        drop(order);
        drop(renum);
        drop(t);
        let mut a = Automaton {
            nodes,
            edges,
            outs,
            class: [0; 128],
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
        let mut units = [false; 128];
        for &(c, _) in &a.edges {
            if let Some(slot) = units.get_mut(usize::from(c)) {
                *slot = true;
            }
        }
        let mut of_unit = [0u8; 128];
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
    /// and the state has no outputs and is either dense (one table read per unit) or
    /// sparse and the unit follows its first edge (the walk down a long literal). Returns
    /// the value and the position it stopped at (the unit there not consumed).
    #[inline]
    fn run(&self, input: &[u16], mut i: usize, mut v: u32) -> (u32, usize) {
        let dense = self.dense.as_slice();
        let limit = self.limit;
        while let Some(&u) = input.get(i) {
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
    fn scan(&self, input: &[u16], mut f: impl FnMut(u32, usize)) {
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

    fn heap_bytes(&self) -> usize {
        fn b<T>(v: &Vec<T>) -> usize {
            v.capacity().saturating_mul(core::mem::size_of::<T>())
        }
        b(&self.nodes)
            .saturating_add(b(&self.edges))
            .saturating_add(b(&self.outs))
            .saturating_add(b(&self.dense))
    }
}

/// How a literal must sit in its field's input to hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Equals,
    Prefix,
    Suffix,
    Contains,
}

impl Kind {
    /// The literal kind an operator's values become; wildcards have none.
    fn of(op: Op) -> Option<Kind> {
        match op {
            Op::StrEquals => Some(Kind::Equals),
            Op::StartsWith => Some(Kind::Prefix),
            Op::EndsWith => Some(Kind::Suffix),
            Op::Contains => Some(Kind::Contains),
            Op::Wildcard
            | Op::IntEquals
            | Op::AnyBits
            | Op::AllBits
            | Op::Range
            | Op::IsTrue
            | Op::IsFalse => None,
        }
    }
}

/// A distinct `(field, kind, folded string)` of one event type.
#[derive(Clone, Copy, Debug)]
struct Lit {
    field: u8,
    kind: Kind,
    len: u16,
}

#[derive(Clone, Copy, Debug)]
struct CRule {
    id: u32,
    crit: u32,
    set: u32,
    event: EventType,
    action: Action,
    ncrit: u8,
    nsets: u8,
    /// Criterion the rule is anchored on, or `NO_ANCHOR`.
    anchor: u8,
    /// The anchor holds whenever one of its literals does (not a wildcard): skip it.
    anchor_exact: bool,
}

#[derive(Clone, Copy, Debug)]
struct CSet {
    crit: u32,
    n: u8,
}

#[derive(Clone, Copy, Debug)]
struct CCrit {
    /// First value in `svals` / `ivals` / `rvals`, by the operator's kind.
    vals: u32,
    field: u8,
    op: Op,
    negate: bool,
    n: u8,
}

/// A string value: code units `off..off + len` of the folded string table, and its
/// literal (`NONE` for wildcards and literals left out of the automaton).
#[derive(Clone, Copy, Debug)]
struct SVal {
    off: u32,
    lit: u32,
    len: u16,
}

#[derive(Debug, Default)]
struct TypeIndex {
    /// Rules of this type with no anchor, ascending: checked on every event.
    always: Vec<u32>,
    /// Every rule of this type, ascending (the fallback when the hit set overflows).
    all: Vec<u32>,
    /// One automaton over the literals of every field of this type.
    ac: Option<Automaton>,
    /// Bit `f`: field `f` has literals.
    fields: u32,
    /// Bit `f`: field `f` has literals that anchor rules; scanned for every event. The
    /// other fields' inputs are scanned only when a candidate needs them.
    eager: u32,
    /// Indices of the derived inputs: path, name, extension, parent.
    derived: Option<[u8; 4]>,
}

/// A validated, compiled rule set: what the driver activates.
#[derive(Debug)]
pub struct RuleSet {
    version: u64,
    digest: [u8; 32],
    /// The string table, case-folded.
    strings: Vec<u16>,
    rules: Vec<CRule>,
    sets: Vec<CSet>,
    crits: Vec<CCrit>,
    svals: Vec<SVal>,
    ivals: Vec<u64>,
    rvals: Vec<(u64, u64)>,
    lits: Vec<Lit>,
    /// Rules anchored on literal `l`: `postings[post_start[l]..post_start[l + 1]]`, ascending.
    post_start: Vec<u32>,
    postings: Vec<u32>,
    /// One per event type, by [`EventType::slot`]. On the heap, not inline: a type index
    /// is ~700 bytes, and a rule set is moved through several kernel stack frames on its
    /// way to activation (the kernel check's frame budget).
    index: Vec<TypeIndex>,
}

/// Builds the flat arrays from the validator's items (or from owned content).
struct Builder<'a> {
    raw: &'a [u8],
    rs: RuleSet,
}

impl<'a> Sink<'a> for Builder<'a> {
    fn strings(&mut self, table: &'a [u8]) -> Result<(), AllocError> {
        self.raw = table;
        self.rs.strings = mem::with_capacity(table.len() / 2)?;
        for c in table.chunks_exact(2) {
            if let [lo, hi] = *c {
                push(&mut self.rs.strings, fold(u16::from_le_bytes([lo, hi])))?;
            }
        }
        Ok(())
    }
    fn rule(
        &mut self,
        id: u32,
        event: EventType,
        action: Action,
        ncrit: u8,
        nsets: u8,
    ) -> Result<(), AllocError> {
        let r = CRule {
            id,
            crit: u32_of(self.rs.crits.len())?,
            set: u32_of(self.rs.sets.len())?,
            event,
            action,
            ncrit,
            nsets,
            anchor: NO_ANCHOR,
            anchor_exact: false,
        };
        push(&mut self.rs.rules, r)
    }
    fn set(&mut self, n: u8) -> Result<(), AllocError> {
        let crit = u32_of(self.rs.crits.len())?;
        push(&mut self.rs.sets, CSet { crit, n })
    }
    fn criterion(&mut self, field: u8, op: Op, negate: bool, n: u8) -> Result<(), AllocError> {
        let vals = match op.kind() {
            FieldKind::Str => self.rs.svals.len(),
            FieldKind::Int if op == Op::Range => self.rs.rvals.len(),
            FieldKind::Int => self.rs.ivals.len(),
            FieldKind::Flag => 0,
        };
        let c = CCrit {
            vals: u32_of(vals)?,
            field,
            op,
            negate,
            n,
        };
        push(&mut self.rs.crits, c)
    }
    fn string(&mut self, off: u32, len: u16) -> Result<(), AllocError> {
        push(
            &mut self.rs.svals,
            SVal {
                off,
                lit: NONE,
                len,
            },
        )
    }
    fn int(&mut self, v: u64) -> Result<(), AllocError> {
        push(&mut self.rs.ivals, v)
    }
    fn range(&mut self, lo: u64, hi: u64) -> Result<(), AllocError> {
        push(&mut self.rs.rvals, (lo, hi))
    }
}

/// Estimated selectivity of one value as `-log2` of the chance that it holds on an event,
/// from the operator, the field's role and the value. Rough on purpose; what matters is the
/// order: a rare file name beats a common path prefix of any length, a file name beats a
/// directory fragment, a long suffix beats a short one.
fn rarity(role: Role, kind: Kind, v: &[u16]) -> u32 {
    let len = u32::try_from(v.len()).unwrap_or(u32::MAX);
    let has_sep = v.iter().any(|&u| u == 0x5C || u == 0x2F);
    let bits = match (kind, role) {
        (Kind::Equals, Role::Ext) => len.saturating_mul(2),
        (Kind::Equals, Role::Name) => len.saturating_add(8),
        (Kind::Equals, Role::Path) => len.saturating_add(16),
        // A machine runs a few hundred images, and the common ones write most files: a
        // value naming an image (`\winword.exe`) holds on a fair share of events whatever
        // its length.
        (Kind::Equals | Kind::Suffix, Role::Process) => len.min(6),
        (Kind::Suffix, _) => len,
        // Directory prefixes are shared by most events: only what follows the volume
        // prefix (`\Device\HarddiskVolumeN\`, 24 units) says anything.
        (Kind::Prefix, Role::Path | Role::Process) => len.saturating_sub(24) / 4,
        (Kind::Prefix, Role::Name | Role::Ext) => len,
        (Kind::Contains, _) if has_sep => len / 3,
        (Kind::Contains, _) => len,
    };
    bits.min(24)
}

/// What a string field holds, for [`rarity`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Path,
    Name,
    Ext,
    /// The image path of the requesting process.
    Process,
}

fn role(t: EventType, field: u8) -> Role {
    let name = t.field(field).map_or("", |f| f.name);
    match name {
        "name" => Role::Name,
        "extension" => Role::Ext,
        "process" => Role::Process,
        _ => Role::Path,
    }
}

/// Literals of more than this many code units in total (per rule set, beyond the string
/// table's own size) stay out of the automata and are checked directly: it bounds the
/// automata by the file size even when a file references overlapping substrings of one
/// long string many times.
const EXTRA_LITERAL_UNITS: usize = 4096;
/// Bytes of dense automaton rows every event type gets, beyond two per literal unit.
const DENSE_BYTES: usize = 16 * 1024;

impl RuleSet {
    /// Validates and compiles content bytes (structure and digest; no signature check: the
    /// kernel's start uses [`RuleSet::load_trusted`]). Never builds the owned `Content`;
    /// see docs/performance.md for the memory bound.
    pub fn load(bytes: &[u8]) -> Result<RuleSet, ContentError> {
        let mut b = Builder {
            raw: &[],
            rs: RuleSet::empty(),
        };
        let header = walk(bytes, &mut b)?;
        let _ = b.raw;
        b.rs.finish(&header).map_err(|AllocError| ContentError {
            at: Location::default(),
            kind: ErrorKind::OutOfMemory,
        })
    }

    /// What the kernel activates: checks the file's authenticity first
    /// ([`crate::trust::verify`]: signature by a trusted key, then the digest) and only then
    /// parses and compiles it, as [`RuleSet::load`] does (without hashing the tables twice).
    pub fn load_trusted(bytes: &[u8], trust: &Trust) -> Result<RuleSet, ContentError> {
        // Verification first, from this small frame; the builder lives in the next one,
        // so the two never share the stack (kernel stacks are 24 KiB).
        let verified = crate::trust::verify(bytes, trust)?;
        Self::load_verified(bytes, &verified.header)
    }

    /// Parses and compiles a file whose signature and digest `trust::verify` checked.
    #[inline(never)]
    fn load_verified(bytes: &[u8], header: &Header) -> Result<RuleSet, ContentError> {
        let mut b = Builder {
            raw: &[],
            rs: RuleSet::empty(),
        };
        let header = walk_tables(bytes, header, &mut b)?;
        let _ = b.raw;
        b.rs.finish(&header).map_err(|AllocError| ContentError {
            at: Location::default(),
            kind: ErrorKind::OutOfMemory,
        })
    }

    /// Compiles validated content (already decoded by [`crate::validate`]).
    pub fn compile(v: &Validated) -> Result<RuleSet, AllocError> {
        let mut b = Builder {
            raw: &[],
            rs: RuleSet::empty(),
        };
        replay(&v.content, &mut b)?;
        b.rs.finish(&v.header)
    }

    fn empty() -> RuleSet {
        RuleSet {
            version: 0,
            digest: [0; 32],
            strings: Vec::new(),
            rules: Vec::new(),
            sets: Vec::new(),
            crits: Vec::new(),
            svals: Vec::new(),
            ivals: Vec::new(),
            rvals: Vec::new(),
            lits: Vec::new(),
            post_start: Vec::new(),
            postings: Vec::new(),
            index: Vec::new(),
        }
    }

    fn units(&self, off: u32, len: u16) -> &[u16] {
        let start = idx(off);
        self.strings
            .get(start..start.saturating_add(usize::from(len)))
            .unwrap_or(&[])
    }

    fn crit(&self, r: &CRule, k: u8) -> Option<&CCrit> {
        self.crits.get(idx(r.crit).saturating_add(usize::from(k)))
    }

    fn svals_of(&self, c: &CCrit) -> &[SVal] {
        let s = idx(c.vals);
        self.svals
            .get(s..s.saturating_add(usize::from(c.n)))
            .unwrap_or(&[])
    }

    /// Anchors, literals, postings and automata, once the flat arrays are complete.
    fn finish(mut self, h: &Header) -> Result<RuleSet, AllocError> {
        self.version = h.version;
        self.digest = h.digest;
        // 1. Anchor every rule on the non-negated string criterion that makes it a
        // candidate least often: estimated chance of each value holding, times the number
        // of rules whose criteria share that value (all of them would be candidates with
        // it, so a prefix or process filter common to many rules is a poor anchor).
        let mut shared: Vec<(u8, u8, Kind, u32, u16)> = Vec::new();
        for r in &self.rules {
            for k in 0..r.ncrit {
                let Some(c) = self.crit(r, k) else { break };
                let Some(kind) = Kind::of(c.op) else { continue };
                if c.negate {
                    continue;
                }
                let slot = u8::try_from(r.event.slot()).unwrap_or(u8::MAX);
                for v in self.svals_of(c) {
                    push(&mut shared, (slot, c.field, kind, v.off, v.len))?;
                }
            }
        }
        mem::heapsort_by(&mut shared, |a, b| a < b);
        let sharing = |key: (u8, u8, Kind, u32, u16)| -> u32 {
            let lo = shared.partition_point(|x| *x < key);
            let hi = shared.partition_point(|x| *x <= key);
            u32::try_from(hi.saturating_sub(lo))
                .unwrap_or(u32::MAX)
                .max(1)
        };
        for i in 0..self.rules.len() {
            let Some(r) = self.rules.get(i).copied() else {
                break;
            };
            let mut best: Option<(u32, u8, bool)> = None;
            for k in 0..r.ncrit {
                let Some(c) = self.crit(&r, k) else { break };
                if c.negate || c.op.kind() != FieldKind::Str {
                    continue;
                }
                let rl = role(r.event, c.field);
                let mut p = 0u32;
                let mut ok = true;
                for v in self.svals_of(c) {
                    let s = self.units(v.off, v.len);
                    let (kind, pat) = match Kind::of(c.op) {
                        Some(kind) => (kind, s),
                        None => (Kind::Contains, longest_literal(s)),
                    };
                    if pat.is_empty() {
                        ok = false;
                        break;
                    }
                    let bits = rarity(rl, kind, pat);
                    let slot = u8::try_from(r.event.slot()).unwrap_or(u8::MAX);
                    let n = match Kind::of(c.op) {
                        Some(kind) => sharing((slot, c.field, kind, v.off, v.len)),
                        None => 1,
                    };
                    let each = (1u32 << 24).checked_shr(bits).unwrap_or(0).max(1);
                    p = p.saturating_add(each.saturating_mul(n));
                }
                if ok && best.is_none_or(|(bp, _, _)| p < bp) {
                    best = Some((p, k, Kind::of(c.op).is_some()));
                }
            }
            if let (Some((_, k, exact)), Some(slot)) = (best, self.rules.get_mut(i)) {
                slot.anchor = k;
                slot.anchor_exact = exact;
            }
        }
        drop(shared);
        // 2. Literal keys: every value of an exact string criterion (membership), and the
        // longest literal run of every wildcard anchor value (candidates only).
        // (type slot, field, kind, offset, length, tag): tag < svals.len() is a value;
        // otherwise `tag - svals.len()` is the rule whose wildcard anchor this run is.
        let mut keys: Vec<(u8, u8, Kind, u32, u16, u32)> = Vec::new();
        let nvals = self.svals.len();
        for (ri, r) in self.rules.iter().enumerate() {
            let slot = u8::try_from(r.event.slot()).unwrap_or(u8::MAX);
            let all = u32::from(r.ncrit).saturating_add(
                self.sets
                    .get(idx(r.set)..idx(r.set).saturating_add(usize::from(r.nsets)))
                    .unwrap_or(&[])
                    .iter()
                    .map(|s| u32::from(s.n))
                    .fold(0, u32::saturating_add),
            );
            for k in 0..all {
                let Some(c) = self.crits.get(idx(r.crit).saturating_add(idx(k))) else {
                    break;
                };
                if c.op.kind() != FieldKind::Str {
                    continue;
                }
                let kind = Kind::of(c.op);
                for (j, v) in self.svals_of(c).iter().enumerate() {
                    let tag = idx(c.vals).saturating_add(j);
                    match kind {
                        Some(kind) => {
                            push(&mut keys, (slot, c.field, kind, v.off, v.len, u32_of(tag)?))?
                        }
                        None if u32::from(r.anchor) == k => {
                            let s = self.units(v.off, v.len);
                            let run = longest_literal(s);
                            let at = s.len().saturating_sub(run.len());
                            // Offset of the run: find it at its position in `s`.
                            let lead = (0..=at)
                                .find(|&o| s.get(o..o.saturating_add(run.len())) == Some(run))
                                .unwrap_or(0);
                            let off = v.off.saturating_add(u32_of(lead)?);
                            let len = u16::try_from(run.len()).unwrap_or(0);
                            let tag = u32_of(nvals.saturating_add(ri))?;
                            push(&mut keys, (slot, c.field, Kind::Contains, off, len, tag))?;
                        }
                        None => {}
                    }
                }
            }
        }
        mem::heapsort_by(&mut keys, |a, b| {
            (a.0, a.1, a.2, a.3, a.4) < (b.0, b.1, b.2, b.3, b.4)
        });
        // 3. Distinct keys become literals, within the unit budget.
        let budget = self.strings.len().saturating_add(EXTRA_LITERAL_UNITS);
        let mut used = 0usize;
        let mut wild: Vec<(u32, u32)> = Vec::new(); // (literal, rule) of wildcard anchors
        let mut lit_slot: Vec<u8> = Vec::new();
        let mut lit_off: Vec<u32> = Vec::new();
        let mut prev: Option<(u8, u8, Kind, u32, u16)> = None;
        let mut cur = NONE;
        for &(slot, field, kind, off, len, tag) in &keys {
            let key = (slot, field, kind, off, len);
            if prev != Some(key) {
                prev = Some(key);
                used = used.saturating_add(usize::from(len));
                if used > budget {
                    cur = NONE;
                } else {
                    cur = u32_of(self.lits.len())?;
                    push(&mut self.lits, Lit { field, kind, len })?;
                    push(&mut lit_slot, slot)?;
                    push(&mut lit_off, off)?;
                }
            }
            match self.svals.get_mut(idx(tag)) {
                Some(v) => v.lit = cur,
                None if cur != NONE => push(&mut wild, (cur, tag.saturating_sub(u32_of(nvals)?)))?,
                None => {}
            }
        }
        drop(keys);
        // 4. Postings: (literal, rule) for every anchored rule whose anchor is indexed.
        let mut pairs: Vec<(u32, u32)> = wild;
        for (ri, r) in self.rules.iter_mut().enumerate() {
            let ri = u32_of(ri)?;
            let Some(c) = self
                .crits
                .get(idx(r.crit).saturating_add(usize::from(r.anchor)))
            else {
                continue;
            };
            if r.anchor == NO_ANCHOR || !r.anchor_exact {
                continue;
            }
            let s = idx(c.vals);
            let vals = self
                .svals
                .get(s..s.saturating_add(usize::from(c.n)))
                .unwrap_or(&[]);
            if vals.iter().any(|v| v.lit == NONE) {
                r.anchor = NO_ANCHOR; // over the budget: checked on every event
                continue;
            }
            for v in vals {
                push(&mut pairs, (v.lit, ri))?;
            }
        }
        // A wildcard anchor whose run was left out of the automata anchors nothing.
        for i in 0..self.rules.len() {
            let ri = u32_of(i)?;
            if let Some(r) = self.rules.get_mut(i)
                && r.anchor != NO_ANCHOR
                && !r.anchor_exact
                && !pairs.iter().any(|&(_, x)| x == ri)
            {
                r.anchor = NO_ANCHOR;
            }
        }
        mem::heapsort_by(&mut pairs, |a, b| a < b);
        self.post_start = mem::with_capacity(self.lits.len().saturating_add(1))?;
        self.postings = mem::with_capacity(pairs.len())?;
        let mut p = 0usize;
        for l in 0..self.lits.len() {
            push(&mut self.post_start, u32_of(self.postings.len())?)?;
            let l = u32_of(l)?;
            while let Some(&(pl, r)) = pairs.get(p) {
                if pl != l {
                    break;
                }
                if self.postings.last() != Some(&r)
                    || self.postings.len() == idx(*self.post_start.last().unwrap_or(&0))
                {
                    push(&mut self.postings, r)?;
                }
                p = p.saturating_add(1);
            }
        }
        push(&mut self.post_start, u32_of(self.postings.len())?)?;
        drop(pairs);
        // 5. Per event type: rule lists, fields with literals, one automaton.
        self.index = mem::with_capacity(EventType::ALL.len())?;
        for _ in EventType::ALL {
            push(&mut self.index, TypeIndex::default())?;
        }
        for t in EventType::ALL {
            let slot = t.slot();
            // Built in place: a type index is ~700 bytes, too big to assemble in a kernel
            // stack frame and move.
            let Some(ti) = self.index.get_mut(slot) else {
                continue;
            };
            for (i, r) in self.rules.iter().enumerate().filter(|(_, r)| r.event == t) {
                push(&mut ti.all, u32_of(i)?)?;
                if r.anchor == NO_ANCHOR {
                    push(&mut ti.always, u32_of(i)?)?;
                }
            }
            let slot8 = u8::try_from(slot).unwrap_or(u8::MAX);
            let mut pats: Vec<(&[u16], u32)> = Vec::new();
            for (l, lit) in self.lits.iter().enumerate() {
                if lit_slot.get(l) != Some(&slot8) {
                    continue;
                }
                let off = lit_off.get(l).copied().unwrap_or(0);
                let start = idx(off);
                let s = self
                    .strings
                    .get(start..start.saturating_add(usize::from(lit.len)))
                    .unwrap_or(&[]);
                push(&mut pats, (s, u32_of(l)?))?;
                let bit = 1u32.checked_shl(u32::from(lit.field)).unwrap_or(0);
                ti.fields |= bit;
                let ps = self.post_start.get(l).copied().unwrap_or(0);
                let pe = self
                    .post_start
                    .get(l.saturating_add(1))
                    .copied()
                    .unwrap_or(0);
                if pe > ps {
                    ti.eager |= bit;
                }
            }
            mem::heapsort_by(&mut pats, |a, b| a < b);
            if !pats.is_empty() {
                // Dense rows: a constant plus two bytes per literal unit of this type, so
                // the rows grow no faster than the literals (bounded by the string table
                // and `EXTRA_LITERAL_UNITS`).
                let units = pats
                    .iter()
                    .map(|(p, _)| p.len())
                    .fold(0, usize::saturating_add);
                let dense = DENSE_BYTES.saturating_add(units.saturating_mul(2));
                ti.ac = Some(Automaton::build(&pats, dense)?);
            }
            let f = |n: &str| t.field_index(n);
            ti.derived = match (f("path"), f("name"), f("extension"), f("parent")) {
                (Some(a), Some(b), Some(c), Some(d)) => Some([a, b, c, d]),
                _ => None,
            };
        }
        Ok(self)
    }

    /// Decides an event: the first rule in file order that matches, or `None` (pass).
    /// Allocates nothing; reads inputs only through [`Event::input`].
    pub fn evaluate(&self, ev: &Event<'_>) -> Option<Match> {
        let ti = self.index.get(ev.kind.slot())?;
        let mut hits = Hits::new();
        self.scan(ti, ev, &mut hits, ti.eager);
        let mut best = NONE;
        if hits.overflow {
            best = ti
                .all
                .iter()
                .copied()
                .find(|&r| self.matches(ti, r, NO_ANCHOR, ev, &mut hits))
                .unwrap_or(NONE);
        } else {
            // Candidates come from the eagerly scanned literals only (fields scanned later
            // hold no anchors), so the literals found so far are all that can list rules.
            let n0 = hits.n;
            for i in 0..n0 {
                let Some(&lit) = hits.ids.get(i) else { break };
                let s = self.post_start.get(idx(lit)).copied().unwrap_or(0);
                let e = self
                    .post_start
                    .get(idx(lit).saturating_add(1))
                    .copied()
                    .unwrap_or(0);
                for &r in self.postings.get(idx(s)..idx(e)).unwrap_or(&[]) {
                    if r >= best {
                        break;
                    }
                    let skip = self.rules.get(idx(r)).map_or(NO_ANCHOR, |x| {
                        if x.anchor_exact { x.anchor } else { NO_ANCHOR }
                    });
                    if self.matches(ti, r, skip, ev, &mut hits) {
                        best = r;
                        break;
                    }
                }
            }
            for &r in &ti.always {
                if r >= best {
                    break;
                }
                if self.matches(ti, r, NO_ANCHOR, ev, &mut hits) {
                    best = r;
                    break;
                }
            }
        }
        let r = self.rules.get(idx(best))?;
        Some(Match {
            action: r.action,
            rule_id: r.id,
            rule_index: best,
        })
    }

    /// Runs the automaton over the string inputs of the fields in `want` not scanned yet,
    /// and records every literal that holds, with its field's position in the input. The
    /// path, name, extension and parent go in one pass over the path when the sensor
    /// derived them from it.
    fn scan(&self, ti: &TypeIndex, ev: &Event<'_>, hits: &mut Hits, want: u32) {
        let Some(ac) = &ti.ac else { return };
        let want = want & ti.fields & !hits.scanned;
        if want == 0 {
            return;
        }
        let bit = |f: u8| 1u32.checked_shl(u32::from(f)).unwrap_or(0);
        if let Some([fp, fname, fext, fparent]) = ti.derived
            && want & (bit(fp) | bit(fname) | bit(fext) | bit(fparent)) != 0
            && let Some(Input::Str(path)) = ev.input(fp)
        {
            let (parent, name, ext) = text::split_path(path);
            let same = |f: u8, part: &[u16]| match ev.input(f) {
                Some(Input::Str(s)) => core::ptr::eq(s, part) || s == part,
                _ => false,
            };
            let mut regions = [None; MAX_FIELDS];
            let len = path.len();
            let mut done = bit(fp);
            set_region(&mut regions, fp, 0, len);
            if same(fname, name) {
                set_region(&mut regions, fname, len.saturating_sub(name.len()), len);
                done |= bit(fname);
            }
            if same(fext, ext) {
                set_region(&mut regions, fext, len.saturating_sub(ext.len()), len);
                done |= bit(fext);
            }
            if same(fparent, parent) {
                set_region(&mut regions, fparent, 0, parent.len());
                done |= bit(fparent);
            }
            self.scan_one(ac, path, &regions, hits);
            hits.scanned |= done;
        }
        for f in 0..u8::try_from(MAX_FIELDS).unwrap_or(0) {
            if want & bit(f) == 0 || hits.scanned & bit(f) != 0 {
                continue;
            }
            if let Some(Input::Str(s)) = ev.input(f) {
                let mut regions = [None; MAX_FIELDS];
                set_region(&mut regions, f, 0, s.len());
                self.scan_one(ac, s, &regions, hits);
            }
            hits.scanned |= bit(f);
        }
    }

    #[inline]
    fn scan_one(
        &self,
        ac: &Automaton,
        input: &[u16],
        regions: &[Option<(usize, usize)>; MAX_FIELDS],
        hits: &mut Hits,
    ) {
        ac.scan(input, |l, end| {
            let Some(lit) = self.lits.get(idx(l)) else {
                return;
            };
            let Some(Some((rs, re))) = regions.get(usize::from(lit.field)) else {
                return;
            };
            let start = end.saturating_sub(usize::from(lit.len));
            if start < *rs || end > *re {
                return;
            }
            let ok = match lit.kind {
                Kind::Contains => true,
                Kind::Prefix => start == *rs,
                Kind::Suffix => end == *re,
                Kind::Equals => start == *rs && end == *re,
            };
            if ok {
                hits.add(l);
            }
        });
    }

    /// Does rule `r` match, given the literals that hold? Criterion `skip` is known to hold.
    fn matches(&self, ti: &TypeIndex, r: u32, skip: u8, ev: &Event<'_>, hits: &mut Hits) -> bool {
        let Some(rule) = self.rules.get(idx(r)) else {
            return false;
        };
        if rule.event != ev.kind {
            return false;
        }
        let base = idx(rule.crit);
        let crits = self
            .crits
            .get(base..base.saturating_add(usize::from(rule.ncrit)))
            .unwrap_or(&[]);
        for (k, c) in crits.iter().enumerate() {
            if usize::from(skip) != k && !self.holds(ti, c, ev, hits) {
                return false;
            }
        }
        let sets = self
            .sets
            .get(idx(rule.set)..idx(rule.set).saturating_add(usize::from(rule.nsets)))
            .unwrap_or(&[]);
        !sets.iter().any(|s| {
            let b = idx(s.crit);
            self.crits
                .get(b..b.saturating_add(usize::from(s.n)))
                .unwrap_or(&[])
                .iter()
                .all(|c| self.holds(ti, c, ev, hits))
        })
    }

    /// Does criterion `c` hold? A missing input, or one of another type, makes it false
    /// whether or not it is negated (as [`crate::eval::criterion_holds`]).
    #[inline]
    fn holds(&self, ti: &TypeIndex, c: &CCrit, ev: &Event<'_>, hits: &mut Hits) -> bool {
        let Some(input) = ev.input(c.field) else {
            return false;
        };
        let bit = 1u32.checked_shl(u32::from(c.field)).unwrap_or(0);
        if hits.scanned & bit == 0 && Kind::of(c.op).is_some() {
            self.scan(ti, ev, hits, bit);
        }
        let hits: &Hits = hits;
        let n = usize::from(c.n);
        let v = idx(c.vals);
        let hit = match (c.op, input) {
            (
                Op::StrEquals | Op::StartsWith | Op::EndsWith | Op::Contains | Op::Wildcard,
                Input::Str(s),
            ) => self.svals_of(c).iter().any(|x| {
                if x.lit != NONE && !hits.overflow {
                    hits.contains(x.lit)
                } else {
                    str_op(c.op, s, self.units(x.off, x.len))
                }
            }),
            (Op::IntEquals, Input::Int(x)) => self.ints(v, n).contains(&x),
            (Op::AnyBits, Input::Int(x)) => self.ints(v, n).iter().any(|&y| x & y != 0),
            (Op::AllBits, Input::Int(x)) => self.ints(v, n).iter().any(|&y| y & !x == 0),
            (Op::Range, Input::Int(x)) => self
                .rvals
                .get(v..v.saturating_add(n))
                .unwrap_or(&[])
                .iter()
                .any(|&(lo, hi)| lo <= x && x <= hi),
            (Op::IsTrue, Input::Flag(b)) => b,
            (Op::IsFalse, Input::Flag(b)) => !b,
            (
                Op::StrEquals
                | Op::StartsWith
                | Op::EndsWith
                | Op::Contains
                | Op::Wildcard
                | Op::IntEquals
                | Op::AnyBits
                | Op::AllBits
                | Op::Range
                | Op::IsTrue
                | Op::IsFalse,
                Input::Str(_) | Input::Int(_) | Input::Flag(_),
            ) => return false,
        };
        hit != c.negate
    }

    fn ints(&self, v: usize, n: usize) -> &[u64] {
        self.ivals.get(v..v.saturating_add(n)).unwrap_or(&[])
    }

    /// Content version.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Digest from the content header.
    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// True when there are no rules (everything passes).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Rules checked on every event of `t` because they have no string anchor.
    pub fn unanchored(&self, t: EventType) -> usize {
        self.index.get(t.slot()).map_or(0, |ti| ti.always.len())
    }

    /// The criterion rule `index` is anchored on (its candidates come from that
    /// criterion's literals), or `None` when it is checked on every event.
    pub fn anchor(&self, index: u32) -> Option<u8> {
        self.rules
            .get(idx(index))
            .map(|r| r.anchor)
            .filter(|&a| a != NO_ANCHOR)
    }

    /// Literals in the automata (distinct field, kind and string).
    pub fn literals(&self) -> usize {
        self.lits.len()
    }

    /// Bytes held by the compiled form (arrays and automata, not counting spare capacity).
    pub fn heap_bytes(&self) -> usize {
        fn b<T>(v: &Vec<T>) -> usize {
            v.capacity().saturating_mul(core::mem::size_of::<T>())
        }
        let ac = self.index.iter().fold(0usize, |acc, ti| {
            let a = ti.ac.as_ref().map_or(0, Automaton::heap_bytes);
            acc.saturating_add(a)
                .saturating_add(b(&ti.all))
                .saturating_add(b(&ti.always))
        });
        [
            b(&self.strings),
            b(&self.rules),
            b(&self.sets),
            b(&self.crits),
            b(&self.svals),
            b(&self.ivals),
            b(&self.rvals),
            b(&self.lits),
            b(&self.post_start),
            b(&self.postings),
            ac,
        ]
        .into_iter()
        .fold(0, usize::saturating_add)
    }

    /// The decided action of a match, or `None` for pass (convenience for callers).
    pub fn action(&self, ev: &Event<'_>) -> Option<Action> {
        self.evaluate(ev).map(|m| m.action)
    }
}

fn set_region(r: &mut [Option<(usize, usize)>; MAX_FIELDS], f: u8, start: usize, end: usize) {
    if let Some(slot) = r.get_mut(usize::from(f)) {
        *slot = Some((start, end));
    }
}

#[inline]
fn str_op(op: Op, input: &[u16], pat: &[u16]) -> bool {
    match op {
        Op::StrEquals => text::eq_folded(input, pat),
        Op::StartsWith => text::starts_with_folded(input, pat),
        Op::EndsWith => text::ends_with_folded(input, pat),
        Op::Contains => text::contains_folded(input, pat),
        Op::Wildcard => text::wildcard_folded(input, pat),
        Op::IntEquals | Op::AnyBits | Op::AllBits | Op::Range | Op::IsTrue | Op::IsFalse => false,
    }
}

/// Literals that hold in the current event: a small set on the stack with a 256-bit filter
/// in front of it.
struct Hits {
    ids: [u32; MAX_HITS],
    n: usize,
    filter: [u64; 4],
    overflow: bool,
    /// Bit `f`: the literals of field `f` are recorded.
    scanned: u32,
}

impl Hits {
    fn new() -> Self {
        Hits {
            ids: [0; MAX_HITS],
            n: 0,
            filter: [0; 4],
            overflow: false,
            scanned: 0,
        }
    }

    #[inline]
    fn bit(l: u32) -> (usize, u64) {
        let h = l.wrapping_mul(0x9E37_79B1) >> 24;
        (idx(h >> 6) & 3, 1u64.checked_shl(h & 63).unwrap_or(0))
    }

    fn ids(&self) -> &[u32] {
        self.ids.get(..self.n).unwrap_or(&[])
    }

    #[inline]
    fn contains(&self, l: u32) -> bool {
        let (w, m) = Self::bit(l);
        self.filter.get(w).is_some_and(|x| x & m != 0) && self.ids().contains(&l)
    }

    #[inline]
    fn add(&mut self, l: u32) {
        if self.contains(l) {
            return;
        }
        match self.ids.get_mut(self.n) {
            Some(slot) => {
                *slot = l;
                self.n = self.n.saturating_add(1);
                let (w, m) = Self::bit(l);
                if let Some(x) = self.filter.get_mut(w) {
                    *x |= m;
                }
            }
            None => self.overflow = true,
        }
    }
}

/// Feeds owned content to a sink as if it had been read from a file.
fn replay<'a>(c: &Content, b: &mut Builder<'a>) -> Result<(), AllocError> {
    use crate::content::Criterion;
    let units: usize = c
        .rules
        .iter()
        .flat_map(|r| r.criteria.iter().chain(r.exceptions.iter().flatten()))
        .map(|c| match &c.values {
            Values::Strs(v) => v.iter().map(Vec::len).fold(0, usize::saturating_add),
            Values::Ints(_) | Values::Ranges(_) | Values::None => 0,
        })
        .fold(0, usize::saturating_add);
    b.rs.strings = mem::with_capacity(units)?;
    let crit = |b: &mut Builder<'a>, c: &Criterion| -> Result<(), AllocError> {
        let n = u8::try_from(c.values.len()).map_err(|_| AllocError)?;
        b.criterion(c.field, c.op, c.negate, n)?;
        match &c.values {
            Values::Strs(v) => {
                for s in v {
                    let off = u32_of(b.rs.strings.len())?;
                    for &u in s {
                        push(&mut b.rs.strings, fold(u))?;
                    }
                    b.string(off, u16::try_from(s.len()).map_err(|_| AllocError)?)?;
                }
            }
            Values::Ints(v) => v.iter().try_for_each(|&x| b.int(x))?,
            Values::Ranges(v) => v.iter().try_for_each(|&(lo, hi)| b.range(lo, hi))?,
            Values::None => {}
        }
        Ok(())
    };
    for r in &c.rules {
        let n = u8::try_from(r.criteria.len()).map_err(|_| AllocError)?;
        let s = u8::try_from(r.exceptions.len()).map_err(|_| AllocError)?;
        b.rule(r.id, r.event, r.action, n, s)?;
        for c in &r.criteria {
            crit(b, c)?;
        }
        for set in &r.exceptions {
            b.set(u8::try_from(set.len()).map_err(|_| AllocError)?)?;
            for c in set {
                crit(b, c)?;
            }
        }
    }
    Ok(())
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
            pats.sort();
            pats.dedup();
            let refs: Vec<(&[u16], u32)> = pats
                .iter()
                .enumerate()
                .map(|(i, p)| (p.as_slice(), i as u32))
                .collect();
            let inputs: Vec<Vec<u16>> = (0..8)
                .map(|_| {
                    (0..next(40))
                        .map(|_| alphabet[next(alphabet.len())])
                        .collect()
                })
                .collect();
            for budget in [0usize, 4, 40, 120, 400, 1 << 20] {
                let a = Automaton::build(&refs, budget).unwrap();
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
