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
        Request::ReadEvents { cursor: 0 },
        Request::ReadEvents { cursor: u64::MAX },
        Request::ForceSafeMode { on: true },
        Request::ForceSafeMode { on: false },
        Request::Reset { confirmed: false },
        Request::Reset { confirmed: true },
        Request::Unquarantine {
            version: 3,
            confirmed: false,
        },
        Request::Unquarantine {
            version: 3,
            confirmed: true,
        },
    ] {
        let bytes = encode_request(&req);
        assert_eq!(bytes.len(), REQUEST_LEN);
        assert_eq!(decode_request(&bytes), Ok(req), "{req:?}");
    }
    // The documented layout, byte for byte.
    assert_eq!(
        encode_request(&Request::Activate { version: 0x0102 }).to_vec(),
        raw(b"FSCQ", 2, 2, 0x0102)
    );
}

#[test]
fn malformed_requests_name_the_field() {
    let ok = raw(b"FSCQ", 2, kind::QUERY, 0);
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
        decode_request(&raw(b"FSCR", 2, 1, 0)),
        Err(ProtoError::Magic { found: *b"FSCR" })
    );
    // Protocol 1 (read events removed what they returned) is not spoken any more.
    assert_eq!(
        decode_request(&raw(b"FSCQ", 1, 1, 0)),
        Err(ProtoError::Version {
            expected: 2,
            found: 1
        })
    );
    assert_eq!(
        decode_request(&raw(b"FSCQ", 2, 9, 0)),
        Err(ProtoError::Kind { found: 9 })
    );
    assert_eq!(
        decode_request(&raw(b"FSCQ", 2, 0, 0)),
        Err(ProtoError::Kind { found: 0 })
    );
    assert_eq!(
        decode_request(&raw(b"FSCQ", 2, kind::ACTIVATE, 0)),
        Err(ProtoError::Argument {
            kind: 2,
            found: 0,
            expected: "a version above 0"
        })
    );
    assert_eq!(
        decode_request(&raw(b"FSCQ", 2, kind::QUERY, 9)),
        Err(ProtoError::Argument {
            kind: 1,
            found: 9,
            expected: "0"
        })
    );
    assert_eq!(
        decode_request(&raw(b"FSCQ", 2, kind::ROLLBACK, 1)),
        Err(ProtoError::Argument {
            kind: 3,
            found: 1,
            expected: "0"
        })
    );
    for (k, bad, expected) in [
        (kind::FORCE_SAFE_MODE, 2, "0 (off) or 1 (on)"),
        (kind::RESET, 2, "0, or 1 (confirmed)"),
        (kind::UNQUARANTINE, 0, "a version above 0"),
        (kind::UNQUARANTINE_CONFIRMED, 0, "a version above 0"),
    ] {
        assert_eq!(
            decode_request(&raw(b"FSCQ", 2, k, bad)),
            Err(ProtoError::Argument {
                kind: k,
                found: bad,
                expected
            }),
            "kind {k}"
        );
    }
    let e = decode_request(&raw(b"FSCQ", 2, kind::ACTIVATE, 0)).unwrap_err();
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

/// A decoded event: (rule id, pid, flags, path, process).
type Row = (u32, u64, u8, String, String);

/// A read with `cursor` (events below it acknowledged), then the acknowledgement of what
/// it returned: the console's two steps in one, for the tests that look at the records.
fn drain(ring: &mut EventRing, room: usize, cursor: u64) -> Vec<Row> {
    let (first, got) = read(ring, room, cursor);
    let mut ack = [0u8; 64];
    ring.read_into(&mut ack, first + got.len() as u64).unwrap();
    got
}

/// One read: the first sequence number and the records.
fn read(ring: &mut EventRing, room: usize, cursor: u64) -> (u64, Vec<Row>) {
    let mut buf = vec![0u8; room];
    let n = ring.read_into(&mut buf, cursor).unwrap();
    let r = decode_response(&buf[..n]).unwrap();
    assert_eq!(r.kind, kind::READ_EVENTS);
    let Reply::Events(events) = r.reply else {
        panic!("not events");
    };
    let got = events
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
        .collect();
    (events.first, got)
}

#[test]
fn queue_is_bounded_fifo_and_counts_drops() {
    let mut ring = EventRing::with_capacity(3).unwrap();
    for id in 1..=5 {
        let kept = ring.push(&ev(id), &utf16(&format!("C:\\f{id}")), &utf16("C:\\p.exe"));
        assert_eq!(kept, id <= 3, "{id}");
    }
    assert_eq!((ring.len(), ring.dropped(), ring.first_seq()), (3, 2, 0));
    // A buffer with room for two records returns two, oldest first, numbered from 0.
    let rec = 20 + 2 * ("C:\\f1".len() + "C:\\p.exe".len());
    let (first, got) = read(&mut ring, HEADER_LEN + 24 + 2 * rec, 0);
    assert_eq!(first, 0);
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
    // Acknowledging them (cursor 2) makes room; wrap around the end of the slots.
    let (first, got) = read(&mut ring, 4096, 2);
    assert_eq!((first, got.len()), (2, 1));
    assert!(ring.push(&ev(6), &utf16("C:\\f6"), &[]));
    assert!(ring.push(&ev(7), &utf16("C:\\f7"), &[]));
    assert!(!ring.push(&ev(8), &utf16("C:\\f8"), &[]));
    assert_eq!(ring.dropped(), 3);
    let (first, got) = read(&mut ring, 4096, 3);
    assert_eq!(first, 3);
    assert_eq!(
        got.iter().map(|g| g.0).collect::<Vec<_>>(),
        vec![6, 7],
        "FIFO across the wrap"
    );
    let (first, got) = read(&mut ring, 4096, 5);
    assert_eq!((first, got.len()), (5, 0));
    assert!(ring.is_empty());
    // The dropped count travels with every batch.
    let mut buf = [0u8; 64];
    let n = ring.read_into(&mut buf, 5).unwrap();
    let Reply::Events(e) = decode_response(&buf[..n]).unwrap().reply else {
        panic!("not events");
    };
    assert_eq!((e.dropped, e.first, e.count), (3, 5, 0));
}

/// Events leave the queue only when a later read's cursor passes them: a response that
/// never reached the console (the I/O manager could not copy it out, the console died)
/// loses nothing; the next read returns the same events (issue 20: read-events removed
/// them before the I/O manager copied them out).
#[test]
fn a_read_leaves_events_queued_until_a_later_cursor_passes_them() {
    let mut ring = EventRing::with_capacity(4).unwrap();
    for id in 1..=3 {
        assert!(ring.push(&ev(id), &utf16("C:\\x"), &[]));
    }
    let (first, got) = read(&mut ring, 4096, 0);
    assert_eq!((first, got.len()), (0, 3));
    assert_eq!(ring.len(), 3, "a read removed what it returned");
    // The response was lost: the console asks again from where it was.
    let (first, again) = read(&mut ring, 4096, 0);
    assert_eq!((first, again), (0, got.clone()));
    // It received the first two: they leave; the third is returned again.
    let (first, rest) = read(&mut ring, 4096, 2);
    assert_eq!((first, rest), (2, got[2..].to_vec()));
    assert_eq!(ring.len(), 1);
    // A cursor past everything acknowledges everything.
    let (first, none) = read(&mut ring, 4096, u64::MAX);
    assert_eq!((first, none.len(), ring.len()), (3, 0, 0));
    // A buffer too small for the fixed part: an error, and nothing acknowledged.
    assert!(ring.push(&ev(9), &utf16("C:\\y"), &[]));
    let mut tiny = [0u8; 20];
    assert_eq!(
        ring.read_into(&mut tiny, u64::MAX),
        Err(WriteError { need: 40, have: 20 })
    );
    assert_eq!(ring.len(), 1);
}

/// Query and read events need only read access (their own IOCTL); every change needs the
/// read-write IOCTL, and arriving on the read one it is not admitted.
#[test]
fn changes_need_write_access_and_reads_do_not() {
    use failsafe_loader::control::{IOCTL_CONTROL, IOCTL_CONTROL_READ, admitted, ioctl_for};
    // CTL_CODE(FILE_DEVICE_UNKNOWN, 0x901, METHOD_BUFFERED, FILE_READ_DATA).
    assert_eq!(IOCTL_CONTROL_READ, 0x0022_6404);
    let reads = [Request::Query, Request::ReadEvents { cursor: 7 }];
    let changes = [
        Request::Activate { version: 2 },
        Request::Rollback,
        Request::ForceSafeMode { on: true },
        Request::Reset { confirmed: true },
        Request::Unquarantine {
            version: 2,
            confirmed: false,
        },
    ];
    for r in reads {
        assert!(!r.needs_write());
        assert!(admitted(IOCTL_CONTROL_READ, &r) && admitted(IOCTL_CONTROL, &r));
        assert_eq!(ioctl_for(&r), IOCTL_CONTROL_READ);
    }
    for r in changes {
        assert!(r.needs_write(), "{r:?}");
        assert!(!admitted(IOCTL_CONTROL_READ, &r), "{r:?}");
        assert!(admitted(IOCTL_CONTROL, &r));
        assert_eq!(ioctl_for(&r), IOCTL_CONTROL);
    }
    assert!(!admitted(0x0022_E404, &Request::Query));
}

#[test]
fn long_strings_are_cut_and_flagged() {
    let mut ring = EventRing::with_capacity(1).unwrap();
    let path = vec![u16::from(b'a'); MAX_PATH_UNITS + 5];
    let process = vec![u16::from(b'p'); MAX_PROCESS_UNITS + 1];
    assert!(ring.push(&ev(2), &path, &process));
    let got = drain(&mut ring, 8192, 0);
    assert_eq!(got[0].2, FLAG_PATH_CUT | FLAG_PROCESS_CUT);
    assert_eq!(got[0].3.len(), MAX_PATH_UNITS);
    assert_eq!(got[0].4.len(), MAX_PROCESS_UNITS);
}

#[test]
fn a_queue_without_memory_drops_everything() {
    let mut ring = EventRing::disabled();
    assert!(!ring.push(&ev(1), &utf16("C:\\x"), &[]));
    assert_eq!((ring.capacity(), ring.dropped()), (0, 1));
    let got = drain(&mut ring, 64, 0);
    assert!(got.is_empty());
    // Not even the fixed part fits: a write error, not a partial response.
    let mut tiny = [0u8; 20];
    assert_eq!(
        ring.read_into(&mut tiny, 0),
        Err(WriteError { need: 40, have: 20 })
    );
}

#[test]
fn malformed_event_records_are_rejected() {
    let mut ring = EventRing::with_capacity(1).unwrap();
    ring.push(&ev(2), &utf16("C:\\x"), &[]);
    let mut buf = [0u8; 256];
    let n = ring.read_into(&mut buf, 0).unwrap();
    // Unknown flag bit.
    let mut bad = buf[..n].to_vec();
    bad[HEADER_LEN + 24 + 2] = 0x80;
    assert_eq!(
        decode_response(&bad),
        Err(ProtoError::Field {
            what: "event flags",
            found: 0x80
        })
    );
    // A path length past the body.
    let mut bad = buf[..n].to_vec();
    bad[HEADER_LEN + 24 + 16] = 200;
    assert_eq!(
        decode_response(&bad),
        Err(ProtoError::Truncated {
            what: "event path",
            at: HEADER_LEN + 24 + 20
        })
    );
    // A count larger than the records present.
    let mut bad = buf[..n].to_vec();
    bad[HEADER_LEN + 16] = 2;
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
    let n = ring.read_into(&mut buf, 0).unwrap();
    assert_eq!(n, MAX_RESPONSE);
    assert_eq!(
        ring.len(),
        usize::from(MAX_EVENTS),
        "a read acknowledges nothing itself"
    );
}

// ---- The operator's changes applied by the host (control::operator).

/// A record in memory that several `Durable`s share, as the host and another writer share
/// a file.
#[derive(Clone, Default)]
struct Shared(std::rc::Rc<std::cell::RefCell<Option<Vec<u8>>>>);

impl failsafe_loader::state::StateMedium for Shared {
    fn read(
        &mut self,
        buf: &mut [u8; failsafe_loader::state::record::RECORD_LEN],
    ) -> Result<bool, failsafe_loader::state::IoError> {
        match &*self.0.borrow() {
            None => Ok(false),
            Some(r) => {
                buf.copy_from_slice(r);
                Ok(true)
            }
        }
    }
    fn write_slot(
        &mut self,
        slot: usize,
        bytes: &[u8; failsafe_loader::state::record::SLOT_LEN],
    ) -> Result<(), failsafe_loader::state::IoError> {
        use failsafe_loader::state::record::{RECORD_LEN, SLOT_LEN};
        let mut r = self.0.borrow_mut();
        let rec = r.get_or_insert_with(|| vec![0; RECORD_LEN]);
        rec[slot * SLOT_LEN..(slot + 1) * SLOT_LEN].copy_from_slice(bytes);
        Ok(())
    }
}

#[test]
fn operator_changes_are_decided_on_the_record_as_the_host_rereads_it() {
    use failsafe_loader::control::operator::{apply, changed, needs_confirmation};
    use failsafe_loader::control::{Change, ChangeRefusal};
    use failsafe_loader::state::{Durable, QEntry, QuarantineReason, State, Ver};
    let ver = |v: u64| Ver {
        version: v,
        digest: [v as u8; 32],
    };
    let q = |v: u64, reason| {
        Some(QEntry {
            ver: ver(v),
            reason,
            detail: 3,
            boot: 4,
        })
    };
    let mut s = State {
        boot: 4,
        ..State::default()
    };
    s.quarantine[0] = q(2, QuarantineReason::CrashLoop);
    s.quarantine[1] = q(3, QuarantineReason::RolledBack);
    s.quarantine[2] = q(5, QuarantineReason::Invalid);
    // What needs --yes: re-enabling a crash loop.
    assert!(needs_confirmation(&s, Change::Unquarantine(2)));
    assert!(!needs_confirmation(&s, Change::Unquarantine(3)));
    assert!(!needs_confirmation(&s, Change::Unquarantine(5)));
    assert!(needs_confirmation(&s, Change::Reset));
    assert!(!needs_confirmation(&s, Change::ForceSafeMode(true)));
    assert_eq!(
        changed(&s, Change::Unquarantine(2), false),
        Err(ChangeRefusal::NeedsConfirmation)
    );
    assert_eq!(
        changed(&s, Change::Unquarantine(9), true),
        Err(ChangeRefusal::NotQuarantined { version: 9 })
    );
    assert!(
        changed(&s, Change::Unquarantine(2), true)
            .unwrap()
            .quarantined(2)
            .is_none()
    );
    // The host's Durable was opened before another writer changed the record: apply
    // re-reads, so neither change is lost.
    let medium = Shared::default();
    let (_, mut other) = Durable::open(medium.clone());
    other.persist(&s).unwrap();
    let (_, mut host) = Durable::open(medium.clone());
    let (_, mut other) = Durable::open(medium.clone());
    other
        .persist(&changed(other.state(), Change::ForceSafeMode(true), false).unwrap())
        .unwrap();
    apply(&mut host, Change::Unquarantine(3), false).unwrap();
    let (_, now) = Durable::open(medium.clone());
    assert!(now.state().force_safe, "the other writer's change was lost");
    assert!(now.state().quarantined(3).is_none());
    // A refusal writes nothing.
    let before = medium.0.borrow().clone();
    assert_eq!(
        apply(&mut host, Change::Reset, false),
        Err(ChangeRefusal::NeedsConfirmation)
    );
    assert_eq!(*medium.0.borrow(), before);
    apply(&mut host, Change::Reset, true).unwrap();
    assert!(host.state().quarantined(2).is_none());
    // A record whose slots are both invalid now is not written over.
    *medium.0.borrow_mut() = Some(vec![0x5A; failsafe_loader::state::record::RECORD_LEN]);
    let r = apply(&mut host, Change::ForceSafeMode(false), false).unwrap_err();
    assert_eq!((r.name(), r.code()), ("state-unwritable", 12));
    assert_eq!(
        *medium.0.borrow(),
        Some(vec![0x5A; failsafe_loader::state::record::RECORD_LEN])
    );
    // Names and codes, as docs/control-protocol.md lists them.
    for (r, name, code) in [
        (ChangeRefusal::NeedsConfirmation, "needs-confirmation", 17),
        (
            ChangeRefusal::NotQuarantined { version: 1 },
            "not-quarantined",
            18,
        ),
        (ChangeRefusal::ShuttingDown, "shutting-down", 16),
    ] {
        assert_eq!((r.name(), r.code()), (name, code));
    }
    // Requests and changes map one to one.
    for (c, yes) in [
        (Change::ForceSafeMode(true), false),
        (Change::Reset, true),
        (Change::Unquarantine(4), true),
        (Change::Unquarantine(4), false),
    ] {
        assert_eq!(Change::of(&c.request(yes)), Some((c, yes)));
    }
}
