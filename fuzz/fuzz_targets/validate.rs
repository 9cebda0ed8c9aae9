//! Raw bytes -> validator. Valid content must compile, evaluate, and survive a re-encode.
#![no_main]

use failsafe_loader::{Event, EventType, Input, RuleSet, encode, validate};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(v) = validate(data) else { return };
    let rs = RuleSet::compile(&v).expect("valid content compiles");
    let path: Vec<u16> = "\\Device\\HarddiskVolume3\\Users\\a\\x.locky".encode_utf16().collect();
    let inputs = [Input::Str(&path), Input::Int(4), Input::Flag(true)];
    for kind in EventType::ALL {
        let _ = rs.evaluate(&Event::new(kind, &inputs));
    }
    // What was accepted re-encodes to content that validates to the same rules.
    let again = encode(&v.content).expect("validated content encodes");
    assert_eq!(validate(&again).expect("re-encoded content validates").content, v.content);
});
