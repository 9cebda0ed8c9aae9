//! The fuzz targets' signing key. Its seed is public (it is right here), so nothing but
//! these targets trusts it; a fixed key keeps every fuzz input reproducible.

use failsafe_loader::format::{HEADER_LEN, prepare_signed};
use failsafe_loader::trust::{CONTEXT, KeyKind, Trust, key_id};

pub fn pair() -> ed25519_compact::KeyPair {
    ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new([0x5A; 32]))
}

/// `bytes` (any content whose header reads) signed with the fuzz key; `None` when the
/// header does not read.
pub fn sign(bytes: &[u8]) -> Option<Vec<u8>> {
    let kp = pair();
    let mut out = prepare_signed(bytes, key_id(&kp.pk)).ok()?;
    let sig = kp.sk.sign([CONTEXT, &out[..HEADER_LEN]].concat(), None);
    out.extend_from_slice(&sig[..]);
    Some(out)
}

/// Trust in the fuzz key as `kind`, test signing `test_signing`.
pub fn trust(kind: KeyKind, test_signing: bool) -> Trust {
    let mut t = Trust::EMPTY;
    t.add(*pair().pk, kind).expect("room for one key");
    t.set_test_signing(test_signing);
    t
}
