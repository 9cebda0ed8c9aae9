//! Raw bytes -> control request and response decode (the driver decodes requests from user
//! mode; the console decodes the driver's responses). An accepted request is exactly the
//! canonical encoding of what it decoded to; a decoded response re-encodes to itself.
#![no_main]

use failsafe_loader::control::{
    Reply, decode_request, decode_response, encode_changed, encode_refused, encode_request,
    encode_status,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = decode_request(data) {
        assert_eq!(&encode_request(&req)[..], data);
    }
    if let Ok(r) = decode_response(data) {
        let mut buf = vec![0u8; data.len().max(64)];
        let n = match r.reply {
            Reply::Status(s) => encode_status(&mut buf, &s),
            Reply::Changed { version, boot } => encode_changed(&mut buf, r.kind, version, boot),
            Reply::Refused { code, message } => encode_refused(&mut buf, r.kind, code, &message),
            Reply::Events(e) => {
                // Every record was validated by the decode; walking them again must agree.
                assert_eq!(e.iter().filter(|x| x.is_ok()).count(), usize::from(e.count));
                return;
            }
        };
        let n = n.unwrap_or_else(|e| panic!("re-encode failed: {e}"));
        // Reserved bytes are not checked by the decoder: compare what it reads.
        assert_eq!(decode_response(&buf[..n]), Ok(r));
    }
});
