//! The anchor choice: every rule is anchored on the non-negated string criterion that
//! makes it a candidate least often, estimated from the operator, the field's role and the
//! value ([`rarity`]), times the number of rules with the same literal (all of them would
//! be candidates with it: a process filter, a common extension or a prefix shared by many
//! rules is a poor anchor, a path literal unique to one rule a good one).

use alloc::vec::Vec;

use super::index::{CCrit, Kind, RuleSet};
use super::lits::key;
use super::map::Map;
use super::{NO_ANCHOR, NONE, idx, u32_of};
use crate::error::AllocError;
use crate::mem::{self, push};
use crate::schema::{EventType, FieldKind};
use crate::text::longest_literal;

/// Estimated selectivity of one value as `-log2` of the chance that it holds on an event,
/// from the operator, the field's role and the value. Rough on purpose; what matters is the
/// order: a rare file name beats a common path prefix of any length, a file name beats a
/// directory fragment, a long suffix beats a short one.
pub(super) fn rarity(role: Role, kind: Kind, v: &[u16]) -> u32 {
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
pub(super) enum Role {
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

/// The literal a value of a string criterion would be found by, as a key of [`Map`]: the
/// value itself, or a wildcard's longest literal run; `None` for an empty one.
fn literal(rs: &RuleSet, slot: usize, c: &CCrit, off: u32, len: u16) -> Option<u64> {
    let (kind, off, len) = rs.anchor_key(c.op, off, len);
    (len > 0).then(|| key(slot, c.field, kind, off, len))
}

/// Could criterion `c` be an anchor (a string criterion that is not negated)?
fn anchorable(c: &CCrit) -> bool {
    !c.negate && c.op.kind() == FieldKind::Str
}

/// Per literal of a value of a criterion that could be an anchor: how many of the rules
/// (not left out) have it. All of them are candidates when an event holds it, whatever
/// the rest of their criteria, so a literal many rules share (`.txt` in a list of three
/// extensions, a process filter) is a poor anchor even when every criterion is unique.
/// Returns the count of each value's literal by value index (0 for the others).
fn literal_counts(rs: &RuleSet, dup: &[bool]) -> Result<Vec<u32>, AllocError> {
    let mut map = Map::new();
    let mut counts: Vec<u32> = Vec::new();
    // Per value: its literal's index in `counts`, `NONE` when it has none.
    let mut of_value: Vec<u32> = mem::filled(NONE, rs.svals.len())?;
    for (i, r) in rs.rules.iter().enumerate() {
        if dup.get(i).copied().unwrap_or(true) {
            continue;
        }
        let slot = r.event.slot();
        for c in rs
            .crits_at(r.crit, r.ncrit)
            .iter()
            .filter(|c| anchorable(c))
        {
            for j in 0..usize::from(c.n) {
                let vi = idx(c.vals).saturating_add(j);
                let Some(v) = rs.svals.get(vi) else {
                    break;
                };
                let Some(k) = literal(rs, slot, c, v.off, v.len) else {
                    continue;
                };
                let new = u32_of(counts.len())?;
                let at = map.get_or_insert(k, new, |_| true)?;
                if at == new {
                    push(&mut counts, 0)?;
                }
                if let Some(n) = counts.get_mut(idx(at)) {
                    *n = n.saturating_add(1);
                }
                if let Some(o) = of_value.get_mut(vi) {
                    *o = at;
                }
            }
        }
    }
    drop(map);
    for o in &mut of_value {
        *o = counts.get(idx(*o)).copied().unwrap_or(0);
    }
    Ok(of_value)
}

/// Sets every rule's anchor (rules in `dup` never decide and get none).
#[inline(never)]
pub(super) fn choose(rs: &mut RuleSet, dup: &[bool]) -> Result<(), AllocError> {
    let counts = literal_counts(rs, dup)?;
    for i in 0..rs.rules.len() {
        let Some(r) = rs.rules.get(i).copied() else {
            break;
        };
        let mut best: Option<(u32, u8, bool)> = None;
        if !dup.get(i).copied().unwrap_or(true) {
            for (k, c) in rs.crits_at(r.crit, r.ncrit).iter().enumerate() {
                if !anchorable(c) {
                    continue;
                }
                let rl = role(r.event, c.field);
                let mut p = 0u32;
                let mut ok = true;
                for (j, v) in rs.svals_of(c).iter().enumerate() {
                    let s = rs.units(v.off, v.len);
                    let (kind, pat) = match Kind::of(c.op) {
                        Some(kind) => (kind, s),
                        None => (Kind::Contains, longest_literal(s)),
                    };
                    if pat.is_empty() {
                        ok = false;
                        break;
                    }
                    let n = counts
                        .get(idx(c.vals).saturating_add(j))
                        .copied()
                        .unwrap_or(1)
                        .max(1);
                    let each = (1u32 << 24)
                        .checked_shr(rarity(rl, kind, pat))
                        .unwrap_or(0)
                        .max(1);
                    p = p.saturating_add(each.saturating_mul(n));
                }
                let k = u8::try_from(k).unwrap_or(NO_ANCHOR);
                if ok && best.is_none_or(|(bp, _, _)| p < bp) {
                    best = Some((p, k, Kind::of(c.op).is_some()));
                }
            }
        }
        if let Some(slot) = rs.rules.get_mut(i) {
            (slot.anchor, slot.anchor_exact) = match best {
                Some((_, k, exact)) => (k, exact),
                None => (NO_ANCHOR, false),
            };
        }
    }
    Ok(())
}
