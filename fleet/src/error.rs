//! The fleet's one error type: a stable code for scripts (`--json`), a message that says
//! what, where, and expected vs found, and the exit code the console returns.

use std::fmt;

/// What went wrong, for people and for scripts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// Stable kebab-case code (`plan-invalid`, `metadata-expired`, ...): docs/fleet.md.
    pub code: &'static str,
    /// The full message.
    pub msg: String,
    /// Exit code: 1 refused / invalid input, 2 usage or I/O (something unreachable).
    pub exit: u8,
}

impl Error {
    /// Refused: the input is wrong or a check failed (exit 1).
    pub fn refused(code: &'static str, msg: impl Into<String>) -> Self {
        Self {
            code,
            msg: msg.into(),
            exit: 1,
        }
    }

    /// Something could not be read, written or reached (exit 2).
    pub fn io(code: &'static str, msg: impl Into<String>) -> Self {
        Self {
            code,
            msg: msg.into(),
            exit: 2,
        }
    }

    /// The same error with `what` in front of its message.
    #[must_use]
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.msg = format!("{what}: {}", self.msg);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Error {}

/// `Result` with the fleet's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An I/O error on `path`, with the path in the message.
pub fn io_at(code: &'static str, what: &str, path: &std::path::Path, e: &std::io::Error) -> Error {
    Error::io(code, format!("cannot {what} {}: {e}", path.display()))
}
