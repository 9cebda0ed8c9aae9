//! The durable state record: two fixed-size slots, each with a sequence number and a
//! SHA-256 checksum. A write goes to the slot not holding the newest valid copy, so a torn
//! write destroys at most the copy being written; a read takes the valid slot with the
//! higher sequence number. Layout in `docs/boot-safety.md`.
//!
//! Also here: the *start report*, a small separate record every start writes wherever it
//! still can (registry, a second file), so the console can tell that a start ran without
//! content even when the state record itself could not be written.

use sha2::{Digest as _, Sha256};

use super::start::IoError;

/// Bytes in one slot.
pub const SLOT_LEN: usize = 2048;
/// Bytes in the whole record (two slots).
pub const RECORD_LEN: usize = 2 * SLOT_LEN;
/// Versions whose attempt counts are kept. A version that would need a count when all
/// are taken by versions that may still be chosen is not tried (see `machine::choose`).
pub const MAX_TRACKED: usize = 16;
/// Quarantine entries kept.
pub const MAX_QUARANTINE: usize = 16;

const MAGIC: [u8; 4] = *b"FSST";
/// Written: layout 3 (issue 20: the driver build and its dormancy). Read: 2 and 3; a
/// layout-2 record has no driver build entry (its bytes there are zero, never written).
const LAYOUT: u16 = 3;
const LAYOUT_2: u16 = 2;
const SUM_AT: usize = SLOT_LEN - 32;

/// A content version and the SHA-256 of its file (all zero when not known).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ver {
    /// Content version.
    pub version: u64,
    /// SHA-256 of the whole content file.
    pub digest: [u8; 32],
}

/// A driver build: its version and the digest of what it was built from (the driver's
/// `build.rs` says what is hashed). Two images with the same identity run the same code.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct BuildId {
    /// `major << 32 | minor << 16 | patch` ([`BuildId::pack`]).
    pub version: u64,
    /// SHA-256 of the build's inputs.
    pub digest: [u8; 32],
}

impl BuildId {
    /// Packs a `major.minor.patch` version.
    pub fn pack(major: u16, minor: u16, patch: u16) -> u64 {
        (u64::from(major) << 32) | (u64::from(minor) << 16) | u64::from(patch)
    }
    /// `(major, minor, patch)` of [`BuildId::version`].
    pub fn parts(&self) -> (u64, u64, u64) {
        (
            (self.version >> 32) & 0xFFFF,
            (self.version >> 16) & 0xFFFF,
            self.version & 0xFFFF,
        )
    }
}

impl core::fmt::Display for BuildId {
    /// `major.minor.patch+<64 hex digits of the digest>`: what `failsafectl boot --build`
    /// takes.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let (a, b, c) = self.parts();
        write!(f, "{a}.{b}.{c}+")?;
        self.digest.iter().try_for_each(|x| write!(f, "{x:02x}"))
    }
}

/// The attempt of a driver start: made durable before the driver's own setup runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BuildAttempt {
    /// In progress (the start has not ended cleanly nor been healthy), healthy or clean.
    pub phase: Phase,
    /// Boot sequence number of the start that made it.
    pub boot: u64,
}

/// The driver build the record tracks: its unclean starts without content, its last
/// attempt and whether it is dormant (docs/boot-safety.md, "The driver build").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DriverTrack {
    /// The build.
    pub build: BuildId,
    /// The build is unknown (a rebuilt record): the next start's build takes this entry,
    /// its count included.
    pub adopt: bool,
    /// Consecutive unclean starts of the build without content active, since it was last
    /// healthy (with or without content).
    pub unclean: u8,
    /// The attempt of the last start of this build that made one.
    pub attempt: Option<BuildAttempt>,
    /// Dormant since this boot: the build's starts run nothing until a new build starts or
    /// an operator wakes it.
    pub dormant: Option<u64>,
}

impl DriverTrack {
    /// A build seen for the first time: fresh tries.
    pub const fn fresh(build: BuildId) -> Self {
        DriverTrack {
            build,
            adopt: false,
            unclean: 0,
            attempt: None,
            dormant: None,
        }
    }
    /// The attempt left in progress by a start of this build, if any.
    pub fn pending(&self) -> Option<BuildAttempt> {
        self.attempt.filter(|a| a.phase == Phase::InProgress)
    }
}

/// How the attempt of the last start ended, as far as the record knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Content was activated and nothing since: if this is still the phase at the next
    /// start, that start ended uncleanly and is charged to the version.
    InProgress,
    /// The system stayed up `healthy_after` seconds with the content.
    Healthy,
    /// An orderly shutdown was seen before healthy: not charged.
    Clean,
}

impl Phase {
    fn code(self) -> u8 {
        match self {
            Phase::InProgress => 1,
            Phase::Healthy => 2,
            Phase::Clean => 3,
        }
    }
    fn from_code(c: u8) -> Option<Option<Self>> {
        match c {
            0 => Some(None),
            1 => Some(Some(Phase::InProgress)),
            2 => Some(Some(Phase::Healthy)),
            3 => Some(Some(Phase::Clean)),
            _ => None,
        }
    }
    /// Name for displays.
    pub const fn name(self) -> &'static str {
        match self {
            Phase::InProgress => "in-progress",
            Phase::Healthy => "healthy",
            Phase::Clean => "clean-shutdown",
        }
    }
}

/// The attempt made by the last start that activated content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// Version activated.
    pub ver: Ver,
    /// How it has gone.
    pub phase: Phase,
    /// Boot sequence number of the start that made it: only that start's outcomes
    /// (healthy, clean shutdown) may close it.
    pub boot: u64,
}

/// Consecutive unclean starts charged to a version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Track {
    /// Version and the digest of the file whose starts were counted.
    pub ver: Ver,
    /// Unclean starts since it was last healthy (or first seen).
    pub attempts: u8,
}

/// The last health check of an activated version: the evidence "healthy" rests on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthCheck {
    /// Version that was active.
    pub version: u64,
    /// Boot sequence number of the start that activated it.
    pub boot: u64,
    /// Seconds of uptime with the content active when the check ran.
    pub uptime_secs: u32,
    /// The canary operation through the filter stack: `Ok`, or the OS error it failed with.
    pub canary: Result<(), IoError>,
    /// Whether the check marked the version healthy.
    pub passed: bool,
}

/// Why a version is quarantined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuarantineReason {
    /// It was started `threshold` times and never reached healthy nor a clean shutdown.
    CrashLoop,
    /// It was read and failed validation; `detail` is the error's ordinal.
    Invalid,
    /// The operator rolled it back to last-known-good on the running system (a live
    /// rollback); `detail` is 0.
    RolledBack,
}

impl QuarantineReason {
    fn code(self) -> u8 {
        match self {
            QuarantineReason::CrashLoop => 1,
            QuarantineReason::Invalid => 2,
            QuarantineReason::RolledBack => 3,
        }
    }
    fn from_code(c: u8) -> Option<Self> {
        match c {
            1 => Some(QuarantineReason::CrashLoop),
            2 => Some(QuarantineReason::Invalid),
            3 => Some(QuarantineReason::RolledBack),
            _ => None,
        }
    }
    /// Name for displays.
    pub const fn name(self) -> &'static str {
        match self {
            QuarantineReason::CrashLoop => "crash-loop",
            QuarantineReason::Invalid => "invalid-content",
            QuarantineReason::RolledBack => "rolled-back",
        }
    }
}

/// One quarantined version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QEntry {
    /// Version and digest (digest zero if the file was never read).
    pub ver: Ver,
    /// Why.
    pub reason: QuarantineReason,
    /// Crash loop: attempts charged. Invalid: validation error ordinal. Rolled back: 0.
    pub detail: u32,
    /// Boot sequence number at which it was quarantined.
    pub boot: u64,
}

/// Mode the driver runs in after a start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Running the newest content in the store (or the store is empty).
    Normal,
    /// Newer content was skipped (quarantined or unreadable); running older or none.
    Fallback,
    /// Safe mode: no content at all (switch, Windows Safe Mode, or state not trusted).
    Safe,
}

impl Mode {
    fn code(self) -> u8 {
        match self {
            Mode::Normal => 1,
            Mode::Fallback => 2,
            Mode::Safe => 3,
        }
    }
    fn from_code(c: u8) -> Option<Self> {
        match c {
            1 => Some(Mode::Normal),
            2 => Some(Mode::Fallback),
            3 => Some(Mode::Safe),
            _ => None,
        }
    }
    /// Name for displays.
    pub const fn name(self) -> &'static str {
        match self {
            Mode::Normal => "normal",
            Mode::Fallback => "fallback",
            Mode::Safe => "safe",
        }
    }
}

/// Why a start decided what it did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The newest version in the store was activated.
    NewestContent,
    /// The store holds no content: pass-through.
    NoContentStaged,
    /// Newer versions are quarantined: an older one (at least last-known-good) runs.
    NewerQuarantined,
    /// A newer version could not be read this start (not quarantined): an older one runs.
    NewerUnreadable,
    /// Every version at or above last-known-good is quarantined or unreadable: no content.
    NothingUsable,
    /// The content store could not be listed: no content this start.
    StoreUnreadable,
    /// The operator's force-safe-mode switch is on.
    ForceSafeMode,
    /// Windows runs in Safe Mode.
    WindowsSafeMode,
    /// The record was present but both slots were invalid: nothing new is activated; a
    /// fresh record was written.
    StateLost,
    /// The record could not be read (I/O error): nothing activated, nothing written.
    StateUnreadable,
    /// The record could not be written durably, so no content may be activated.
    StateUnwritable,
    /// Memory for the start could not be reserved: nothing activated.
    OutOfMemory,
    /// A newer version could not be counted (every count entry holds an unclean count of a
    /// version that may still be chosen), so it was not tried: an older one runs, or none.
    NewerUncountable,
    /// A live activation on the running system: the version was validated and swapped in
    /// after its attempt was made durable (not a start's decision: the record's last
    /// decision is the last change of the active content).
    LiveUpdate,
    /// The operator's live rollback to last-known-good (or to no content, without one).
    LiveRollback,
    /// The driver build has had `threshold` consecutive unclean starts without content: it
    /// is dormant and this start ran nothing (no filter, no callbacks, no control device).
    DriverDormant,
}

impl Reason {
    /// Every reason, in code order.
    pub const ALL: [Reason; 16] = [
        Reason::NewestContent,
        Reason::NoContentStaged,
        Reason::NewerQuarantined,
        Reason::NewerUnreadable,
        Reason::NothingUsable,
        Reason::StoreUnreadable,
        Reason::ForceSafeMode,
        Reason::WindowsSafeMode,
        Reason::StateLost,
        Reason::StateUnreadable,
        Reason::StateUnwritable,
        Reason::OutOfMemory,
        Reason::NewerUncountable,
        Reason::LiveUpdate,
        Reason::LiveRollback,
        Reason::DriverDormant,
    ];
    fn code(self) -> u8 {
        let pos = Self::ALL.iter().position(|r| *r == self).unwrap_or(0);
        u8::try_from(pos).unwrap_or(0).saturating_add(1)
    }
    fn from_code(c: u8) -> Option<Self> {
        Self::ALL.get(usize::from(c.checked_sub(1)?)).copied()
    }
    /// Stable reason string (state displays, JSON, docs).
    pub const fn name(self) -> &'static str {
        match self {
            Reason::NewestContent => "newest-content",
            Reason::NoContentStaged => "no-content-staged",
            Reason::NewerQuarantined => "newer-quarantined",
            Reason::NewerUnreadable => "newer-unreadable",
            Reason::NothingUsable => "nothing-usable",
            Reason::StoreUnreadable => "store-unreadable",
            Reason::ForceSafeMode => "force-safe-mode",
            Reason::WindowsSafeMode => "windows-safe-mode",
            Reason::StateLost => "state-lost",
            Reason::StateUnreadable => "state-unreadable",
            Reason::StateUnwritable => "state-unwritable",
            Reason::OutOfMemory => "out-of-memory",
            Reason::NewerUncountable => "newer-uncountable",
            Reason::LiveUpdate => "live-update",
            Reason::LiveRollback => "live-rollback",
            Reason::DriverDormant => "driver-dormant",
        }
    }
}

/// What the last start decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LastDecision {
    /// Mode.
    pub mode: Mode,
    /// Reason.
    pub reason: Reason,
    /// Version activated (0: none).
    pub version: u64,
    /// Boot sequence number of that start.
    pub boot: u64,
    /// The OS reported a write filter (UWF and the like) or another reason that writes to
    /// the record's volume may not survive a reboot: the counter may not advance.
    pub writes_may_not_persist: bool,
    /// Test signing was on at that start: content signed by a test key was accepted.
    pub test_signing: bool,
}

/// The boot-attempt state. Fixed size: no allocation, ever.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct State {
    /// Starts seen (incremented by every start that writes the record).
    pub boot: u64,
    /// Operator's force-safe-mode switch.
    pub force_safe: bool,
    /// The attempt of the last start that activated content.
    pub attempt: Option<Attempt>,
    /// Last-known-good: the newest version that reached healthy.
    pub lkg: Option<Ver>,
    /// Attempt counts per version.
    pub tracks: [Option<Track>; MAX_TRACKED],
    /// Quarantined versions.
    pub quarantine: [Option<QEntry>; MAX_QUARANTINE],
    /// Last start's decision.
    pub last: Option<LastDecision>,
    /// Versions at or below this one are never chosen automatically (last-known-good
    /// excepted): raised when a crash-looping version's quarantine entry had to make room.
    pub floor: u64,
    /// The last health check (uptime and canary), passed or not; version 0: a check of
    /// the driver build with no content active.
    pub health: Option<HealthCheck>,
    /// The driver build and its starts without content (layout 3; `None` in a layout-2
    /// record and until the first start of a build that writes the record).
    pub driver: Option<DriverTrack>,
}

impl State {
    /// The empty state (first install), as a constant: what [`State::default`] returns,
    /// usable where a value must not be built on the stack first.
    pub const EMPTY: State = State {
        boot: 0,
        force_safe: false,
        attempt: None,
        lkg: None,
        tracks: [None; MAX_TRACKED],
        quarantine: [None; MAX_QUARANTINE],
        last: None,
        floor: 0,
        health: None,
        driver: None,
    };

    /// Attempts charged to `version`.
    pub fn attempts(&self, version: u64) -> u8 {
        self.track(version).map_or(0, |t| t.attempts)
    }

    /// The count entry of `version`.
    pub fn track(&self, version: u64) -> Option<&Track> {
        self.tracks
            .iter()
            .flatten()
            .find(|t| t.ver.version == version)
    }

    /// The attempt left in progress by an earlier start (not yet charged), if any.
    pub fn pending(&self) -> Option<&Attempt> {
        self.attempt
            .as_ref()
            .filter(|a| a.phase == Phase::InProgress)
    }

    /// The quarantine entry for `version`.
    pub fn quarantined(&self, version: u64) -> Option<&QEntry> {
        self.quarantine
            .iter()
            .flatten()
            .find(|q| q.ver.version == version)
    }
}

/// A slot that decoded, with its sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stored {
    /// The state.
    pub state: State,
    /// Sequence number of the slot it came from.
    pub seq: u64,
    /// Which slot (0 or 1).
    pub slot: usize,
}

struct W<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl W<'_> {
    fn put(&mut self, bytes: &[u8]) {
        let end = self.pos.saturating_add(bytes.len());
        if let Some(dst) = self.buf.get_mut(self.pos..end) {
            dst.copy_from_slice(bytes);
        }
        self.pos = end;
    }
    fn at(&mut self, pos: usize) {
        self.pos = pos;
    }
}

struct R<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl R<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let end = self.pos.checked_add(N)?;
        let src = self.buf.get(self.pos..end)?;
        self.pos = end;
        let mut out = [0u8; N];
        out.copy_from_slice(src);
        Some(out)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|[b]| b)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take().map(u64::from_le_bytes)
    }
    fn at(&mut self, pos: usize) {
        self.pos = pos;
    }
}

// Field offsets within a slot (layout 2; the table in docs/boot-safety.md).
const O_MAGIC: usize = 0;
const O_LAYOUT: usize = 4;
const O_LEN: usize = 6;
const O_SEQ: usize = 8;
const O_BOOT: usize = 16;
const O_FLAGS: usize = 24; // bit 0: operator's force-safe-mode
const O_PHASE: usize = 25;
const O_ATTEMPT: usize = 32; // version u64, digest 32, boot u64
const O_LKG: usize = 80; // version u64 (0 = none), digest 32
const O_HEALTH: usize = 120; // see HEALTH_LEN
const HEALTH_LEN: usize = 32; // result u8 (0 none, 1 passed, 2 refused, 3 canary failed), 3 reserved, uptime u32, version u64, boot u64, canary error i64
const O_TRACKS: usize = O_HEALTH + HEALTH_LEN; // MAX_TRACKED x TRACK_LEN
const TRACK_LEN: usize = 48; // version u64, digest 32, attempts u8, 7 reserved
const O_QUAR: usize = O_TRACKS + MAX_TRACKED * TRACK_LEN; // MAX_QUARANTINE x Q_LEN
const Q_LEN: usize = 56; // version 8, digest 32, reason 1, 3 reserved, detail 4, boot 8
const O_LAST: usize = O_QUAR + MAX_QUARANTINE * Q_LEN; // mode 1, reason 1, flags 1 (bit 0 writes-may-not-persist, bit 1 test signing on), 5 reserved, version 8, boot 8
const LAST_LEN: usize = 24;
const O_FLOOR: usize = O_LAST + LAST_LEN; // u64
// Layout 3: the driver build (zero in a layout-2 slot, which never wrote these bytes).
const O_BUILD: usize = O_FLOOR + 8; // version u64, digest 32
const O_DRIVER: usize = O_BUILD + 40; // flags u8 (bit 0 present, bit 1 dormant, bit 2 adopt), phase u8, unclean u8, 5 reserved
const O_DRIVER_BOOT: usize = O_DRIVER + 8; // u64: boot of the build attempt
const O_DORMANT: usize = O_DRIVER_BOOT + 8; // u64: dormant since this boot
const O_END: usize = O_DORMANT + 8;
const _: () = assert!(O_END <= SUM_AT);
const _: () = assert!(O_ATTEMPT + 48 <= O_LKG && O_LKG + 40 <= O_HEALTH);

/// Encodes `state` as slot bytes with sequence number `seq`.
// By-value form (hosts, tests): inline, compiled only where used; the kernel uses
// the `_into` form.
#[inline]
pub fn encode_slot(state: &State, seq: u64) -> [u8; SLOT_LEN] {
    let mut buf = [0u8; SLOT_LEN];
    encode_slot_into(state, seq, &mut buf);
    buf
}

/// Encodes `state` as slot bytes with sequence number `seq` into `buf` (every byte is
/// written). The kernel encodes into pool memory this way: a slot is 2 KiB, too much for
/// a kernel stack frame.
#[inline(never)]
pub fn encode_slot_into(state: &State, seq: u64, buf: &mut [u8; SLOT_LEN]) {
    buf.fill(0);
    let mut w = W {
        buf: buf.as_mut_slice(),
        pos: O_MAGIC,
    };
    w.put(&MAGIC);
    w.at(O_LAYOUT);
    w.put(&LAYOUT.to_le_bytes());
    w.at(O_LEN);
    w.put(&u16::try_from(SLOT_LEN).unwrap_or(0).to_le_bytes());
    w.at(O_SEQ);
    w.put(&seq.to_le_bytes());
    w.at(O_BOOT);
    w.put(&state.boot.to_le_bytes());
    w.at(O_FLAGS);
    w.put(&[u8::from(state.force_safe)]);
    w.at(O_PHASE);
    w.put(&[state.attempt.map_or(0, |a| a.phase.code())]);
    w.at(O_ATTEMPT);
    if let Some(a) = state.attempt {
        w.put(&a.ver.version.to_le_bytes());
        w.put(&a.ver.digest);
        w.put(&a.boot.to_le_bytes());
    }
    w.at(O_LKG);
    let l = state.lkg.unwrap_or_default();
    w.put(&l.version.to_le_bytes());
    w.put(&l.digest);
    w.at(O_HEALTH);
    if let Some(h) = state.health {
        let (code, err) = match (h.passed, h.canary) {
            (true, _) => (1u8, 0i64),
            (false, Ok(())) => (2, 0),
            (false, Err(e)) => (3, e.code),
        };
        w.put(&[code, 0, 0, 0]);
        w.put(&h.uptime_secs.to_le_bytes());
        w.put(&h.version.to_le_bytes());
        w.put(&h.boot.to_le_bytes());
        w.put(&err.to_le_bytes());
    }
    for (i, t) in state.tracks.iter().enumerate() {
        w.at(O_TRACKS.saturating_add(i.saturating_mul(TRACK_LEN)));
        if let Some(t) = t {
            w.put(&t.ver.version.to_le_bytes());
            w.put(&t.ver.digest);
            w.put(&[t.attempts]);
        }
    }
    for (i, q) in state.quarantine.iter().enumerate() {
        w.at(O_QUAR.saturating_add(i.saturating_mul(Q_LEN)));
        if let Some(q) = q {
            w.put(&q.ver.version.to_le_bytes());
            w.put(&q.ver.digest);
            w.put(&[q.reason.code(), 0, 0, 0]);
            w.put(&q.detail.to_le_bytes());
            w.put(&q.boot.to_le_bytes());
        }
    }
    w.at(O_LAST);
    if let Some(d) = state.last {
        w.put(&[
            d.mode.code(),
            d.reason.code(),
            u8::from(d.writes_may_not_persist) | (u8::from(d.test_signing) << 1),
            0,
            0,
            0,
            0,
            0,
        ]);
        w.put(&d.version.to_le_bytes());
        w.put(&d.boot.to_le_bytes());
    }
    w.at(O_FLOOR);
    w.put(&state.floor.to_le_bytes());
    if let Some(d) = state.driver {
        w.at(O_BUILD);
        w.put(&d.build.version.to_le_bytes());
        w.put(&d.build.digest);
        w.at(O_DRIVER);
        w.put(&[
            1 | (u8::from(d.dormant.is_some()) << 1) | (u8::from(d.adopt) << 2),
            d.attempt.map_or(0, |a| a.phase.code()),
            d.unclean,
        ]);
        w.at(O_DRIVER_BOOT);
        w.put(&d.attempt.map_or(0, |a| a.boot).to_le_bytes());
        w.at(O_DORMANT);
        w.put(&d.dormant.unwrap_or(0).to_le_bytes());
    }
    let sum = checksum(buf.get(..SUM_AT).unwrap_or(&[]));
    if let Some(dst) = buf.get_mut(SUM_AT..) {
        dst.copy_from_slice(&sum);
    }
}

fn checksum(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Decodes one slot; `None` if it is not a valid slot (torn, zeroed, corrupt).
// By-value form (hosts, tests): inline, compiled only where used; the kernel uses
// the `_into` form.
#[inline]
pub fn decode_slot(slot: &[u8]) -> Option<(State, u64)> {
    let mut state = State::EMPTY;
    decode_slot_into(slot, &mut state).map(|seq| (state, seq))
}

/// The sequence number and layout of a slot whose checksum and header (magic, layout 2 or
/// 3, length) are valid; its fields are not decoded ([`decode_slot_into`] may still refuse
/// it).
fn slot_head(slot: &[u8]) -> Option<(u64, u16)> {
    if slot.len() != SLOT_LEN {
        return None;
    }
    let (body, sum) = slot.split_at_checked(SUM_AT)?;
    if checksum(body) != sum {
        return None;
    }
    let mut r = R { buf: slot, pos: 0 };
    r.at(O_MAGIC);
    if r.take::<4>()? != MAGIC {
        return None;
    }
    r.at(O_LAYOUT);
    let layout = r.take::<2>().map(u16::from_le_bytes)?;
    if layout != LAYOUT && layout != LAYOUT_2 {
        return None;
    }
    r.at(O_LEN);
    if usize::from(r.take::<2>().map(u16::from_le_bytes)?) != SLOT_LEN {
        return None;
    }
    r.at(O_SEQ);
    r.u64().map(|seq| (seq, layout))
}

/// The sequence number of a valid slot ([`slot_head`]).
fn slot_seq(slot: &[u8]) -> Option<u64> {
    slot_head(slot).map(|(seq, _)| seq)
}

/// Decodes one slot into `out`, returning its sequence number; `None` if it is not a valid
/// slot (`out` is then partly overwritten). Decoding in place keeps the 2 KiB state out of
/// the kernel's stack frames.
#[inline(never)]
pub fn decode_slot_into(slot: &[u8], out: &mut State) -> Option<u64> {
    let (seq, layout) = slot_head(slot)?;
    let mut r = R { buf: slot, pos: 0 };
    r.at(O_BOOT);
    let boot = r.u64()?;
    r.at(O_FLAGS);
    let flags = r.u8()?;
    if flags > 1 {
        return None;
    }
    r.at(O_PHASE);
    let phase = Phase::from_code(r.u8()?)?;
    r.at(O_ATTEMPT);
    let av = Ver {
        version: r.u64()?,
        digest: r.take()?,
    };
    let aboot = r.u64()?;
    let attempt = phase.map(|phase| Attempt {
        ver: av,
        phase,
        boot: aboot,
    });
    r.at(O_LKG);
    let lv = Ver {
        version: r.u64()?,
        digest: r.take()?,
    };
    let lkg = (lv.version != 0).then_some(lv);
    r.at(O_HEALTH);
    let head = r.take::<4>()?;
    let uptime_secs = r.u32()?;
    let hversion = r.u64()?;
    let hboot = r.u64()?;
    let herr = r.take().map(i64::from_le_bytes)?;
    let health = match head.first().copied()? {
        0 => None,
        c @ 1..=3 => Some(HealthCheck {
            version: hversion,
            boot: hboot,
            uptime_secs,
            canary: if c == 3 {
                Err(IoError { code: herr })
            } else {
                Ok(())
            },
            passed: c == 1,
        }),
        _ => return None,
    };
    for (i, t) in out.tracks.iter_mut().enumerate() {
        r.at(O_TRACKS.saturating_add(i.saturating_mul(TRACK_LEN)));
        let ver = Ver {
            version: r.u64()?,
            digest: r.take()?,
        };
        let attempts = r.u8()?;
        *t = (ver.version != 0).then_some(Track { ver, attempts });
    }
    for (i, q) in out.quarantine.iter_mut().enumerate() {
        r.at(O_QUAR.saturating_add(i.saturating_mul(Q_LEN)));
        let ver = Ver {
            version: r.u64()?,
            digest: r.take()?,
        };
        let code = r.take::<4>()?;
        let detail = r.u32()?;
        let boot = r.u64()?;
        *q = None;
        if ver.version != 0 {
            let reason = QuarantineReason::from_code(code.first().copied()?)?;
            *q = Some(QEntry {
                ver,
                reason,
                detail,
                boot,
            });
        }
    }
    r.at(O_LAST);
    let head = r.take::<8>()?;
    let version = r.u64()?;
    let dboot = r.u64()?;
    let last = match head {
        [0, ..] => None,
        [m, c, f, ..] if f <= 3 => Some(LastDecision {
            mode: Mode::from_code(m)?,
            reason: Reason::from_code(c)?,
            version,
            boot: dboot,
            writes_may_not_persist: f & 1 != 0,
            test_signing: f & 2 != 0,
        }),
        _ => return None,
    };
    r.at(O_FLOOR);
    let floor = r.u64()?;
    let driver = if layout == LAYOUT_2 {
        None
    } else {
        decode_driver(&mut r)?
    };
    out.boot = boot;
    out.force_safe = flags == 1;
    out.attempt = attempt;
    out.lkg = lkg;
    out.last = last;
    out.floor = floor;
    out.health = health;
    out.driver = driver;
    Some(seq)
}

/// The driver build entry of a layout-3 slot: `Some(None)` when absent, `None` when the
/// slot is not valid (unknown flags or phase, an absent entry with bytes set).
fn decode_driver(r: &mut R<'_>) -> Option<Option<DriverTrack>> {
    r.at(O_BUILD);
    let build = BuildId {
        version: r.u64()?,
        digest: r.take()?,
    };
    r.at(O_DRIVER);
    let [flags, phase, unclean, ..] = r.take::<8>()?;
    r.at(O_DRIVER_BOOT);
    let boot = r.u64()?;
    r.at(O_DORMANT);
    let since = r.u64()?;
    if flags & 1 == 0 {
        let blank = flags == 0 && phase == 0 && unclean == 0 && boot == 0 && since == 0;
        return blank.then_some(None);
    }
    if flags > 7 {
        return None;
    }
    let attempt = Phase::from_code(phase)?.map(|phase| BuildAttempt { phase, boot });
    let dormant = (flags & 2 != 0).then_some(since);
    Some(Some(DriverTrack {
        build,
        adopt: flags & 4 != 0,
        unclean,
        attempt,
        dormant,
    }))
}

/// What reading the record found.
// The record is fixed-size by design (no allocation at start); about 1 KiB on the stack.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loaded {
    /// No record at all: first install.
    Fresh,
    /// A record whose two slots are both invalid.
    Lost,
    /// The newest valid slot.
    Ok(Stored),
}

/// Picks the newest valid slot of a whole record.
// By-value form (hosts, tests): inline, compiled only where used; the kernel uses
// the `_into` form.
#[inline]
pub fn decode_record(record: &[u8]) -> Loaded {
    let mut state = State::EMPTY;
    match decode_record_into(record, &mut state) {
        RecordRead::Lost => Loaded::Lost,
        RecordRead::Ok { slot, seq } => Loaded::Ok(Stored { state, seq, slot }),
    }
}

/// What [`decode_record_into`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordRead {
    /// Both slots invalid (`out` is [`State::EMPTY`]).
    Lost,
    /// The newest valid slot, decoded into `out`.
    Ok {
        /// Which slot (0 or 1).
        slot: usize,
        /// Its sequence number.
        seq: u64,
    },
}

/// Decodes the newest valid slot of a whole record into `out`: the slot with the higher
/// sequence number among those that decode (slot 0 on a tie), as [`decode_record`].
#[inline(never)]
pub fn decode_record_into(record: &[u8], out: &mut State) -> RecordRead {
    let bytes = |i: usize| {
        let start = i.saturating_mul(SLOT_LEN);
        record.get(start..start.saturating_add(SLOT_LEN))
    };
    let seq = |i: usize| bytes(i).and_then(slot_seq);
    let order = match (seq(0), seq(1)) {
        (Some(a), Some(b)) if b > a => [1, 0],
        _ => [0, 1],
    };
    for i in order {
        if let Some(slot) = bytes(i)
            && let Some(seq) = decode_slot_into(slot, out)
        {
            return RecordRead::Ok { slot: i, seq };
        }
    }
    *out = State::EMPTY;
    RecordRead::Lost
}

/// Bytes in an encoded start report.
pub const REPORT_LEN: usize = 96;
const REPORT_MAGIC: [u8; 4] = *b"FSLS";
const REPORT_LAYOUT: u16 = 1;
const R_SUM_AT: usize = REPORT_LEN - 32;
// Field offsets of a start report.
const R_BOOT: usize = 8; // u64: boot number of the start (the record's, +1 when it could not be read)
const R_SEQ: usize = 16; // u64: sequence number of the newest record slot after the start (0: none)
const R_DECISION: usize = 24; // mode u8, reason u8, flags u8 (bit 0 record not written, bit 1 writes may not persist, bit 2 test signing on), 5 reserved
const R_VERSION: usize = 32; // u64: version activated (0: none)
const R_ERROR: usize = 40; // i64: OS error of the failed record read or write (0: none)
// Bytes 48..64 were reserved (zero) in reports written before issue 20: zero is "build
// not known", and a reader of that time ignores them.
const R_BUILD: usize = 48; // u64: the driver build's version (BuildId::version)
const R_BUILD_DIGEST: usize = 56; // 8 bytes: the first bytes of the build digest
const R_END: usize = 64;
const _: () = assert!(R_END <= R_SUM_AT);

/// What a start decided, kept apart from the state record: every start writes it wherever
/// it still can, so that a start whose record write failed (`state-unwritable`) or whose
/// record could not be read is still visible to the console.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StartReport {
    /// Boot number of the start (as the record counts boots; best effort when the record
    /// could not be read).
    pub boot: u64,
    /// Sequence number of the newest record slot after the start (0: no record). When it
    /// equals the record's, no record write happened since this start.
    pub record_seq: u64,
    /// Mode.
    pub mode: Mode,
    /// Reason.
    pub reason: Reason,
    /// Version activated (0: none).
    pub version: u64,
    /// The start could not write (or read) the state record: the record does not show it.
    pub record_not_written: bool,
    /// Writes to the record's volume may not survive a reboot (write filter).
    pub writes_may_not_persist: bool,
    /// Test signing was on: content signed by a test key was accepted.
    pub test_signing: bool,
    /// The OS error of the failed record read or write, if any.
    pub error: Option<IoError>,
    /// The driver build that ran the start: its version and the first 8 bytes of its
    /// digest (all zero: not known, a report written before issue 20).
    pub build: (u64, [u8; 8]),
}

/// Encodes a start report.
pub fn encode_report(r: &StartReport) -> [u8; REPORT_LEN] {
    let mut buf = [0u8; REPORT_LEN];
    {
        let mut w = W {
            buf: &mut buf,
            pos: 0,
        };
        w.put(&REPORT_MAGIC);
        w.put(&REPORT_LAYOUT.to_le_bytes());
        w.put(&u16::try_from(REPORT_LEN).unwrap_or(0).to_le_bytes());
        w.at(R_BOOT);
        w.put(&r.boot.to_le_bytes());
        w.at(R_SEQ);
        w.put(&r.record_seq.to_le_bytes());
        w.at(R_DECISION);
        w.put(&[
            r.mode.code(),
            r.reason.code(),
            u8::from(r.record_not_written)
                | (u8::from(r.writes_may_not_persist) << 1)
                | (u8::from(r.test_signing) << 2),
        ]);
        w.at(R_VERSION);
        w.put(&r.version.to_le_bytes());
        w.at(R_ERROR);
        w.put(&r.error.map_or(0, |e| e.code).to_le_bytes());
        w.at(R_BUILD);
        w.put(&r.build.0.to_le_bytes());
        w.at(R_BUILD_DIGEST);
        w.put(&r.build.1);
    }
    let sum = checksum(buf.get(..R_SUM_AT).unwrap_or(&[]));
    if let Some(dst) = buf.get_mut(R_SUM_AT..) {
        dst.copy_from_slice(&sum);
    }
    buf
}

/// Decodes a start report; `None` if it is not a valid one.
pub fn decode_report(bytes: &[u8]) -> Option<StartReport> {
    if bytes.len() != REPORT_LEN {
        return None;
    }
    let (body, sum) = bytes.split_at_checked(R_SUM_AT)?;
    if checksum(body) != sum {
        return None;
    }
    let mut r = R { buf: bytes, pos: 0 };
    if r.take::<4>()? != REPORT_MAGIC
        || r.take::<2>().map(u16::from_le_bytes)? != REPORT_LAYOUT
        || usize::from(r.take::<2>().map(u16::from_le_bytes)?) != REPORT_LEN
    {
        return None;
    }
    r.at(R_BOOT);
    let boot = r.u64()?;
    r.at(R_SEQ);
    let record_seq = r.u64()?;
    r.at(R_DECISION);
    let [m, c, f] = r.take::<3>()?;
    if f > 7 {
        return None;
    }
    r.at(R_VERSION);
    let version = r.u64()?;
    r.at(R_ERROR);
    let code = r.take().map(i64::from_le_bytes)?;
    r.at(R_BUILD);
    let build = (r.u64()?, r.take::<8>()?);
    Some(StartReport {
        boot,
        record_seq,
        mode: Mode::from_code(m)?,
        reason: Reason::from_code(c)?,
        version,
        record_not_written: f & 1 != 0,
        writes_may_not_persist: f & 2 != 0,
        test_signing: f & 4 != 0,
        error: (code != 0).then_some(IoError { code }),
        build,
    })
}
