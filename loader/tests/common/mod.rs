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

/// The tests' signing key: generated at test time (never a committed secret), trusted by
/// the [`Trust`] of [`trusted`] and nothing else.
pub struct DevKey {
    kp: ed25519_compact::KeyPair,
}

impl DevKey {
    /// A fresh random key.
    pub fn generate() -> DevKey {
        DevKey {
            kp: ed25519_compact::KeyPair::generate(),
        }
    }
    pub fn public(&self) -> [u8; 32] {
        *self.kp.pk
    }
    pub fn id(&self) -> failsafe_loader::trust::KeyId {
        failsafe_loader::trust::key_id(&self.public())
    }
    /// `bytes` (any content file) signed by this key, as `failsafectl sign` does.
    pub fn sign(&self, bytes: &[u8]) -> Vec<u8> {
        let mut p = failsafe_loader::format::prepare_signed(bytes, self.id()).unwrap();
        let msg = [failsafe_loader::trust::CONTEXT, &p[..80]].concat();
        let sig = self.kp.sk.sign(msg, None);
        p.extend_from_slice(&sig[..]);
        p
    }
    /// Trust in this key alone, as a `kind` key, test signing `test_signing`.
    pub fn trust(
        &self,
        kind: failsafe_loader::trust::KeyKind,
        test_signing: bool,
    ) -> failsafe_loader::trust::Trust {
        let mut t = failsafe_loader::trust::Trust::EMPTY;
        t.add(self.public(), kind).unwrap();
        t.set_test_signing(test_signing);
        t
    }
}

/// The key every test signs with (one per test process).
pub fn dev_key() -> &'static DevKey {
    static KEY: std::sync::OnceLock<DevKey> = std::sync::OnceLock::new();
    KEY.get_or_init(DevKey::generate)
}

/// `c` encoded and signed with [`dev_key`].
pub fn signed(c: &Content) -> Vec<u8> {
    dev_key().sign(&failsafe_loader::encode(c).unwrap())
}

/// What the tests' driver trusts: [`dev_key`] as a release key.
pub fn trusted() -> failsafe_loader::trust::Trust {
    dev_key().trust(failsafe_loader::trust::KeyKind::Release, false)
}
