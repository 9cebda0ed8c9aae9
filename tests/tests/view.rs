//! `view::view` (what `failsafectl inspect` and `test` read) accepts exactly what `validate`
//! accepts, with the same error, and decodes to the same content: on the golden files, on
//! every truncation of one, and on every byte of its tables changed (the digest fixed up so
//! that the structural checks, not the digest, decide).

use failsafe_loader::state::start::file_digest;
use failsafe_loader::view::view;
use failsafe_loader::{Criterion, Rule, validate};
use failsafe_tests::root;

fn golden(name: &str) -> Vec<u8> {
    std::fs::read(root().join("golden").join(format!("{name}.fsc"))).expect("golden file")
}

/// The view's rules decoded (strings as authored), in the owned content's shape.
fn decoded(bytes: &[u8]) -> Vec<Rule> {
    let v = view(bytes).expect("view");
    let crits = |list: &[failsafe_loader::view::CritRef]| -> Vec<Criterion> {
        list.iter()
            .map(|c| v.criterion(c, false).expect("decode"))
            .collect()
    };
    v.rules()
        .iter()
        .map(|r| Rule {
            id: r.id,
            event: r.event,
            action: r.action,
            criteria: crits(v.criteria(r)),
            exceptions: v.exceptions(r).map(crits).collect(),
        })
        .collect()
}

/// Bytes 48..80 hold the file digest: SHA-256 over bytes 0..48 and everything after it.
fn fix_digest(b: &mut [u8]) {
    let mut covered = b[..48].to_vec();
    covered.extend_from_slice(&b[80..]);
    let d = file_digest(&covered);
    b[48..80].copy_from_slice(&d);
}

#[test]
fn a_view_decodes_what_validate_decodes() {
    for name in ["empty", "sample-v1", "every-operator"] {
        let bytes = golden(name);
        let owned = validate(&bytes).expect("golden validates");
        assert_eq!(view(&bytes).expect("view").header, owned.header, "{name}");
        assert_eq!(decoded(&bytes), owned.content.rules, "{name}");
    }
}

#[test]
fn a_view_refuses_what_validate_refuses_with_the_same_error() {
    let bytes = golden("every-operator");
    let (mut refused, mut accepted) = (0, 0);
    let mut same = |b: &[u8], what: &str| match (validate(b), view(b)) {
        (Ok(o), Ok(_)) => {
            assert_eq!(decoded(b), o.content.rules, "{what}");
            accepted += 1;
        }
        (Err(e), Err(f)) => {
            assert_eq!(f, e, "{what}");
            refused += 1;
        }
        (o, v) => panic!("{what}: validate {:?}, view {:?}", o.err(), v.err()),
    };
    for len in 0..bytes.len() {
        same(&bytes[..len], &format!("truncated to {len}"));
    }
    for at in 0..bytes.len() {
        for x in [0x01u8, 0x80, 0xFF] {
            let mut b = bytes.clone();
            b[at] ^= x;
            if !(48..80).contains(&at) {
                fix_digest(&mut b);
            }
            same(&b, &format!("byte {at} ^ {x:#x}"));
        }
    }
    // Both outcomes were exercised: structural refusals, and changes that stay valid.
    assert!(refused > bytes.len(), "{refused} refused");
    assert!(accepted > 0, "{accepted} accepted");
}
