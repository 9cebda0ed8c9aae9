//! Raw bytes -> state record decode. A decoded slot re-encodes to a slot that decodes to
//! the same state.
#![no_main]

use failsafe_loader::state::record::{Loaded, decode_record, decode_slot, encode_slot};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Loaded::Ok(s) = decode_record(data) {
        let again = encode_slot(&s.state, s.seq);
        assert_eq!(decode_slot(&again), Some((s.state, s.seq)));
    }
    let _ = decode_slot(data);
});
