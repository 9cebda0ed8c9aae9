#![allow(dead_code)]
//! Builders shared by the loader's integration tests.

use failsafe_loader::{Action, Content, Criterion, EventType, Op, Rule, Values};
use sha2::{Digest, Sha256};

pub fn w(s: &str) -> Vec<u16> {
    s.encode_utf16().collect()
}

pub fn strs(op: Op, field: u8, vals: &[&str]) -> Criterion {
    Criterion {
        field,
        op,
        negate: false,
        values: Values::Strs(vals.iter().map(|v| w(v)).collect()),
    }
}

pub fn ints(op: Op, field: u8, vals: &[u64]) -> Criterion {
    Criterion {
        field,
        op,
        negate: false,
        values: Values::Ints(vals.to_vec()),
    }
}

pub fn flag(op: Op, field: u8) -> Criterion {
    Criterion {
        field,
        op,
        negate: false,
        values: Values::None,
    }
}

pub fn not(mut c: Criterion) -> Criterion {
    c.negate = true;
    c
}

pub fn rule(id: u32, event: EventType, action: Action, criteria: Vec<Criterion>) -> Rule {
    Rule {
        id,
        event,
        action,
        criteria,
        exceptions: vec![],
    }
}

pub fn content(rules: Vec<Rule>) -> Content {
    Content { version: 7, rules }
}

/// One rule: file-create, block, extension equals "locky".
pub fn one_rule() -> Content {
    content(vec![rule(
        100,
        EventType::FileCreate,
        Action::Block,
        vec![strs(Op::StrEquals, 2, &["locky"])],
    )])
}

/// Recomputes the header digest after a test patched bytes.
pub fn refix(bytes: &mut [u8]) {
    let mut h = Sha256::new();
    h.update(&bytes[..48]);
    h.update(&bytes[80..]);
    let d: [u8; 32] = h.finalize().into();
    bytes[48..80].copy_from_slice(&d);
}

pub fn put_u32(bytes: &mut [u8], at: usize, v: u32) {
    bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
