//! The start sequence the driver runs in `DriverEntry` (and `failsafectl boot` runs on a
//! host), generic over the three things the OS provides: a state medium, a content store
//! and a clock.
//!
//! Order matters: the record saying "attempt in progress with version V" is written
//! durably *before* V is parsed or activated, so a crash anywhere in parsing, activation or
//! afterwards is charged to V at the next start.

use alloc::vec::Vec;
use core::fmt;
use sha2::{Digest as _, Sha256};

use super::machine::{
    Activation, Begin, Choice, Config, Env, HealthEvidence, Prior, begin, choose, clean_shutdown,
    healthy, out_of_memory, record_attempt, reject_invalid, state_unwritable, store_unreadable,
};
use super::record::{
    HealthCheck, Loaded, Mode, RECORD_LEN, Reason, SLOT_LEN, StartReport, State, Ver,
    decode_record, encode_slot,
};
use crate::content::limits;
use crate::engine::RuleSet;
use crate::error::{ContentError, ErrorKind, Location};
use crate::mem;

/// An I/O failure reported by a medium or store (NTSTATUS on Windows, errno on hosts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoError {
    /// Platform error code.
    pub code: i64,
}

impl fmt::Display for IoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The core cannot name OS errors; hosts render `code` in words (the CLI does).
        write!(f, "I/O error (code {:#x})", self.code)
    }
}

/// Where the state record lives. Writes must be durable when `write_slot` returns.
pub trait StateMedium {
    /// Reads the whole record into `buf`. `Ok(false)`: no record exists (first install).
    /// A short record leaves the rest of `buf` zero (those slots then fail their checksum).
    fn read(&mut self, buf: &mut [u8; RECORD_LEN]) -> Result<bool, IoError>;
    /// Writes slot `slot` (0 or 1) and returns only once the bytes are on stable storage.
    fn write_slot(&mut self, slot: usize, bytes: &[u8; SLOT_LEN]) -> Result<(), IoError>;
}

/// Where content versions live.
pub trait ContentStore {
    /// Appends the versions present to `out`.
    fn versions(&mut self, out: &mut Vec<u64>) -> Result<(), IoError>;
    /// Replaces `buf` with at most `limit` bytes of version `version`'s file.
    fn read(&mut self, version: u64, limit: usize, buf: &mut Vec<u8>) -> Result<(), IoError>;
}

/// A monotonic clock.
pub trait Clock {
    /// Milliseconds since an arbitrary fixed point.
    fn now_ms(&mut self) -> u64;
}

/// When the active content becomes healthy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthTimer {
    due_ms: u64,
}

impl HealthTimer {
    /// Armed now for `cfg.healthy_after_secs`.
    pub fn arm(clock: &mut impl Clock, cfg: &Config) -> Self {
        let after = u64::from(cfg.healthy_after_secs).saturating_mul(1000);
        HealthTimer {
            due_ms: clock.now_ms().saturating_add(after),
        }
    }
    /// Has the uptime been reached?
    pub fn due(&self, clock: &mut impl Clock) -> bool {
        clock.now_ms() >= self.due_ms
    }
}

/// The record on its medium: reads once, then writes alternate slots with rising sequence
/// numbers.
#[derive(Debug)]
pub struct Durable<M> {
    medium: M,
    newest_slot: Option<usize>,
    seq: u64,
    state: State,
}

impl<M: StateMedium> Durable<M> {
    /// Reads the record.
    pub fn open(mut medium: M) -> (Prior, Self) {
        let mut buf = [0u8; RECORD_LEN];
        let prior = match medium.read(&mut buf) {
            Err(e) => Prior::Unreadable(e),
            Ok(false) => Prior::Loaded(Loaded::Fresh),
            Ok(true) => Prior::Loaded(decode_record(&buf)),
        };
        let (newest_slot, seq, state) = match prior {
            Prior::Loaded(Loaded::Ok(s)) => (Some(s.slot), s.seq, s.state),
            _ => (None, 0, State::default()),
        };
        (
            prior,
            Durable {
                medium,
                newest_slot,
                seq,
                state,
            },
        )
    }

    /// Makes `s` durable in the slot not holding the newest copy.
    pub fn persist(&mut self, s: &State) -> Result<(), IoError> {
        let slot = match self.newest_slot {
            Some(0) => 1,
            _ => 0,
        };
        let seq = self.seq.saturating_add(1);
        self.medium.write_slot(slot, &encode_slot(s, seq))?;
        self.newest_slot = Some(slot);
        self.seq = seq;
        self.state = *s;
        Ok(())
    }

    /// Applies an event (an operator command) and persists the result if there is one.
    /// `Ok(false)`: nothing to record.
    pub fn apply(&mut self, event: impl FnOnce(&State) -> Option<State>) -> Result<bool, IoError> {
        match event(&self.state) {
            Some(n) => self.persist(&n).map(|()| true),
            None => Ok(false),
        }
    }

    /// The health work item: records `evidence` for this start's attempt `act` and marks
    /// it healthy if the canary succeeded and the uptime was reached (see
    /// [`super::machine::healthy`]). `Ok(None)`: `act` is not the attempt in progress
    /// (nothing written); `Ok(Some(check))`: the check as recorded (`check.passed`).
    pub fn health(
        &mut self,
        act: &Activation,
        evidence: &HealthEvidence,
        cfg: &Config,
    ) -> Result<Option<HealthCheck>, IoError> {
        match healthy(&self.state, act, evidence, cfg) {
            Some(n) => {
                self.persist(&n)?;
                Ok(n.health)
            }
            None => Ok(None),
        }
    }

    /// The shutdown notification: this start's attempt `act` ended cleanly. `Ok(false)`:
    /// nothing to record (not in progress any more, or not this start's).
    pub fn clean_shutdown(&mut self, act: &Activation) -> Result<bool, IoError> {
        self.apply(|s| clean_shutdown(s, act))
    }

    /// The state as last read or written.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Sequence number of the newest slot (0: none read or written yet).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The medium (hosts use it to inject faults in drills).
    pub fn medium_mut(&mut self) -> &mut M {
        &mut self.medium
    }
}

/// A version that was read at this start and rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// Version and file digest.
    pub ver: Ver,
    /// Why.
    pub error: ContentError,
}

/// What a start did.
#[derive(Debug)]
pub struct Started<M> {
    /// The record, for the events that follow (healthy, shutdown).
    pub durable: Durable<M>,
    /// The state read at start.
    pub prior: Prior,
    /// The final decision.
    pub choice: Choice,
    /// The content activated, if any.
    pub active: Option<(Ver, RuleSet)>,
    /// The attempt this start made and activated (durable before activation): what its
    /// health check and shutdown notification may close. `None` when nothing is active.
    pub activation: Option<Activation>,
    /// Versions read and rejected at this start (quarantined).
    pub rejected: Vec<Rejection>,
    /// Versions that could not be read at this start (not quarantined).
    pub unreadable: Vec<u64>,
    /// The error of the final state write, if it failed (the decision stands; nothing was
    /// activated without a durable attempt record).
    pub persist_error: Option<IoError>,
    /// The environment the start ran in.
    pub env: Env,
}

impl<M> Started<M> {
    /// The start report to write apart from the record (registry value, second file), so
    /// that a start the record does not show is still visible.
    pub fn report(&self) -> StartReport {
        let error = match (self.prior, self.persist_error) {
            (_, Some(e)) | (Prior::Unreadable(e), None) => Some(e),
            _ => None,
        };
        let not_written =
            self.persist_error.is_some() || matches!(self.prior, Prior::Unreadable(_));
        let boot = if not_written {
            self.durable.state.boot.saturating_add(1)
        } else {
            self.durable.state.boot
        };
        StartReport {
            boot,
            record_seq: self.durable.seq,
            mode: self.choice.mode,
            reason: self.choice.reason,
            version: self.active.as_ref().map_or(0, |(v, _)| v.version),
            record_not_written: not_written,
            writes_may_not_persist: self.env.writes_may_not_persist,
            error,
        }
    }
}

/// SHA-256 of a whole content file: the digest the record and the CLI show.
pub fn file_digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Runs the start sequence: read the record, charge the previous attempt, choose, make the
/// attempt durable, validate and activate; quarantine invalid content at once and fall back.
pub fn start<M: StateMedium, S: ContentStore>(
    medium: M,
    store: &mut S,
    cfg: &Config,
    env: &Env,
) -> Started<M> {
    let (prior, durable) = Durable::open(medium);
    let mut out = Started {
        durable,
        prior,
        choice: Choice {
            target: None,
            mode: Mode::Safe,
            reason: Reason::StateUnreadable,
        },
        active: None,
        activation: None,
        rejected: Vec::new(),
        unreadable: Vec::new(),
        persist_error: None,
        env: *env,
    };
    let mut s = match begin(prior, cfg, env) {
        Begin::Safe { reason, write } => {
            out.choice = Choice {
                target: None,
                mode: Mode::Safe,
                reason,
            };
            if let Some(w) = write {
                out.persist_error = out.durable.persist(&w).err();
            }
            return out;
        }
        Begin::Choose(s) => s,
    };
    let mut versions: Vec<u64> = Vec::new();
    if store.versions(&mut versions).is_err() {
        out.choice = store_unreadable(&mut s, env);
        out.persist_error = out.durable.persist(&s).err();
        return out;
    }
    let mut buf: Vec<u8> = Vec::new();
    let read_limit = limits::MAX_FILE_BYTES.saturating_add(1);
    // Versions skipped at this start: unreadable, or read and rejected. Each turn of the
    // loop adds one or returns, so it ends after at most `versions.len() + 1` turns.
    let mut skip: Vec<u64> = Vec::new();
    loop {
        let choice = choose(&mut s, &versions, &skip, cfg, env);
        out.choice = choice;
        let Some(v) = choice.target else {
            out.persist_error = out.durable.persist(&s).err();
            return out;
        };
        if mem::push(&mut skip, v).is_err() {
            out.choice = out_of_memory(&mut s, env);
            out.persist_error = out.durable.persist(&s).err();
            return out;
        }
        if store.read(v, read_limit, &mut buf).is_err() {
            // Only a report: `skip` already keeps the start from retrying it.
            let _ = mem::push(&mut out.unreadable, v);
            continue;
        }
        let ver = Ver {
            version: v,
            digest: file_digest(&buf),
        };
        let activation = record_attempt(&mut s, ver);
        if let Err(e) = out.durable.persist(&s) {
            // Counting cannot be guaranteed: activate nothing.
            out.choice = state_unwritable(&mut s, env);
            out.persist_error = Some(e);
            return out;
        }
        let loaded = RuleSet::load(&buf).and_then(|rs| {
            if rs.version() == v {
                Ok(rs)
            } else {
                let kind = ErrorKind::VersionMismatch {
                    expected: v,
                    found: rs.version(),
                };
                Err(ContentError {
                    at: Location {
                        offset: 16,
                        ..Location::default()
                    },
                    kind,
                })
            }
        });
        match loaded {
            Ok(rs) => {
                out.active = Some((ver, rs));
                out.activation = Some(activation);
                return out;
            }
            Err(error) if error.kind == ErrorKind::OutOfMemory => {
                // Running out of memory is not proof of bad content: skip it for this start
                // like an unreadable file, without quarantine.
                let _ = mem::push(&mut out.unreadable, v);
                s.attempt = None;
            }
            Err(error) => {
                reject_invalid(&mut s, ver, error.ordinal());
                // Only a report: the quarantine entry in the record is what counts.
                let _ = mem::push(&mut out.rejected, Rejection { ver, error });
            }
        }
    }
}
