//! The operator's changes to the record (`failsafectl recover force-safe-mode | reset |
//! unquarantine`) as the host that owns the record applies them on a running system: the
//! driver under its record lock, `failsafectl serve` under the store lock. One writer then
//! makes every online change, so a change cannot be lost between the host's re-read of the
//! record and its write (issue 20: the driver's writes did not take the console's lock).
//! Offline (WinRE, no host running) the console applies the same functions itself.
//!
//! A change that re-enables content quarantined for crash-looping needs the operator's
//! confirmation (`--yes`), decided here on the record as the host re-read it, not as the
//! console last saw it.

use core::fmt;

use super::wire::Request;
use crate::state::machine;
use crate::state::{Durable, IoError, QuarantineReason, State, StateMedium};

/// An operator's change of the record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// The record's force-safe-mode switch.
    ForceSafeMode(bool),
    /// Forget counts, quarantine, last-known-good and the floor (`machine::reset`).
    Reset,
    /// Release a version from quarantine (`machine::unquarantine`).
    Unquarantine(u64),
}

impl Change {
    /// The change a request asks for, and whether it is confirmed; `None` for the other
    /// requests.
    pub const fn of(req: &Request) -> Option<(Change, bool)> {
        match *req {
            Request::ForceSafeMode { on } => Some((Change::ForceSafeMode(on), false)),
            Request::Reset { confirmed } => Some((Change::Reset, confirmed)),
            Request::Unquarantine { version, confirmed } => {
                Some((Change::Unquarantine(version), confirmed))
            }
            _ => None,
        }
    }

    /// The request that asks for it.
    pub const fn request(self, confirmed: bool) -> Request {
        match self {
            Change::ForceSafeMode(on) => Request::ForceSafeMode { on },
            Change::Reset => Request::Reset { confirmed },
            Change::Unquarantine(version) => Request::Unquarantine { version, confirmed },
        }
    }
}

/// Why an operator's change was not made. Nothing was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeRefusal {
    /// The change re-enables content quarantined for crash-looping and was not confirmed.
    NeedsConfirmation,
    /// Unquarantine of a version that is not quarantined.
    NotQuarantined {
        /// The version.
        version: u64,
    },
    /// The record could not be re-read (or both its slots are invalid now) or written.
    StateUnwritable {
        /// The OS error (or the core's `NO_RECORD`).
        error: IoError,
    },
    /// The driver is stopping and has closed its attempt: no record write now.
    ShuttingDown,
}

impl ChangeRefusal {
    /// Stable name (the same space as `LiveRefusal::name`).
    pub const fn name(&self) -> &'static str {
        match self {
            ChangeRefusal::NeedsConfirmation => "needs-confirmation",
            ChangeRefusal::NotQuarantined { .. } => "not-quarantined",
            ChangeRefusal::StateUnwritable { .. } => "state-unwritable",
            ChangeRefusal::ShuttingDown => "shutting-down",
        }
    }

    /// Stable wire code: `LiveRefusal`'s where the meaning is the same (12
    /// `state-unwritable`, 16 `shutting-down`), 17 and 18 for the two of its own.
    pub const fn code(&self) -> u16 {
        match self {
            ChangeRefusal::StateUnwritable { .. } => 12,
            ChangeRefusal::ShuttingDown => 16,
            ChangeRefusal::NeedsConfirmation => 17,
            ChangeRefusal::NotQuarantined { .. } => 18,
        }
    }
}

impl fmt::Display for ChangeRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ChangeRefusal::NeedsConfirmation => f.write_str(
                "the change re-enables content quarantined for crash-looping: it needs confirmation (--yes)",
            ),
            ChangeRefusal::NotQuarantined { version } => {
                write!(f, "version {version} is not quarantined")
            }
            ChangeRefusal::StateUnwritable { error } => write!(
                f,
                "the state record could not be re-read or written ({error}): nothing was changed"
            ),
            ChangeRefusal::ShuttingDown => {
                f.write_str("the driver is stopping (unload or shutdown): nothing was changed")
            }
        }
    }
}

/// Whether `change` on `s` re-enables content quarantined for crash-looping: a reset
/// while a crash-loop quarantine or the floor is set, or the release of a crash-looping
/// version. Then it needs the operator's confirmation.
pub fn needs_confirmation(s: &State, change: Change) -> bool {
    match change {
        Change::ForceSafeMode(_) => false,
        Change::Reset => {
            s.floor != 0
                || s.quarantine
                    .iter()
                    .flatten()
                    .any(|q| q.reason == QuarantineReason::CrashLoop)
        }
        Change::Unquarantine(v) => s
            .quarantined(v)
            .is_some_and(|q| q.reason == QuarantineReason::CrashLoop),
    }
}

/// The state after `change`, or why it is refused (nothing to release, or unconfirmed).
pub fn changed(s: &State, change: Change, confirmed: bool) -> Result<State, ChangeRefusal> {
    let mut n = *s;
    change_in(&mut n, change, confirmed).map(|()| n)
}

/// [`changed`] in place (`Err`: `n` unchanged).
pub fn change_in(n: &mut State, change: Change, confirmed: bool) -> Result<(), ChangeRefusal> {
    if needs_confirmation(n, change) && !confirmed {
        return Err(ChangeRefusal::NeedsConfirmation);
    }
    match change {
        Change::ForceSafeMode(on) => n.force_safe = on,
        Change::Reset => machine::reset_in(n),
        Change::Unquarantine(version) => {
            if !machine::unquarantine_in(n, version) {
                return Err(ChangeRefusal::NotQuarantined { version });
            }
        }
    }
    Ok(())
}

/// Applies `change` to the record of a running host: re-reads it (a record that cannot be
/// read, or whose slots are both invalid, is refused: nothing is written over it), decides
/// on it as it is now, and writes the result, in place in the record's memory (the driver's
/// frames hold no state). The caller holds the host's record lock.
pub fn apply<M: StateMedium>(
    d: &mut Durable<M>,
    change: Change,
    confirmed: bool,
) -> Result<(), ChangeRefusal> {
    d.change(
        |n| change_in(n, change, confirmed),
        |error| ChangeRefusal::StateUnwritable { error },
    )
}
