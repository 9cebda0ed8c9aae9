//! The control protocol: every request decodes to what was encoded, every malformed one to
//! its specific error; responses round-trip; the audit queue is bounded, FIFO and counts
//! what it drops.
#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::panic,
    clippy::arithmetic_side_effects,
    clippy::as_conversions,
    reason = "tests: a failed expectation is a test failure"
)]

use failsafe_loader::control::ring::{
    FLAG_NOT_APPLIED, FLAG_PATH_CUT, FLAG_PROCESS_CUT, MAX_PATH_UNITS, MAX_PROCESS_UNITS,
};
use failsafe_loader::control::wire::{HEADER_LEN, MAX_EVENTS, MAX_MESSAGE, REQUEST_LEN};
use failsafe_loader::control::{
    AuditEvent, EventRing, ProtoError, Reply, Request, Status, WriteError, decode_request,
    decode_response, encode_changed, encode_refused, encode_request, encode_status, kind,
    status_flags,
};
use failsafe_loader::{Action, EventType};
use proptest::prelude::*;

fn raw(magic: &[u8; 4], proto: u16, kind: u16, arg: u64) -> Vec<u8> {
    let mut v = magic.to_vec();
    v.extend_from_slice(&proto.to_le_bytes());
    v.extend_from_slice(&kind.to_le_bytes());
    v.extend_from_slice(&arg.to_le_bytes());
    v
}

#[test]
fn requests_round_trip() {
    for req in [
        Request::Query,
        Request::Activate { version: 7 },
        Request::Activate { version: u64::MAX },
        Request::Rollback,
        Request::ReadEvents { max: 1 },
        Request::ReadEvents { max: MAX_EVENTS },
    ] {
        let bytes = encode_request(&req);
        assert_eq!(bytes.len(), REQUEST_LEN);
        assert_eq!(decode_request(&bytes), Ok(req), "{req:?}");
    }
    // The documented layout, byte for byte.
    assert_eq!(
        encode_request(&Request::Activate { version: 0x0102 }).to_vec(),
        raw(b"FSCQ", 1, 2, 0x0102)
    );
}

#[test]
fn malformed_requests_name_the_field() {
    let ok = raw(b"FSCQ", 1, kind::QUERY, 0);
    assert_eq!(
        decode_request(&ok[..15]),
        Err(ProtoError::Length {
            expected: 16,
            found: 15
        })
    );
    let mut long = ok.clone();
    long.push(0);
    assert_eq!(
        decode_request(&long),
        Err(ProtoError::Length {
            expected: 16,
            found: 17
        })
    );
    assert_eq!(
        decode_request(&[]),
        Err(ProtoError::Length {
            expected: 16,
            found: 0
        })
    );
    assert_eq!(
        decode_request(&raw(b"FSCR", 1, 1, 0)),
        Err(ProtoError::Magic { found: *b"FSCR" })
    );
    assert_eq!(
        decode_request(&raw(b"FSCQ", 2, 1, 0)),
        Err(ProtoError::Version {
            expected: 1,
            found: 2
        })
    );
    assert_eq!(
        decode_request(&raw(b"FSCQ", 1, 5, 0)),
        Err(ProtoError::Kind { found: 5 })
    );
    assert_eq!(
        decode_request(&raw(b"FSCQ", 1, 0, 0)),
        Err(ProtoError::Kind { found: 0 })
    );
    assert_eq!(
        decode_request(&raw(b"FSCQ", 1, kind::ACTIVATE, 0)),
        Err(ProtoError::Argument {
            kind: 2,
            found: 0,
            expected: "a version above 0"
        })
    );
    assert_eq!(
        decode_request(&raw(b"FSCQ", 1, kind::QUERY, 9)),
        Err(ProtoError::Argument {
            kind: 1,
            found: 9,
            expected: "0"
        })
    );
    assert_eq!(
        decode_request(&raw(b"FSCQ", 1, kind::ROLLBACK, 1)),
        Err(ProtoError::Argument {
            kind: 3,
            found: 1,
            expected: "0"
        })
    );
    for bad in [0, 65, 1 << 16, u64::MAX] {
        assert_eq!(
            decode_request(&raw(b"FSCQ", 1, kind::READ_EVENTS, bad)),
            Err(ProtoError::Argument {
                kind: 4,
                found: bad,
                expected: "1..=64 events"
            }),
            "{bad}"
        );
    }
    let e = decode_request(&raw(b"FSCQ", 1, kind::ACTIVATE, 0)).unwrap_err();
    assert_eq!(e.code(), 1005);
    assert_eq!(
        e.to_string(),
        "argument of control request kind 2: expected a version above 0, found 0"
    );
}

proptest! {
    #[test]
    fn any_bytes_decode_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
        if let Ok(req) = decode_request(&bytes) {
            // Accepted only when it is the canonical encoding of what it decoded to.
            prop_assert_eq!(&encode_request(&req).to_vec(), &bytes);
        }
        let _ = decode_response(&bytes);
    }

    #[test]
    fn status_round_trips(active in any::<u64>(), boot in any::<u64>(), lkg in any::<u64>(),
                          ms in any::<u64>(), dropped in any::<u64>(), queued in any::<u32>(),
                          up in any::<u32>(), mode in any::<u8>(), reason in any::<u8>(),
                          attempts in any::<u8>(), flags in 0u8..32, canary in any::<i64>()) {
        let s = Status { active, boot, lkg, active_ms: ms, events_dropped: dropped,
            events_queued: queued, health_uptime_secs: up, mode, reason, attempts, flags,
            canary_error: canary };
        let mut buf = [0u8; 128];
        let n = encode_status(&mut buf, &s).unwrap();
        prop_assert_eq!(n, HEADER_LEN + 64);
        let r = decode_response(&buf[..n]).unwrap();
        prop_assert_eq!(r.kind, kind::QUERY);
        prop_assert_eq!(r.reply, Reply::Status(s));
    }
}

#[test]
fn responses_check_their_lengths() {
    let mut buf = [0u8; 64];
    let n = encode_changed(&mut buf, kind::ACTIVATE, 3, 12).unwrap();
    assert_eq!(n, 32);
    let r = decode_response(&buf[..n]).unwrap();
    assert_eq!(
        r.reply,
        Reply::Changed {
            version: 3,
            boot: 12
        }
    );
    assert_eq!(
        decode_response(&buf[..n - 1]),
        Err(ProtoError::Truncated {
            what: "body",
            at: 16
        })
    );
    // A body longer than its layout (declared length 17, one byte too many).
    let mut long = buf[..n].to_vec();
    long.push(0);
    long[12] = 17;
    assert_eq!(
        decode_response(&long),
        Err(ProtoError::Length {
            expected: 32,
            found: 33
        })
    );
    // Bytes after the declared body.
    let mut trailing = buf[..n].to_vec();
    trailing.push(0);
    assert_eq!(
        decode_response(&trailing),
        Err(ProtoError::Length {
            expected: 32,
            found: 33
        })
    );
    // Unknown status flags.
    let mut sbuf = [0u8; 96];
    let n = encode_status(&mut sbuf, &Status::default()).unwrap();
    sbuf[HEADER_LEN + 51] = 0x20;
    assert_eq!(
        decode_response(&sbuf[..n]),
        Err(ProtoError::Field {
            what: "status flags",
            found: 0x20
        })
    );
    // Too small a buffer: nothing past its end, and the error says how much was needed.
    let mut small = [0u8; 20];
    assert_eq!(
        encode_status(&mut small, &Status::default()),
        Err(WriteError { need: 24, have: 20 })
    );
    assert_eq!(status_flags::KNOWN, 31);
}

#[test]
fn refusal_messages_are_cut_at_a_character() {
    let mut buf = [0u8; 512];
    let n = encode_refused(&mut buf, kind::ACTIVATE, 7, &"version 9 is quarantined").unwrap();
    let r = decode_response(&buf[..n]).unwrap();
    assert_eq!(
        r.reply,
        Reply::Refused {
            code: 7,
            message: "version 9 is quarantined"
        }
    );
    // 300 three-byte characters: cut to the last whole one within MAX_MESSAGE bytes.
    let long: String = "é€".repeat(150);
    let n = encode_refused(&mut buf, kind::ACTIVATE, 7, &long).unwrap();
    let Reply::Refused { message, .. } = decode_response(&buf[..n]).unwrap().reply else {
        panic!("not a refusal");
    };
    assert!(message.len() <= MAX_MESSAGE && message.len() > MAX_MESSAGE - 4);
    assert!(long.starts_with(message));
    // A buffer too small for the whole message keeps what fits, still whole characters.
    let mut tight = [0u8; HEADER_LEN + 4 + 10];
    let n = encode_refused(&mut tight, kind::ROLLBACK, 1001, &long).unwrap();
    let Reply::Refused { code, message } = decode_response(&tight[..n]).unwrap().reply else {
        panic!("not a refusal");
    };
    assert_eq!(code, 1001);
    assert_eq!(message, "é€é€");
}

fn ev(rule_id: u32) -> AuditEvent {
    AuditEvent {
        action: Action::Block,
        event_type: EventType::FileCreate,
        not_applied: rule_id % 2 == 1,
        rule_id,
        pid: 4000 + u64::from(rule_id),
    }
}

fn utf16(s: &str) -> Vec<u16> {
    s.encode_utf16().collect()
}

fn drain(ring: &mut EventRing, room: usize, max: u16) -> Vec<(u32, u64, u8, String, String)> {
    let mut buf = vec![0u8; room];
    let n = ring.drain_into(&mut buf, max).unwrap();
    let r = decode_response(&buf[..n]).unwrap();
    assert_eq!(r.kind, kind::READ_EVENTS);
    let Reply::Events(events) = r.reply else {
        panic!("not events");
    };
    events
        .iter()
        .map(|rec| {
            let rec = rec.unwrap();
            let text = |b: &[u8]| {
                let u: Vec<u16> = b
                    .chunks(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .collect();
                String::from_utf16(&u).unwrap()
            };
            assert_eq!(rec.action, Action::Block.code());
            assert_eq!(rec.event_type, EventType::FileCreate.code());
            (
                rec.rule_id,
                rec.pid,
                rec.flags,
                text(rec.path),
                text(rec.process),
            )
        })
        .collect()
}

#[test]
fn queue_is_bounded_fifo_and_counts_drops() {
    let mut ring = EventRing::with_capacity(3).unwrap();
    for id in 1..=5 {
        let kept = ring.push(&ev(id), &utf16(&format!("C:\\f{id}")), &utf16("C:\\p.exe"));
        assert_eq!(kept, id <= 3, "{id}");
    }
    assert_eq!((ring.len(), ring.dropped()), (3, 2));
    // `max` bounds the batch; oldest first.
    let got = drain(&mut ring, 4096, 2);
    assert_eq!(
        got,
        vec![
            (
                1,
                4001,
                FLAG_NOT_APPLIED,
                "C:\\f1".into(),
                "C:\\p.exe".into()
            ),
            (2, 4002, 0, "C:\\f2".into(), "C:\\p.exe".into()),
        ]
    );
    // Wrap around the end of the slots.
    assert!(ring.push(&ev(6), &utf16("C:\\f6"), &[]));
    assert!(ring.push(&ev(7), &utf16("C:\\f7"), &[]));
    assert!(!ring.push(&ev(8), &utf16("C:\\f8"), &[]));
    assert_eq!(ring.dropped(), 3);
    // A buffer with room for one record only returns one; the rest stays queued.
    let one = HEADER_LEN + 12 + 20 + 2 * ("C:\\f3".len() + "C:\\p.exe".len());
    let got = drain(&mut ring, one, 64);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, 3);
    let got = drain(&mut ring, 4096, 64);
    assert_eq!(
        got.iter().map(|g| g.0).collect::<Vec<_>>(),
        vec![6, 7],
        "FIFO across the wrap"
    );
    assert!(ring.is_empty());
    // The dropped count travels with every batch.
    let mut buf = [0u8; 64];
    let n = ring.drain_into(&mut buf, 1).unwrap();
    let Reply::Events(e) = decode_response(&buf[..n]).unwrap().reply else {
        panic!("not events");
    };
    assert_eq!((e.dropped, e.count), (3, 0));
}

#[test]
fn long_strings_are_cut_and_flagged() {
    let mut ring = EventRing::with_capacity(1).unwrap();
    let path = vec![u16::from(b'a'); MAX_PATH_UNITS + 5];
    let process = vec![u16::from(b'p'); MAX_PROCESS_UNITS + 1];
    assert!(ring.push(&ev(2), &path, &process));
    let got = drain(&mut ring, 8192, 1);
    assert_eq!(got[0].2, FLAG_PATH_CUT | FLAG_PROCESS_CUT);
    assert_eq!(got[0].3.len(), MAX_PATH_UNITS);
    assert_eq!(got[0].4.len(), MAX_PROCESS_UNITS);
}

#[test]
fn a_queue_without_memory_drops_everything() {
    let mut ring = EventRing::disabled();
    assert!(!ring.push(&ev(1), &utf16("C:\\x"), &[]));
    assert_eq!((ring.capacity(), ring.dropped()), (0, 1));
    let got = drain(&mut ring, 64, 64);
    assert!(got.is_empty());
    // Not even the fixed part fits: a write error, not a partial response.
    let mut tiny = [0u8; 20];
    assert_eq!(
        ring.drain_into(&mut tiny, 1),
        Err(WriteError { need: 24, have: 20 })
    );
}

#[test]
fn malformed_event_records_are_rejected() {
    let mut ring = EventRing::with_capacity(1).unwrap();
    ring.push(&ev(2), &utf16("C:\\x"), &[]);
    let mut buf = [0u8; 256];
    let n = ring.drain_into(&mut buf, 1).unwrap();
    // Unknown flag bit.
    let mut bad = buf[..n].to_vec();
    bad[HEADER_LEN + 12 + 2] = 0x80;
    assert_eq!(
        decode_response(&bad),
        Err(ProtoError::Field {
            what: "event flags",
            found: 0x80
        })
    );
    // A path length past the body.
    let mut bad = buf[..n].to_vec();
    bad[HEADER_LEN + 12 + 16] = 200;
    assert_eq!(
        decode_response(&bad),
        Err(ProtoError::Truncated {
            what: "event path",
            at: HEADER_LEN + 12 + 20
        })
    );
    // A count larger than the records present.
    let mut bad = buf[..n].to_vec();
    bad[HEADER_LEN + 8] = 2;
    assert_eq!(
        decode_response(&bad),
        Err(ProtoError::Truncated {
            what: "event record",
            at: n
        })
    );
}

#[test]
fn ioctl_and_record_codes() {
    use failsafe_loader::control::{
        IOCTL_CONTROL, MAX_RESPONSE, mode_code, mode_from_code, reason_code, reason_from_code,
    };
    use failsafe_loader::state::{Mode, Reason};
    // CTL_CODE(FILE_DEVICE_UNKNOWN, 0x900, METHOD_BUFFERED, FILE_READ_DATA | FILE_WRITE_DATA).
    assert_eq!(IOCTL_CONTROL, 0x0022_E400);
    for m in [Mode::Normal, Mode::Fallback, Mode::Safe] {
        assert_eq!(mode_from_code(mode_code(m)), Some(m));
    }
    assert_eq!(mode_from_code(0), None);
    for (i, r) in Reason::ALL.iter().enumerate() {
        assert_eq!(usize::from(reason_code(*r)), i + 1);
        assert_eq!(reason_from_code(reason_code(*r)), Some(*r));
    }
    assert_eq!(reason_from_code(0), None);
    // A full read-events answer fits MAX_RESPONSE.
    let mut ring = EventRing::with_capacity(usize::from(MAX_EVENTS)).unwrap();
    let long = vec![u16::from(b'x'); MAX_PATH_UNITS + 10];
    let ev = AuditEvent {
        action: Action::Block,
        event_type: EventType::FileCreate,
        not_applied: false,
        rule_id: 1,
        pid: 4,
    };
    for _ in 0..MAX_EVENTS {
        assert!(ring.push(&ev, &long, &long));
    }
    let mut buf = vec![0u8; MAX_RESPONSE];
    let n = ring.drain_into(&mut buf, MAX_EVENTS).unwrap();
    assert_eq!(n, MAX_RESPONSE);
    assert!(ring.is_empty());
}
