//! The control protocol between the console (`failsafectl`) and a running driver (IOCTLs on
//! its control device) or the Linux host process (a Unix socket): one request, one
//! response, both fixed-layout little-endian messages. Both ends use this module, so the
//! format is written once; `docs/control-protocol.md` describes it field by field.
//!
//! The driver decodes requests from user mode here: every length is checked against the
//! bytes given, nothing panics and nothing allocates ([`decode_request`], fuzzed by
//! `fuzz/fuzz_targets/control_decode.rs`, covered by `proof/`). Responses are written into
//! the caller's buffer ([`Writer`]), never past its end. The operator's changes of the record
//! that a running host applies for the console are [`operator`]'s.

pub mod operator;
pub mod ring;
pub mod wire;

pub use operator::{Change, ChangeRefusal};
pub use ring::{AuditEvent, EventRing};
pub use wire::{
    CONTROL_DEVICE, EventRecord, Events, IOCTL_CONTROL, IOCTL_CONTROL_READ, MAX_RESPONSE,
    ProtoError, Reply, Request, Response, Status, WriteError, Writer, admitted, decode_request,
    decode_response, encode_changed, encode_refused, encode_request, encode_status, ioctl_for,
    kind, mode_code, mode_from_code, reason_code, reason_from_code, status_flags,
};
