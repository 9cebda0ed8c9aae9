//! The boot-attempt state machine as pure functions over [`State`]. Nothing here does I/O:
//! the start sequence in [`super::start`] calls these and persists what they return.

use super::record::{
    Attempt, BuildAttempt, BuildId, DriverTrack, HealthCheck, LastDecision, Loaded, MAX_QUARANTINE,
    MAX_TRACKED, Mode, Phase, QEntry, QuarantineReason, Reason, State, Track, Ver,
};
use super::start::IoError;
use crate::error::ContentError;

/// Configuration (service `Parameters` key on Windows; flags in the CLI).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Unclean starts of one version before it is quarantined (1..=16, default 3).
    pub threshold: u8,
    /// Seconds of uptime with content active before it is declared healthy (default 120).
    pub healthy_after_secs: u32,
    /// Force safe mode (configuration switch; the record carries the operator's own).
    pub force_safe_mode: bool,
}

impl Config {
    /// Default threshold (see `docs/boot-safety.md` for why 3).
    pub const DEFAULT_THRESHOLD: u8 = 3;
    /// Largest threshold accepted; larger configured values are clamped to it.
    pub const MAX_THRESHOLD: u8 = 16;
    /// Default healthy-after (seconds).
    pub const DEFAULT_HEALTHY_AFTER: u32 = 120;

    /// The threshold actually used: clamped to 1..=16, so a zero or absurd registry value
    /// can neither disable counting nor make it endless.
    pub fn threshold(&self) -> u8 {
        self.threshold.clamp(1, Self::MAX_THRESHOLD)
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            threshold: Self::DEFAULT_THRESHOLD,
            healthy_after_secs: Self::DEFAULT_HEALTHY_AFTER,
            force_safe_mode: false,
        }
    }
}

/// Facts about this boot that come from the OS.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Env {
    /// Windows booted in Safe Mode (`InitSafeBootMode != 0`).
    pub windows_safe_mode: bool,
    /// A write filter (UWF, EWF, FBWF) or a non-persistent disk may discard writes to the
    /// record's volume at reboot, so the counter may never advance. Recorded in the
    /// decision and shown by the console; it changes no decision (see
    /// `docs/boot-safety.md`, "Write filters").
    pub writes_may_not_persist: bool,
    /// The driver build running this start (the driver's embedded identity; hosts pass
    /// their own). Its unclean starts without content are counted; after `threshold` of
    /// them it is dormant (`docs/boot-safety.md`, "The driver build").
    pub build: BuildId,
}

/// The state read at start, as the decision sees it.
// The record is fixed-size by design (no allocation at start); about 2 KiB on the stack.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prior {
    /// As decoded from the medium.
    Loaded(Loaded),
    /// The medium failed to read, with this error.
    Unreadable(IoError),
}

/// The first half of a start: the previous attempt charged, the boot counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Begin {
    /// Go on choosing content with this state.
    Choose(State),
    /// Safe mode: activate nothing. `write` is the record to persist, if any.
    Safe {
        /// Why.
        reason: Reason,
        /// State to write (None: write nothing).
        write: Option<State>,
    },
}

fn decided(s: &mut State, mode: Mode, reason: Reason, version: Option<u64>, env: &Env) {
    s.last = Some(LastDecision {
        mode,
        reason,
        version: version.unwrap_or(0),
        boot: s.boot,
        writes_may_not_persist: env.writes_may_not_persist,
        // Set by the start sequence, which knows the trust it verified content with.
        test_signing: false,
    });
}

/// What the record read found, without the state itself (which the in-place functions keep
/// where the caller put it: in pool memory, in the driver).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PriorKind {
    /// No record: first install.
    Fresh,
    /// A record whose two slots are both invalid.
    Lost,
    /// A valid slot (its state is the caller's).
    Ok {
        /// Which slot.
        slot: usize,
        /// Its sequence number.
        seq: u64,
    },
    /// The medium failed to read, with this error.
    Unreadable(IoError),
    /// Memory for the record could not be reserved: nothing was read.
    NoMemory,
}

impl Prior {
    /// The kind, and the state it carries (empty unless a valid slot was read).
    // By-value form for hosts and tests: inline, so it is compiled only where used (its
    // frame holds whole states, which the kernel's frames must not).
    #[inline]
    pub fn split(self) -> (PriorKind, State) {
        match self {
            Prior::Loaded(Loaded::Fresh) => (PriorKind::Fresh, State::EMPTY),
            Prior::Loaded(Loaded::Lost) => (PriorKind::Lost, State::EMPTY),
            Prior::Loaded(Loaded::Ok(st)) => (
                PriorKind::Ok {
                    slot: st.slot,
                    seq: st.seq,
                },
                st.state,
            ),
            Prior::Unreadable(e) => (PriorKind::Unreadable(e), State::EMPTY),
        }
    }
}

/// [`begin_in`]'s answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Go on choosing content with the state as it now is.
    Choose,
    /// Safe mode: activate nothing; `write`: persist the state as it now is.
    Safe {
        /// Why.
        reason: Reason,
        /// Whether to write the state.
        write: bool,
    },
}

/// Starts a boot: decides safe mode, or charges an unclean previous attempt to the version
/// that was active then and counts the boot. A charge that reaches `threshold` quarantines
/// that version here, with the digest of the file whose starts were counted.
///
/// Safe mode (either switch) touches no counter: an attempt left in progress stays in
/// progress, to be charged exactly once at the next start that is not safe.
///
/// The by-value form of [`begin_in`], which is the implementation.
// By-value form for hosts and tests: inline, so it is compiled only where used (its
// frame holds whole states, which the kernel's frames must not).
#[inline]
pub fn begin(prior: Prior, cfg: &Config, env: &Env) -> Begin {
    let (kind, mut s) = prior.split();
    match begin_in(kind, &mut s, cfg, env) {
        Step::Choose => Begin::Choose(s),
        Step::Safe { reason, write } => Begin::Safe {
            reason,
            write: write.then_some(s),
        },
    }
}

/// [`begin`] in place: `s` holds the state read (for [`PriorKind::Ok`]; anything for the
/// other kinds) and becomes the state to go on with or to write.
#[inline(never)]
pub fn begin_in(kind: PriorKind, s: &mut State, cfg: &Config, env: &Env) -> Step {
    let safe = |s: &mut State, write: bool, reason: Reason| {
        if write {
            s.boot = s.boot.saturating_add(1);
            decided(s, Mode::Safe, reason, None, env);
        }
        Step::Safe { reason, write }
    };
    match kind {
        PriorKind::Unreadable(_) => return safe(s, false, Reason::StateUnreadable),
        PriorKind::NoMemory => return safe(s, false, Reason::OutOfMemory),
        PriorKind::Lost => {
            // Nothing in it can be trusted: write a fresh record that says so. Only the
            // switches below still apply to it.
            let reason = if env.windows_safe_mode {
                Reason::WindowsSafeMode
            } else if cfg.force_safe_mode {
                Reason::ForceSafeMode
            } else {
                Reason::StateLost
            };
            *s = State::EMPTY;
            return safe(s, true, reason);
        }
        PriorKind::Fresh => *s = State::EMPTY,
        PriorKind::Ok { .. } => {}
    }
    // A dormant build runs nothing, whatever the mode: nothing charged, no attempt.
    if s.driver
        .is_some_and(|d| d.dormant.is_some() && !d.adopt && d.build == env.build)
    {
        return safe(s, true, Reason::DriverDormant);
    }
    if env.windows_safe_mode {
        return safe(s, true, Reason::WindowsSafeMode);
    }
    if cfg.force_safe_mode || s.force_safe {
        return safe(s, true, Reason::ForceSafeMode);
    }
    s.boot = s.boot.saturating_add(1);
    adopt_build(s, env.build);
    if let Some(a) = s.pending().copied() {
        // Content was active when the previous start ended uncleanly: charged to it (the
        // build's attempt of that start is closed with it, uncharged).
        let n = s.attempts(a.ver.version).saturating_add(1);
        if !set_attempts(s, a.ver, n) {
            // Unreachable by construction (the attempt's count entry was made when the
            // attempt was recorded). Should it happen, the version could not be counted:
            // refuse to try it (and anything below it) rather than forget the crash or
            // quarantine it early.
            s.floor = s.floor.max(a.ver.version);
        } else if n >= cfg.threshold() {
            quarantine(s, a.ver, QuarantineReason::CrashLoop, u32::from(n));
        }
    } else if let Some(d) = s.driver.as_mut()
        && d.pending().is_some()
    {
        // No content was active: the unclean end is the build's own.
        d.unclean = d.unclean.saturating_add(1);
        if d.unclean >= cfg.threshold() {
            d.dormant = Some(s.boot);
        }
    }
    s.attempt = None;
    let boot = s.boot;
    if let Some(d) = s.driver.as_mut() {
        if d.dormant.is_some() {
            // The charge that reaches the threshold makes the build dormant at once: this
            // start already runs nothing.
            d.attempt = None;
            decided(s, Mode::Safe, Reason::DriverDormant, None, env);
            return Step::Safe {
                reason: Reason::DriverDormant,
                write: true,
            };
        }
        // This start's attempt of the build: durable before the driver's own setup runs.
        d.attempt = Some(BuildAttempt {
            phase: Phase::InProgress,
            boot,
        });
    }
    Step::Choose
}

/// The record's driver entry for `build`: a build seen before keeps its count; a rebuilt
/// record's unknown build is taken by this one; any other build gets a fresh entry (fresh
/// tries; the old build's entry, and an attempt of it left in progress, go with it).
fn adopt_build(s: &mut State, build: BuildId) {
    match s.driver.as_mut() {
        Some(d) if d.adopt => {
            d.build = build;
            d.adopt = false;
        }
        Some(d) if d.build == build => {}
        _ => s.driver = Some(DriverTrack::fresh(build)),
    }
}

/// What a start decided to try.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Choice {
    /// Version to read and activate, or none.
    pub target: Option<u64>,
    /// Mode.
    pub mode: Mode,
    /// Reason.
    pub reason: Reason,
}

/// Whether `v` can be counted: it has a count entry, or one can be made for it without
/// forgetting a count that may still matter.
pub fn countable(s: &State, v: u64) -> bool {
    s.track(v).is_some() || free_track(s).is_some()
}

/// Chooses content for a start (after [`begin`]): the newest version in `store` that is not
/// below last-known-good, not quarantined, not `excluded` (unreadable this start) and can be
/// counted. A version that has used up its attempts is quarantined here (only when the
/// threshold was lowered since it was charged: [`begin`] quarantines at the charge), and
/// the next one considered.
///
/// A version that cannot be counted (every count entry holds an unclean count of a version
/// that may still be chosen) is not tried at this start (reason `newer-uncountable`): the
/// bounded record refuses to try, it never quarantines early. It becomes countable when
/// one of those versions reaches healthy (counts below last-known-good are dropped) or is
/// quarantined at its threshold.
///
/// Returns the choice and updates `s` (quarantine, last decision); the caller records the
/// attempt with [`record_attempt`] once it knows the file's digest.
pub fn choose(s: &mut State, store: &[u64], excluded: &[u64], cfg: &Config, env: &Env) -> Choice {
    let threshold = cfg.threshold();
    let newest = store.iter().copied().max();
    let mut upper = u64::MAX; // candidates are below this (exclusive) after an uncountable
    let mut uncountable = false;
    // Each turn quarantines one version (at most `store.len()`) or lowers `upper` past one
    // (at most `store.len()`), or breaks.
    let mut turns = store.len().saturating_mul(2).saturating_add(1);
    let choice = loop {
        let floor = s.lkg.map_or(0, |l| l.version);
        let cand = store
            .iter()
            .copied()
            .filter(|&v| {
                v != 0
                    && v < upper
                    && v >= floor
                    && (v > s.floor || v == floor)
                    && s.quarantined(v).is_none()
                    && !excluded.contains(&v)
            })
            .max();
        let Some(v) = cand else {
            let (mode, reason) = match newest {
                None => (Mode::Normal, Reason::NoContentStaged),
                Some(_) => (Mode::Fallback, Reason::NothingUsable),
            };
            break Choice {
                target: None,
                mode,
                reason,
            };
        };
        if turns == 0 {
            break Choice {
                target: None,
                mode: Mode::Fallback,
                reason: Reason::NothingUsable,
            };
        }
        turns = turns.saturating_sub(1);
        let used = s.attempts(v);
        if used >= threshold {
            let ver = s.track(v).map_or(
                Ver {
                    version: v,
                    digest: [0; 32],
                },
                |t| t.ver,
            );
            quarantine(s, ver, QuarantineReason::CrashLoop, u32::from(used));
            continue;
        }
        if !countable(s, v) {
            uncountable = true;
            upper = v;
            continue;
        }
        let reason = if Some(v) == newest {
            Reason::NewestContent
        } else if store
            .iter()
            .any(|&n| n > v && excluded.contains(&n) && s.quarantined(n).is_none())
        {
            Reason::NewerUnreadable
        } else if uncountable {
            Reason::NewerUncountable
        } else {
            Reason::NewerQuarantined
        };
        let mode = if reason == Reason::NewestContent {
            Mode::Normal
        } else {
            Mode::Fallback
        };
        break Choice {
            target: Some(v),
            mode,
            reason,
        };
    };
    let choice = if choice.target.is_none() && uncountable {
        Choice {
            reason: Reason::NewerUncountable,
            ..choice
        }
    } else {
        choice
    };
    decided(s, choice.mode, choice.reason, choice.target, env);
    choice
}

/// What this start activated: the only attempt its outcomes (healthy, clean shutdown) may
/// close. Made by [`record_attempt`]; the start sequence hands it out in
/// `Started::activation` only when the attempt was durable and the content active.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Activation {
    /// Version and file digest.
    pub ver: Ver,
    /// Boot sequence number of the start.
    pub boot: u64,
}

/// Records that `ver` is about to be activated: the attempt in progress, which must be
/// durable before the content is parsed. The caller made sure `ver` is countable
/// ([`choose`] does).
pub fn record_attempt(s: &mut State, ver: Ver) -> Activation {
    let n = s.attempts(ver.version);
    let _ = set_attempts(s, ver, n);
    s.attempt = Some(Attempt {
        ver,
        phase: Phase::InProgress,
        boot: s.boot,
    });
    Activation { ver, boot: s.boot }
}

/// A version that was read and failed validation: quarantined at once, not active.
pub fn reject_invalid(s: &mut State, ver: Ver, error_ordinal: u32) {
    if s.attempt.is_some_and(|a| a.ver.version == ver.version) {
        s.attempt = None;
    }
    quarantine(s, ver, QuarantineReason::Invalid, error_ordinal);
}

/// A start that activates nothing, for `reason`; records the decision. No attempt of this
/// start is left in progress (none was made with content).
fn no_content(s: &mut State, mode: Mode, reason: Reason, env: &Env) -> Choice {
    s.attempt = None;
    decided(s, mode, reason, None, env);
    Choice {
        target: None,
        mode,
        reason,
    }
}

/// The store could not be listed: no content this start, nothing quarantined.
pub fn store_unreadable(s: &mut State, env: &Env) -> Choice {
    no_content(s, Mode::Fallback, Reason::StoreUnreadable, env)
}

/// Memory for the start could not be reserved: nothing may be activated.
pub fn out_of_memory(s: &mut State, env: &Env) -> Choice {
    no_content(s, Mode::Safe, Reason::OutOfMemory, env)
}

/// The record could not be written before activation: nothing may be activated. (The
/// record keeps what it had, a pending attempt included: it is charged at the next start.)
pub fn state_unwritable(s: &mut State, env: &Env) -> Choice {
    no_content(s, Mode::Safe, Reason::StateUnwritable, env)
}

/// The evidence a health check rests on: uptime with the content active, and the result
/// of a canary operation through the filter stack (the driver's health work item creates,
/// writes, flushes, reads back and deletes a file in its own directory; a filter that
/// deadlocks on I/O never completes it, so the check never runs to report it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthEvidence {
    /// Seconds of uptime with the content active.
    pub uptime_secs: u32,
    /// The canary: `Ok` when every step of it completed, else the first OS error.
    pub canary: Result<(), IoError>,
}

/// A health check of the attempt `act` (this start's): records the evidence in the state
/// and, only if the canary succeeded and the uptime reached `cfg.healthy_after_secs`,
/// marks it healthy: its count is cleared and it becomes last-known-good (never lower than
/// the current one). `None` when `act` is not the attempt in progress (nothing of this
/// start's to close). Whether it passed is `health.passed` in the result.
// By-value form for hosts and tests: inline, so it is compiled only where used (its
// frame holds whole states, which the kernel's frames must not).
#[inline]
pub fn healthy(s: &State, act: &Activation, ev: &HealthEvidence, cfg: &Config) -> Option<State> {
    let mut n = *s;
    healthy_in(&mut n, act, ev, cfg).then_some(n)
}

/// [`healthy`] in place: `false` (and `n` unchanged) when there is nothing to record.
#[inline(never)]
pub fn healthy_in(n: &mut State, act: &Activation, ev: &HealthEvidence, cfg: &Config) -> bool {
    let Some(a) = this_starts(n, act) else {
        return false;
    };
    let passed = ev.canary.is_ok() && ev.uptime_secs >= cfg.healthy_after_secs;
    n.health = Some(HealthCheck {
        version: a.ver.version,
        boot: a.boot,
        uptime_secs: ev.uptime_secs,
        canary: ev.canary,
        passed,
    });
    if !passed {
        return true;
    }
    let _ = set_attempts(n, a.ver, 0);
    n.attempt = Some(Attempt {
        phase: Phase::Healthy,
        ..a
    });
    // The build ran healthy too: its count of unclean starts without content is cleared.
    close_build(n, a.boot, Phase::Healthy);
    if n.lkg.is_none_or(|l| l.version <= a.ver.version) {
        n.lkg = Some(a.ver);
    }
    // Counts of versions below the new last-known-good can never matter again.
    let lkg = n.lkg.map_or(0, |l| l.version);
    for t in n.tracks.iter_mut() {
        if t.is_some_and(|t| t.ver.version < lkg) {
            *t = None;
        }
    }
    true
}

/// The attempt in progress if it is `act`'s and no start has been counted since (a safe
/// start counts a boot and leaves an earlier attempt pending: an activation from before it
/// is stale).
fn this_starts(s: &State, act: &Activation) -> Option<Attempt> {
    s.pending()
        .filter(|a| a.ver == act.ver && a.boot == act.boot && s.boot == act.boot)
        .copied()
}

/// An orderly shutdown before healthy: this start's attempt `act` is not charged. `None`
/// when `act` is not the attempt in progress: a start that activated nothing (safe mode,
/// an unwritable record, ...) has no [`Activation`] and cannot close an earlier start's
/// unclean attempt.
// By-value form for hosts and tests: inline, so it is compiled only where used (its
// frame holds whole states, which the kernel's frames must not).
#[inline]
pub fn clean_shutdown(s: &State, act: &Activation) -> Option<State> {
    let mut n = *s;
    clean_shutdown_in(&mut n, act).then_some(n)
}

/// [`clean_shutdown`] in place: `false` (and `n` unchanged) when there is nothing to record.
#[inline(never)]
pub fn clean_shutdown_in(n: &mut State, act: &Activation) -> bool {
    let Some(a) = this_starts(n, act) else {
        return false;
    };
    n.attempt = Some(Attempt {
        phase: Phase::Clean,
        ..a
    });
    close_build(n, a.boot, Phase::Clean);
    true
}

/// What a start made durable before the driver's own setup: the attempt of its build. Its
/// health check and shutdown close it when no content is active (with content, the
/// content's [`Activation`] closes both).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BuildActivation {
    /// The build.
    pub build: BuildId,
    /// Boot sequence number of the start.
    pub boot: u64,
}

/// The build attempt made by the start of `boot` with `phase` closed (healthy: its count
/// of unclean starts without content cleared), if it is still in progress and no start
/// has been counted since. `false`: nothing to close.
fn close_build(n: &mut State, boot: u64, phase: Phase) -> bool {
    let now = n.boot;
    let Some(d) = n.driver.as_mut() else {
        return false;
    };
    if now != boot || d.pending().is_none_or(|a| a.boot != boot) {
        return false;
    }
    d.attempt = Some(BuildAttempt { phase, boot });
    if phase == Phase::Healthy {
        d.unclean = 0;
    }
    true
}

/// Whether `b` is the start whose build attempt the record shows in progress.
fn builds_own(s: &State, b: &BuildActivation) -> bool {
    s.boot == b.boot
        && s.driver
            .is_some_and(|d| d.build == b.build && d.pending().is_some_and(|a| a.boot == b.boot))
}

/// A health check of a start that has no content active (its build attempt `b`): records
/// the evidence (version 0) and, with the canary and the uptime, marks the build healthy
/// (its count cleared). `false` (and `n` unchanged) when `b` is not the attempt in
/// progress, or content of this start is (its own check closes both).
#[inline(never)]
pub fn build_healthy_in(
    n: &mut State,
    b: &BuildActivation,
    ev: &HealthEvidence,
    cfg: &Config,
) -> bool {
    if !builds_own(n, b) || n.pending().is_some_and(|a| a.boot == b.boot) {
        return false;
    }
    let passed = ev.canary.is_ok() && ev.uptime_secs >= cfg.healthy_after_secs;
    n.health = Some(HealthCheck {
        version: 0,
        boot: b.boot,
        uptime_secs: ev.uptime_secs,
        canary: ev.canary,
        passed,
    });
    if passed {
        close_build(n, b.boot, Phase::Healthy);
    }
    true
}

/// An orderly shutdown (or unload, or a setup failure that ends `DriverEntry` cleanly) of a
/// start with no content active: its build attempt `b` is closed uncharged. `false` when
/// there is nothing of it in progress.
#[inline(never)]
pub fn build_clean_in(n: &mut State, b: &BuildActivation) -> bool {
    builds_own(n, b) && close_build(n, b.boot, Phase::Clean)
}

/// Operator: wake the dormant driver build: it gets fresh tries (`threshold` more unclean
/// starts without content before it is dormant again). `None` if it is not dormant.
pub fn wake(s: &State) -> Option<State> {
    let d = s.driver.filter(|d| d.dormant.is_some())?;
    let mut n = *s;
    n.driver = Some(DriverTrack {
        dormant: None,
        unclean: 0,
        attempt: None,
        ..d
    });
    Some(n)
}

/// Operator: force safe mode on or off.
pub fn set_force_safe(s: &State, on: bool) -> State {
    let mut n = *s;
    n.force_safe = on;
    n
}

/// Operator: forget counts, quarantine, last-known-good and the floor; keep the boot
/// counter, the switch, the last decision and an attempt still in progress (the start that
/// made it ended uncleanly, or is running: the next start charges it, once, as always).
/// The next start then tries the newest version as on a first install.
pub fn reset(s: &State) -> State {
    let mut n = *s;
    reset_in(&mut n);
    n
}

/// [`reset`] in place (no state on the stack: the driver applies it for the console).
pub fn reset_in(s: &mut State) {
    let (boot, force_safe, last, health) = (s.boot, s.force_safe, s.last, s.health);
    // The driver build's history is not content history: `recover wake` is its reset.
    let driver = s.driver;
    let pending = s.pending().copied();
    *s = State::EMPTY;
    s.boot = boot;
    s.force_safe = force_safe;
    s.last = last;
    s.health = health;
    s.driver = driver;
    s.attempt = pending;
    if let Some(a) = pending {
        let _ = set_attempts(s, a.ver, 0);
    }
}

/// Operator: lift the quarantine of `version`; it gets fresh attempts. `None` if it was not
/// quarantined.
pub fn unquarantine(s: &State, version: u64) -> Option<State> {
    let mut n = *s;
    unquarantine_in(&mut n, version).then_some(n)
}

/// [`unquarantine`] in place: `false` (and `s` unchanged) if it was not quarantined.
pub fn unquarantine_in(s: &mut State, version: u64) -> bool {
    if s.quarantined(version).is_none() {
        return false;
    }
    for q in s.quarantine.iter_mut() {
        if q.is_some_and(|q| q.ver.version == version) {
            *q = None;
        }
    }
    for t in s.tracks.iter_mut() {
        if t.is_some_and(|t| t.ver.version == version) {
            *t = None;
        }
    }
    true
}

/// Operator: a fresh record for a machine whose record was unreadable or lost. Its history
/// is unknown, so every version `present` in the store is assumed to have used all its
/// attempts but one: each gets exactly one more try, and one unclean start quarantines it.
/// That keeps "at most `threshold` consecutive unclean starts" for any version that was not
/// yet quarantined when the record was lost. There is no last-known-good (nothing has
/// proven itself), so selection goes down through the stored versions, one try each.
/// Versions that do not fit the count table (the oldest) are put below the floor: never
/// tried automatically. `force_safe` sets the operator's switch in the new record.
pub fn rebuild(present: &[Ver], cfg: &Config, force_safe: bool) -> State {
    let probation = cfg.threshold().saturating_sub(1);
    // The driver build's history is unknown too: whichever build starts next takes this
    // entry, one unclean start without content from dormant.
    let mut s = State {
        force_safe,
        driver: Some(DriverTrack {
            adopt: true,
            unclean: probation,
            ..DriverTrack::fresh(BuildId::default())
        }),
        ..State::default()
    };
    // Newest first, `MAX_TRACKED` at most: selection sort over a slice the caller owns,
    // without allocating.
    let mut upper = u64::MAX;
    for slot in 0..MAX_TRACKED {
        let Some(ver) = present
            .iter()
            .filter(|v| v.version != 0 && v.version < upper)
            .max_by_key(|v| v.version)
            .copied()
        else {
            break;
        };
        upper = ver.version;
        if let Some(t) = s.tracks.get_mut(slot) {
            *t = Some(Track {
                ver,
                attempts: probation,
            });
        }
    }
    if let Some(left) = present
        .iter()
        .filter(|v| v.version < upper)
        .map(|v| v.version)
        .max()
    {
        s.floor = left;
    }
    s
}

/// A count entry that can be (re)used for a version without forgetting a count that may
/// still matter: a free one, else one of a quarantined version, a version below
/// last-known-good or at or below the floor (never chosen automatically), else one whose
/// count is 0 (what a forgotten version gets anyway). Last-known-good's and the pending
/// attempt's entries are kept.
fn free_track(s: &State) -> Option<usize> {
    let lkg = s.lkg.map_or(0, |l| l.version);
    let pending = s.pending().map(|a| a.ver.version);
    // Of several reusable entries, the lowest version's: which one is reused then does not
    // depend on where entries sit in the record (the model check treats slots as a set).
    s.tracks.iter().position(Option::is_none).or_else(|| {
        s.tracks
            .iter()
            .enumerate()
            .filter_map(|(i, t)| t.map(|t| (i, t)))
            .filter(|(_, t)| {
                let v = t.ver.version;
                v != lkg
                    && Some(v) != pending
                    && (t.attempts == 0
                        || v < lkg
                        || v <= s.floor
                        || is_quarantined(&s.quarantine, v))
            })
            .min_by_key(|(_, t)| t.ver.version)
            .map(|(i, _)| i)
    })
}

/// Sets `ver`'s count; `false` if it has no entry and none can be made (see [`free_track`]).
fn set_attempts(s: &mut State, ver: Ver, attempts: u8) -> bool {
    if let Some(t) = s
        .tracks
        .iter_mut()
        .flatten()
        .find(|t| t.ver.version == ver.version)
    {
        t.attempts = attempts;
        t.ver = ver;
        return true;
    }
    match free_track(s).and_then(|i| s.tracks.get_mut(i)) {
        Some(t) => {
            *t = Some(Track { ver, attempts });
            true
        }
        None => false,
    }
}

fn is_quarantined(q: &[Option<QEntry>; MAX_QUARANTINE], v: u64) -> bool {
    q.iter().flatten().any(|e| e.ver.version == v)
}

fn quarantine(s: &mut State, ver: Ver, reason: QuarantineReason, detail: u32) {
    for t in s.tracks.iter_mut() {
        if t.is_some_and(|t| t.ver.version == ver.version) {
            *t = None;
        }
    }
    if s.quarantined(ver.version).is_some() {
        return;
    }
    let entry = QEntry {
        ver,
        reason,
        detail,
        boot: s.boot,
    };
    let lkg = s.lkg.map_or(0, |l| l.version);
    let lowest = |s: &State, pick: &dyn Fn(&QEntry) -> bool| {
        s.quarantine
            .iter()
            .enumerate()
            .filter_map(|(i, q)| {
                q.filter(|q| q.ver.version != lkg && pick(q))
                    .map(|q| (i, q.ver.version))
            })
            .min_by_key(|&(_, v)| v)
    };
    // A free slot; else an entry below last-known-good (never chosen anyway); else invalid
    // content (if tried again it is read, rejected and quarantined again, never activated).
    // Only then a crash-looping version, and its release must not give it fresh attempts:
    // the floor rises to it, and automatic selection never picks it (or anything below
    // it but last-known-good) again.
    let slot = s
        .quarantine
        .iter()
        .position(Option::is_none)
        .or_else(|| lowest(s, &|q| q.ver.version < lkg).map(|(i, _)| i))
        .or_else(|| lowest(s, &|q| q.reason == QuarantineReason::Invalid).map(|(i, _)| i))
        .or_else(|| {
            let (i, v) = lowest(s, &|_| true)?;
            s.floor = s.floor.max(v);
            Some(i)
        });
    if let Some(q) = slot.and_then(|i| s.quarantine.get_mut(i)) {
        *q = Some(entry);
    }
}

const _: () = assert!(MAX_TRACKED >= 2 && MAX_QUARANTINE >= 2);

// ---- Live activation (issue 11): content pushed to the running system.

/// Why a live change (activation or rollback) was refused. Nothing was changed: the record
/// says what it said before, and the running content stays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LiveRefusal {
    /// The force-safe switch (configuration or record) is on, or Windows runs in Safe
    /// Mode, or the running start decided safe mode for another reason (the record's last
    /// decision is safe: `state-lost`, ...): no content may be activated until a start
    /// that is not safe.
    SafeMode {
        /// [`Reason::ForceSafeMode`], [`Reason::WindowsSafeMode`], or the safe decision's.
        reason: Reason,
    },
    /// The version asked for is the one running.
    AlreadyActive {
        /// The running version.
        version: u64,
    },
    /// The version is quarantined.
    Quarantined {
        /// Version.
        version: u64,
        /// Why it is quarantined.
        reason: QuarantineReason,
    },
    /// The version is older than last-known-good.
    OlderThanLastKnownGood {
        /// Version.
        version: u64,
        /// Last-known-good.
        lkg: u64,
    },
    /// The version is at or below the floor (and not last-known-good): never activated
    /// automatically, so not live either.
    BelowFloor {
        /// Version.
        version: u64,
        /// The floor.
        floor: u64,
    },
    /// No count entry can be made for the version (see [`countable`]).
    Uncountable {
        /// Version.
        version: u64,
    },
    /// The version is not in the content store (or is 0).
    NotInStore {
        /// Version.
        version: u64,
    },
    /// The store could not be listed, or the version's file could not be read.
    Unreadable {
        /// Version.
        version: u64,
        /// The OS error.
        error: IoError,
    },
    /// The file failed signature verification or validation. Not quarantined: a refused
    /// live change changes nothing (a start that picks it rejects and quarantines it).
    Invalid {
        /// Version.
        version: u64,
        /// The validation error.
        error: ContentError,
    },
    /// Rollback: there is no last-known-good and nothing is active.
    NoLastKnownGood,
    /// Rollback, or a live activation of last-known-good's version: its file is not the
    /// file that was healthy (its SHA-256 differs from the one recorded).
    LastKnownGoodChanged {
        /// Last-known-good's version.
        version: u64,
    },
    /// The record could not be re-read or written: no swap.
    StateUnwritable {
        /// The OS error.
        error: IoError,
    },
    /// Memory for the change could not be reserved.
    OutOfMemory,
    /// The version has used up its attempts without being quarantined (possible only after
    /// the threshold was lowered): a start would quarantine it; a live change, which must
    /// change nothing when refused, does not.
    AttemptsUsed {
        /// Version.
        version: u64,
        /// Its unclean starts.
        attempts: u8,
    },
    /// The record shows an attempt of another start still in progress (the running start
    /// did not write the record: `state-unwritable`, `state-unreadable`, `out-of-memory`).
    /// Replacing it would lose the unclean end it stands for; the next start charges it.
    PendingAttempt {
        /// The pending attempt's version.
        version: u64,
    },
    /// The driver is stopping (unload or system shutdown) and has closed its attempt as
    /// clean: a change now would leave a new attempt open and be charged at the next start.
    ShuttingDown,
}

impl LiveRefusal {
    /// Stable kebab-case name (JSON, console, docs).
    pub const fn name(&self) -> &'static str {
        match self {
            LiveRefusal::SafeMode { .. } => "safe-mode",
            LiveRefusal::AlreadyActive { .. } => "already-active",
            LiveRefusal::Quarantined { .. } => "quarantined",
            LiveRefusal::OlderThanLastKnownGood { .. } => "older-than-last-known-good",
            LiveRefusal::BelowFloor { .. } => "below-floor",
            LiveRefusal::Uncountable { .. } => "uncountable",
            LiveRefusal::NotInStore { .. } => "not-in-store",
            LiveRefusal::Unreadable { .. } => "unreadable",
            LiveRefusal::Invalid { .. } => "invalid-content",
            LiveRefusal::NoLastKnownGood => "no-last-known-good",
            LiveRefusal::LastKnownGoodChanged { .. } => "last-known-good-changed",
            LiveRefusal::StateUnwritable { .. } => "state-unwritable",
            LiveRefusal::OutOfMemory => "out-of-memory",
            LiveRefusal::AttemptsUsed { .. } => "attempts-used",
            LiveRefusal::PendingAttempt { .. } => "pending-attempt",
            LiveRefusal::ShuttingDown => "shutting-down",
        }
    }

    /// Stable code (1..=16, in declaration order; `docs/boot-safety.md` lists them).
    pub fn code(&self) -> u16 {
        match self {
            LiveRefusal::SafeMode { .. } => 1,
            LiveRefusal::AlreadyActive { .. } => 2,
            LiveRefusal::Quarantined { .. } => 3,
            LiveRefusal::OlderThanLastKnownGood { .. } => 4,
            LiveRefusal::BelowFloor { .. } => 5,
            LiveRefusal::Uncountable { .. } => 6,
            LiveRefusal::NotInStore { .. } => 7,
            LiveRefusal::Unreadable { .. } => 8,
            LiveRefusal::Invalid { .. } => 9,
            LiveRefusal::NoLastKnownGood => 10,
            LiveRefusal::LastKnownGoodChanged { .. } => 11,
            LiveRefusal::StateUnwritable { .. } => 12,
            LiveRefusal::OutOfMemory => 13,
            LiveRefusal::AttemptsUsed { .. } => 14,
            LiveRefusal::PendingAttempt { .. } => 15,
            LiveRefusal::ShuttingDown => 16,
        }
    }
}

impl core::fmt::Display for LiveRefusal {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            LiveRefusal::SafeMode { reason } => write!(
                f,
                "no content may be activated: safe mode ({}) is on",
                reason.name()
            ),
            LiveRefusal::AlreadyActive { version } => {
                write!(f, "version {version} is already the active content")
            }
            LiveRefusal::Quarantined { version, reason } => {
                write!(f, "version {version} is quarantined ({})", reason.name())
            }
            LiveRefusal::OlderThanLastKnownGood { version, lkg } => write!(
                f,
                "version {version} is older than last-known-good {lkg}: expected at least {lkg}"
            ),
            LiveRefusal::BelowFloor { version, floor } => write!(
                f,
                "version {version} is at or below the floor {floor}: expected above {floor} or last-known-good"
            ),
            LiveRefusal::Uncountable { version } => write!(
                f,
                "version {version} cannot be counted: every count entry holds an unclean count that may still matter"
            ),
            LiveRefusal::NotInStore { version } => {
                write!(f, "version {version} is not in the content store")
            }
            LiveRefusal::Unreadable { version, error } => {
                write!(f, "version {version} could not be read: {error}")
            }
            LiveRefusal::Invalid { version, error } => write!(
                f,
                "version {version} was rejected ({}: {error}); it was not activated nor quarantined",
                error.code()
            ),
            LiveRefusal::NoLastKnownGood => write!(
                f,
                "nothing to roll back: no last-known-good and no content active"
            ),
            LiveRefusal::LastKnownGoodChanged { version } => write!(
                f,
                "last-known-good version {version}'s file changed: its SHA-256 differs from the one recorded when it was healthy"
            ),
            LiveRefusal::StateUnwritable { error } => write!(
                f,
                "the state record could not be read or written ({error}): nothing was swapped"
            ),
            LiveRefusal::OutOfMemory => write!(f, "memory for the change could not be reserved"),
            LiveRefusal::AttemptsUsed { version, attempts } => write!(
                f,
                "version {version} has used its attempts ({attempts} unclean starts): a start would quarantine it"
            ),
            LiveRefusal::PendingAttempt { version } => write!(
                f,
                "the record shows an earlier start's attempt of version {version} still in progress: the running start did not write the record; the next start charges it"
            ),
            LiveRefusal::ShuttingDown => f.write_str(
                "the driver is stopping (unload or shutdown): no content may be activated now",
            ),
        }
    }
}

/// An attempt in progress that is not `active`'s (an earlier start's unclean end, not yet
/// charged): a live change must not replace it.
fn foreign_pending(s: &State, active: Option<&Activation>) -> Option<u64> {
    let p = s.pending()?;
    let ours = active.is_some_and(|a| this_starts(s, a).is_some());
    (!ours).then_some(p.ver.version)
}

fn safe_refusal(s: &State, cfg: &Config, env: &Env) -> Result<(), LiveRefusal> {
    if env.windows_safe_mode {
        return Err(LiveRefusal::SafeMode {
            reason: Reason::WindowsSafeMode,
        });
    }
    if cfg.force_safe_mode || s.force_safe {
        return Err(LiveRefusal::SafeMode {
            reason: Reason::ForceSafeMode,
        });
    }
    // The running start decided safe mode for another reason (`state-lost`,
    // `out-of-memory`, ...): it stays without content until the next start, as it would
    // have without live activation. (A live change's own decision is never safe.)
    if let Some(d) = s.last.filter(|d| d.mode == Mode::Safe) {
        return Err(LiveRefusal::SafeMode { reason: d.reason });
    }
    Ok(())
}

/// Eligibility of `version` for a live activation while `active` runs. Checks, in this
/// order: safe mode (either switch, Windows Safe Mode, or a safe last decision); an earlier start's attempt still
/// pending (`PendingAttempt`); already active; version 0 (`NotInStore`); quarantined;
/// older than last-known-good; at or below the floor (last-known-good excepted); attempts
/// already at the threshold without quarantine (`AttemptsUsed`: a start would quarantine
/// it, a refused live change changes nothing); not countable. The same rules a start
/// chooses by, so a live activation never runs what a start would not.
pub fn live_check(
    s: &State,
    active: Option<&Activation>,
    version: u64,
    cfg: &Config,
    env: &Env,
) -> Result<(), LiveRefusal> {
    safe_refusal(s, cfg, env)?;
    if let Some(v) = foreign_pending(s, active) {
        return Err(LiveRefusal::PendingAttempt { version: v });
    }
    if active.is_some_and(|a| a.ver.version == version) {
        return Err(LiveRefusal::AlreadyActive { version });
    }
    if version == 0 {
        return Err(LiveRefusal::NotInStore { version });
    }
    eligible(s, version, cfg)
}

/// The per-version rules of [`live_check`] after the version-0 check.
fn eligible(s: &State, version: u64, cfg: &Config) -> Result<(), LiveRefusal> {
    if let Some(q) = s.quarantined(version) {
        return Err(LiveRefusal::Quarantined {
            version,
            reason: q.reason,
        });
    }
    let lkg = s.lkg.map_or(0, |l| l.version);
    if version < lkg {
        return Err(LiveRefusal::OlderThanLastKnownGood { version, lkg });
    }
    if version <= s.floor && version != lkg {
        return Err(LiveRefusal::BelowFloor {
            version,
            floor: s.floor,
        });
    }
    let attempts = s.attempts(version);
    if attempts >= cfg.threshold() {
        return Err(LiveRefusal::AttemptsUsed { version, attempts });
    }
    if !countable(s, version) {
        return Err(LiveRefusal::Uncountable { version });
    }
    Ok(())
}

/// Records a live attempt of `ver` (the caller ran [`live_check`]): its count entry made,
/// the attempt in progress at this boot (it replaces the running start's own, which ended
/// without a crash at the swap and is not charged), and the decision normal /
/// `live-update`. Must be durable before `ver` is parsed, exactly as at a start.
#[inline(never)]
pub fn live_attempt_in(s: &mut State, ver: Ver, env: &Env) -> Activation {
    let act = record_attempt(s, ver);
    decided(s, Mode::Normal, Reason::LiveUpdate, Some(ver.version), env);
    act
}

/// The operator's rollback to last-known-good while `active` runs. The version rolled back
/// from (`active`, unless it is last-known-good) is quarantined (`rolled-back`, detail 0).
/// With a last-known-good L: L's attempt is recorded in progress (it is activated live, so
/// a crash is charged to it exactly as at a start), decision fallback / `live-rollback`,
/// and L's activation returned. Without one: nothing active afterwards (no attempt),
/// decision fallback / `live-rollback`, version 0, `Ok(None)`.
///
/// Refused (with `s` unchanged): safe mode; an earlier start's attempt pending; `active` is
/// last-known-good (`AlreadyActive`); no last-known-good and nothing active; last-known-good
/// quarantined or not countable. Not checked here, for want of the configuration: its
/// force-safe switch and last-known-good's attempts against the threshold —
/// [`super::start::Durable::rollback`] checks both.
#[inline(never)]
pub fn rollback_in(
    s: &mut State,
    active: Option<&Activation>,
    env: &Env,
) -> Result<Option<Activation>, LiveRefusal> {
    // Windows Safe Mode and the record's switch; the configuration's switch is the caller's
    // (it has the configuration).
    safe_refusal(s, &Config::default(), env)?;
    if let Some(v) = foreign_pending(s, active) {
        return Err(LiveRefusal::PendingAttempt { version: v });
    }
    let lkg = s.lkg;
    let from = active.map(|a| a.ver);
    match (lkg, from) {
        (Some(l), Some(a)) if a.version == l.version => {
            return Err(LiveRefusal::AlreadyActive { version: l.version });
        }
        (None, None) => return Err(LiveRefusal::NoLastKnownGood),
        _ => {}
    }
    if let Some(l) = lkg {
        if let Some(q) = s.quarantined(l.version) {
            return Err(LiveRefusal::Quarantined {
                version: l.version,
                reason: q.reason,
            });
        }
        if !countable(s, l.version) {
            return Err(LiveRefusal::Uncountable { version: l.version });
        }
    }
    if let Some(a) = from {
        quarantine(s, a, QuarantineReason::RolledBack, 0);
    }
    match lkg {
        Some(l) => {
            let act = record_attempt(s, l);
            decided(
                s,
                Mode::Fallback,
                Reason::LiveRollback,
                Some(l.version),
                env,
            );
            Ok(Some(act))
        }
        None => {
            s.attempt = None;
            decided(s, Mode::Fallback, Reason::LiveRollback, None, env);
            Ok(None)
        }
    }
}
