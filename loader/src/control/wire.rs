//! Message layouts, written once as field offsets (`docs/control-protocol.md`).
//!
//! Request, [`REQUEST_LEN`] bytes exactly:
//!
//! | offset | size | field                                                        |
//! |--------|------|--------------------------------------------------------------|
//! | 0      | 4    | magic `FSCQ`                                                 |
//! | 4      | 2    | protocol version ([`PROTOCOL`])                              |
//! | 6      | 2    | kind ([`kind`]): 1 query, 2 activate, 3 rollback, 4 read events, 5 force-safe-mode, 6 reset, 7 unquarantine, 8 unquarantine (confirmed) |
//! | 8      | 8    | argument: activate, unquarantine: version (> 0); read events: the cursor; force-safe-mode: 0 off, 1 on; reset: 0, or 1 confirmed; else 0 |
//!
//! Response: a [`HEADER_LEN`]-byte header, then `body_len` bytes:
//!
//! | offset | size | field                                                        |
//! |--------|------|--------------------------------------------------------------|
//! | 0      | 4    | magic `FSCR`                                                 |
//! | 4      | 2    | protocol version                                             |
//! | 6      | 2    | kind of the request answered (0: the request was not decoded) |
//! | 8      | 2    | status: 0 ok; 1..=999 a refusal's code; 1000.. a protocol error |
//! | 10     | 2    | reserved, 0                                                  |
//! | 12     | 4    | body length                                                  |
//!
//! Access (Windows): query and read events travel on [`IOCTL_CONTROL_READ`], which a handle
//! opened for reading may send; every change needs [`IOCTL_CONTROL`] (read and write
//! access), and arriving on the read IOCTL it is refused ([`admitted`]).

use core::fmt;

use untrusted::{Input, Reader};

use super::ring::{FLAG_KNOWN, RECORD_HEAD};
use crate::state::record::{Mode, Reason};

/// Protocol version this build speaks: 2 since read events acknowledge by cursor and the
/// operator's changes joined (1: read events removed what they returned).
pub const PROTOCOL: u16 = 2;
/// Length of every request.
pub const REQUEST_LEN: usize = 16;
/// Length of a response header.
pub const HEADER_LEN: usize = 16;
/// Length of a status body.
pub const STATUS_LEN: usize = 64;
/// Length of the body answering a successful change.
pub const CHANGED_LEN: usize = 16;
/// Largest refusal message, in bytes of UTF-8 (longer messages are cut at a character).
pub const MAX_MESSAGE: usize = 240;
/// Most events one read-events response carries.
pub const MAX_EVENTS: u16 = 64;
/// A response buffer this large holds any answer but a read-events one (which fills what
/// it is given).
pub const MIN_RESPONSE: usize = HEADER_LEN + 4 + MAX_MESSAGE;
/// Status codes from here up are protocol errors ([`ProtoError::code`]); below, refusals.
pub const PROTO_ERROR_BASE: u16 = 1000;

/// Largest response to a read-events request: the fixed part and [`MAX_EVENTS`] records
/// with their longest strings. A console buffer this large receives any answer whole.
pub const MAX_RESPONSE: usize = HEADER_LEN
    + EVENTS_HEAD
    + MAX_EVENTS_USIZE
        * (super::ring::RECORD_HEAD
            + 2 * (super::ring::MAX_PATH_UNITS + super::ring::MAX_PROCESS_UNITS));

/// [`MAX_EVENTS`] as a length.
const MAX_EVENTS_USIZE: usize = 64;
const _: () = assert!(MAX_EVENTS == 64);

/// `CTL_CODE(DeviceType, Function, Method, Access)` of `winioctl.h`.
pub const fn ctl_code(device_type: u32, function: u32, method: u32, access: u32) -> u32 {
    (device_type << 16) | (access << 14) | (function << 2) | method
}

/// The IOCTL of every request, changes included: `CTL_CODE(FILE_DEVICE_UNKNOWN (0x22),
/// 0x900, METHOD_BUFFERED (0), FILE_READ_DATA | FILE_WRITE_DATA (3))` = 0x0022_E400. The I/O
/// manager sends it only on a handle opened with read and write access.
pub const IOCTL_CONTROL: u32 = ctl_code(0x22, 0x900, 0, 3);

/// The IOCTL of the requests that change nothing durable (query, read events):
/// `CTL_CODE(FILE_DEVICE_UNKNOWN, 0x901, METHOD_BUFFERED, FILE_READ_DATA (1))` =
/// 0x0022_6404, which a handle opened for reading only may send (least privilege for
/// `status` and `watch`).
pub const IOCTL_CONTROL_READ: u32 = ctl_code(0x22, 0x901, 0, 1);

/// Whether `req` may be carried by `ioctl`: anything by [`IOCTL_CONTROL`], only requests
/// that need no write access by [`IOCTL_CONTROL_READ`] (the I/O manager checked the
/// handle's access against the IOCTL's; this checks the request against the IOCTL).
pub const fn admitted(ioctl: u32, req: &Request) -> bool {
    ioctl == IOCTL_CONTROL || (ioctl == IOCTL_CONTROL_READ && !req.needs_write())
}

/// The IOCTL the console sends `req` with: the read one when it suffices.
pub const fn ioctl_for(req: &Request) -> u32 {
    if req.needs_write() {
        IOCTL_CONTROL
    } else {
        IOCTL_CONTROL_READ
    }
}

/// The control device as user mode opens it (`CreateFileW`); the driver creates
/// `\Device\FailsafeFlt` with the symbolic link `\DosDevices\FailsafeFlt`.
pub const CONTROL_DEVICE: &str = r"\\.\FailsafeFlt";

/// Record code of a mode ([`Status::mode`]): normal 1, fallback 2, safe 3 (the record's).
pub const fn mode_code(m: Mode) -> u8 {
    match m {
        Mode::Normal => 1,
        Mode::Fallback => 2,
        Mode::Safe => 3,
    }
}

/// The mode a [`Status::mode`] code stands for (0 or unknown: `None`).
pub const fn mode_from_code(c: u8) -> Option<Mode> {
    match c {
        1 => Some(Mode::Normal),
        2 => Some(Mode::Fallback),
        3 => Some(Mode::Safe),
        _ => None,
    }
}

/// Record code of a reason ([`Status::reason`]): its position in [`Reason::ALL`] plus 1.
pub fn reason_code(r: Reason) -> u8 {
    let pos = Reason::ALL.iter().position(|x| *x == r).unwrap_or(0);
    u8::try_from(pos).unwrap_or(0).saturating_add(1)
}

/// The reason a [`Status::reason`] code stands for (0 or unknown: `None`).
pub fn reason_from_code(c: u8) -> Option<Reason> {
    Reason::ALL.get(usize::from(c.checked_sub(1)?)).copied()
}

const REQUEST_MAGIC: [u8; 4] = *b"FSCQ";
const RESPONSE_MAGIC: [u8; 4] = *b"FSCR";

/// Request kinds.
pub mod kind {
    /// Query the live state.
    pub const QUERY: u16 = 1;
    /// Activate a version from the store.
    pub const ACTIVATE: u16 = 2;
    /// Return to last-known-good.
    pub const ROLLBACK: u16 = 3;
    /// Read queued audit events (and acknowledge those before the cursor).
    pub const READ_EVENTS: u16 = 4;
    /// The operator's force-safe-mode switch in the record (argument 0 off, 1 on).
    pub const FORCE_SAFE_MODE: u16 = 5;
    /// The operator's reset of the record (argument 1: confirmed, `--yes`).
    pub const RESET: u16 = 6;
    /// Release a version from quarantine (argument: the version).
    pub const UNQUARANTINE: u16 = 7;
    /// Release a version from quarantine, confirmed (`--yes`).
    pub const UNQUARANTINE_CONFIRMED: u16 = 8;
}

/// A decoded request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// The live state.
    Query,
    /// Activate `version` from the store, through the boot-attempt counter.
    Activate {
        /// Content version (> 0).
        version: u64,
    },
    /// Return to last-known-good.
    Rollback,
    /// Queued audit events, oldest first; those numbered below `cursor` were received by
    /// the console and leave the queue first.
    ReadEvents {
        /// The sequence number of the first event not yet received (0 at first).
        cursor: u64,
    },
    /// The operator's switch in the record (`failsafectl recover force-safe-mode`).
    ForceSafeMode {
        /// On or off.
        on: bool,
    },
    /// The operator's reset (`failsafectl recover reset`).
    Reset {
        /// `--yes`: allowed to re-enable crash-looping content.
        confirmed: bool,
    },
    /// Release `version` from quarantine (`failsafectl recover unquarantine`).
    Unquarantine {
        /// Version (> 0).
        version: u64,
        /// `--yes`: allowed to re-enable a crash-looping version.
        confirmed: bool,
    },
}

impl Request {
    /// Wire kind.
    pub const fn kind(self) -> u16 {
        match self {
            Request::Query => kind::QUERY,
            Request::Activate { .. } => kind::ACTIVATE,
            Request::Rollback => kind::ROLLBACK,
            Request::ReadEvents { .. } => kind::READ_EVENTS,
            Request::ForceSafeMode { .. } => kind::FORCE_SAFE_MODE,
            Request::Reset { .. } => kind::RESET,
            Request::Unquarantine {
                confirmed: false, ..
            } => kind::UNQUARANTINE,
            Request::Unquarantine {
                confirmed: true, ..
            } => kind::UNQUARANTINE_CONFIRMED,
        }
    }

    /// Whether the request changes the record or the running content (then it needs
    /// write access to the control device); query and read events do not.
    pub const fn needs_write(&self) -> bool {
        !matches!(self, Request::Query | Request::ReadEvents { .. })
    }
}

/// A message that does not follow the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtoError {
    /// Wrong total length.
    Length {
        /// What the message needs.
        expected: usize,
        /// What was given.
        found: usize,
    },
    /// Not a Failsafe control message.
    Magic {
        /// The first four bytes.
        found: [u8; 4],
    },
    /// A protocol version this build does not speak.
    Version {
        /// This build's.
        expected: u16,
        /// The message's.
        found: u16,
    },
    /// An unknown request kind.
    Kind {
        /// The kind given.
        found: u16,
    },
    /// An argument out of range for its kind.
    Argument {
        /// The request kind.
        kind: u16,
        /// The argument given.
        found: u64,
        /// What the kind accepts.
        expected: &'static str,
    },
    /// A response body shorter than its layout or its declared length.
    Truncated {
        /// The field being read.
        what: &'static str,
        /// Its offset in the message.
        at: usize,
    },
    /// A response field with a value outside its range.
    Field {
        /// The field.
        what: &'static str,
        /// The value found.
        found: u64,
    },
    /// A status code that is not a protocol error (decoding a status as one).
    Unknown {
        /// The code.
        code: u16,
    },
}

impl ProtoError {
    /// Status code on the wire (>= [`PROTO_ERROR_BASE`]).
    pub const fn code(&self) -> u16 {
        let n = match self {
            ProtoError::Length { .. } => 1,
            ProtoError::Magic { .. } => 2,
            ProtoError::Version { .. } => 3,
            ProtoError::Kind { .. } => 4,
            ProtoError::Argument { .. } => 5,
            ProtoError::Truncated { .. } => 6,
            ProtoError::Field { .. } => 7,
            ProtoError::Unknown { .. } => 8,
        };
        PROTO_ERROR_BASE.saturating_add(n)
    }
}

impl fmt::Display for ProtoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtoError::Length { expected, found } => write!(
                f,
                "control message length: expected {expected} bytes, found {found}"
            ),
            ProtoError::Magic { found } => write!(
                f,
                "control message magic: expected \"FSCQ\"/\"FSCR\", found {:02x?}",
                found
            ),
            ProtoError::Version { expected, found } => write!(
                f,
                "control protocol version: expected {expected}, found {found}"
            ),
            ProtoError::Kind { found } => write!(
                f,
                "control request kind: expected 1 (query), 2 (activate), 3 (rollback), 4 (read events), 5 (force-safe-mode), 6 (reset), 7 or 8 (unquarantine), found {found}"
            ),
            ProtoError::Argument {
                kind,
                found,
                expected,
            } => write!(
                f,
                "argument of control request kind {kind}: expected {expected}, found {found}"
            ),
            ProtoError::Truncated { what, at } => {
                write!(f, "control response truncated: {what} at byte {at}")
            }
            ProtoError::Field { what, found } => {
                write!(f, "control response field {what} out of range: {found}")
            }
            ProtoError::Unknown { code } => write!(f, "unknown control status code {code}"),
        }
    }
}

/// Decodes a request from user mode. Exactly [`REQUEST_LEN`] bytes; every field checked.
pub fn decode_request(bytes: &[u8]) -> Result<Request, ProtoError> {
    if bytes.len() != REQUEST_LEN {
        return Err(ProtoError::Length {
            expected: REQUEST_LEN,
            found: bytes.len(),
        });
    }
    let mut r = Reader::new(Input::from(bytes));
    let trunc = |what| ProtoError::Truncated { what, at: 0 };
    let magic = read4(&mut r).ok_or(trunc("magic"))?;
    if magic != REQUEST_MAGIC {
        return Err(ProtoError::Magic { found: magic });
    }
    let proto = read_u16(&mut r).ok_or(trunc("version"))?;
    if proto != PROTOCOL {
        return Err(ProtoError::Version {
            expected: PROTOCOL,
            found: proto,
        });
    }
    let kind = read_u16(&mut r).ok_or(trunc("kind"))?;
    let arg = read_u64(&mut r).ok_or(trunc("argument"))?;
    let bad = |expected| ProtoError::Argument {
        kind,
        found: arg,
        expected,
    };
    match kind {
        kind::QUERY if arg == 0 => Ok(Request::Query),
        kind::ROLLBACK if arg == 0 => Ok(Request::Rollback),
        kind::QUERY | kind::ROLLBACK => Err(bad("0")),
        kind::ACTIVATE if arg > 0 => Ok(Request::Activate { version: arg }),
        kind::READ_EVENTS => Ok(Request::ReadEvents { cursor: arg }),
        kind::FORCE_SAFE_MODE if arg <= 1 => Ok(Request::ForceSafeMode { on: arg == 1 }),
        kind::FORCE_SAFE_MODE => Err(bad("0 (off) or 1 (on)")),
        kind::RESET if arg <= 1 => Ok(Request::Reset {
            confirmed: arg == 1,
        }),
        kind::RESET => Err(bad("0, or 1 (confirmed)")),
        kind::UNQUARANTINE | kind::UNQUARANTINE_CONFIRMED if arg > 0 => Ok(Request::Unquarantine {
            version: arg,
            confirmed: kind == kind::UNQUARANTINE_CONFIRMED,
        }),
        kind::ACTIVATE | kind::UNQUARANTINE | kind::UNQUARANTINE_CONFIRMED => {
            Err(bad("a version above 0"))
        }
        found => Err(ProtoError::Kind { found }),
    }
}

/// Encodes a request (the console's side).
pub fn encode_request(req: &Request) -> [u8; REQUEST_LEN] {
    let arg = match *req {
        Request::Activate { version } | Request::Unquarantine { version, .. } => version,
        Request::ReadEvents { cursor } => cursor,
        Request::ForceSafeMode { on: flag } | Request::Reset { confirmed: flag } => u64::from(flag),
        Request::Query | Request::Rollback => 0,
    };
    let mut out = [0u8; REQUEST_LEN];
    let mut w = Writer::new(&mut out);
    // Cannot fail: the fields add up to REQUEST_LEN.
    let _ = w
        .bytes(&REQUEST_MAGIC)
        .and_then(|()| w.u16(PROTOCOL))
        .and_then(|()| w.u16(req.kind()))
        .and_then(|()| w.u64(arg));
    out
}

/// The live state, as the query answers it. Layout ([`STATUS_LEN`] bytes):
///
/// | offset | size | field |
/// |--------|------|-------|
/// | 0  | 8 | active version (0: none) |
/// | 8  | 8 | boot sequence number of the record |
/// | 16 | 8 | last-known-good version (0: none) |
/// | 24 | 8 | milliseconds since the active content was activated (or swapped in) |
/// | 32 | 8 | audit events dropped since the driver started |
/// | 40 | 4 | audit events queued |
/// | 44 | 4 | uptime of the last health check, seconds |
/// | 48 | 1 | mode code (record format) |
/// | 49 | 1 | reason code of the last decision (record format) |
/// | 50 | 1 | unclean ends charged to the active version |
/// | 51 | 1 | flags: 1 activated live, 2 healthy, 4 force-safe switch on, 8 a health check ran, 16 its canary failed |
/// | 52 | 4 | reserved, 0 |
/// | 56 | 8 | the canary's OS error code (0 unless flag 16) |
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// Version active (0: none).
    pub active: u64,
    /// Boot sequence number of the record.
    pub boot: u64,
    /// Last-known-good version (0: none).
    pub lkg: u64,
    /// Milliseconds since the active content was activated.
    pub active_ms: u64,
    /// Audit events dropped (queue full or no queue).
    pub events_dropped: u64,
    /// Audit events queued.
    pub events_queued: u32,
    /// Uptime of the last health check (seconds).
    pub health_uptime_secs: u32,
    /// Mode code of the last decision (the record's code).
    pub mode: u8,
    /// Reason code of the last decision (the record's code).
    pub reason: u8,
    /// Unclean ends charged to the active version.
    pub attempts: u8,
    /// `status_flags` bits.
    pub flags: u8,
    /// The last health check's canary error (0: none).
    pub canary_error: i64,
}

/// Bits of [`Status::flags`].
pub mod status_flags {
    /// The active content was activated live (not at start).
    pub const LIVE: u8 = 1;
    /// The active content has passed its health check.
    pub const HEALTHY: u8 = 2;
    /// The operator's force-safe switch is on.
    pub const FORCE_SAFE: u8 = 4;
    /// A health check has run for the active content.
    pub const CHECKED: u8 = 8;
    /// That check's canary failed.
    pub const CANARY_FAILED: u8 = 16;
    /// Every defined bit.
    pub const KNOWN: u8 = 31;
}

/// A decoded response (the console's side).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Response<'a> {
    /// Kind of the request it answers (0: the request was not decoded).
    pub kind: u16,
    /// The answer.
    pub reply: Reply<'a>,
}

/// What a response says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply<'a> {
    /// The live state.
    Status(Status),
    /// The change (activation, rollback, or an operator's change of the record) happened:
    /// `version` (0: none) is active.
    Changed {
        /// Active version now.
        version: u64,
        /// Boot sequence number of the record.
        boot: u64,
    },
    /// Refused (status 1..=999, the refusal's code) or a protocol error (1000..).
    Refused {
        /// Status code.
        code: u16,
        /// The responder's message.
        message: &'a str,
    },
    /// Audit events.
    Events(Events<'a>),
}

/// Audit events in a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Events<'a> {
    /// Dropped since the driver started.
    pub dropped: u64,
    /// Sequence number of the first record (with none: of the next event to be queued);
    /// the records are numbered from it, one by one.
    pub first: u64,
    /// Records in `records`.
    pub count: u16,
    records: &'a [u8],
}

/// One audit event as read from a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventRecord<'a> {
    /// Action code of the matching rule (`schema::Action`).
    pub action: u8,
    /// Event type code (`schema::EventType`).
    pub event_type: u8,
    /// `ring::FLAG_*` bits.
    pub flags: u8,
    /// The rule's id.
    pub rule_id: u32,
    /// Process id.
    pub pid: u64,
    /// Path, UTF-16LE bytes.
    pub path: &'a [u8],
    /// Process image, UTF-16LE bytes (empty when unknown).
    pub process: &'a [u8],
}

impl<'a> Events<'a> {
    /// The records, each decoded or the error that stopped the walk.
    pub fn iter(&self) -> impl Iterator<Item = Result<EventRecord<'a>, ProtoError>> + 'a {
        let mut r = Reader::new(Input::from(self.records));
        let mut left = self.count;
        let mut at = HEADER_LEN.saturating_add(EVENTS_HEAD);
        core::iter::from_fn(move || {
            if left == 0 {
                return None;
            }
            left = left.saturating_sub(1);
            let rec = read_record(&mut r, &mut at);
            if rec.is_err() {
                left = 0;
            }
            Some(rec)
        })
    }
}

/// The fixed part of a read-events body: dropped u64, first u64, count u16, reserved u16
/// and u32.
pub(crate) const EVENTS_HEAD: usize = 24;

fn read_record<'a>(r: &mut Reader<'a>, at: &mut usize) -> Result<EventRecord<'a>, ProtoError> {
    let t = |what, at: usize| ProtoError::Truncated { what, at };
    let start = *at;
    let head = r
        .read_bytes(RECORD_HEAD)
        .map_err(|_| t("event record", start))?;
    let mut h = Reader::new(head);
    let (action, event_type, flags) = (
        read_u8(&mut h).ok_or(t("event action", start))?,
        read_u8(&mut h).ok_or(t("event type", start))?,
        read_u8(&mut h).ok_or(t("event flags", start))?,
    );
    let _reserved = read_u8(&mut h);
    let rule_id = read_u32(&mut h).ok_or(t("rule id", start))?;
    let pid = read_u64(&mut h).ok_or(t("process id", start))?;
    let path_len = read_u16(&mut h).ok_or(t("path length", start))?;
    let process_len = read_u16(&mut h).ok_or(t("process length", start))?;
    if flags & !FLAG_KNOWN != 0 {
        return Err(ProtoError::Field {
            what: "event flags",
            found: u64::from(flags),
        });
    }
    *at = start.saturating_add(RECORD_HEAD);
    let path = r
        .read_bytes(usize::from(path_len).saturating_mul(2))
        .map_err(|_| t("event path", *at))?;
    *at = at.saturating_add(path.len());
    let process = r
        .read_bytes(usize::from(process_len).saturating_mul(2))
        .map_err(|_| t("event process", *at))?;
    *at = at.saturating_add(process.len());
    Ok(EventRecord {
        action,
        event_type,
        flags,
        rule_id,
        pid,
        path: path.as_slice_less_safe(),
        process: process.as_slice_less_safe(),
    })
}

/// Decodes a response (the console's side): header, then the body its kind and status
/// call for, with the declared length checked against the bytes.
pub fn decode_response(bytes: &[u8]) -> Result<Response<'_>, ProtoError> {
    let mut r = Reader::new(Input::from(bytes));
    let t = |what, at| ProtoError::Truncated { what, at };
    let magic = read4(&mut r).ok_or(t("magic", 0))?;
    if magic != RESPONSE_MAGIC {
        return Err(ProtoError::Magic { found: magic });
    }
    let proto = read_u16(&mut r).ok_or(t("version", 4))?;
    if proto != PROTOCOL {
        return Err(ProtoError::Version {
            expected: PROTOCOL,
            found: proto,
        });
    }
    let kind = read_u16(&mut r).ok_or(t("kind", 6))?;
    let status = read_u16(&mut r).ok_or(t("status", 8))?;
    let _reserved = read_u16(&mut r).ok_or(t("reserved", 10))?;
    let body_len = read_u32(&mut r).ok_or(t("body length", 12))?;
    let body_len = usize::try_from(body_len).unwrap_or(usize::MAX);
    let body = r.read_bytes(body_len).map_err(|_| t("body", HEADER_LEN))?;
    if !r.at_end() {
        return Err(ProtoError::Length {
            expected: HEADER_LEN.saturating_add(body_len),
            found: bytes.len(),
        });
    }
    let mut b = Reader::new(body);
    let reply = if status != 0 {
        let len = read_u16(&mut b).ok_or(t("message length", HEADER_LEN))?;
        if usize::from(len) > MAX_MESSAGE {
            return Err(ProtoError::Field {
                what: "message length",
                found: u64::from(len),
            });
        }
        let _reserved = read_u16(&mut b);
        let msg = b
            .read_bytes(usize::from(len))
            .map_err(|_| t("message", HEADER_LEN.saturating_add(4)))?;
        let message =
            core::str::from_utf8(msg.as_slice_less_safe()).map_err(|_| ProtoError::Field {
                what: "message (not UTF-8)",
                found: u64::from(len),
            })?;
        Reply::Refused {
            code: status,
            message,
        }
    } else {
        match kind {
            kind::QUERY => Reply::Status(read_status(&mut b)?),
            kind::ACTIVATE
            | kind::ROLLBACK
            | kind::FORCE_SAFE_MODE
            | kind::RESET
            | kind::UNQUARANTINE
            | kind::UNQUARANTINE_CONFIRMED => Reply::Changed {
                version: read_u64(&mut b).ok_or(t("version", HEADER_LEN))?,
                boot: read_u64(&mut b).ok_or(t("boot", HEADER_LEN.saturating_add(8)))?,
            },
            kind::READ_EVENTS => {
                let dropped = read_u64(&mut b).ok_or(t("dropped", HEADER_LEN))?;
                let first = read_u64(&mut b).ok_or(t("first", HEADER_LEN.saturating_add(8)))?;
                let count = read_u16(&mut b).ok_or(t("count", HEADER_LEN.saturating_add(16)))?;
                let _reserved =
                    read_u16(&mut b).ok_or(t("reserved", HEADER_LEN.saturating_add(18)))?;
                let _reserved =
                    read_u32(&mut b).ok_or(t("reserved", HEADER_LEN.saturating_add(20)))?;
                let rest = b.read_bytes_to_end();
                let events = Events {
                    dropped,
                    first,
                    count,
                    records: rest.as_slice_less_safe(),
                };
                // Walk once so a malformed record (or bytes after the last one) is an
                // error here, not halfway through the caller's output.
                let mut walk = Reader::new(Input::from(events.records));
                let mut at = HEADER_LEN.saturating_add(EVENTS_HEAD);
                for _ in 0..count {
                    read_record(&mut walk, &mut at)?;
                }
                if !walk.at_end() {
                    return Err(ProtoError::Length {
                        expected: at,
                        found: bytes.len(),
                    });
                }
                Reply::Events(events)
            }
            found => return Err(ProtoError::Kind { found }),
        }
    };
    // A body longer than its layout: the declared length does not match the message.
    let extra = b.read_bytes_to_end().len();
    if extra != 0 {
        return Err(ProtoError::Length {
            expected: bytes.len().saturating_sub(extra),
            found: bytes.len(),
        });
    }
    Ok(Response { kind, reply })
}

fn read_status(b: &mut Reader<'_>) -> Result<Status, ProtoError> {
    let t = |what, off: usize| ProtoError::Truncated {
        what,
        at: HEADER_LEN.saturating_add(off),
    };
    let s = Status {
        active: read_u64(b).ok_or(t("active version", 0))?,
        boot: read_u64(b).ok_or(t("boot", 8))?,
        lkg: read_u64(b).ok_or(t("last-known-good", 16))?,
        active_ms: read_u64(b).ok_or(t("active time", 24))?,
        events_dropped: read_u64(b).ok_or(t("events dropped", 32))?,
        events_queued: read_u32(b).ok_or(t("events queued", 40))?,
        health_uptime_secs: read_u32(b).ok_or(t("health uptime", 44))?,
        mode: read_u8(b).ok_or(t("mode", 48))?,
        reason: read_u8(b).ok_or(t("reason", 49))?,
        attempts: read_u8(b).ok_or(t("attempts", 50))?,
        flags: read_u8(b).ok_or(t("flags", 51))?,
        canary_error: {
            let _reserved = read_u32(b).ok_or(t("reserved", 52))?;
            i64::from_le_bytes(read_u64(b).ok_or(t("canary error", 56))?.to_le_bytes())
        },
    };
    if s.flags & !status_flags::KNOWN != 0 {
        return Err(ProtoError::Field {
            what: "status flags",
            found: u64::from(s.flags),
        });
    }
    Ok(s)
}

/// The response buffer was too small.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteError {
    /// Bytes the response needs (at least).
    pub need: usize,
    /// Bytes the buffer has.
    pub have: usize,
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "control response buffer too small: need {} bytes, have {}",
            self.need, self.have
        )
    }
}

/// A bounded little-endian writer over a caller's buffer: never writes past its end.
#[derive(Debug)]
pub struct Writer<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl<'a> Writer<'a> {
    /// Writes from the start of `buf`.
    pub fn new(buf: &'a mut [u8]) -> Self {
        Writer { buf, at: 0 }
    }
    /// Bytes written.
    pub fn len(&self) -> usize {
        self.at
    }
    /// Nothing written yet.
    pub fn is_empty(&self) -> bool {
        self.at == 0
    }
    /// Bytes left.
    pub fn room(&self) -> usize {
        self.buf.len().saturating_sub(self.at)
    }
    /// Appends `b` whole, or nothing.
    pub fn bytes(&mut self, b: &[u8]) -> Result<(), WriteError> {
        let end = self.at.checked_add(b.len());
        match end.and_then(|end| self.buf.get_mut(self.at..end)) {
            Some(dst) => {
                dst.copy_from_slice(b);
                self.at = self.at.saturating_add(b.len());
                Ok(())
            }
            None => Err(WriteError {
                need: self.at.saturating_add(b.len()),
                have: self.buf.len(),
            }),
        }
    }
    /// Appends a byte.
    pub fn u8(&mut self, v: u8) -> Result<(), WriteError> {
        self.bytes(&[v])
    }
    /// Appends a little-endian u16.
    pub fn u16(&mut self, v: u16) -> Result<(), WriteError> {
        self.bytes(&v.to_le_bytes())
    }
    /// Appends a little-endian u32.
    pub fn u32(&mut self, v: u32) -> Result<(), WriteError> {
        self.bytes(&v.to_le_bytes())
    }
    /// Appends a little-endian u64.
    pub fn u64(&mut self, v: u64) -> Result<(), WriteError> {
        self.bytes(&v.to_le_bytes())
    }
    /// Appends UTF-16 code units as little-endian bytes.
    pub fn units(&mut self, units: &[u16]) -> Result<(), WriteError> {
        let need = units.len().saturating_mul(2);
        if self.room() < need {
            return Err(WriteError {
                need: self.at.saturating_add(need),
                have: self.buf.len(),
            });
        }
        for u in units {
            self.u16(*u)?;
        }
        Ok(())
    }
    /// Overwrites 4 bytes at `at` (a length filled in after the body).
    fn patch_u32(&mut self, at: usize, v: u32) -> Result<(), WriteError> {
        let have = self.buf.len();
        let dst = at
            .checked_add(4)
            .and_then(|end| self.buf.get_mut(at..end))
            .ok_or(WriteError {
                need: at.saturating_add(4),
                have,
            })?;
        dst.copy_from_slice(&v.to_le_bytes());
        Ok(())
    }
}

/// Writes a response header with a zero body length (patched by [`finish`]).
pub(crate) fn header(w: &mut Writer<'_>, kind: u16, status: u16) -> Result<(), WriteError> {
    w.bytes(&RESPONSE_MAGIC)?;
    w.u16(PROTOCOL)?;
    w.u16(kind)?;
    w.u16(status)?;
    w.u16(0)?;
    w.u32(0)
}

/// Fills in the body length; returns the response's total length.
pub(crate) fn finish(w: &mut Writer<'_>) -> Result<usize, WriteError> {
    let body = w.len().saturating_sub(HEADER_LEN);
    let body = u32::try_from(body).map_err(|_| WriteError {
        need: w.len(),
        have: w.len(),
    })?;
    w.patch_u32(12, body)?;
    Ok(w.len())
}

/// Writes the answer to a query.
pub fn encode_status(buf: &mut [u8], s: &Status) -> Result<usize, WriteError> {
    let mut w = Writer::new(buf);
    header(&mut w, kind::QUERY, 0)?;
    w.u64(s.active)?;
    w.u64(s.boot)?;
    w.u64(s.lkg)?;
    w.u64(s.active_ms)?;
    w.u64(s.events_dropped)?;
    w.u32(s.events_queued)?;
    w.u32(s.health_uptime_secs)?;
    w.u8(s.mode)?;
    w.u8(s.reason)?;
    w.u8(s.attempts)?;
    w.u8(s.flags & status_flags::KNOWN)?;
    w.u32(0)?;
    w.bytes(&s.canary_error.to_le_bytes())?;
    finish(&mut w)
}

/// Writes the answer to a successful change (`kind`): the version active now and the
/// record's boot number.
pub fn encode_changed(
    buf: &mut [u8],
    kind: u16,
    version: u64,
    boot: u64,
) -> Result<usize, WriteError> {
    let mut w = Writer::new(buf);
    header(&mut w, kind, 0)?;
    w.u64(version)?;
    w.u64(boot)?;
    finish(&mut w)
}

/// Writes a refusal (`code` 1..=999) or a protocol error (`code` >= 1000) with `message`
/// rendered into at most [`MAX_MESSAGE`] bytes, cut at a character boundary. No
/// allocation: the message is formatted straight into the buffer.
pub fn encode_refused(
    buf: &mut [u8],
    kind: u16,
    code: u16,
    message: &dyn fmt::Display,
) -> Result<usize, WriteError> {
    let mut w = Writer::new(buf);
    header(&mut w, kind, code.max(1))?;
    let len_at = w.len();
    w.u32(0)?; // message length (u16) + reserved (u16), patched below
    let mut sink = Sink {
        w: &mut w,
        written: 0,
        full: false,
    };
    let _ = fmt::write(&mut sink, format_args!("{message}"));
    let written = sink.written;
    w.patch_u32(len_at, u32::try_from(written).unwrap_or(0))?;
    finish(&mut w)
}

/// Formats into a [`Writer`], keeping whole characters and at most [`MAX_MESSAGE`] bytes.
struct Sink<'w, 'a> {
    w: &'w mut Writer<'a>,
    written: usize,
    full: bool,
}

impl fmt::Write for Sink<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            if self.full {
                break;
            }
            let mut tmp = [0u8; 4];
            let enc = c.encode_utf8(&mut tmp).as_bytes();
            let after = self.written.saturating_add(enc.len());
            if after > MAX_MESSAGE || self.w.bytes(enc).is_err() {
                self.full = true;
                break;
            }
            self.written = after;
        }
        Ok(())
    }
}

fn read4(r: &mut Reader<'_>) -> Option<[u8; 4]> {
    let b = r.read_bytes(4).ok()?;
    b.as_slice_less_safe().try_into().ok()
}
fn read_u8(r: &mut Reader<'_>) -> Option<u8> {
    r.read_byte().ok()
}
fn read_u16(r: &mut Reader<'_>) -> Option<u16> {
    let b = r.read_bytes(2).ok()?;
    Some(u16::from_le_bytes(b.as_slice_less_safe().try_into().ok()?))
}
fn read_u32(r: &mut Reader<'_>) -> Option<u32> {
    let b = r.read_bytes(4).ok()?;
    Some(u32::from_le_bytes(b.as_slice_less_safe().try_into().ok()?))
}
fn read_u64(r: &mut Reader<'_>) -> Option<u64> {
    let b = r.read_bytes(8).ok()?;
    Some(u64::from_le_bytes(b.as_slice_less_safe().try_into().ok()?))
}
