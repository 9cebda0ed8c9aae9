//! Raw bytes -> the kernel's authenticity check (`trust::verify`) and the trusted load.
//! For any input: no panic; verification agrees with the structural check on every header
//! error (they share `read_header`) and never accepts what the validator's header or
//! digest check refuses; a file passes only if a trusted key signed exactly these bytes.
//! Inputs that are valid content are also signed with the fuzz key: then the signed file
//! verifies and loads like the original, and a single flipped bit anywhere in it (header,
//! tables or signature) makes verification or validation fail.
#![no_main]

#[path = "common/key.rs"]
mod key;

use failsafe_loader::trust::{KeyKind, verify};
use failsafe_loader::format::read_header;
use failsafe_loader::{ErrorKind, RuleSet, check};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, bytes)) = data.split_first() else {
        return;
    };
    let kind = if sel & 1 == 0 { KeyKind::Release } else { KeyKind::Test };
    let trust = key::trust(kind, sel & 2 != 0);
    let verified = verify(bytes, &trust);
    let checked = check(bytes);
    // Header and size errors come from the same reader, first, in both.
    if let Err(e) = read_header(bytes) {
        assert_eq!(verified.as_ref().err(), Some(&e));
        assert_eq!(checked.as_ref().err(), Some(&e));
    }
    if let Ok(v) = &verified {
        // Only the fuzz key's own signature gets here: the digest held too.
        assert_eq!(v.key.id, v.header.key_id);
        assert!(!matches!(
            checked.as_ref().err().map(|e| e.kind),
            Some(ErrorKind::DigestMismatch { .. })
        ));
        if let Ok(h) = &checked {
            assert_eq!(v.header, *h);
        }
    }
    // The trusted load is verification, then the validator.
    let loaded = RuleSet::load_trusted(bytes, &trust);
    match (&verified, &loaded) {
        (Err(e), l) => assert_eq!(l.as_ref().err(), Some(e)),
        (Ok(_), l) => assert_eq!(l.as_ref().err(), checked.as_ref().err()),
    }

    // Valid content, signed with the fuzz key.
    if checked.is_err() {
        return;
    }
    let Some(signed) = key::sign(bytes) else {
        return;
    };
    let release = key::trust(KeyKind::Release, false);
    let v = verify(&signed, &release).expect("freshly signed content verifies");
    assert_eq!(v.header.version, checked.as_ref().map(|h| h.version).unwrap_or(0));
    let rs = RuleSet::load_trusted(&signed, &release).expect("and loads");
    assert_eq!(Some(rs.len()), RuleSet::load(bytes).ok().map(|r| r.len()));
    if sel & 4 == 0 {
        // Unless test signing is on, a test key does not verify.
        let e = verify(&signed, &key::trust(KeyKind::Test, false)).unwrap_err();
        assert!(matches!(e.kind, ErrorKind::TestSigningOff { .. }));
    }
    let bit = usize::from(sel) | (data.len() << 8);
    let at = (bit >> 3) % signed.len();
    let mut flipped = signed.clone();
    flipped[at] ^= 1 << (bit & 7);
    assert!(
        verify(&flipped, &release).is_err(),
        "a flipped bit at byte {at} of {} still verified",
        signed.len()
    );
});
