//! The driver's ETW provider and its events (TraceLogging, Microsoft's `tracelogging`
//! crate; ADR 0018). Every event the driver writes is written here, by a function whose
//! name, level, keyword and fields docs/windows.md ("ETW events") lists; the kernel check
//! decodes the metadata the crate encoded into the linked image and compares it with that
//! list (tests/tests/pe.rs). Registration with the kernel is `kernel::etw`'s job.
//!
//! Portable: on other targets than Windows the crate compiles every write to nothing, so
//! this module and its rate limiter are built and unit-tested on Linux.
//!
//! What a write costs: `write_event!` first reads whether any session enabled the provider
//! for the event's level and keyword (a load of the provider's state, no call); only then
//! are the fields evaluated and `EtwWriteTransfer` called. Nothing allocates: every field
//! is a scalar or a slice the caller holds (stack buffers, the Filter Manager's name
//! buffer, static strings). `EtwWriteTransfer` may be called at any IRQL; above APC_LEVEL
//! its data must not be pageable (Microsoft Learn, "EtwWriteTransfer function (wdm.h)",
//! Remarks): match events are written from the pre-operation callbacks at PASSIVE or
//! APC_LEVEL, everything else at PASSIVE_LEVEL.

use core::sync::atomic::{AtomicU64, Ordering};

use failsafe_loader::state::machine::LiveRefusal;
use failsafe_loader::state::start::Rejection;
use failsafe_loader::state::{QEntry, StartReport};
use failsafe_loader::{Action, EventType, Match};
use tracelogging as tlg;

/// The provider's name. Its GUID is derived from it (the ETW name hash, as `tracelog`,
/// `logman`, WPR and .NET's EventSource derive it): [`PROVIDER_GUID`].
pub const PROVIDER_NAME: &str = "Failsafe-Minifilter";
/// `{2df134e2-be35-54e1-e54b-6acb496a6786}`, `Guid::from_name(PROVIDER_NAME)`; a unit
/// test keeps the two equal, and the instrumentation manifest names it.
pub const PROVIDER_GUID: u128 = 0x2df134e2_be35_54e1_e54b_6acb496a6786;

tlg::define_provider!(PROVIDER, "Failsafe-Minifilter");

/// Keywords (the low 48 bits are the provider's; the top 16 are Microsoft's).
pub mod keyword {
    /// Start decisions, quarantine, fallback, refused content, health, live changes.
    pub const DECISION: u64 = 0x1;
    /// Block and audit matches (rate-limited).
    pub const MATCH: u64 = 0x2;
    /// The driver's own start, stop, setup failures and warnings.
    pub const DRIVER: u64 = 0x4;
    /// Control channel requests.
    pub const CONTROL: u64 = 0x8;
    /// The Event Log channel `Failsafe-Minifilter/Operational`: the keyword bit the
    /// message compiler gives a provider's first channel (the Event Log enables the
    /// provider with it), set on every event that belongs in Event Viewer.
    pub const OPERATIONAL: u64 = 0x8000_0000_0000_0000;
}

/// The channel value of `Failsafe-Minifilter/Operational` in the instrumentation manifest
/// (inf/failsafeflt.man; values below 16 are reserved).
pub const OPERATIONAL_CHANNEL: tlg::Channel = tlg::Channel::from_int(16);

/// Registers the provider (`EtwRegister`, then `EtwSetInformation` with its traits).
/// Returns 0 or the Win32 error. Called once, at PASSIVE_LEVEL, by `kernel::etw`, which
/// checks first that the kernel exports every routine the crate imports.
///
/// # Safety
/// [`unregister`] must run before the image unloads (the kernel would otherwise call the
/// provider's enable callback in an unloaded image).
#[cfg(all(windows, not(failsafe_fltcheck)))]
pub(crate) unsafe fn register() -> u32 {
    // SAFETY: the caller's contract; PROVIDER is a static (never moved).
    unsafe { PROVIDER.register() }
}

/// Unregisters the provider (nothing if it is not registered). PASSIVE_LEVEL.
#[cfg(all(windows, not(failsafe_fltcheck)))]
pub(crate) fn unregister() -> u32 {
    PROVIDER.unregister()
}

/// A session listens for the match event of `action` (`MatchBlocked` is a warning,
/// `MatchAudited` informational): one load; the callbacks ask before copying the process
/// image.
pub fn match_enabled(action: Action) -> bool {
    let level = if action == Action::Block {
        tlg::Level::Warning
    } else {
        tlg::Level::Informational
    };
    PROVIDER.enabled(level, keyword::MATCH)
}

/// Lowercase hex of a digest, for a text field.
fn hex(digest: &[u8; 32]) -> [u8; 64] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [b'0'; 64];
    for (pair, b) in out.chunks_exact_mut(2).zip(digest) {
        if let [hi, lo] = pair {
            *hi = HEX.get(usize::from(b >> 4)).copied().unwrap_or(b'0');
            *lo = HEX.get(usize::from(b & 15)).copied().unwrap_or(b'0');
        }
    }
    out
}

/// An OS error as the NTSTATUS it came from (the kernel's errors are NTSTATUS values).
fn status(code: i64) -> i32 {
    i32::try_from(code).unwrap_or(i32::MIN)
}

/// `StartDecision`: what a start decided (every start).
pub fn start_decision(
    r: &StartReport,
    attempts: u8,
    threshold: u8,
    force_safe_mode: bool,
    windows_safe_mode: u32,
) {
    let written = !r.record_not_written;
    let err = r.error.map_or(0, |e| status(e.code));
    tlg::write_event!(
        PROVIDER,
        "StartDecision",
        level(Informational),
        keyword(keyword::DECISION | keyword::OPERATIONAL),
        channel(OPERATIONAL_CHANNEL),
        u64("Boot", &r.boot),
        str8("Mode", r.mode.name()),
        str8("Reason", r.reason.name()),
        u64("Version", &r.version),
        u8("Attempts", &attempts),
        u8("Threshold", &threshold),
        bool8("ForceSafeMode", &force_safe_mode),
        u32("WindowsSafeMode", &windows_safe_mode),
        bool8("TestSigning", &r.test_signing),
        bool8("RecordWritten", &written),
        bool8("WritesMayNotPersist", &r.writes_may_not_persist),
        i32_hex("RecordStatus", &err),
    );
}

/// `Quarantine`: a version quarantined by this start (crash loop or invalid content) or
/// by a live rollback.
pub fn quarantine(q: &QEntry) {
    let digest = hex(&q.ver.digest);
    tlg::write_event!(
        PROVIDER,
        "Quarantine",
        level(Warning),
        keyword(keyword::DECISION | keyword::OPERATIONAL),
        channel(OPERATIONAL_CHANNEL),
        u64("Boot", &q.boot),
        u64("Version", &q.ver.version),
        str8("Reason", q.reason.name()),
        u32("Detail", &q.detail),
        str8("Digest", &digest[..]),
    );
}

/// `Fallback`: the start runs older content than the newest staged, or none.
pub fn fallback(r: &StartReport, last_known_good: u64, rejected: u32, unreadable: u32) {
    tlg::write_event!(
        PROVIDER,
        "Fallback",
        level(Warning),
        keyword(keyword::DECISION | keyword::OPERATIONAL),
        channel(OPERATIONAL_CHANNEL),
        u64("Boot", &r.boot),
        u64("Version", &r.version),
        str8("Reason", r.reason.name()),
        u64("LastKnownGood", &last_known_good),
        u32("Rejected", &rejected),
        u32("Unreadable", &unreadable),
    );
}

/// `ContentRefused`: a content file read and refused by the validator or the signature
/// check (it is quarantined: see `Quarantine`).
pub fn content_refused(r: &Rejection) {
    let code = r.error.ordinal();
    let offset = u64::try_from(r.error.at.offset).unwrap_or(u64::MAX);
    let digest = hex(&r.ver.digest);
    tlg::write_event!(
        PROVIDER,
        "ContentRefused",
        level(Warning),
        keyword(keyword::DECISION | keyword::OPERATIONAL),
        channel(OPERATIONAL_CHANNEL),
        u64("Version", &r.ver.version),
        str8("Error", r.error.code()),
        u32("ErrorCode", &code),
        u64("Offset", &offset),
        str8("Digest", &digest[..]),
    );
}

/// `HealthRecorded`: the health check ran and its evidence was recorded.
pub fn health_recorded(
    version: u64,
    boot: u64,
    uptime_secs: u32,
    canary: Result<(), i64>,
    healthy: bool,
) {
    let (word, code) = match canary {
        Ok(()) => ("ok", 0),
        Err(e) => ("failed", status(e)),
    };
    tlg::write_event!(
        PROVIDER,
        "HealthRecorded",
        level(Informational),
        keyword(keyword::DECISION | keyword::OPERATIONAL),
        channel(OPERATIONAL_CHANNEL),
        u64("Version", &version),
        u64("Boot", &boot),
        u32("UptimeSeconds", &uptime_secs),
        str8("Canary", word),
        i32_hex("CanaryStatus", &code),
        bool8("Healthy", &healthy),
    );
}

/// `LiveActivated`: content activated on the running system (its attempt is durable).
pub fn live_activated(version: u64, boot: u64) {
    tlg::write_event!(
        PROVIDER,
        "LiveActivated",
        level(Informational),
        keyword(keyword::DECISION | keyword::OPERATIONAL),
        channel(OPERATIONAL_CHANNEL),
        u64("Version", &version),
        u64("Boot", &boot),
    );
}

/// `LiveRolledBack`: the operator's rollback to last-known-good (`Version` 0: no content).
pub fn live_rolled_back(version: u64, from: u64, boot: u64) {
    tlg::write_event!(
        PROVIDER,
        "LiveRolledBack",
        level(Warning),
        keyword(keyword::DECISION | keyword::OPERATIONAL),
        channel(OPERATIONAL_CHANNEL),
        u64("Version", &version),
        u64("From", &from),
        u64("Boot", &boot),
    );
}

/// `LiveRefused`: a live activation or rollback refused (nothing changed).
pub fn live_refused(request: &'static str, version: u64, r: &LiveRefusal) {
    let code = u32::from(r.code());
    tlg::write_event!(
        PROVIDER,
        "LiveRefused",
        level(Warning),
        keyword(keyword::DECISION | keyword::OPERATIONAL),
        channel(OPERATIONAL_CHANNEL),
        str8("Request", request),
        u64("Version", &version),
        str8("Refusal", r.name()),
        u32("RefusalCode", &code),
    );
}

/// `DriverStarted`: `DriverEntry` succeeded (filtering started).
pub fn driver_started(drill_build: bool, control_channel: bool, process_table: bool) {
    tlg::write_event!(
        PROVIDER,
        "DriverStarted",
        level(Informational),
        keyword(keyword::DRIVER | keyword::OPERATIONAL),
        channel(OPERATIONAL_CHANNEL),
        str8("DriverVersion", env!("CARGO_PKG_VERSION")),
        bool8("DrillBuild", &drill_build),
        bool8("ControlChannel", &control_channel),
        bool8("ProcessTable", &process_table),
    );
}

/// `DriverStopped`: an orderly stop (the filter's unload callback) is about to tear down.
pub fn driver_stopped(flags: u32) {
    tlg::write_event!(
        PROVIDER,
        "DriverStopped",
        level(Informational),
        keyword(keyword::DRIVER | keyword::OPERATIONAL),
        channel(OPERATIONAL_CHANNEL),
        str8("Reason", "unload"),
        u32_hex("UnloadFlags", &flags),
    );
}

/// `SetupFailed`: `DriverEntry` fails at `step` with `status` (the service does not start).
pub fn setup_failed(step: &'static str, status: i32) {
    tlg::write_event!(
        PROVIDER,
        "SetupFailed",
        level(Error),
        keyword(keyword::DRIVER | keyword::OPERATIONAL),
        channel(OPERATIONAL_CHANNEL),
        str8("Step", step),
        i32_hex("Status", &status),
    );
}

/// `DriverWarning`: something optional is missing; the driver runs without it.
pub fn driver_warning(what: &'static str) {
    tlg::write_event!(
        PROVIDER,
        "DriverWarning",
        level(Warning),
        keyword(keyword::DRIVER | keyword::OPERATIONAL),
        channel(OPERATIONAL_CHANNEL),
        str8("What", what),
    );
}

/// `ControlRequest`: one request on the control channel, who sent it and how it ended.
/// `result`: `ok`, `refused` (then `code` is the refusal's) or `protocol-error` (the
/// protocol error's code).
pub fn control_request(request: &'static str, pid: u64, version: u64, result: &str, code: u32) {
    let pid = u32::try_from(pid).unwrap_or(u32::MAX);
    tlg::write_event!(
        PROVIDER,
        "ControlRequest",
        level(Informational),
        keyword(keyword::CONTROL),
        str8("Request", request),
        pid("ProcessId", &pid),
        u64("Version", &version),
        str8("Result", result),
        u32("Code", &code),
    );
}

/// Block match events: at most [`MATCHES_PER_SECOND`] per second; the rest are counted and
/// the count goes out with the next block event written (`Dropped`). Blocks and audits
/// have a limiter each, so an audit storm cannot starve the warning-level block events
/// (nor hand a block's dropped count to an event a warning-level session never sees).
pub static BLOCK_LIMIT: Limiter = Limiter::new(MATCHES_PER_SECOND, 10_000_000);
/// Audit match events: as [`BLOCK_LIMIT`], separately.
pub static AUDIT_LIMIT: Limiter = Limiter::new(MATCHES_PER_SECOND, 10_000_000);
/// Match events written per second at most.
pub const MATCHES_PER_SECOND: u32 = 100;

/// A block or audit match, from a pre-operation callback (PASSIVE or APC_LEVEL).
/// `process`: the image of the requesting process, if known. `now`: interrupt time in
/// 100 ns units, for the rate limit.
pub fn matched(
    m: &Match,
    kind: EventType,
    path: &[u16],
    pid: u64,
    process: &[u16],
    vetoed: bool,
    now: u64,
) {
    if !match_enabled(m.action) {
        return;
    }
    let limit = if m.action == Action::Block {
        &BLOCK_LIMIT
    } else {
        &AUDIT_LIMIT
    };
    let Some(dropped) = limit.admit(now) else {
        return;
    };
    let operation = match kind {
        EventType::FileCreate => "file-create",
        EventType::FileSetInfo => "file-set-info",
    };
    let pid = u32::try_from(pid).unwrap_or(u32::MAX);
    if m.action == Action::Block {
        tlg::write_event!(
            PROVIDER,
            "MatchBlocked",
            level(Warning),
            keyword(keyword::MATCH),
            u32("RuleId", &m.rule_id),
            str8("Operation", operation),
            str16("Path", path),
            pid("ProcessId", &pid),
            str16("Process", process),
            bool8("NotApplied", &vetoed),
            u64("Dropped", &dropped),
        );
    } else {
        tlg::write_event!(
            PROVIDER,
            "MatchAudited",
            level(Informational),
            keyword(keyword::MATCH),
            u32("RuleId", &m.rule_id),
            str8("Operation", operation),
            str16("Path", path),
            pid("ProcessId", &pid),
            str16("Process", process),
            u64("Dropped", &dropped),
        );
    }
}

/// A fixed-window rate limit over atomics: at most `per_window` admissions per `window`
/// (100 ns units; window `k` is `[k * window, (k + 1) * window)`); never waits, never
/// allocates, any IRQL. The window's index and its count share one atomic word, updated by
/// one compare-exchange loop, so no admission can land in a window that another caller
/// is resetting (two separate atomics let a preempted caller re-zero a later window's
/// count). Refusals are counted, and the count since the last admission is handed to the
/// next one.
#[derive(Debug)]
pub struct Limiter {
    per_window: u32,
    window: u64,
    /// Window index (high 40 bits) and admissions in it (low 24 bits).
    slot: AtomicU64,
    dropped: AtomicU64,
}

/// Bits of [`Limiter::slot`] that count admissions (`per_window` is kept below this).
const COUNT_BITS: u32 = 24;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
/// The most admissions a window can count (the count's bits all set).
const MAX_PER_WINDOW: u32 = (1 << COUNT_BITS) - 1;

impl Limiter {
    /// A limiter with its first window starting at time 0. `per_window` is capped at
    /// 2^24 - 1.
    pub const fn new(per_window: u32, window: u64) -> Self {
        let cap = if per_window < MAX_PER_WINDOW {
            per_window
        } else {
            MAX_PER_WINDOW
        };
        Limiter {
            per_window: cap,
            window,
            slot: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    /// `Some(dropped since the last admission)` if the event at `now` may be written.
    pub fn admit(&self, now: u64) -> Option<u64> {
        // Window index, kept to the 40 bits the slot holds (2^40 seconds is beyond uptime).
        let index = now.checked_div(self.window).unwrap_or(0) & (u64::MAX >> COUNT_BITS);
        let admitted = self
            .slot
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |slot| {
                let (current, used) = (slot >> COUNT_BITS, slot & COUNT_MASK);
                if index > current {
                    // A later window: this admission is its first.
                    Some((index << COUNT_BITS) | 1)
                } else if used < u64::from(self.per_window) {
                    // This window (or a caller whose clock read is a little older: it
                    // counts in the newest window, never reopens an old one).
                    Some(slot.saturating_add(1))
                } else {
                    None
                }
            })
            .is_ok();
        if admitted {
            Some(self.dropped.swap(0, Ordering::Relaxed))
        } else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            None
        }
    }

    /// Refusals not yet handed to an admission.
    pub fn pending_dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::arithmetic_side_effects
    )]
    use super::*;

    #[test]
    fn the_guid_is_the_name_hash() {
        assert_eq!(
            tlg::Guid::from_name(PROVIDER_NAME),
            tlg::Guid::from_u128(&PROVIDER_GUID)
        );
        assert_eq!(PROVIDER.id(), &tlg::Guid::from_u128(&PROVIDER_GUID));
        assert_eq!(PROVIDER.name(), PROVIDER_NAME);
    }

    #[test]
    fn limiter_admits_per_window_and_hands_over_the_dropped_count() {
        let l = Limiter::new(3, 100);
        assert_eq!(l.admit(5), Some(0));
        assert_eq!(l.admit(6), Some(0));
        assert_eq!(l.admit(7), Some(0));
        assert_eq!(l.admit(8), None);
        assert_eq!(l.admit(99), None);
        assert_eq!(l.pending_dropped(), 2);
        // Next window: the first admission carries the two dropped.
        assert_eq!(l.admit(100), Some(2));
        assert_eq!(l.admit(101), Some(0));
        assert_eq!(l.pending_dropped(), 0);
    }

    #[test]
    fn a_storm_across_threads_admits_at_most_the_budget() {
        let l = std::sync::Arc::new(Limiter::new(MATCHES_PER_SECOND, 10_000_000));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let l = l.clone();
                std::thread::spawn(move || (0..10_000).filter(|_| l.admit(1).is_some()).count())
            })
            .collect();
        let admitted: u64 = threads
            .into_iter()
            .map(|h| u64::try_from(h.join().unwrap()).unwrap())
            .sum();
        assert_eq!(admitted, u64::from(MATCHES_PER_SECOND));
        assert_eq!(l.pending_dropped(), 40_000 - admitted);
    }

    #[test]
    fn windows_opened_by_racing_threads_never_exceed_the_budget() {
        // Four threads walk the clock through 50 windows, each at its own pace; every
        // window admits at most its budget however the openings race (the review found
        // that a separate reset could re-zero a later window's count).
        let l = std::sync::Arc::new(Limiter::new(10, 1000));
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let l = l.clone();
                std::thread::spawn(move || {
                    let mut per = [0u64; 50];
                    for i in 0..20_000u64 {
                        let now = (i * (3 + t)) % 50_000;
                        if l.admit(now).is_some() {
                            per[usize::try_from(now / 1000).unwrap()] += 1;
                        }
                    }
                    per
                })
            })
            .collect();
        let mut total = [0u64; 50];
        for h in threads {
            for (t, p) in total.iter_mut().zip(h.join().unwrap()) {
                *t += p;
            }
        }
        // Admissions are counted in the newest window, so a window's own reads may count
        // fewer; the budget bounds the sum over any run of windows.
        let sum: u64 = total.iter().sum();
        assert!(sum <= 10 * 50, "{sum} admissions in 50 windows of 10");
        assert!(sum >= 10, "nothing admitted");
    }

    #[test]
    fn hex_digest() {
        let mut d = [0u8; 32];
        d[0] = 0xab;
        d[31] = 0x01;
        let h = hex(&d);
        assert_eq!(&h[..4], b"ab00");
        assert_eq!(&h[60..], b"0001");
    }

    /// The INF source as text (UTF-16LE with BOM in the working tree, UTF-8 in git).
    fn inf_text() -> String {
        let raw = include_bytes!("../../inf/failsafeflt.inx");
        match raw.as_slice() {
            [0xFF, 0xFE, rest @ ..] => {
                let units: Vec<u16> = rest
                    .chunks_exact(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .collect();
                String::from_utf16(&units).unwrap()
            }
            other => String::from_utf8(other.to_vec()).unwrap(),
        }
    }

    #[test]
    fn the_manifest_and_the_inf_name_this_provider_and_channel() {
        let guid = "{2df134e2-be35-54e1-e54b-6acb496a6786}";
        assert_eq!(
            std::format!("{{{:?}}}", tlg::Guid::from_u128(&PROVIDER_GUID)),
            guid
        );
        let channel = std::format!("{PROVIDER_NAME}/Operational");
        let man = include_str!("../../inf/failsafeflt.man");
        for needle in [
            std::format!("name=\"{PROVIDER_NAME}\""),
            std::format!("guid=\"{guid}\""),
            std::format!("name=\"{channel}\""),
            std::format!("value=\"{}\"", OPERATIONAL_CHANNEL.as_int()),
            "type=\"Operational\"".into(),
        ] {
            assert!(man.contains(&needle), "the manifest lacks {needle}");
        }
        let inf = inf_text();
        for needle in [
            std::format!("EtwProviderName     = \"{PROVIDER_NAME}\""),
            std::format!("EtwProviderGuid     = \"{guid}\""),
            std::format!("EtwChannel          = \"{channel}\""),
        ] {
            assert!(inf.contains(&needle), "the INF lacks {needle}");
        }
        // Both install forms register it.
        assert_eq!(
            inf.matches("AddEventProvider = %EtwProviderGuid%").count(),
            2
        );
        assert_eq!(inf.matches("AddChannel   = %EtwChannel%, 0x2").count(), 2);
        // The channel keyword the events carry is the first channel's (bit 63).
        assert_eq!(keyword::OPERATIONAL, 1 << 63);
    }

    #[test]
    fn events_are_nothing_without_a_session() {
        // Off Windows (and on Windows before registration) nothing listens: the writes
        // return at once.
        assert!(!match_enabled(Action::Block));
        assert!(!match_enabled(Action::Audit));
        driver_warning("test");
        setup_failed("test", -1);
    }
}
