//! Signed content: the signature check (`trust::verify`) and what the start sequence does
//! with a file that fails it. Keys are generated at test time.
#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]
#![allow(clippy::arithmetic_side_effects, clippy::as_conversions)]

mod common;
use common::*;

use std::collections::BTreeMap;

use failsafe_loader::state::record::{RECORD_LEN, SLOT_LEN};
use failsafe_loader::state::start::{file_digest, start_with_trust};
use failsafe_loader::state::{
    Config, ContentStore, Env, HealthEvidence, IoError, Mode, QuarantineReason, Reason, StateMedium,
};
use failsafe_loader::trust::{KeyKind, Trust, key_id, verify};
use failsafe_loader::{Action, ContentError, ErrorKind, EventType, Op, RuleSet, check, encode};

fn content(version: u64) -> failsafe_loader::Content {
    let mut c = one_rule();
    c.version = version;
    c
}

/// Offset of the signature block of a signed file.
fn sig_at(bytes: &[u8]) -> usize {
    bytes.len() - 64
}

fn refuses(bytes: &[u8], trust: &Trust) -> ContentError {
    verify(bytes, trust).expect_err("must be refused")
}

#[test]
fn a_signed_file_verifies_and_loads_as_before() {
    let k = dev_key();
    let bytes = signed(&content(7));
    let v = verify(&bytes, &trusted()).unwrap();
    assert_eq!(v.header.version, 7);
    assert_eq!(v.header.key_id, k.id());
    assert_eq!(v.header.signature_len, 64);
    assert_eq!(v.key.public, k.public());
    assert_eq!(&bytes[40..48], &k.id());
    // Structure and digest alone (tools, no keys) accept a signed file too.
    assert_eq!(check(&bytes).unwrap(), v.header);
    let a = RuleSet::load_trusted(&bytes, &trusted()).unwrap();
    let b = RuleSet::load(&bytes).unwrap();
    assert_eq!(a.version(), b.version());
    // Signing is a pure function of the file and the key: signing twice, or re-signing a
    // signed file, gives the same bytes (Ed25519 is deterministic).
    assert_eq!(k.sign(&bytes), bytes);
    // The tables are unchanged by signing: the unsigned file is a prefix minus the header.
    let unsigned = encode(&content(7)).unwrap();
    assert_eq!(&bytes[80..bytes.len() - 64], &unsigned[80..]);
    assert_eq!(key_id(&k.public()), k.id());
}

#[test]
fn unsigned_content_is_refused_with_and_without_test_signing() {
    let bytes = encode(&content(3)).unwrap();
    for test_signing in [false, true] {
        for kind in [KeyKind::Release, KeyKind::Test] {
            let e = refuses(&bytes, &dev_key().trust(kind, test_signing));
            assert_eq!(e.kind, ErrorKind::Unsigned);
            assert_eq!((e.code(), e.at.offset), ("unsigned", 36));
        }
    }
    // Checked before anything of the body: an unsigned file with a garbage body is
    // "unsigned", not a structural error.
    let mut garbage = bytes.clone();
    for b in &mut garbage[80..] {
        *b = 0xEE;
    }
    assert_eq!(refuses(&garbage, &trusted()).kind, ErrorKind::Unsigned);
}

#[test]
fn a_test_key_needs_test_signing_and_a_release_key_does_not() {
    let k = dev_key();
    let bytes = signed(&content(3));
    let e = refuses(&bytes, &k.trust(KeyKind::Test, false));
    assert_eq!(e.kind, ErrorKind::TestSigningOff { id: k.id() });
    assert_eq!((e.code(), e.at.offset), ("test-signing-off", 40));
    assert!(verify(&bytes, &k.trust(KeyKind::Test, true)).is_ok());
    assert!(verify(&bytes, &k.trust(KeyKind::Release, false)).is_ok());
    assert!(verify(&bytes, &k.trust(KeyKind::Release, true)).is_ok());
    // The same key given as both keeps the stronger kind.
    let mut t = k.trust(KeyKind::Test, false);
    t.add(k.public(), KeyKind::Release).unwrap();
    assert!(verify(&bytes, &t).is_ok());
}

#[test]
fn a_key_nobody_trusts_is_an_unknown_key() {
    let other = DevKey::generate();
    let bytes = other.sign(&encode(&content(3)).unwrap());
    let e = refuses(&bytes, &trusted());
    assert_eq!(e.kind, ErrorKind::UnknownKey { id: other.id() });
    assert_eq!((e.code(), e.at.offset), ("unknown-key", 40));
    // No keys at all (a release build of this repository): every file is refused.
    let e = refuses(&signed(&content(3)), &Trust::builtin());
    assert_eq!(e.code(), "unknown-key");
    // A key id that names no key, in a file otherwise signed right.
    let mut bytes = signed(&content(3));
    bytes[40..48].copy_from_slice(&[0xAB; 8]);
    assert_eq!(
        refuses(&bytes, &trusted()).kind,
        ErrorKind::UnknownKey { id: [0xAB; 8] }
    );
}

#[test]
fn the_wrong_key_under_a_trusted_key_id_is_a_bad_signature() {
    // An attacker signs with their own key and writes the trusted key's id into the
    // header (and recomputes the digest): the trusted key does not verify it.
    let k = dev_key();
    let attacker = DevKey::generate();
    let mut bytes = attacker.sign(&encode(&content(3)).unwrap());
    let prepared = failsafe_loader::format::prepare_signed(&bytes, k.id()).unwrap();
    bytes[..80].copy_from_slice(&prepared[..80]);
    let e = refuses(&bytes, &trusted());
    assert_eq!(e.kind, ErrorKind::BadSignature { id: k.id() });
    assert_eq!((e.code(), e.at.offset), ("bad-signature", sig_at(&bytes)));
}

#[test]
fn every_flipped_signature_byte_is_a_bad_signature() {
    let k = dev_key();
    let good = signed(&content(3));
    let at = sig_at(&good);
    for i in 0..64 {
        let mut bytes = good.clone();
        bytes[at + i] ^= 1 << (i % 8);
        let e = refuses(&bytes, &trusted());
        assert_eq!(e.kind, ErrorKind::BadSignature { id: k.id() }, "byte {i}");
        assert_eq!(e.at.offset, at);
    }
}

#[test]
fn a_flipped_body_or_header_bit_after_signing_is_refused() {
    let k = dev_key();
    let good = signed(&content(3));
    // Body: the signature (over the header) still verifies; the signed digest does not.
    for i in [80, 85, good.len() - 65] {
        let mut bytes = good.clone();
        bytes[i] ^= 0x10;
        let e = refuses(&bytes, &trusted());
        assert!(
            matches!(e.kind, ErrorKind::DigestMismatch { .. }),
            "{i}: {e}"
        );
        assert_eq!((e.code(), e.at.offset), ("digest-mismatch", 48));
    }
    // Body changed and the digest recomputed to match: now the header changed, and the
    // signature over it fails.
    let mut bytes = good.clone();
    bytes[85] ^= 0x10;
    let redigested = failsafe_loader::format::prepare_signed(&bytes, k.id()).unwrap();
    bytes[..80].copy_from_slice(&redigested[..80]);
    assert_eq!(
        refuses(&bytes, &trusted()).kind,
        ErrorKind::BadSignature { id: k.id() }
    );
    // Header: a changed version (a replay under a newer number) fails the signature.
    let mut bytes = good.clone();
    bytes[16] = 9;
    assert_eq!(
        refuses(&bytes, &trusted()).kind,
        ErrorKind::BadSignature { id: k.id() }
    );
}

#[test]
fn a_truncated_signature_is_refused() {
    let good = signed(&content(3));
    let tables_end = good.len() - 64;
    for cut in [1, 32, 63, 64] {
        let e = refuses(&good[..good.len() - cut], &trusted());
        assert_eq!(
            e.kind,
            ErrorKind::Truncated {
                what: "signature block",
                needed: 64,
                remaining: 64 - cut as u64
            }
        );
        assert_eq!((e.code(), e.at.offset), ("truncated", tables_end));
    }
    // A signature length field that lies about the block.
    let mut bytes = good.clone();
    bytes[36..40].copy_from_slice(&32u32.to_le_bytes());
    let e = refuses(&bytes, &trusted());
    assert_eq!(e.kind, ErrorKind::SignatureUnsupported { found: 32 });
    assert_eq!(e.at.offset, 36);
    // Extra bytes after the signature.
    let mut bytes = good.clone();
    bytes.push(0);
    assert_eq!(refuses(&bytes, &trusted()).code(), "trailing-bytes");
}

#[test]
fn signed_invalid_content_is_still_invalid() {
    // The signature vouches for origin, not for correctness: the validator still runs.
    let bad = failsafe_loader::Content {
        version: 4,
        rules: vec![rule(
            21,
            EventType::FileSetInfo,
            Action::Block,
            vec![flag(Op::IsTrue, 10)],
        )],
    };
    let bytes = signed(&bad);
    assert!(verify(&bytes, &trusted()).is_ok());
    let e = RuleSet::load_trusted(&bytes, &trusted()).unwrap_err();
    assert_eq!(e.code(), "field-out-of-range");
}

#[test]
fn key_lists_from_the_registry_blob() {
    let a = DevKey::generate();
    let b = DevKey::generate();
    let mut blob = a.public().to_vec();
    blob.extend_from_slice(&b.public());
    let mut t = Trust::builtin();
    assert_eq!(t.add_keys(&blob, KeyKind::Test), Ok(2));
    assert_eq!(t.find(&a.id()).unwrap().kind, KeyKind::Test);
    assert_eq!(t.find(&b.id()).unwrap().public, b.public());
    assert_eq!(
        t.add_keys(&blob[..33], KeyKind::Test),
        Err(failsafe_loader::trust::TrustError::BadLength { len: 33 })
    );
    let many: Vec<u8> = (0..9).flat_map(|_| DevKey::generate().public()).collect();
    let before = t;
    assert_eq!(
        t.add_keys(&many, KeyKind::Test),
        Err(failsafe_loader::trust::TrustError::Full)
    );
    assert_eq!(t, before, "nothing added unless all fit");
}

// ---- The start sequence: refused content is quarantined at once, never activated.

#[derive(Default)]
struct Mem {
    rec: Option<Vec<u8>>,
}

impl StateMedium for &mut Mem {
    fn read(&mut self, buf: &mut [u8; RECORD_LEN]) -> Result<bool, IoError> {
        match &self.rec {
            None => Ok(false),
            Some(r) => {
                buf.copy_from_slice(r);
                Ok(true)
            }
        }
    }
    fn write_slot(&mut self, slot: usize, bytes: &[u8; SLOT_LEN]) -> Result<(), IoError> {
        let rec = self.rec.get_or_insert_with(|| vec![0; RECORD_LEN]);
        rec[slot * SLOT_LEN..(slot + 1) * SLOT_LEN].copy_from_slice(bytes);
        Ok(())
    }
}

#[derive(Default)]
struct Store {
    files: BTreeMap<u64, Vec<u8>>,
    reads: Vec<u64>,
}

impl ContentStore for Store {
    fn versions(&mut self, out: &mut Vec<u64>) -> Result<(), IoError> {
        out.extend(self.files.keys());
        Ok(())
    }
    fn read(&mut self, version: u64, _limit: usize, buf: &mut Vec<u8>) -> Result<(), IoError> {
        self.reads.push(version);
        buf.clear();
        buf.extend_from_slice(self.files.get(&version).ok_or(IoError { code: 2 })?);
        Ok(())
    }
}

/// One start; healthy when it activated something and `healthy` says so.
fn boot(mem: &mut Mem, store: &mut Store, trust: &Trust, healthy: bool) -> Option<u64> {
    let cfg = Config::default();
    let mut s = start_with_trust(mem, store, &cfg, &Env::default(), trust);
    if healthy && let Some(act) = s.activation {
        let ev = HealthEvidence {
            uptime_secs: cfg.healthy_after_secs,
            canary: Ok(()),
        };
        assert!(s.durable.health(&act, &ev, &cfg).unwrap().unwrap().passed);
    }
    s.active.map(|(v, _)| v.version)
}

/// The variants of a refused v2 next to a good, healthy v1: each must be quarantined as
/// invalid content at its first start with its own reason, and v1 must run.
#[test]
fn refused_content_is_quarantined_at_once_with_its_reason() {
    let k = dev_key();
    let other = DevKey::generate();
    let good2 = signed(&content(2));
    let mut flipped_sig = good2.clone();
    let n = flipped_sig.len();
    flipped_sig[n - 1] ^= 0x80;
    let mut flipped_body = good2.clone();
    flipped_body[82] ^= 1;
    let mut unknown_id = good2.clone();
    unknown_id[40..48].copy_from_slice(&[7; 8]);
    let mut wrong_key = other.sign(&encode(&content(2)).unwrap());
    let p = failsafe_loader::format::prepare_signed(&wrong_key, k.id()).unwrap();
    wrong_key[..80].copy_from_slice(&p[..80]);
    let release = trusted();
    let test_off = k.trust(KeyKind::Test, false);
    let test_on = k.trust(KeyKind::Test, true);
    let cases: [(&str, Vec<u8>, &Trust, &str); 8] = [
        (
            "unsigned, test signing off",
            encode(&content(2)).unwrap(),
            &test_off,
            "unsigned",
        ),
        (
            "unsigned, test signing on",
            encode(&content(2)).unwrap(),
            &test_on,
            "unsigned",
        ),
        (
            "test key, test signing off",
            good2.clone(),
            &test_off,
            "test-signing-off",
        ),
        (
            "another key",
            other.sign(&encode(&content(2)).unwrap()),
            &release,
            "unknown-key",
        ),
        ("unknown key id", unknown_id, &release, "unknown-key"),
        (
            "wrong key under a trusted id",
            wrong_key,
            &release,
            "bad-signature",
        ),
        (
            "flipped signature bit",
            flipped_sig,
            &release,
            "bad-signature",
        ),
        (
            "flipped body bit",
            flipped_body,
            &release,
            "digest-mismatch",
        ),
    ];
    let truncated = good2[..good2.len() - 10].to_vec();
    let cases =
        cases
            .into_iter()
            .chain([("truncated signature", truncated, &release, "truncated")]);
    for (what, bytes, trust, code) in cases {
        // v1 is signed by a release key of its own, so it runs whatever `trust` says.
        let release_key = DevKey::generate();
        let mut t1 = *trust;
        t1.add(release_key.public(), KeyKind::Release).unwrap();
        let mut mem = Mem::default();
        let mut store = Store::default();
        store
            .files
            .insert(1, release_key.sign(&encode(&content(1)).unwrap()));
        assert_eq!(boot(&mut mem, &mut store, &t1, true), Some(1), "{what}");
        store.files.insert(2, bytes.clone());
        let s = start_with_trust(
            &mut mem,
            &mut store,
            &Config::default(),
            &Env::default(),
            &t1,
        );
        assert_eq!(
            s.active.as_ref().map(|(v, _)| v.version),
            Some(1),
            "{what}: v2 must never be activated"
        );
        assert_eq!(s.rejected.len(), 1, "{what}");
        assert_eq!(
            s.rejected[0].error.code(),
            code,
            "{what}: {}",
            s.rejected[0].error
        );
        assert_eq!(s.rejected[0].ver.digest, file_digest(&bytes));
        assert_eq!(
            (s.choice.mode, s.choice.reason),
            (Mode::Fallback, Reason::NewerQuarantined),
            "{what}"
        );
        let st = *s.durable.state();
        let q = st.quarantined(2).expect("quarantined at once");
        assert_eq!(q.reason, QuarantineReason::Invalid, "{what}");
        assert_eq!(
            failsafe_loader::error::code_of_ordinal(q.detail),
            Some(code),
            "{what}"
        );
        assert_eq!(st.attempts(2), 0, "{what}: a refused file is not a crash");
        assert_eq!(st.pending().map(|a| a.ver.version), Some(1));
        // It stays refused: the next start does not even read it.
        drop(s);
        store.reads.clear();
        assert_eq!(boot(&mut mem, &mut store, &t1, false), Some(1));
        assert_eq!(store.reads, vec![1], "{what}");
    }
}

#[test]
fn test_signed_content_runs_with_test_signing_on() {
    let k = dev_key();
    let mut mem = Mem::default();
    let mut store = Store::default();
    store.files.insert(1, signed(&content(1)));
    let on = k.trust(KeyKind::Test, true);
    let s = start_with_trust(
        &mut mem,
        &mut store,
        &Config::default(),
        &Env::default(),
        &on,
    );
    assert_eq!(s.active.as_ref().map(|(v, _)| v.version), Some(1));
    assert!(s.test_signing && s.report().test_signing);
    let last = s.durable.state().last.unwrap();
    assert!(last.test_signing, "the decision records test signing");
    let report = failsafe_loader::state::record::encode_report(&s.report());
    let report = failsafe_loader::state::record::decode_report(&report).unwrap();
    assert!(
        report.test_signing,
        "and the start report, through its encoding"
    );
    drop(s);
    match failsafe_loader::state::record::decode_record(mem.rec.as_ref().unwrap()) {
        failsafe_loader::state::Loaded::Ok(st) => {
            assert!(
                st.state.last.unwrap().test_signing,
                "and the record, on its medium"
            )
        }
        other => panic!("{other:?}"),
    }
    // With it off, the same file is quarantined as test-signing-off.
    let mut mem = Mem::default();
    let s = start_with_trust(
        &mut mem,
        &mut store,
        &Config::default(),
        &Env::default(),
        &k.trust(KeyKind::Test, false),
    );
    assert!(s.active.is_none());
    assert_eq!(s.rejected[0].error.code(), "test-signing-off");
    assert!(!s.durable.state().last.unwrap().test_signing);
}

/// Rollback: the version is in the signed header, so an old, validly signed file cannot
/// pose as a newer one, and as itself it is below last-known-good and never chosen.
#[test]
fn a_replayed_older_signed_version_is_refused() {
    let t = trusted();
    let v1 = signed(&content(1));
    let mut mem = Mem::default();
    let mut store = Store::default();
    store.files.insert(1, v1.clone());
    assert_eq!(boot(&mut mem, &mut store, &t, true), Some(1));
    store.files.insert(2, signed(&content(2)));
    assert_eq!(boot(&mut mem, &mut store, &t, true), Some(2));
    // v3 crash-loops and is quarantined; v2 is last-known-good.
    store.files.insert(3, signed(&content(3)));
    for _ in 0..3 {
        assert_eq!(boot(&mut mem, &mut store, &t, false), Some(3));
    }
    store.reads.clear();
    // The attacker removes v2 and replays the old signed v1 as itself: it is below
    // last-known-good, so it is never read, let alone activated.
    store.files.remove(&2);
    let s = start_with_trust(
        &mut mem,
        &mut store,
        &Config::default(),
        &Env::default(),
        &t,
    );
    assert!(s.active.is_none());
    assert_eq!(s.choice.reason, Reason::NothingUsable);
    assert_eq!(s.durable.state().lkg.map(|l| l.version), Some(2));
    assert!(store.reads.is_empty(), "read {:?}", store.reads);
    drop(s);
    // Replayed under a newer number (4.fsc): its signed header says version 1, so it is
    // refused as `version-mismatch` and quarantined at once; changing the number in the
    // header breaks the signature instead (`bad-signature`).
    store.files.insert(2, signed(&content(2)));
    store.files.insert(4, v1.clone());
    let s = start_with_trust(
        &mut mem,
        &mut store,
        &Config::default(),
        &Env::default(),
        &t,
    );
    assert_eq!(s.active.as_ref().map(|(v, _)| v.version), Some(2));
    assert_eq!(s.rejected.len(), 1);
    assert_eq!(s.rejected[0].ver.version, 4);
    assert_eq!(s.rejected[0].error.code(), "version-mismatch");
    let q = s.durable.state().quarantined(4).unwrap();
    assert_eq!(q.reason, QuarantineReason::Invalid);
    drop(s);
    let mut forged = v1.clone();
    forged[16..24].copy_from_slice(&5u64.to_le_bytes());
    store.files.insert(5, forged);
    let s = start_with_trust(
        &mut mem,
        &mut store,
        &Config::default(),
        &Env::default(),
        &t,
    );
    assert_eq!(s.active.as_ref().map(|(v, _)| v.version), Some(2));
    assert_eq!(s.rejected[0].error.code(), "bad-signature");
}
