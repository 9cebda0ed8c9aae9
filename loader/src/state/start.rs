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
    Activation, BuildActivation, Choice, Config, Env, HealthEvidence, LiveRefusal, Prior,
    PriorKind, Step, begin_in, build_clean_in, build_healthy_in, choose, clean_shutdown_in,
    healthy_in, live_attempt_in, live_check, out_of_memory, record_attempt, reject_invalid,
    rollback_in, state_unwritable, store_unreadable,
};
use super::record::{
    HealthCheck, Loaded, Mode, RECORD_LEN, Reason, RecordRead, SLOT_LEN, StartReport, State,
    Stored, Ver, decode_record_into, encode_slot_into,
};
use crate::content::limits;
use crate::engine::RuleSet;
use crate::error::{ContentError, ErrorKind, Location};
use crate::mem;
use crate::trust::Trust;

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
    /// One element: the record's memory, reserved once at [`Durable::load`]; empty when it
    /// could not be reserved (then nothing is read or written).
    mem: Vec<Mem>,
    /// The start this record belongs to decided safe mode, for this reason: no live change
    /// until the next start. Set by the start sequence, which knows its decision even when
    /// the record does not show it (`state-unwritable`, `state-unreadable`).
    safe: Option<Reason>,
}

/// The record's memory. About 12 KiB, allocated once: a kernel stack frame must stay small
/// (x64 kernel stacks are 24 KiB and the file-system stack below each write needs most of
/// it), so the state, the next state, the slot being written and the record being read
/// live here, never in a frame (`tests/tests/pe.rs` checks the driver's frames).
#[derive(Debug)]
struct Mem {
    /// As last read or written.
    state: State,
    /// The next state being built by the start sequence or an event.
    next: State,
    /// The state before a live change, restored when the content is rejected after its
    /// attempt was made durable.
    saved: State,
    /// The slot being written.
    slot: [u8; SLOT_LEN],
    /// The record as read.
    record: [u8; RECORD_LEN],
}

impl Mem {
    const EMPTY: Mem = Mem {
        state: State::EMPTY,
        next: State::EMPTY,
        saved: State::EMPTY,
        slot: [0; SLOT_LEN],
        record: [0; RECORD_LEN],
    };
}

/// The error reported when the record's memory could not be reserved: the core's own code
/// (-1 is no errno, and as an NTSTATUS, 0xFFFFFFFF, none that a file routine returns).
pub const NO_MEMORY: IoError = IoError { code: -1 };
/// The error [`Durable::refresh`] reports when the record is gone or both slots are invalid.
pub const NO_RECORD: IoError = IoError { code: -2 };

impl<M: StateMedium> Durable<M> {
    /// Reads the record (hosts: the by-value form of [`Durable::load`]; inline, so it is
    /// compiled only where used).
    #[inline]
    pub fn open(medium: M) -> (Prior, Self) {
        let (kind, d) = Self::load(medium);
        let prior = match kind {
            PriorKind::Fresh => Prior::Loaded(Loaded::Fresh),
            PriorKind::Lost => Prior::Loaded(Loaded::Lost),
            PriorKind::Ok { slot, seq } => Prior::Loaded(Loaded::Ok(Stored {
                state: *d.state(),
                seq,
                slot,
            })),
            PriorKind::Unreadable(e) => Prior::Unreadable(e),
            PriorKind::NoMemory => Prior::Unreadable(NO_MEMORY),
        };
        (prior, d)
    }

    /// Reserves the record's memory and reads the record into it.
    #[inline(never)]
    pub fn load(mut medium: M) -> (PriorKind, Self) {
        let mut mem: Vec<Mem> = Vec::new();
        if mem.try_reserve_exact(1).is_err() {
            let d = Durable {
                medium,
                newest_slot: None,
                seq: 0,
                mem,
                safe: None,
            };
            return (PriorKind::NoMemory, d);
        }
        // The explicit check lets the compiler drop `push`'s growth path (proof/ checks
        // that no panic is reachable); EMPTY is a constant, copied straight to the heap.
        if mem.len() < mem.capacity() {
            mem.push(Mem::EMPTY);
        }
        let (mut newest_slot, mut seq) = (None, 0);
        let kind = match mem.first_mut() {
            None => PriorKind::NoMemory,
            Some(m) => match medium.read(&mut m.record) {
                Err(e) => PriorKind::Unreadable(e),
                Ok(false) => PriorKind::Fresh,
                Ok(true) => match decode_record_into(&m.record, &mut m.state) {
                    RecordRead::Lost => PriorKind::Lost,
                    RecordRead::Ok { slot, seq: n } => {
                        newest_slot = Some(slot);
                        seq = n;
                        PriorKind::Ok { slot, seq: n }
                    }
                },
            },
        };
        let d = Durable {
            medium,
            newest_slot,
            seq,
            mem,
            safe: None,
        };
        (kind, d)
    }

    /// Re-reads the record before an event changes it, so that a change made meanwhile by
    /// another writer (`failsafectl recover` on the running system) is built on, not
    /// overwritten. A record that cannot be read, or whose slots are both invalid now, is
    /// an error: the event is then not written.
    #[inline(never)]
    pub fn refresh(&mut self) -> Result<(), IoError> {
        let m = self.mem.first_mut().ok_or(NO_MEMORY)?;
        match self.medium.read(&mut m.record)? {
            false => Err(NO_RECORD),
            true => match decode_record_into(&m.record, &mut m.next) {
                RecordRead::Lost => Err(NO_RECORD),
                RecordRead::Ok { slot, seq } => {
                    m.state = m.next;
                    self.newest_slot = Some(slot);
                    self.seq = seq;
                    Ok(())
                }
            },
        }
    }

    /// Makes `s` durable in the slot not holding the newest copy.
    pub fn persist(&mut self, s: &State) -> Result<(), IoError> {
        let m = self.mem.first_mut().ok_or(NO_MEMORY)?;
        m.next = *s;
        self.persist_next()
    }

    /// Makes the next state durable (see [`Durable::persist`]); it becomes the state.
    #[inline(never)]
    fn persist_next(&mut self) -> Result<(), IoError> {
        let m = self.mem.first_mut().ok_or(NO_MEMORY)?;
        let slot = match self.newest_slot {
            Some(0) => 1,
            _ => 0,
        };
        let seq = self.seq.saturating_add(1);
        encode_slot_into(&m.next, seq, &mut m.slot);
        self.medium.write_slot(slot, &m.slot)?;
        self.newest_slot = Some(slot);
        self.seq = seq;
        m.state = m.next;
        Ok(())
    }

    /// The next state, starting from the current one (`None` without memory).
    fn next_from_state(&mut self) -> Option<&mut State> {
        let m = self.mem.first_mut()?;
        m.next = m.state;
        Some(&mut m.next)
    }

    /// The next state as it is (`None` without memory).
    fn next(&mut self) -> Option<&mut State> {
        self.mem.first_mut().map(|m| &mut m.next)
    }

    /// An operator's change on the running system, in place (no state on the stack): re-reads
    /// the record, lets `f` change the next state (`Err`: refused, nothing written), writes
    /// it. A record that cannot be re-read, or whose slots are both invalid now, is not
    /// written over (`unwritable` makes the error).
    #[inline(never)]
    pub fn change<E>(
        &mut self,
        f: impl FnOnce(&mut State) -> Result<(), E>,
        unwritable: impl Fn(IoError) -> E,
    ) -> Result<(), E> {
        self.refresh().map_err(&unwritable)?;
        let Some(n) = self.next_from_state() else {
            return Err(unwritable(NO_MEMORY));
        };
        f(n)?;
        self.persist_next().map_err(unwritable)
    }

    /// Applies an event (an operator command) and persists the result if there is one.
    /// `Ok(false)`: nothing to record.
    pub fn apply(&mut self, event: impl FnOnce(&State) -> Option<State>) -> Result<bool, IoError> {
        match event(self.state()) {
            Some(n) => self.persist(&n).map(|()| true),
            None => Ok(false),
        }
    }

    /// The health work item: records `evidence` for this start's attempt `act` and marks
    /// it healthy if the canary succeeded and the uptime was reached (see
    /// [`super::machine::healthy`]). `Ok(None)`: `act` is not the attempt in progress
    /// (nothing written); `Ok(Some(check))`: the check as recorded (`check.passed`).
    #[inline(never)]
    pub fn health(
        &mut self,
        act: &Activation,
        evidence: &HealthEvidence,
        cfg: &Config,
    ) -> Result<Option<HealthCheck>, IoError> {
        let Some(n) = self.next_from_state() else {
            return Err(NO_MEMORY);
        };
        if !healthy_in(n, act, evidence, cfg) {
            return Ok(None);
        }
        self.persist_next()?;
        Ok(self.state().health)
    }

    /// The shutdown notification: this start's attempt `act` ended cleanly (and its build
    /// attempt with it). `Ok(false)`: nothing to record (not in progress any more, or not
    /// this start's).
    #[inline(never)]
    pub fn clean_shutdown(&mut self, act: &Activation) -> Result<bool, IoError> {
        let Some(n) = self.next_from_state() else {
            return Err(NO_MEMORY);
        };
        if !clean_shutdown_in(n, act) {
            return Ok(false);
        }
        self.persist_next().map(|()| true)
    }

    /// The health work item of a start with no content active: records `evidence` for its
    /// build attempt `b` and marks the build healthy if the canary succeeded and the uptime
    /// was reached ([`build_healthy_in`]). `Ok(None)`: not this start's attempt, or content
    /// is active (its [`Durable::health`] closes both).
    #[inline(never)]
    pub fn build_health(
        &mut self,
        b: &BuildActivation,
        evidence: &HealthEvidence,
        cfg: &Config,
    ) -> Result<Option<HealthCheck>, IoError> {
        let Some(n) = self.next_from_state() else {
            return Err(NO_MEMORY);
        };
        if !build_healthy_in(n, b, evidence, cfg) {
            return Ok(None);
        }
        self.persist_next()?;
        Ok(self.state().health)
    }

    /// The shutdown notification (or an unload, or `DriverEntry` ending on a setup failure)
    /// of a start with no content active: its build attempt `b` ended cleanly. `Ok(false)`:
    /// nothing to record.
    #[inline(never)]
    pub fn build_shutdown(&mut self, b: &BuildActivation) -> Result<bool, IoError> {
        let Some(n) = self.next_from_state() else {
            return Err(NO_MEMORY);
        };
        if !build_clean_in(n, b) {
            return Ok(false);
        }
        self.persist_next().map(|()| true)
    }
}

impl<M: StateMedium> Durable<M> {
    /// Live activation of `version` from `store` while `active` runs (issue 11; see
    /// `docs/boot-safety.md`, "Live activation"): re-read the record, [`live_check`], read
    /// the file (at most `MAX_FILE_BYTES + 1` bytes) and take its digest, make the attempt
    /// durable ([`live_attempt_in`], written) **before** the file is parsed, so a crash in
    /// the parser or afterwards is charged to `version` at the next start exactly as at a
    /// start; then verify the signature, validate and compile with the start's own `load`.
    /// Last-known-good's version whose file's SHA-256 is not the one recorded is refused
    /// (`LastKnownGoodChanged`) before anything is written, as [`Durable::rollback`] does.
    ///
    /// Rejected content: the state before is written back (the record's net content is
    /// unchanged: a refused change changes nothing) and `Invalid` returned; nothing is
    /// quarantined. Should that restoring write fail, the record keeps `version` in
    /// progress ([`Durable::state`] shows it): the running content stays, and `version` is
    /// charged once at the next start.
    ///
    /// On success the caller swaps to the rule set, replaces its activation with the one
    /// returned and re-arms its health timer: uptime counts from the swap.
    #[inline(never)]
    pub fn live_activate<S: ContentStore>(
        &mut self,
        active: Option<&Activation>,
        store: &mut S,
        version: u64,
        cfg: &Config,
        env: &Env,
        trust: &Trust,
    ) -> Result<(Activation, RuleSet), LiveRefusal> {
        if let Some(reason) = self.safe {
            return Err(LiveRefusal::SafeMode { reason });
        }
        if self.mem.is_empty() {
            return Err(LiveRefusal::OutOfMemory);
        }
        self.refresh()
            .map_err(|error| LiveRefusal::StateUnwritable { error })?;
        live_check(self.state(), active, version, cfg, env)?;
        let mut versions: Vec<u64> = Vec::new();
        store
            .versions(&mut versions)
            .map_err(|error| LiveRefusal::Unreadable { version, error })?;
        if !versions.contains(&version) {
            return Err(LiveRefusal::NotInStore { version });
        }
        let mut buf: Vec<u8> = Vec::new();
        store
            .read(version, limits::MAX_FILE_BYTES.saturating_add(1), &mut buf)
            .map_err(|error| LiveRefusal::Unreadable { version, error })?;
        let ver = Ver {
            version,
            digest: file_digest(&buf),
        };
        // Last-known-good's version names the file that proved healthy: other bytes under
        // its number are refused, as `rollback` refuses them, before anything is written.
        if self
            .state()
            .lkg
            .is_some_and(|l| l.version == version && l != ver)
        {
            return Err(LiveRefusal::LastKnownGoodChanged { version });
        }
        let act = {
            let n = self.next_from_state().ok_or(LiveRefusal::OutOfMemory)?;
            live_attempt_in(n, ver, env)
        };
        self.persist_live(trust)?;
        self.load_or_restore(act, &buf, trust).map(|rs| (act, rs))
    }

    /// The operator's rollback to last-known-good while `active` runs (see
    /// [`rollback_in`]): re-read the record, decide; with a last-known-good L, read L's file
    /// and check its SHA-256 is the one recorded (`LastKnownGoodChanged` otherwise) —
    /// before anything is written, so a refusal changes nothing — then make L's attempt
    /// (and the quarantine of the version rolled back from) durable, then load L as a start
    /// would. A load that fails restores the state before, as [`Durable::live_activate`].
    /// `Ok(None)`: no last-known-good; nothing is active now.
    #[inline(never)]
    pub fn rollback<S: ContentStore>(
        &mut self,
        active: Option<&Activation>,
        store: &mut S,
        cfg: &Config,
        env: &Env,
        trust: &Trust,
    ) -> Result<Option<(Activation, RuleSet)>, LiveRefusal> {
        if let Some(reason) = self.safe {
            return Err(LiveRefusal::SafeMode { reason });
        }
        if self.mem.is_empty() {
            return Err(LiveRefusal::OutOfMemory);
        }
        self.refresh()
            .map_err(|error| LiveRefusal::StateUnwritable { error })?;
        if cfg.force_safe_mode && !env.windows_safe_mode {
            return Err(LiveRefusal::SafeMode {
                reason: Reason::ForceSafeMode,
            });
        }
        let m = self.mem.first_mut().ok_or(LiveRefusal::OutOfMemory)?;
        m.saved = m.state;
        m.next = m.state;
        // Decided on the next state: a refusal writes nothing and reads nothing.
        let act = rollback_in(&mut m.next, active, env)?;
        let mut buf: Vec<u8> = Vec::new();
        if let Some(a) = act {
            let attempts = m.saved.attempts(a.ver.version);
            if attempts >= cfg.threshold() {
                return Err(LiveRefusal::AttemptsUsed {
                    version: a.ver.version,
                    attempts,
                });
            }
            store
                .read(
                    a.ver.version,
                    limits::MAX_FILE_BYTES.saturating_add(1),
                    &mut buf,
                )
                .map_err(|error| LiveRefusal::Unreadable {
                    version: a.ver.version,
                    error,
                })?;
            if file_digest(&buf) != a.ver.digest {
                return Err(LiveRefusal::LastKnownGoodChanged {
                    version: a.ver.version,
                });
            }
        }
        self.persist_live(trust)?;
        match act {
            Some(a) => self.load_or_restore(a, &buf, trust).map(|rs| Some((a, rs))),
            None => Ok(None),
        }
    }

    /// Makes the next state of a live change durable (the state before it saved for a
    /// restore), its decision marked with the trust's test-signing switch.
    fn persist_live(&mut self, trust: &Trust) -> Result<(), LiveRefusal> {
        let m = self.mem.first_mut().ok_or(LiveRefusal::OutOfMemory)?;
        m.saved = m.state;
        if let Some(d) = m.next.last.as_mut() {
            d.test_signing = trust.test_signing();
        }
        self.persist_next()
            .map_err(|error| LiveRefusal::StateUnwritable { error })
    }

    /// Loads the file whose attempt is durable; on rejection writes the saved state back.
    fn load_or_restore(
        &mut self,
        act: Activation,
        buf: &[u8],
        trust: &Trust,
    ) -> Result<RuleSet, LiveRefusal> {
        let version = act.ver.version;
        let refusal = match load(buf, version, trust) {
            Ok(rs) => return Ok(rs),
            Err(error) if error.kind == ErrorKind::OutOfMemory => LiveRefusal::OutOfMemory,
            Err(error) => LiveRefusal::Invalid { version, error },
        };
        if let Some(m) = self.mem.first_mut() {
            m.next = m.saved;
            // A failed restore leaves `version` in progress: charged once at the next start
            // (documented); the refusal stands either way.
            let _ = self.persist_next();
        }
        Err(refusal)
    }
}

impl<M> Durable<M> {
    /// The state as last read or written.
    pub fn state(&self) -> &State {
        self.mem.first().map_or(&State::EMPTY, |m| &m.state)
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
    /// What reading the record found (the state read is `durable`'s until the start
    /// writes; hosts that need it use [`Durable::open`]).
    pub prior: PriorKind,
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
    /// Test signing was on (recorded in the decision and the start report).
    pub test_signing: bool,
    /// The attempt of the driver build this start made durable before the driver's own
    /// setup: what its health check and shutdown close when no content is active. `None`:
    /// a start that made none (safe, dormant, an unwritable or unreadable record).
    pub build: Option<BuildActivation>,
    /// [`begin_start`] decided to go on: [`finish_start`] chooses and activates content.
    ready: bool,
}

impl<M> Started<M> {
    /// The start report to write apart from the record (registry value, second file), so
    /// that a start the record does not show is still visible.
    pub fn report(&self) -> StartReport {
        let error = match (self.prior, self.persist_error) {
            (_, Some(e)) | (PriorKind::Unreadable(e), None) => Some(e),
            (PriorKind::NoMemory, None) => Some(NO_MEMORY),
            _ => None,
        };
        let not_written = self.persist_error.is_some()
            || matches!(self.prior, PriorKind::Unreadable(_) | PriorKind::NoMemory);
        let boot = if not_written {
            self.durable.state().boot.saturating_add(1)
        } else {
            self.durable.state().boot
        };
        StartReport {
            boot,
            record_seq: self.durable.seq,
            mode: self.choice.mode,
            reason: self.choice.reason,
            version: self.active.as_ref().map_or(0, |(v, _)| v.version),
            record_not_written: not_written,
            writes_may_not_persist: self.env.writes_may_not_persist,
            test_signing: self.test_signing,
            error,
            build: (self.env.build.version, first8(&self.env.build.digest)),
        }
    }

    /// The start decided that its driver build is dormant: the driver returns without
    /// setting anything up.
    pub fn dormant(&self) -> bool {
        self.choice.reason == Reason::DriverDormant
    }
}

fn first8(d: &[u8; 32]) -> [u8; 8] {
    let mut out = [0u8; 8];
    for (o, b) in out.iter_mut().zip(d) {
        *o = *b;
    }
    out
}

/// SHA-256 of a whole content file: the digest the record and the CLI show.
pub fn file_digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Runs the start sequence with the compiled-in release keys and test signing off
/// ([`Trust::builtin`]): what a release driver runs. See [`start_with_trust`].
pub fn start<M: StateMedium, S: ContentStore>(
    medium: M,
    store: &mut S,
    cfg: &Config,
    env: &Env,
) -> Started<M> {
    start_with_trust(medium, store, cfg, env, &Trust::builtin())
}

/// Runs the start sequence: read the record, charge the previous attempt, choose, make the
/// attempt durable, verify the content's signature against `trust`, validate and activate;
/// quarantine unsigned, wrongly signed or invalid content at once and fall back.
///
/// Kernel-sized: the states live in the record's memory ([`Durable`]) and every big step is
/// its own function, so no frame holds a state or a slot (`tests/tests/pe.rs` measures).
pub fn start_with_trust<M: StateMedium, S: ContentStore>(
    medium: M,
    store: &mut S,
    cfg: &Config,
    env: &Env,
    trust: &Trust,
) -> Started<M> {
    let mut out = begin_start(medium, cfg, env, trust);
    finish_start(&mut out, store, cfg, env, trust);
    out
}

/// The first half of a start, which the driver runs before its own setup: read the record,
/// charge the previous start's unclean end (to its content, or to the driver build when no
/// content was active), decide safe mode or dormancy, and make this start's attempt of the
/// build durable (`Started::build`). A dormant build ([`Started::dormant`]) must then set
/// nothing up; otherwise the driver does its setup and calls [`finish_start`].
#[inline(never)]
pub fn begin_start<M: StateMedium>(
    medium: M,
    cfg: &Config,
    env: &Env,
    trust: &Trust,
) -> Started<M> {
    let (prior, durable) = Durable::load(medium);
    let mut out = Started {
        durable,
        prior,
        choice: Choice {
            target: None,
            mode: Mode::Safe,
            reason: Reason::OutOfMemory,
        },
        active: None,
        activation: None,
        rejected: Vec::new(),
        unreadable: Vec::new(),
        persist_error: None,
        env: *env,
        test_signing: trust.test_signing(),
        build: None,
        ready: false,
    };
    // Without the record's memory nothing is read or written: safe, nothing charged.
    let Some(s) = out.durable.next_from_state() else {
        out.durable.safe = Some(Reason::OutOfMemory);
        return out;
    };
    match begin_in(prior, s, cfg, env) {
        Step::Safe { reason, write } => {
            out.durable.safe = Some(reason);
            out.choice = Choice {
                target: None,
                mode: Mode::Safe,
                reason,
            };
            if write {
                out.persist_error = out.persist().err();
            }
            return out;
        }
        Step::Choose => {}
    }
    // The charge and this start's build attempt, durable before the driver's own setup
    // (the previous decision stays the record's last until this start decides).
    let boot = out.durable.next().map_or(0, |s| s.boot);
    if let Err(e) = out.durable.persist_next() {
        // Nothing can be counted: no content this start (and the build runs uncounted).
        if let Some(s) = out.durable.next() {
            out.choice = state_unwritable(s, env);
        }
        out.persist_error = Some(e);
        out.durable.safe = Some(Reason::StateUnwritable);
        return out;
    }
    out.build = Some(BuildActivation {
        build: env.build,
        boot,
    });
    out.ready = true;
    out
}

/// The second half of a start ([`begin_start`] first): choose, make the content attempt
/// durable, verify, validate and activate; quarantine refused content at once and fall
/// back. Does nothing after a safe or dormant decision.
#[inline(never)]
pub fn finish_start<M: StateMedium, S: ContentStore>(
    out: &mut Started<M>,
    store: &mut S,
    cfg: &Config,
    env: &Env,
    trust: &Trust,
) {
    if !core::mem::take(&mut out.ready) {
        return;
    }
    choose_and_activate(out, store, cfg, env, trust);
    if out.choice.mode == Mode::Safe {
        out.durable.safe = Some(out.choice.reason);
    }
}

impl<M: StateMedium> Started<M> {
    /// Makes the next state durable with the decision marked with this start's test-signing
    /// switch.
    fn persist(&mut self) -> Result<(), IoError> {
        let on = self.test_signing;
        if let Some(d) = self.durable.next().and_then(|s| s.last.as_mut()) {
            d.test_signing = on;
        }
        self.durable.persist_next()
    }
}

/// The rest of the start after [`begin_in`]: choose, record, load, fall back.
#[inline(never)]
fn choose_and_activate<M: StateMedium, S: ContentStore>(
    out: &mut Started<M>,
    store: &mut S,
    cfg: &Config,
    env: &Env,
    trust: &Trust,
) {
    // Each step re-borrows the next state: the record's memory outlives them all.
    macro_rules! next {
        () => {
            match out.durable.next() {
                Some(s) => s,
                None => return,
            }
        };
    }
    let mut versions: Vec<u64> = Vec::new();
    if store.versions(&mut versions).is_err() {
        out.choice = store_unreadable(next!(), env);
        out.persist_error = out.persist().err();
        return;
    }
    let mut buf: Vec<u8> = Vec::new();
    let read_limit = limits::MAX_FILE_BYTES.saturating_add(1);
    // Versions skipped at this start: unreadable, or read and rejected. Each turn of the
    // loop adds one or returns, so it ends after at most `versions.len() + 1` turns.
    let mut skip: Vec<u64> = Vec::new();
    loop {
        let choice = choose(next!(), &versions, &skip, cfg, env);
        out.choice = choice;
        let Some(v) = choice.target else {
            out.persist_error = out.persist().err();
            return;
        };
        if mem::push(&mut skip, v).is_err() {
            out.choice = out_of_memory(next!(), env);
            out.persist_error = out.persist().err();
            return;
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
        let activation = record_attempt(next!(), ver);
        if let Err(e) = out.persist() {
            // Counting cannot be guaranteed: activate nothing.
            out.choice = state_unwritable(next!(), env);
            out.persist_error = Some(e);
            return;
        }
        match load(&buf, v, trust) {
            Ok(rs) => {
                out.active = Some((ver, rs));
                out.activation = Some(activation);
                return;
            }
            Err(error) if error.kind == ErrorKind::OutOfMemory => {
                // Running out of memory is not proof of bad content: skip it for this start
                // like an unreadable file, without quarantine.
                let _ = mem::push(&mut out.unreadable, v);
                next!().attempt = None;
            }
            Err(error) => {
                reject_invalid(next!(), ver, error.ordinal());
                // Only a report: the quarantine entry in the record is what counts.
                let _ = mem::push(&mut out.rejected, Rejection { ver, error });
            }
        }
    }
}

/// Verifies version `v`'s file against `trust`, then validates and compiles it (its own
/// frame: the validator's state is not kept across the start's other steps). An unsigned
/// or wrongly signed file fails here like an invalid one, before its body is parsed.
#[inline(never)]
fn load(buf: &[u8], v: u64, trust: &Trust) -> Result<RuleSet, ContentError> {
    RuleSet::load_trusted(buf, trust).and_then(|rs| {
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
    })
}
