//! The boot-attempt state machine as pure functions over [`State`]. Nothing here does I/O:
//! the start sequence in [`super::start`] calls these and persists what they return.

use super::record::{
    Attempt, LastDecision, Loaded, MAX_QUARANTINE, MAX_TRACKED, Mode, Phase, QEntry,
    QuarantineReason, Reason, State, Track, Ver,
};

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
}

/// The state read at start, as the decision sees it.
// The record is fixed-size by design (no allocation at start); about 1 KiB on the stack.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prior {
    /// As decoded from the medium.
    Loaded(Loaded),
    /// The medium failed to read.
    Unreadable,
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

/// Starts a boot: decides safe mode, or charges an unclean previous attempt to the version
/// that was active then and counts the boot.
pub fn begin(prior: Prior, cfg: &Config, env: &Env) -> Begin {
    let safe = |state: Option<State>, reason: Reason| {
        let write = state.map(|mut s| {
            s.boot = s.boot.saturating_add(1);
            s.last = Some(LastDecision {
                mode: Mode::Safe,
                reason,
                version: 0,
                boot: s.boot,
            });
            s
        });
        Begin::Safe { reason, write }
    };
    let state = match prior {
        Prior::Unreadable => return safe(None, Reason::StateUnreadable),
        Prior::Loaded(Loaded::Lost) => {
            // Nothing in it can be trusted: write a fresh record that says so. Only the
            // switches below still apply to it.
            let reason = if env.windows_safe_mode {
                Reason::WindowsSafeMode
            } else if cfg.force_safe_mode {
                Reason::ForceSafeMode
            } else {
                Reason::StateLost
            };
            return safe(Some(State::default()), reason);
        }
        Prior::Loaded(Loaded::Fresh) => State::default(),
        Prior::Loaded(Loaded::Ok(s)) => s.state,
    };
    // Switches touch no counters: an in-progress attempt stays in progress, to be charged
    // at the next normal start.
    if env.windows_safe_mode {
        return safe(Some(state), Reason::WindowsSafeMode);
    }
    if cfg.force_safe_mode || state.force_safe {
        return safe(Some(state), Reason::ForceSafeMode);
    }
    let mut s = state;
    if let Some(a) = s.attempt {
        if a.phase == Phase::InProgress {
            let n = s.attempts(a.ver.version).saturating_add(1);
            set_attempts(&mut s, a.ver.version, n);
        }
        s.attempt = None;
    }
    s.boot = s.boot.saturating_add(1);
    Begin::Choose(s)
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

/// Chooses content for a start (after [`begin`]): the newest version in `store` that is not
/// below last-known-good, not quarantined and not `excluded` (unreadable this start). A
/// version that has used up its attempts is quarantined here, and the next one considered.
/// Returns the choice and updates `s` (quarantine, last decision); the caller records the
/// attempt with [`record_attempt`] once it knows the file's digest.
pub fn choose(s: &mut State, store: &[u64], excluded: &[u64], cfg: &Config) -> Choice {
    let threshold = cfg.threshold();
    let newest = store.iter().copied().max();
    // Each turn quarantines one version or breaks: at most `store.len() + 1` turns.
    let mut turns = store.len();
    let choice = loop {
        let floor = s.lkg.map_or(0, |l| l.version);
        let cand = store
            .iter()
            .copied()
            .filter(|&v| {
                v != 0
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
        let used = s.attempts(v);
        if used >= threshold {
            if turns == 0 {
                break Choice {
                    target: None,
                    mode: Mode::Fallback,
                    reason: Reason::NothingUsable,
                };
            }
            turns = turns.saturating_sub(1);
            let ver = Ver {
                version: v,
                digest: digest_known(s, v),
            };
            quarantine(s, ver, QuarantineReason::CrashLoop, u32::from(used));
            continue;
        }
        let reason = if Some(v) == newest {
            Reason::NewestContent
        } else if store
            .iter()
            .any(|&n| n > v && excluded.contains(&n) && s.quarantined(n).is_none())
        {
            Reason::NewerUnreadable
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
    s.last = Some(LastDecision {
        mode: choice.mode,
        reason: choice.reason,
        version: choice.target.unwrap_or(0),
        boot: s.boot,
    });
    choice
}

fn digest_known(s: &State, v: u64) -> [u8; 32] {
    [s.attempt.map(|a| a.ver), s.lkg]
        .into_iter()
        .flatten()
        .find(|x| x.version == v)
        .map_or([0; 32], |x| x.digest)
}

/// Records that `ver` is about to be activated: the attempt in progress, which must be
/// durable before the content is parsed.
pub fn record_attempt(s: &mut State, ver: Ver) {
    let n = s.attempts(ver.version);
    set_attempts(s, ver.version, n);
    s.attempt = Some(Attempt {
        ver,
        phase: Phase::InProgress,
    });
}

/// A version that was read and failed validation: quarantined at once, not active.
pub fn reject_invalid(s: &mut State, ver: Ver, error_ordinal: u32) {
    if s.attempt.is_some_and(|a| a.ver.version == ver.version) {
        s.attempt = None;
    }
    quarantine(s, ver, QuarantineReason::Invalid, error_ordinal);
}

/// A start that activates nothing, for `reason`; records the decision. No attempt is left
/// in progress (none was made with content).
fn no_content(s: &mut State, mode: Mode, reason: Reason) -> Choice {
    s.attempt = None;
    s.last = Some(LastDecision {
        mode,
        reason,
        version: 0,
        boot: s.boot,
    });
    Choice {
        target: None,
        mode,
        reason,
    }
}

/// The store could not be listed: no content this start, nothing quarantined.
pub fn store_unreadable(s: &mut State) -> Choice {
    no_content(s, Mode::Fallback, Reason::StoreUnreadable)
}

/// Memory for the start could not be reserved: nothing may be activated.
pub fn out_of_memory(s: &mut State) -> Choice {
    no_content(s, Mode::Safe, Reason::OutOfMemory)
}

/// The record could not be written before activation: nothing may be activated.
pub fn state_unwritable(s: &mut State) -> Choice {
    no_content(s, Mode::Safe, Reason::StateUnwritable)
}

/// The system stayed up `healthy_after` with the active content: its count is cleared and
/// it becomes last-known-good. `None` when there is nothing to record.
pub fn healthy(s: &State) -> Option<State> {
    let a = s.attempt.filter(|a| a.phase == Phase::InProgress)?;
    let mut n = *s;
    set_attempts(&mut n, a.ver.version, 0);
    n.attempt = Some(Attempt {
        ver: a.ver,
        phase: Phase::Healthy,
    });
    n.lkg = Some(a.ver);
    // Counts of versions below the new last-known-good can never matter again.
    for t in n.tracks.iter_mut() {
        if t.is_some_and(|t| t.version < a.ver.version) {
            *t = None;
        }
    }
    Some(n)
}

/// An orderly shutdown before healthy: this attempt is not charged. `None` when there is
/// nothing to record.
pub fn clean_shutdown(s: &State) -> Option<State> {
    let a = s.attempt.filter(|a| a.phase == Phase::InProgress)?;
    let mut n = *s;
    n.attempt = Some(Attempt {
        ver: a.ver,
        phase: Phase::Clean,
    });
    Some(n)
}

/// Operator: force safe mode on or off.
pub fn set_force_safe(s: &State, on: bool) -> State {
    let mut n = *s;
    n.force_safe = on;
    n
}

/// Operator: forget counts, quarantine and last-known-good; keep the boot counter and the
/// switch. The next start behaves as a first install: it tries the newest version.
pub fn reset(s: &State) -> State {
    State {
        boot: s.boot,
        force_safe: s.force_safe,
        last: s.last,
        ..State::default()
    }
}

/// Operator: lift the quarantine of `version`; it gets fresh attempts. `None` if it was not
/// quarantined.
pub fn unquarantine(s: &State, version: u64) -> Option<State> {
    s.quarantined(version)?;
    let mut n = *s;
    for q in n.quarantine.iter_mut() {
        if q.is_some_and(|q| q.ver.version == version) {
            *q = None;
        }
    }
    for t in n.tracks.iter_mut() {
        if t.is_some_and(|t| t.version == version) {
            *t = None;
        }
    }
    Some(n)
}

fn set_attempts(s: &mut State, version: u64, attempts: u8) {
    if let Some(t) = s.tracks.iter_mut().flatten().find(|t| t.version == version) {
        t.attempts = attempts;
        return;
    }
    let lkg = s.lkg.map_or(0, |l| l.version);
    let keep = |t: &Track| {
        t.version == lkg || t.version >= lkg && !is_quarantined(&s.quarantine, t.version)
    };
    // A free slot; else one whose count can no longer matter (quarantined, or below
    // last-known-good); else one with no unclean start to remember (a count of 0 is what a
    // forgotten version gets anyway).
    let free = s.tracks.iter().position(Option::is_none).or_else(|| {
        s.tracks
            .iter()
            .position(|t| t.is_some_and(|t| !keep(&t)))
            .or_else(|| {
                s.tracks
                    .iter()
                    .position(|t| t.is_some_and(|t| t.attempts == 0 && t.version != lkg))
            })
    });
    let slot = match free {
        Some(i) => Some(i),
        None => {
            // Every entry is a version with unclean starts. Forgetting one would give it
            // fresh attempts if it is ever chosen again, breaking "at most `threshold`
            // consecutive unclean starts": quarantine the oldest instead (it has been
            // superseded by newer versions that were tried since).
            let oldest = s
                .tracks
                .iter()
                .enumerate()
                .filter_map(|(i, t)| t.filter(|t| t.version != lkg).map(|t| (i, t)))
                .min_by_key(|(_, t)| t.version);
            if let Some((i, t)) = oldest {
                let digest = digest_known(s, t.version);
                let ver = Ver {
                    version: t.version,
                    digest,
                };
                quarantine(s, ver, QuarantineReason::CrashLoop, u32::from(t.attempts));
                Some(i)
            } else {
                None
            }
        }
    };
    if let Some(t) = slot.and_then(|i| s.tracks.get_mut(i)) {
        *t = Some(Track { version, attempts });
    }
}

fn is_quarantined(q: &[Option<QEntry>; MAX_QUARANTINE], v: u64) -> bool {
    q.iter().flatten().any(|e| e.ver.version == v)
}

fn quarantine(s: &mut State, ver: Ver, reason: QuarantineReason, detail: u32) {
    for t in s.tracks.iter_mut() {
        if t.is_some_and(|t| t.version == ver.version) {
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
