//! The console's errors, at the bottom of its modules (it imports none of them): a failure
//! with its exit code and stable `--json` code ([`Fail`]), the JSON version every object
//! carries, and OS errors in words. `host`, `store`, `report` and the commands all stand
//! on this file; it stands on the core alone.

use std::io;

use failsafe_loader::state::IoError;
use serde_json::{Value, json};

/// Version of the JSON the tool prints (`"json_version"` in every top-level object);
/// bumped when a field changes meaning or goes away (docs/cli.md, "JSON").
pub const JSON_VERSION: u32 = 1;

/// A failure with its exit code and a stable error code for `--json` (docs/cli.md lists
/// them).
#[derive(Debug)]
pub struct Fail {
    pub code: u8,
    pub kind: &'static str,
    pub msg: String,
    /// More data for `--json` (e.g. every diagnostic of a failed compile), under `"error"`.
    pub detail: Option<(&'static str, Value)>,
}

impl Fail {
    pub fn new(code: u8, kind: &'static str, msg: String) -> Self {
        Fail {
            code,
            kind,
            msg,
            detail: None,
        }
    }
    pub fn invalid(msg: String) -> Self {
        Fail::new(1, "invalid-content", msg)
    }
    pub fn refused(kind: &'static str, msg: String) -> Self {
        Fail::new(1, kind, msg)
    }
    pub fn io(msg: String) -> Self {
        Fail::new(2, "io-error", msg)
    }
    pub fn usage(msg: String) -> Self {
        Fail::new(2, "usage", msg)
    }
    /// The error as the one JSON line printed on stdout under `--json`.
    pub fn json(&self) -> Value {
        let mut e = json!({"code": self.kind, "message": self.msg, "exit": self.code});
        if let Some((k, v)) = &self.detail {
            e[*k] = v.clone();
        }
        json!({"json_version": JSON_VERSION, "error": e})
    }
    /// Adds `key: value` to the JSON form of the error.
    pub fn with(mut self, key: &'static str, value: Value) -> Self {
        self.detail = Some((key, value));
        self
    }
}

/// An OS error code from the core's `IoError`, in words ("No space left on device (os
/// error 28)"), as the responder needs it.
pub fn os_error(e: IoError) -> String {
    match i32::try_from(e.code) {
        Ok(code) if code > 0 => io::Error::from_raw_os_error(code).to_string(),
        _ if e == failsafe_loader::state::start::NO_MEMORY => {
            "out of memory (the record's memory could not be reserved)".to_owned()
        }
        _ if e == failsafe_loader::state::start::NO_RECORD => {
            "the record is missing or both of its slots are invalid".to_owned()
        }
        _ => format!("I/O error (code {})", e.code),
    }
}

/// The core's error code of an `io::Error` (-100 when the OS gave none: negative codes
/// above it are the core's own).
pub fn io_code(e: &io::Error) -> i64 {
    e.raw_os_error().map_or(-100, i64::from)
}
