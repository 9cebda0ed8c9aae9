//! The encoder: owned content to format v1 (each distinct string once in the string
//! table), and the copy of a file made ready for signing.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use sha2::{Digest as _, Sha256};

use super::header::{DIGESTED_HEADER, HEADER_LEN32, tables};
use super::{CRIT_FIXED, FLAG_NEGATE, RULE_FIXED, SET_FIXED, STR_REF, digest_of, oom};
use super::{FORMAT_VERSION, HEADER_LEN, MAGIC, SIGNATURE_BLOCK_LEN, field, read_header};
use crate::content::{Content, Criterion, Values, limits};
use crate::error::{AllocError, ContentError, Location};
use crate::mem;
use crate::schema::{FieldKind, Op, SCHEMA_VERSION};

/// Why the encoder refused to encode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// A count or length does not fit the format or exceeds a limit.
    Limit {
        /// Rule index (file order), if the problem is inside a rule.
        rule_index: Option<usize>,
        /// What.
        what: &'static str,
        /// The limit.
        limit: usize,
        /// Found.
        found: usize,
    },
    /// The values do not have the shape the operator needs.
    ValuesShape {
        /// Rule index.
        rule_index: usize,
        /// Operator.
        op: Op,
    },
    /// Out of memory.
    OutOfMemory,
}

impl core::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            EncodeError::Limit {
                rule_index: Some(i),
                what,
                limit,
                found,
            } => {
                write!(f, "rule #{i}: {what}: {found} exceeds the limit of {limit}")
            }
            EncodeError::Limit {
                rule_index: None,
                what,
                limit,
                found,
            } => {
                write!(f, "{what}: {found} exceeds the limit of {limit}")
            }
            EncodeError::ValuesShape { rule_index, op } => {
                write!(f, "rule #{rule_index}: values do not fit operator {op}")
            }
            EncodeError::OutOfMemory => f.write_str("out of memory"),
        }
    }
}

impl core::error::Error for EncodeError {}

fn limit(rule_index: Option<usize>, what: &'static str, lim: usize, found: usize) -> EncodeError {
    EncodeError::Limit {
        rule_index,
        what,
        limit: lim,
        found,
    }
}

fn count_u8(rule: usize, what: &'static str, lim: usize, n: usize) -> Result<u8, EncodeError> {
    if n > lim {
        return Err(limit(Some(rule), what, lim, n));
    }
    u8::try_from(n).map_err(|_| limit(Some(rule), what, usize::from(u8::MAX), n))
}

fn crit_size(c: &Criterion) -> usize {
    let each = match c.values {
        Values::Strs(_) => STR_REF,
        Values::Ints(_) => 8,
        Values::Ranges(_) => 16,
        Values::None => 0,
    };
    CRIT_FIXED.saturating_add(each.saturating_mul(c.values.len()))
}

/// Encodes content into format v1. The encoder checks only what the format can express
/// (counts, lengths, value shapes); semantic checks (field arity, operator types, ids) are
/// the validator's, so tests can build every kind of invalid content with it.
pub fn encode(content: &Content) -> Result<Vec<u8>, EncodeError> {
    if content.rules.len() > limits::MAX_RULES {
        return Err(limit(None, "rules", limits::MAX_RULES, content.rules.len()));
    }
    let mut rules_len = 0usize;
    for r in &content.rules {
        let sets = r.exceptions.iter().map(|s| {
            SET_FIXED.saturating_add(s.iter().map(crit_size).fold(0, usize::saturating_add))
        });
        let crits = r
            .criteria
            .iter()
            .map(crit_size)
            .fold(0usize, usize::saturating_add);
        rules_len = rules_len
            .saturating_add(RULE_FIXED)
            .saturating_add(crits)
            .saturating_add(sets.fold(0, usize::saturating_add));
    }
    // The string table holds each distinct string once, in order of first use; every
    // reference to an equal string shares it (exactly: a map that gave up on a key would
    // write it again and change the bytes). `offs` is the offset of every string value in
    // the order the rules table lists them (each rule's criteria, then its exception
    // sets'), so that table is written without a second lookup.
    let mut shared: BTreeMap<&[u16], u32> = BTreeMap::new();
    let mut st: Vec<u8> = Vec::new();
    let mut offs: Vec<u32> = Vec::new();
    for r in &content.rules {
        for c in r.criteria.iter().chain(r.exceptions.iter().flatten()) {
            if let Values::Strs(list) = &c.values {
                for s in list {
                    let next = u32::try_from(st.len() / 2)
                        .map_err(|_| limit(None, "string table", usize::MAX, st.len()))?;
                    let off = *shared.entry(s.as_slice()).or_insert_with(|| {
                        for u in s {
                            st.extend_from_slice(&u.to_le_bytes());
                        }
                        next
                    });
                    offs.push(off);
                }
            }
        }
    }
    drop(shared);
    let mut offs = offs.into_iter();
    let strings_len = st.len();
    let total = HEADER_LEN
        .saturating_add(rules_len)
        .saturating_add(strings_len);
    if total > limits::MAX_FILE_BYTES {
        return Err(limit(None, "file size", limits::MAX_FILE_BYTES, total));
    }
    let too_big = |_| {
        limit(
            None,
            "table size",
            usize::try_from(u32::MAX).unwrap_or(usize::MAX),
            total,
        )
    };
    let rules_len32 = u32::try_from(rules_len).map_err(too_big)?;
    let strings_len32 = u32::try_from(strings_len).map_err(too_big)?;
    let rule_count = u32::try_from(content.rules.len()).map_err(too_big)?;

    let mut rt: Vec<u8> = Vec::new();
    rt.try_reserve_exact(rules_len)
        .map_err(|_| EncodeError::OutOfMemory)?;
    for (i, r) in content.rules.iter().enumerate() {
        rt.extend_from_slice(&r.id.to_le_bytes());
        rt.push(r.event.code());
        rt.push(r.action.code());
        rt.push(count_u8(
            i,
            "criteria",
            limits::MAX_CRITERIA,
            r.criteria.len(),
        )?);
        rt.push(count_u8(
            i,
            "exception sets",
            limits::MAX_EXCEPTION_SETS,
            r.exceptions.len(),
        )?);
        for c in &r.criteria {
            put_criterion(&mut rt, &mut offs, i, c)?;
        }
        for set in &r.exceptions {
            rt.push(count_u8(
                i,
                "criteria in exception set",
                limits::MAX_CRITERIA,
                set.len(),
            )?);
            for c in set {
                put_criterion(&mut rt, &mut offs, i, c)?;
            }
        }
    }

    let mut out: Vec<u8> = Vec::new();
    out.try_reserve_exact(total)
        .map_err(|_| EncodeError::OutOfMemory)?;
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&SCHEMA_VERSION.to_le_bytes());
    out.extend_from_slice(&HEADER_LEN32.to_le_bytes());
    out.extend_from_slice(&content.version.to_le_bytes());
    out.extend_from_slice(&rule_count.to_le_bytes());
    out.extend_from_slice(&rules_len32.to_le_bytes());
    out.extend_from_slice(&strings_len32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes()); // signature length: unsigned
    out.extend_from_slice(&[0u8; 8]); // key id: none
    let mut h = Sha256::new();
    h.update(&out);
    h.update(&rt);
    h.update(&st);
    let d: [u8; 32] = h.finalize().into();
    out.extend_from_slice(&d);
    out.extend_from_slice(&rt);
    out.extend_from_slice(&st);
    Ok(out)
}

/// A copy of a content file (whose header [`read_header`] accepts) made ready to be signed
/// by `key_id`: header and tables, any old signature block dropped, signature length
/// [`SIGNATURE_BLOCK_LEN`], key id set and the digest recomputed. The signer appends the
/// 64-byte Ed25519 signature of `trust::signed_message` over its first 80 bytes.
pub fn prepare_signed(bytes: &[u8], key_id: [u8; 8]) -> Result<Vec<u8>, ContentError> {
    let h = read_header(bytes)?;
    let head = bytes.get(..DIGESTED_HEADER).unwrap_or(&[]);
    let body = tables(bytes, &h);
    let mut out: Vec<u8> =
        mem::with_capacity(HEADER_LEN.saturating_add(body.len()).saturating_add(64))
            .map_err(|AllocError| oom(&Location::default()))?;
    let push = |out: &mut Vec<u8>, b: &[u8]| {
        mem::extend_from_slice(out, b).map_err(|AllocError| oom(&Location::default()))
    };
    push(
        &mut out,
        head.get(..field::SIGNATURE_LEN.start).unwrap_or(&[]),
    )?;
    push(&mut out, &SIGNATURE_BLOCK_LEN.to_le_bytes())?;
    push(&mut out, &key_id)?;
    let d = digest_of(&out, body);
    push(&mut out, &d)?;
    push(&mut out, body)?;
    Ok(out)
}

fn put_criterion(
    rt: &mut Vec<u8>,
    offs: &mut impl Iterator<Item = u32>,
    rule: usize,
    c: &Criterion,
) -> Result<(), EncodeError> {
    rt.push(c.field);
    rt.push(c.op.code());
    rt.push(if c.negate { FLAG_NEGATE } else { 0 });
    rt.push(count_u8(
        rule,
        "values",
        limits::MAX_VALUES,
        c.values.len(),
    )?);
    match &c.values {
        Values::Strs(list) => {
            for s in list {
                let off = offs.next().unwrap_or(0);
                let len = u16::try_from(s.len()).map_err(|_| {
                    limit(Some(rule), "string length", usize::from(u16::MAX), s.len())
                })?;
                rt.extend_from_slice(&off.to_le_bytes());
                rt.extend_from_slice(&len.to_le_bytes());
            }
        }
        Values::Ints(list) => list
            .iter()
            .for_each(|v| rt.extend_from_slice(&v.to_le_bytes())),
        Values::Ranges(list) => list.iter().for_each(|(lo, hi)| {
            rt.extend_from_slice(&lo.to_le_bytes());
            rt.extend_from_slice(&hi.to_le_bytes());
        }),
        Values::None => {}
    }
    let shape_ok = matches!(
        (&c.values, c.op.kind(), c.op),
        (Values::Strs(_), FieldKind::Str, _)
            | (Values::Ranges(_), _, Op::Range)
            | (Values::None, FieldKind::Flag, _)
    ) || matches!(
        (&c.values, c.op),
        (Values::Ints(_), Op::IntEquals | Op::AnyBits | Op::AllBits)
    );
    if shape_ok {
        Ok(())
    } else {
        Err(EncodeError::ValuesShape {
            rule_index: rule,
            op: c.op,
        })
    }
}
