//! The compiled rule set. Each rule is *anchored* on one of its non-negated string criteria
//! (equals / starts-with / ends-with / contains, or the longest literal run of a wildcard);
//! per event type and field, one Aho-Corasick automaton over all anchor patterns finds, in a
//! single pass over the input, every rule whose anchor matches. Only those candidates (and
//! the few rules with no anchor) are checked in full, so the cost of an event depends on
//! the input length and on the rules that nearly match, not on the number of rules.
//!
//! First match in file order wins: candidates arrive in any order, and the engine keeps the
//! smallest matching rule index. Evaluation allocates nothing.

use alloc::vec::Vec;

use crate::content::{Criterion, Rule, Values};
use crate::error::{AllocError, ContentError, ErrorKind, Location};
use crate::eval::{Event, Input, Match, fold_content, rule_matches};
use crate::format::{Validated, validate};
use crate::schema::{Action, EventType, Op};
use crate::text::{fold, longest_literal};

const ROOT: u32 = 0;
const NONE: u32 = u32::MAX;

/// How an anchor pattern must sit in the input for its rule to be a candidate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Anchor {
    Equals,
    Prefix,
    Suffix,
    Contains,
}

#[derive(Clone, Copy, Debug)]
struct Out {
    rule: u32,
    anchor: Anchor,
}

#[derive(Clone, Copy, Debug)]
struct Node {
    edge_start: u32,
    edge_len: u32,
    fail: u32,
    /// Next node on the fail chain that has outputs (dictionary suffix link).
    dict: u32,
    out_start: u32,
    out_len: u32,
    depth: u32,
}

/// Aho-Corasick automaton over folded UTF-16 code units, in flat arrays.
#[derive(Debug)]
struct Automaton {
    nodes: Vec<Node>,
    edges: Vec<(u16, u32)>,
    outs: Vec<Out>,
    /// Transitions from the root for ASCII units (the common first step).
    root_ascii: [u32; 128],
}

use crate::mem::push;

fn idx(x: u32) -> usize {
    usize::try_from(x).unwrap_or(usize::MAX)
}

fn u32_of(x: usize) -> Result<u32, AllocError> {
    u32::try_from(x).map_err(|_| AllocError)
}

impl Automaton {
    fn node(&self, s: u32) -> Option<&Node> {
        self.nodes.get(idx(s))
    }

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

    #[inline]
    fn next(&self, mut s: u32, c: u16) -> u32 {
        let from_root = self.root_ascii.get(usize::from(c)).copied();
        loop {
            // The root's transitions for ASCII come from a table, whether the scan is at
            // the root or has just failed back to it.
            if s == ROOT {
                return match from_root {
                    Some(t) => t,
                    None => self.child(ROOT, c).unwrap_or(ROOT),
                };
            }
            if let Some(t) = self.child(s, c) {
                return t;
            }
            s = self.node(s).map_or(ROOT, |n| n.fail);
        }
    }

    /// Builds the automaton over `pats`: (pattern, output), sorted by pattern.
    fn build(pats: &[(&[u16], Out)]) -> Result<Self, AllocError> {
        // Trie over sorted patterns: a pattern's next child can only be the most recently
        // added child of its node, so insertion needs no search and children come sorted.
        struct T {
            ch: u16,
            first: u32,
            last: u32,
            sibling: u32,
            depth: u32,
            out_start: u32,
            out_len: u32,
        }
        let leaf = |ch, depth| T {
            ch,
            first: NONE,
            last: NONE,
            sibling: NONE,
            depth,
            out_start: 0,
            out_len: 0,
        };
        let total: usize = pats
            .iter()
            .map(|(p, _)| p.len())
            .fold(1, usize::saturating_add);
        let mut t: Vec<T> = Vec::new();
        t.try_reserve_exact(total).map_err(|_| AllocError)?;
        push(&mut t, leaf(0, 0))?;
        let mut outs: Vec<Out> = Vec::new();
        outs.try_reserve_exact(pats.len()).map_err(|_| AllocError)?;
        for (i, (pat, out)) in pats.iter().enumerate() {
            let mut s = ROOT;
            for &c in pat.iter() {
                let cur = t.get(idx(s)).ok_or(AllocError)?;
                let last = cur.last;
                let depth = cur.depth.saturating_add(1);
                if last != NONE && t.get(idx(last)).is_some_and(|n| n.ch == c) {
                    s = last;
                    continue;
                }
                let new = u32_of(t.len())?;
                push(&mut t, leaf(c, depth))?;
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
        // Flatten children into sorted edge runs.
        let mut nodes: Vec<Node> = Vec::new();
        nodes.try_reserve_exact(t.len()).map_err(|_| AllocError)?;
        let mut edges: Vec<(u16, u32)> = Vec::new();
        edges
            .try_reserve_exact(t.len().saturating_sub(1))
            .map_err(|_| AllocError)?;
        for n in &t {
            let edge_start = u32_of(edges.len())?;
            let mut c = n.first;
            while let Some(ch) = t.get(idx(c)) {
                push(&mut edges, (ch.ch, c))?;
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
                depth: n.depth,
            };
            push(&mut nodes, node)?;
        }
        drop(t);
        let mut a = Automaton {
            nodes,
            edges,
            outs,
            root_ascii: [ROOT; 128],
        };
        // Breadth-first: fail links and dictionary links.
        let mut queue: Vec<u32> = Vec::new();
        queue
            .try_reserve_exact(a.nodes.len())
            .map_err(|_| AllocError)?;
        push(&mut queue, ROOT)?;
        let mut head = 0usize;
        while let Some(&u) = queue.get(head) {
            head = head.saturating_add(1);
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
                push(&mut queue, v)?;
            }
        }
        for c in 0u16..128 {
            let t = a.child(ROOT, c).unwrap_or(ROOT);
            if let Some(slot) = a.root_ascii.get_mut(usize::from(c)) {
                *slot = t;
            }
        }
        Ok(a)
    }

    /// Calls `f(rule)` for every output whose anchor holds somewhere in `input`.
    #[inline]
    fn scan(&self, input: &[u16], mut f: impl FnMut(u32)) {
        let len = input.len();
        let mut s = ROOT;
        for (i, &u) in input.iter().enumerate() {
            s = self.next(s, fold(u));
            let end = i.saturating_add(1);
            let mut t = match self.node(s) {
                Some(n) if n.out_len > 0 => s,
                Some(n) => n.dict,
                None => NONE,
            };
            while let Some(n) = self.node(t) {
                let starts_at_0 = idx(n.depth) == end;
                let ends_at_len = end == len;
                let run_end = n.out_start.saturating_add(n.out_len);
                let outs = self.outs.get(idx(n.out_start)..idx(run_end)).unwrap_or(&[]);
                for o in outs {
                    let ok = match o.anchor {
                        Anchor::Contains => true,
                        Anchor::Prefix => starts_at_0,
                        Anchor::Suffix => ends_at_len,
                        Anchor::Equals => starts_at_0 && ends_at_len,
                    };
                    if ok {
                        f(o.rule);
                    }
                }
                t = n.dict;
            }
        }
    }
}

#[derive(Debug, Default)]
struct TypeIndex {
    /// Rules with no anchor, ascending: always checked.
    always: Vec<u32>,
    /// One automaton per string field that anchors rules.
    fields: Vec<(u8, Automaton)>,
}

/// A validated, compiled rule set: what the driver activates.
#[derive(Debug)]
pub struct RuleSet {
    version: u64,
    digest: [u8; 32],
    rules: Vec<Rule>,
    index: [TypeIndex; 2],
}

/// The anchor chosen for a rule: criterion index and how its patterns must sit.
fn choose_anchor(r: &Rule) -> Option<(usize, Anchor)> {
    let rank = |op: Op| match op {
        Op::StrEquals => 3,
        Op::StartsWith | Op::EndsWith => 2,
        _ => 1,
    };
    r.criteria
        .iter()
        .enumerate()
        .filter(|(_, c)| !c.negate)
        .filter_map(|(i, c)| {
            let anchor = match c.op {
                Op::StrEquals => Anchor::Equals,
                Op::StartsWith => Anchor::Prefix,
                Op::EndsWith => Anchor::Suffix,
                Op::Contains | Op::Wildcard => Anchor::Contains,
                _ => return None,
            };
            let Values::Strs(list) = &c.values else {
                return None;
            };
            let shortest = list.iter().map(|p| anchor_pattern(c, p).len()).min()?;
            (shortest > 0).then_some((i, anchor, shortest, rank(c.op)))
        })
        .max_by(|a, b| (a.2, a.3).cmp(&(b.2, b.3)).then(b.0.cmp(&a.0)))
        .map(|(i, anchor, _, _)| (i, anchor))
}

fn anchor_pattern<'p>(c: &Criterion, p: &'p [u16]) -> &'p [u16] {
    if c.op == Op::Wildcard {
        longest_literal(p)
    } else {
        p
    }
}

impl RuleSet {
    /// Validates and compiles content bytes: what the driver does on activation.
    pub fn load(bytes: &[u8]) -> Result<RuleSet, ContentError> {
        let v = validate(bytes)?;
        RuleSet::compile(&v).map_err(|AllocError| ContentError {
            at: Location::default(),
            kind: ErrorKind::OutOfMemory,
        })
    }

    /// Compiles validated content.
    pub fn compile(v: &Validated) -> Result<RuleSet, AllocError> {
        let rules = fold_content(&v.content)?.rules;
        let mut index: [TypeIndex; 2] = Default::default();
        for t in EventType::ALL {
            let slot = index.get_mut(t.slot()).ok_or(AllocError)?;
            *slot = Self::index_type(&rules, t)?;
        }
        Ok(RuleSet {
            version: v.header.version,
            digest: v.header.digest,
            rules,
            index,
        })
    }

    fn index_type(rules: &[Rule], t: EventType) -> Result<TypeIndex, AllocError> {
        let mut ti = TypeIndex::default();
        // (field, pattern, output) for every anchored value.
        let mut pats: Vec<(u8, &[u16], Out)> = Vec::new();
        for (i, r) in rules.iter().enumerate().filter(|(_, r)| r.event == t) {
            let rule = u32_of(i)?;
            match choose_anchor(r).and_then(|(ci, a)| Some((r.criteria.get(ci)?, a))) {
                Some((c, anchor)) => {
                    if let Values::Strs(list) = &c.values {
                        for p in list {
                            push(
                                &mut pats,
                                (c.field, anchor_pattern(c, p), Out { rule, anchor }),
                            )?;
                        }
                    }
                }
                None => push(&mut ti.always, rule)?,
            }
        }
        crate::mem::heapsort_by(&mut pats, |a, b| {
            (a.0, a.1, a.2.rule) < (b.0, b.1, b.2.rule)
        });
        let mut rest: &[(u8, &[u16], Out)] = &pats;
        while let Some(&(field, _, _)) = rest.first() {
            let n = rest.iter().take_while(|p| p.0 == field).count();
            let (group, tail) = rest.split_at_checked(n).ok_or(AllocError)?;
            rest = tail;
            let mut flat: Vec<(&[u16], Out)> = Vec::new();
            flat.try_reserve_exact(group.len())
                .map_err(|_| AllocError)?;
            for &(_, p, o) in group {
                push(&mut flat, (p, o))?;
            }
            push(&mut ti.fields, (field, Automaton::build(&flat)?))?;
        }
        Ok(ti)
    }

    /// Decides an event: the first rule in file order that matches, or `None` (pass).
    /// Allocates nothing; reads inputs only through [`Event::input`].
    pub fn evaluate(&self, ev: &Event<'_>) -> Option<Match> {
        let ti = self.index.get(ev.kind.slot())?;
        let mut best = ti
            .always
            .iter()
            .copied()
            .find(|&r| self.rules.get(idx(r)).is_some_and(|x| rule_matches(x, ev)))
            .unwrap_or(NONE);
        let mut check = |rule: u32| {
            if rule < best
                && self
                    .rules
                    .get(idx(rule))
                    .is_some_and(|r| rule_matches(r, ev))
            {
                best = rule;
            }
        };
        for (field, ac) in &ti.fields {
            if let Some(Input::Str(s)) = ev.input(*field) {
                ac.scan(s, &mut check);
            }
        }
        let r = self.rules.get(idx(best))?;
        Some(Match {
            action: r.action,
            rule_id: r.id,
            rule_index: best,
        })
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

    /// The rule at `index` (strings folded).
    pub fn rule(&self, index: u32) -> Option<&Rule> {
        self.rules.get(idx(index))
    }

    /// The decided action of a match, or `None` for pass (convenience for callers).
    pub fn action(&self, ev: &Event<'_>) -> Option<Action> {
        self.evaluate(ev).map(|m| m.action)
    }
}
