//! Raw bytes -> validator. The zero-copy check, the decoding validator and the kernel's
//! load agree on every input; valid content compiles the same both ways, evaluates, and
//! survives a re-encode.
#![no_main]

use failsafe_loader::{Event, EventType, Input, RuleSet, check, encode, validate};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let checked = check(data);
    let decoded = validate(data);
    let loaded = RuleSet::load(data);
    assert_eq!(checked, decoded.as_ref().map(|v| v.header).map_err(|e| *e));
    assert_eq!(loaded.as_ref().err(), checked.as_ref().err());
    let Ok(v) = decoded else { return };
    let rs = RuleSet::compile(&v).expect("valid content compiles");
    let loaded = loaded.expect("valid content loads");
    let path: Vec<u16> = "\\Device\\HarddiskVolume3\\Users\\a\\x.locky"
        .encode_utf16()
        .collect();
    let inputs = [Input::Str(&path), Input::Int(4), Input::Flag(true)];
    for kind in EventType::ALL {
        let ev = Event::new(kind, &inputs);
        assert_eq!(rs.evaluate(&ev), loaded.evaluate(&ev));
    }
    // What was accepted re-encodes to content that validates to the same rules.
    let again = encode(&v.content).expect("validated content encodes");
    assert_eq!(
        validate(&again)
            .expect("re-encoded content validates")
            .content,
        v.content
    );
});
