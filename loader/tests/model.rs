//! Exhaustive model check of the boot-attempt state machine and the start sequence over
//! in-memory media: breadth first over abstract states (`key`: what the design's rules can
//! distinguish) until no new one appears — a fixed point — with the rules of DESIGN.md
//! checked after every transition by an oracle written from the design text, not from
//! `machine.rs`. docs/testing.md, "Model check", argues the abstraction.
//!
//! Events: stage a valid or an invalid version; a start in a normal boot, in Windows Safe
//! Mode or with the configuration's force-safe switch, with the record readable,
//! unreadable (I/O error) or unwritable, ending healthy (uptime and canary), canary failed
//! then clean shutdown, clean shutdown, crash (a hang is the same: the health check never
//! completes, the process is killed), killed at each crash point (at the read; in the
//! middle of the k-th record write, torn; right after the k-th write — after a normal
//! start's first write, a fault in the driver's own setup), or its own setup failing
//! cleanly; live changes after a normal start; the operator's force-safe switch on and off,
//! unquarantine of each version, reset, rebuild of a lost record, wake; another driver
//! build; the record torn (both slots invalid).
//!
//! `complete_state_space`: every event, two versions (`FAILSAFE_MODEL_VERSIONS`), from a
//! first install. `full_tables`: 18 versions from two table-full states the start sequence
//! reaches. Depth: the fixed point in a release build; `FAILSAFE_MODEL_DEPTH` bounds it
//! (default 4 in a debug build, so `cargo test` stays quick).
#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]
#![allow(clippy::arithmetic_side_effects, clippy::as_conversions)]

mod common;
use common::*;

use std::collections::{BTreeMap, HashSet};

use failsafe_loader::state::machine::{
    Activation, HealthEvidence, LiveRefusal, rebuild, reset, set_force_safe, unquarantine, wake,
};
use failsafe_loader::state::record::{RECORD_LEN, SLOT_LEN, Stored, decode_record, encode_slot};
use failsafe_loader::state::start::file_digest;
use failsafe_loader::state::{
    BuildId, Config, ContentStore, Env, IoError, Loaded, QuarantineReason, Reason, State,
    StateMedium, Ver, begin_start, finish_start,
};
use failsafe_loader::{Action, EventType, Op};

/// Versions staged at most in the search over every event (`FAILSAFE_MODEL_VERSIONS`; 3 does
/// not reach its fixed point within the CI budget: docs/testing.md).
const VERSIONS: u64 = 2;

/// The two driver builds a machine can have installed (the world's `build` picks one).
fn build_id(b: u8) -> BuildId {
    BuildId {
        version: BuildId::pack(0, 1, u16::from(b)),
        digest: [b.wrapping_add(1); 32],
    }
}

/// Outcomes of the live changes tried (succeeded, or the refusal's name): what the search
/// reached.
static LIVE: std::sync::Mutex<BTreeMap<&'static str, u64>> = std::sync::Mutex::new(BTreeMap::new());

// ---- The world: medium, store, and what really happened (the oracle).

/// The durable record as the next start will read it. Only the newest valid slot decides
/// anything, so that is all a state keeps (plus "no record" and "both slots invalid").
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, Debug, PartialEq)]
enum Rec {
    None,
    Lost,
    Ok(State),
}

#[derive(Clone, Debug)]
struct World {
    /// Live events in the sequence so far (counted only when `Ctx::max_live` bounds them).
    lives: u8,
    /// Invalid versions staged so far (at most `Ctx::max_invalid`).
    invalid: u8,
    /// The driver build installed: `build_id(build)`.
    build: u8,
    rec: Rec,
    /// Staged versions: valid or not.
    store: Vec<(u64, bool)>,
    oracle: Oracle,
}

/// What the design says must hold, kept from the events alone.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
struct Oracle {
    /// Per version: starts that made its attempt durable and ended without a clean
    /// shutdown or a passed health check, since it was last healthy (or released by the
    /// operator, or the record's history was lost).
    unclean: BTreeMap<u64, u8>,
    /// The highest last-known-good the record has shown since the last operator reset,
    /// rebuild or record loss.
    lkg: u64,
    /// The build whose starts are counted: the last one that started (not in a safe mode);
    /// `None`: none yet, or unknown (a rebuilt record: whichever starts next).
    build: Option<u8>,
    /// Its starts that made their attempt durable and ended uncleanly with no content
    /// active, since it was last healthy (or first started, or woken; a lost record loses
    /// this with the rest).
    build_unclean: u8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Boot {
    Normal,
    WindowsSafe,
    ConfigForceSafe,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    None,
    ReadError,
    WriteError,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    Healthy,
    CanaryFailsThenClean,
    Clean,
    /// Crash, hang (killed; its health check blocked) or power loss after activation.
    Crash,
    KilledAtRead,
    /// Killed in the middle of the k-th record write of the start (torn slot).
    KilledInWrite(usize),
    /// Killed right after the k-th write. k = 0 of a start that is not safe: its build's
    /// attempt is durable and nothing else is: a fault in the driver's own setup.
    KilledAfterWrite(usize),
    /// The driver's own setup fails cleanly (`DriverEntry` returns an error): the build's
    /// attempt is closed, no content is chosen.
    SetupFails,
}

/// A live change on the running system, after a normal start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LiveOp {
    Activate(u64),
    Rollback,
    /// Activate, then roll back, in the same boot.
    ActivateThenRollback(u64),
}

/// What goes wrong during the live change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LiveFault {
    None,
    /// The start's record writes fail (it activates nothing, `state-unwritable`); the live
    /// change's succeed.
    StartUnwritable,
    /// Every record write of the live change fails (the end's writes do not).
    WriteError,
    /// Killed in the middle of the k-th write of the live change (torn).
    KilledInWrite(usize),
    /// Killed right after the k-th write of the live change.
    KilledAfterWrite(usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Event {
    Stage {
        valid: bool,
    },
    Start(Boot, Fault, End),
    /// A normal start, then a live change, then the end (`Healthy`, `Clean` or `Crash`;
    /// a kill during the change is a crash).
    Live(LiveOp, LiveFault, End),
    ForceSafe(bool),
    Unquarantine(u64),
    Reset,
    Rebuild,
    TearRecord,
    /// Another driver build is installed (the other of the two).
    NewBuild,
    /// The operator wakes the dormant build.
    Wake,
}

fn events(versions: u64) -> Vec<Event> {
    let mut e = vec![Event::Stage { valid: true }, Event::Stage { valid: false }];
    let ends = [
        End::Healthy,
        End::CanaryFailsThenClean,
        End::Clean,
        End::Crash,
        End::KilledAtRead,
        End::KilledInWrite(0),
        End::KilledInWrite(1),
        End::KilledInWrite(2),
        End::KilledAfterWrite(0),
        End::KilledAfterWrite(1),
        End::KilledAfterWrite(2),
    ];
    for boot in [Boot::Normal, Boot::WindowsSafe, Boot::ConfigForceSafe] {
        for fault in [Fault::None, Fault::ReadError, Fault::WriteError] {
            for end in ends {
                e.push(Event::Start(boot, fault, end));
            }
        }
    }
    e.extend([
        Event::ForceSafe(true),
        Event::ForceSafe(false),
        Event::Reset,
    ]);
    e.push(Event::Start(Boot::Normal, Fault::None, End::SetupFails));
    e.extend((1..=versions).map(Event::Unquarantine));
    e.extend([
        Event::Rebuild,
        Event::TearRecord,
        Event::NewBuild,
        Event::Wake,
    ]);
    let mut ops: Vec<LiveOp> = (1..=versions).map(LiveOp::Activate).collect();
    ops.push(LiveOp::Rollback);
    for op in ops {
        for end in [End::Healthy, End::Clean, End::Crash] {
            e.push(Event::Live(op, LiveFault::None, end));
        }
        for end in [End::Healthy, End::Crash] {
            e.push(Event::Live(op, LiveFault::WriteError, end));
        }
        e.push(Event::Live(op, LiveFault::StartUnwritable, End::Crash));
        for k in 0..2 {
            e.push(Event::Live(op, LiveFault::KilledInWrite(k), End::Crash));
            e.push(Event::Live(op, LiveFault::KilledAfterWrite(k), End::Crash));
        }
    }
    for v in 1..=versions {
        for end in [End::Healthy, End::Crash] {
            e.push(Event::Live(
                LiveOp::ActivateThenRollback(v),
                LiveFault::None,
                end,
            ));
        }
    }
    e
}

// ---- In-memory medium that can die.

struct Medium {
    bytes: Option<Vec<u8>>,
    read_error: bool,
    write_error: bool,
    /// Writes made so far in this start.
    writes: usize,
    /// Die: (write index, torn?) — that write is torn (or completes), every later one is lost.
    die_at: Option<(usize, bool)>,
    dead: bool,
    /// The state of the first write of this start that completed.
    first: Option<State>,
}

impl StateMedium for &mut Medium {
    fn read(&mut self, buf: &mut [u8; RECORD_LEN]) -> Result<bool, IoError> {
        if self.read_error {
            return Err(IoError { code: 5 });
        }
        match &self.bytes {
            None => Ok(false),
            Some(b) => {
                buf.copy_from_slice(b);
                Ok(true)
            }
        }
    }
    fn write_slot(&mut self, slot: usize, bytes: &[u8; SLOT_LEN]) -> Result<(), IoError> {
        let k = self.writes;
        self.writes += 1;
        if self.dead {
            return Err(IoError { code: -1 });
        }
        if self.write_error {
            return Err(IoError { code: 28 });
        }
        let rec = self.bytes.get_or_insert_with(|| vec![0; RECORD_LEN]);
        let dst = &mut rec[slot * SLOT_LEN..(slot + 1) * SLOT_LEN];
        match self.die_at {
            Some((at, true)) if at == k => {
                // Torn: half of the new bytes over the old slot, then death.
                dst[..SLOT_LEN / 2].copy_from_slice(&bytes[..SLOT_LEN / 2]);
                self.dead = true;
                Err(IoError { code: -1 })
            }
            Some((at, false)) if at == k => {
                dst.copy_from_slice(bytes);
                self.dead = true;
                if self.first.is_none() {
                    self.first = failsafe_loader::state::record::decode_slot(bytes).map(|x| x.0);
                }
                Ok(())
            }
            _ => {
                dst.copy_from_slice(bytes);
                if self.first.is_none() {
                    self.first = failsafe_loader::state::record::decode_slot(bytes).map(|x| x.0);
                }
                Ok(())
            }
        }
    }
}

struct Store<'a> {
    files: &'a BTreeMap<u64, Vec<u8>>,
    staged: Vec<u64>,
}

impl ContentStore for Store<'_> {
    fn versions(&mut self, out: &mut Vec<u64>) -> Result<(), IoError> {
        out.extend(&self.staged);
        Ok(())
    }
    fn read(&mut self, version: u64, _limit: usize, buf: &mut Vec<u8>) -> Result<(), IoError> {
        buf.clear();
        buf.extend_from_slice(self.files.get(&version).ok_or(IoError { code: 2 })?);
        Ok(())
    }
}

/// Content files: `(version, valid)` → bytes. An invalid file is the 2024 mistake.
fn files(versions: u64) -> BTreeMap<(u64, bool), Vec<u8>> {
    let mut m = BTreeMap::new();
    for v in 1..=versions {
        let mut c = one_rule();
        c.version = v;
        m.insert((v, true), signed(&c));
        let bad = failsafe_loader::Content {
            version: v,
            rules: vec![rule(
                21,
                EventType::FileSetInfo,
                Action::Block,
                vec![flag(Op::IsTrue, 10)],
            )],
        };
        m.insert((v, false), signed(&bad));
    }
    m
}

fn materialize(rec: &Rec) -> Option<Vec<u8>> {
    match rec {
        Rec::None => None,
        Rec::Lost => Some(vec![0xA5; RECORD_LEN]),
        Rec::Ok(s) => Some([encode_slot(s, 7), [0; SLOT_LEN]].concat()),
    }
}

fn observe(bytes: &Option<Vec<u8>>) -> Rec {
    match bytes.as_deref().map(decode_record) {
        None => Rec::None,
        Some(Loaded::Lost) => Rec::Lost,
        Some(Loaded::Ok(Stored { state, .. })) => Rec::Ok(state),
        Some(Loaded::Fresh) => panic!("a present record never decodes as a first install"),
    }
}

/// The abstract state: what the design's rules and the invariants can distinguish, and
/// nothing else (docs/testing.md, "Model check", argues each step). From the record: boot,
/// sequence and every other boot number dropped (no decision compares them across events),
/// the last decision and last health check dropped (display only), a quarantine entry's
/// detail and boot dropped (display only), the count and quarantine tables as sorted sets
/// (the machine looks entries up by version and picks by version, never by slot), the
/// driver build as "the installed one" or "another", counts capped at threshold + 1. The
/// store as staged and the installed build.
fn key(ctx: &Ctx, w: &World) -> Vec<u8> {
    let mut k = Vec::with_capacity(256);
    let cap = |c: u8| c.min(ctx.threshold().saturating_add(1));
    match w.rec {
        Rec::None => k.push(0),
        Rec::Lost => k.push(1),
        Rec::Ok(s) => {
            k.push(2);
            k.push(u8::from(s.force_safe));
            // A closed attempt (healthy, clean) is read by nothing: only a pending one.
            match s.pending() {
                None => k.push(0),
                Some(a) => {
                    k.push(1);
                    k.extend(a.ver.version.to_le_bytes());
                    k.extend(&a.ver.digest[..8]);
                }
            }
            let l = s.lkg.unwrap_or_default();
            k.extend(l.version.to_le_bytes());
            k.extend(&l.digest[..8]);
            k.extend(s.floor.to_le_bytes());
            let mut tracks: Vec<_> = s.tracks.iter().flatten().collect();
            tracks.sort_by_key(|t| t.ver.version);
            k.push(tracks.len() as u8);
            for t in tracks {
                k.extend(t.ver.version.to_le_bytes());
                k.extend(&t.ver.digest[..8]);
                k.push(cap(t.attempts));
            }
            let mut q: Vec<_> = s.quarantine.iter().flatten().collect();
            q.sort_by_key(|q| q.ver.version);
            k.push(q.len() as u8);
            for q in q {
                k.extend(q.ver.version.to_le_bytes());
                k.extend(&q.ver.digest[..8]);
                k.push(q.reason as u8);
            }
            match s.driver {
                None => k.push(0),
                Some(d) => {
                    k.push(if d.adopt {
                        1
                    } else if d.build == build_id(w.build) {
                        2
                    } else {
                        3
                    });
                    k.push(cap(d.unclean));
                    k.push(u8::from(d.pending().is_some()));
                    k.push(u8::from(d.dormant.is_some()));
                }
            }
        }
    }
    k.push(0xFE);
    for (v, ok) in &w.store {
        k.extend(v.to_le_bytes());
        k.push(u8::from(*ok));
    }
    // The oracle is not part of the abstract state: every transition checks that it equals
    // what the record says (counts plus pending attempt per eligible version, (5); the
    // build's, (B5); last-known-good, (6)), and the counts of versions that can never be
    // chosen again are read by nothing. Two states that differ only in it cannot both pass.
    k.push(0xFF);
    k.push(w.build);
    k.push(w.invalid);
    if ctx.max_live.is_some() {
        k.push(w.lives);
    }
    k
}

// ---- One step, and the invariants.

struct Ctx {
    /// Live events per sequence (`None`: any number).
    max_live: Option<u8>,
    /// Versions staged at most.
    versions: u64,
    /// Invalid versions staged at most.
    max_invalid: u8,
    cfg: Config,
    files: BTreeMap<(u64, bool), Vec<u8>>,
}

impl Ctx {
    fn threshold(&self) -> u8 {
        self.cfg.threshold()
    }
    fn digest(&self, w: &World, v: u64) -> Option<[u8; 32]> {
        let ok = w.store.iter().find(|(x, _)| *x == v)?.1;
        Some(file_digest(&self.files[&(v, ok)]))
    }
}

fn state_of(rec: &Rec) -> Option<&State> {
    match rec {
        Rec::Ok(s) => Some(s),
        _ => None,
    }
}

/// Applies `e` to `w`; `None` if the event does not apply. Panics on a broken invariant.
fn step(ctx: &Ctx, w: &World, e: Event) -> Option<World> {
    let mut n = w.clone();
    let t = ctx.threshold();
    match e {
        Event::Stage { valid } => {
            let v = w.store.len() as u64 + 1;
            if v > ctx.versions || (!valid && w.invalid >= ctx.max_invalid) {
                return None;
            }
            n.invalid += u8::from(!valid);
            n.store.push((v, valid));
        }
        Event::NewBuild => {
            // DESIGN: a new build gets fresh tries, from its first start (below).
            n.build = 1 - w.build;
        }
        Event::Wake => {
            let s = state_of(&w.rec)?;
            n.rec = Rec::Ok(wake(s)?);
            n.oracle.build_unclean = 0; // the operator gives it fresh tries
        }
        Event::TearRecord => {
            if w.rec == Rec::None || w.rec == Rec::Lost {
                return None;
            }
            n.rec = Rec::Lost;
            // DESIGN: a corrupt record loses its history; a crash loop is caught again
            // after `threshold` starts.
            n.oracle = Oracle::default();
        }
        Event::ForceSafe(on) => {
            let s = state_of(&w.rec)?;
            if s.force_safe == on {
                return None;
            }
            n.rec = Rec::Ok(set_force_safe(s, on));
        }
        Event::Unquarantine(v) => {
            let s = state_of(&w.rec)?;
            n.rec = Rec::Ok(unquarantine(s, v)?);
            n.oracle.unclean.remove(&v); // the operator gives it fresh attempts
        }
        Event::Reset => {
            let s = state_of(&w.rec)?;
            n.rec = Rec::Ok(reset(s));
            // Forgets every count but the start still pending, which ended uncleanly.
            let pending = s.pending().map(|a| a.ver.version);
            n.oracle.unclean.retain(|v, c| {
                *c = 1;
                Some(*v) == pending
            });
            n.oracle.lkg = 0;
        }
        Event::Rebuild => {
            if w.rec != Rec::Lost {
                return None;
            }
            let present: Vec<Ver> = w
                .store
                .iter()
                .map(|&(v, _)| Ver {
                    version: v,
                    digest: ctx.digest(w, v).unwrap(),
                })
                .collect();
            n.rec = Rec::Ok(rebuild(&present, &ctx.cfg, false));
            // History unknown: assume every version used all its tries but one.
            n.oracle = Oracle::default();
            for &(v, _) in &w.store {
                n.oracle.unclean.insert(v, t - 1);
            }
            // The build's history is unknown too: one try left for whichever starts next.
            n.oracle.build = None;
            n.oracle.build_unclean = t - 1;
        }
        Event::Start(boot, fault, end) => {
            start_event(ctx, w, &mut n, boot, fault, end, None)?;
        }
        Event::Live(op, fault, end) => {
            if let Some(max) = ctx.max_live {
                if w.lives >= max {
                    return None;
                }
                n.lives += 1;
            }
            start_event(
                ctx,
                w,
                &mut n,
                Boot::Normal,
                Fault::None,
                end,
                Some((op, fault)),
            )?;
        }
    }
    check(ctx, w, &n, e);
    Some(n)
}

fn start_event(
    ctx: &Ctx,
    w: &World,
    n: &mut World,
    boot: Boot,
    fault: Fault,
    end: End,
    live: Option<(LiveOp, LiveFault)>,
) -> Option<()> {
    if fault == Fault::ReadError && !matches!(end, End::Crash | End::Clean) {
        return None; // nothing is written or activated: one ending covers them all
    }
    let cfg = Config {
        force_safe_mode: boot == Boot::ConfigForceSafe,
        ..ctx.cfg
    };
    let env = Env {
        windows_safe_mode: boot == Boot::WindowsSafe,
        build: build_id(w.build),
        ..Env::default()
    };
    let mut medium = Medium {
        bytes: materialize(&w.rec),
        read_error: fault == Fault::ReadError,
        write_error: fault == Fault::WriteError,
        writes: 0,
        die_at: match end {
            End::KilledInWrite(k) => Some((k, true)),
            End::KilledAfterWrite(k) => Some((k, false)),
            _ => None,
        },
        dead: false,
        first: None,
    };
    let files: BTreeMap<u64, Vec<u8>> = w
        .store
        .iter()
        .map(|&(v, ok)| (v, ctx.files[&(v, ok)].clone()))
        .collect();
    let mut store = Store {
        files: &files,
        staged: w.store.iter().map(|&(v, _)| v).collect(),
    };
    if end == End::KilledAtRead {
        return Some(()); // died before anything: the world is unchanged
    }
    if end == End::SetupFails && (boot != Boot::Normal || live.is_some()) {
        return None; // only a normal start's setup is modelled failing
    }
    let mut s = begin_start(&mut medium, &cfg, &env, &trusted());
    let setup_failed = end == End::SetupFails;
    if setup_failed {
        // DriverEntry's setup failed: the build's attempt is closed; nothing else runs.
        if let Some(b) = s.build {
            assert!(
                s.durable.build_shutdown(&b).unwrap(),
                "setup failure closed nothing"
            );
        }
    } else {
        finish_start(&mut s, &mut store, &cfg, &env, &trusted());
    }
    let made_build = s.build;
    let dormant = s.dormant();
    if dormant {
        // (B3) A dormant start runs nothing.
        assert!(s.active.is_none() && s.activation.is_none() && s.build.is_none());
    }
    let writes = s.durable.medium_mut().writes;
    if let Some((k, _)) = s.durable.medium_mut().die_at
        && k >= writes
    {
        return None; // this start makes fewer writes: the kill point does not exist
    }
    let mut dead = s.durable.medium_mut().dead;
    let before = state_of(&w.rec).copied();
    // (1) No quarantined version is activated; safe starts activate nothing.
    if let Some((v, _)) = &s.active {
        assert!(
            before.is_none_or(|b| b.quarantined(v.version).is_none()),
            "quarantined v{} activated",
            v.version
        );
        assert_eq!(boot, Boot::Normal, "content activated in safe mode");
        assert_eq!(s.activation.map(|a| a.ver), Some(*v));
    }
    // The content running when the boot ends: the start's, or the live change's.
    let mut running = s.activation;
    // A live change that succeeded, and whether the machine died after its write.
    let mut swapped: Option<Option<Activation>> = None;
    if let Some((op, lf)) = live {
        let m = s.durable.medium_mut();
        m.writes = 0;
        m.write_error = lf == LiveFault::WriteError;
        m.die_at = match lf {
            LiveFault::KilledInWrite(k) => Some((k, true)),
            LiveFault::KilledAfterWrite(k) => Some((k, false)),
            _ => None,
        };
        let steps: &[LiveOp] = match op {
            LiveOp::ActivateThenRollback(v) => &[LiveOp::Activate(v), LiveOp::Rollback],
            _ => std::slice::from_ref(&op),
        };
        for &step in steps {
            let m = s.durable.medium_mut();
            let bytes_before = m.bytes.clone();
            let st_before = observe(&bytes_before);
            let r = match step {
                LiveOp::Activate(v) => s
                    .durable
                    .live_activate(running.as_ref(), &mut store, v, &cfg, &env, &trusted())
                    .map(|(a, rs)| {
                        assert_eq!(rs.version(), v);
                        Some(a)
                    }),
                _ => s
                    .durable
                    .rollback(running.as_ref(), &mut store, &cfg, &env, &trusted())
                    .map(|r| {
                        r.map(|(a, rs)| {
                            assert_eq!(rs.version(), a.ver.version);
                            a
                        })
                    }),
            };
            let m = s.durable.medium_mut();
            dead = m.dead;
            let after = observe(&m.bytes);
            let outcome = match &r {
                Ok(_) => "ok",
                Err(x) => x.name(),
            };
            *LIVE.lock().unwrap().entry(outcome).or_default() += 1;
            let lkg = |r: &Rec| state_of(r).and_then(|s| s.lkg);
            // (L3) A live change never moves last-known-good (only a passed health check).
            assert_eq!(
                lkg(&after),
                lkg(&st_before),
                "live {step:?} moved last-known-good"
            );
            match r {
                Ok(a) => {
                    // (L4) Never a quarantined version, never below last-known-good.
                    if let (Some(a), Some(b)) = (a, state_of(&st_before)) {
                        assert!(
                            b.quarantined(a.ver.version).is_none(),
                            "quarantined v{} activated live",
                            a.ver.version
                        );
                        assert!(b.lkg.is_none_or(|l| l.version <= a.ver.version));
                        assert_eq!(Some(a.ver.digest), ctx.digest(w, a.ver.version));
                    }
                    running = a;
                    swapped = Some(a);
                }
                Err(refusal) => {
                    // (L2) A refused live change changes nothing: no byte at all, or (content
                    // rejected after its attempt was durable) the same state written back.
                    // Killed before the restore: the live version stays pending (charged).
                    if dead {
                        running = None;
                        break;
                    }
                    if matches!(
                        refusal,
                        LiveRefusal::Invalid { .. } | LiveRefusal::OutOfMemory
                    ) {
                        assert_eq!(after, st_before, "rejected live content changed the record");
                    } else {
                        assert_eq!(
                            m.bytes, bytes_before,
                            "refused live {step:?} ({refusal}) changed the record"
                        );
                    }
                }
            }
            if dead {
                break;
            }
        }
        let m = s.durable.medium_mut();
        if let Some((k, _)) = m.die_at
            && k >= m.writes
        {
            return None; // the live change makes fewer writes: the kill point does not exist
        }
        m.write_error = false;
    }
    let clean_end = !dead && matches!(end, End::Healthy | End::CanaryFailsThenClean | End::Clean);
    let mut healthy = false;
    if clean_end && let Some(act) = running {
        let closed = match end {
            End::Healthy => s
                .durable
                .health(&act, &evidence(&cfg, true), &cfg)
                .map(|h| h.is_some_and(|h| h.passed)),
            End::CanaryFailsThenClean => {
                let h = s.durable.health(&act, &evidence(&cfg, false), &cfg);
                assert!(
                    !matches!(h, Ok(Some(h)) if h.passed),
                    "healthy without a canary"
                );
                s.durable.clean_shutdown(&act)
            }
            _ => s.durable.clean_shutdown(&act),
        };
        healthy = end == End::Healthy && closed == Ok(true);
    } else if clean_end && let Some(b) = made_build {
        // No content active at the end: the outcome closes the build's attempt.
        if matches!(end, End::Healthy | End::CanaryFailsThenClean) {
            let h = s
                .durable
                .build_health(&b, &evidence(&cfg, end == End::Healthy), &cfg);
            let passed = matches!(h, Ok(Some(h)) if h.passed);
            assert_eq!(passed, end == End::Healthy, "build health: {h:?}");
            healthy = passed;
        }
        if end != End::Healthy {
            assert_eq!(s.durable.build_shutdown(&b), Ok(true), "build not closed");
        }
    }
    let activation: Option<Activation> = running;
    drop(s);
    n.rec = observe(&medium.bytes);
    let was_dormant = before.is_some_and(|b| {
        b.driver
            .is_some_and(|d| d.dormant.is_some() && !d.adopt && d.build == env.build)
    });
    if dormant && was_dormant {
        // (B3) A start of a dormant build charges, clears and records no attempt: only the
        // boot and the decision change. (The start whose charge makes it dormant is checked
        // by (B1) and (B5).)
        let (b, a) = (before.unwrap(), *state_of(&n.rec).unwrap());
        let d = |s: &State| {
            s.driver
                .map(|d| (d.build, d.unclean, d.pending(), d.dormant))
        };
        assert_eq!(
            (a.attempt, a.tracks, a.quarantine, a.lkg, a.floor, d(&a)),
            (b.attempt, b.tracks, b.quarantine, b.lkg, b.floor, d(&b)),
            "a dormant start changed the record"
        );
    }
    // (4) A pending unclean attempt is never lost: the start's first durable write (the
    // one that charges it) still shows it pending, or charged exactly once (its count one
    // more, or quarantined at its threshold); a start that wrote nothing left it as it was.
    if let (Some(b), Some(p)) = (before, before.and_then(|b| b.pending().copied())) {
        let v = p.ver.version;
        let after = medium.first.or(match n.rec {
            Rec::Ok(a) => Some(a),
            _ => None,
        });
        if let Some(a) = after {
            let still = a
                .pending()
                .is_some_and(|x| x.ver == p.ver && x.boot == p.boot);
            let charged = a.attempts(v) == b.attempts(v) + 1
                || a.quarantined(v).is_some_and(|q| {
                    q.reason == QuarantineReason::CrashLoop
                        && q.detail == u32::from(ctx.threshold())
                });
            assert!(
                still || charged,
                "v{v}'s pending attempt lost by {boot:?} {fault:?} {end:?}"
            );
        }
    }
    // What really happened: did this start make an attempt durable, and how did it end?
    let made = match n.rec {
        Rec::Ok(a) => a
            .pending()
            .filter(|p| before.is_none_or(|b| a.boot > b.boot) && p.boot == a.boot)
            .map(|p| p.ver.version),
        _ => None,
    };
    if let Some(act) = activation {
        assert_eq!(
            made.or(Some(act.ver.version).filter(|_| clean_end)),
            Some(act.ver.version)
        );
    }
    // (L1) A crash after a live swap is charged to the live version (or, after a rollback,
    // to last-known-good): its attempt is what the record leaves pending.
    if let Some(Some(a)) = swapped
        && !healthy
        && !clean_end
    {
        assert_eq!(
            made,
            Some(a.ver.version),
            "crash after a live swap not on v{}",
            a.ver.version
        );
    }
    // (L3) Last-known-good rises only by a passed health check, to the version checked.
    if live.is_some() {
        let lkg = |r: &Rec| state_of(r).and_then(|s| s.lkg).map_or(0, |l| l.version);
        let (was, now) = (lkg(&w.rec), lkg(&n.rec));
        if healthy {
            assert_eq!(now, was.max(activation.map_or(0, |a| a.ver.version)));
        } else if w.rec != Rec::Lost {
            assert_eq!(
                now, was,
                "last-known-good moved without a passed health check"
            );
        }
    }
    let closed_clean = clean_end && activation.is_some() && made.is_none();
    if let Some(v) = made.or(activation.map(|a| a.ver.version).filter(|_| closed_clean)) {
        if healthy {
            n.oracle.unclean.insert(v, 0);
        } else if made.is_some() {
            *n.oracle.unclean.entry(v).or_insert(0) += 1;
        }
    }
    // The build's starts (DESIGN, "The driver's own code"): a start that is not safe runs
    // the installed build; a build other than the counted one starts fresh (a rebuilt
    // record's unknown build is taken with its count); an unclean end with no content
    // active is the build's; a healthy period (with or without content) clears it.
    if made_build.is_some() {
        match n.oracle.build {
            Some(b) if b == w.build => {}
            None if w.oracle.build_unclean > 0 => n.oracle.build = Some(w.build),
            _ => {
                n.oracle.build = Some(w.build);
                n.oracle.build_unclean = 0;
            }
        }
        if healthy {
            n.oracle.build_unclean = 0;
        } else if !clean_end && !setup_failed && made.is_none() {
            n.oracle.build_unclean += 1;
        }
    }
    if n.rec == Rec::Lost && w.rec != Rec::Lost {
        n.oracle = Oracle::default(); // a torn first record: nothing known
    }
    if let (Rec::Ok(a), Rec::Lost) = (n.rec, w.rec) {
        // The fresh record after "state lost" starts a new history.
        let _ = a;
        n.oracle = Oracle::default();
    }
    Some(())
}

fn evidence(cfg: &Config, canary_ok: bool) -> HealthEvidence {
    HealthEvidence {
        uptime_secs: cfg.healthy_after_secs,
        canary: if canary_ok {
            Ok(())
        } else {
            Err(IoError { code: 5 })
        },
    }
}

/// The design's invariants, between `w` (before) and `n` (after) an event.
fn check(ctx: &Ctx, w: &World, n: &World, e: Event) {
    let t = ctx.threshold();
    let ctxs = || format!("after {e:?} from {:?}", w.oracle);
    // (2) Never more than `threshold` consecutive unclean starts of a version, nor of the
    // build without content.
    for (v, c) in &n.oracle.unclean {
        assert!(*c <= t, "v{v}: {c} unclean starts; {}", ctxs());
    }
    assert!(
        n.oracle.build_unclean <= t,
        "the build: {} unclean starts without content; {}",
        n.oracle.build_unclean,
        ctxs()
    );
    let Rec::Ok(a) = n.rec else { return };
    let b = state_of(&w.rec);
    // (B1) A build goes dormant exactly at `threshold` unclean starts without content.
    let dormant = |s: &State| s.driver.is_some_and(|d| d.dormant.is_some() && !d.adopt);
    if dormant(&a)
        && !b.is_some_and(|b| dormant(b) && b.driver.map(|d| d.build) == a.driver.map(|d| d.build))
    {
        assert_eq!(
            n.oracle.build_unclean,
            t,
            "dormant early or late; {}",
            ctxs()
        );
    }
    // (B5) Build count conservation: the record's count plus an attempt of it that the next
    // start will charge equals the unclean starts that really happened.
    match a.driver {
        None => assert_eq!(
            (n.oracle.build, n.oracle.build_unclean),
            (None, 0),
            "no build entry; {}",
            ctxs()
        ),
        Some(d) if d.adopt => assert_eq!(
            (n.oracle.build, n.oracle.build_unclean),
            (None, d.unclean),
            "unknown build's count; {}",
            ctxs()
        ),
        Some(d) => {
            let which = if d.build == build_id(n.build) {
                n.build
            } else {
                1 - n.build
            };
            let charged = u8::from(d.pending().is_some() && a.pending().is_none());
            assert_eq!(n.oracle.build, Some(which), "counted build; {}", ctxs());
            assert_eq!(
                d.unclean + charged,
                n.oracle.build_unclean,
                "build: record {} + pending {charged} != {} unclean starts; {}",
                d.unclean,
                n.oracle.build_unclean,
                ctxs()
            );
        }
    }
    // (7) Safe starts (either switch) touch no counter, quarantine or last-known-good; nor
    // does a live change refused in safe mode.
    let boot = match e {
        Event::Start(boot, _, _) => Some(boot),
        Event::Live(..) => Some(Boot::Normal),
        _ => None,
    };
    if let (Some(boot), Some(b)) = (boot, b)
        && (boot != Boot::Normal || b.force_safe)
    {
        assert_eq!(
            (a.attempt, a.tracks, a.quarantine, a.lkg, a.floor, a.driver),
            (b.attempt, b.tracks, b.quarantine, b.lkg, b.floor, b.driver),
            "a safe start changed counters; {}",
            ctxs()
        );
    }
    // (3) Crash-loop quarantine exactly at `threshold`, with the real digest.
    for q in a.quarantine.iter().flatten() {
        let new = b.is_none_or(|b| b.quarantined(q.ver.version).is_none());
        if new && q.reason == QuarantineReason::CrashLoop {
            let c = n.oracle.unclean.get(&q.ver.version).copied().unwrap_or(0);
            assert_eq!(c, t, "v{} quarantined at {c}; {}", q.ver.version, ctxs());
            assert_eq!(Some(q.ver.digest), ctx.digest(n, q.ver.version), "digest");
        }
    }
    // (4) Operator commands keep a pending unclean attempt (starts are checked in
    // `start_event`, at their first durable write).
    if let Some(p) = b.and_then(|b| b.pending().copied())
        && !matches!(e, Event::Start(..) | Event::Live(..))
    {
        assert_eq!(a.pending(), Some(&p), "pending attempt lost; {}", ctxs());
    }
    // (5) Count conservation: for every version still eligible, the record's count plus
    // its pending start equals the unclean starts that really happened.
    let lkg = a.lkg.map_or(0, |l| l.version);
    for &(v, _) in &n.store {
        let eligible = a.quarantined(v).is_none() && (v == lkg || (v > lkg && v > a.floor));
        if !eligible {
            continue;
        }
        let pending = u8::from(a.pending().is_some_and(|p| p.ver.version == v));
        let real = n.oracle.unclean.get(&v).copied().unwrap_or(0);
        assert_eq!(
            a.attempts(v) + pending,
            real,
            "v{v}: record {} + pending {pending} != {real} unclean starts; {}",
            a.attempts(v),
            ctxs()
        );
    }
    // (6) Last-known-good is never lowered automatically.
    if !matches!(e, Event::Reset | Event::Rebuild | Event::TearRecord) && w.rec != Rec::Lost {
        assert!(lkg >= w.oracle.lkg, "last-known-good lowered; {}", ctxs());
    }
}

fn env_num(name: &str, debug: usize, release: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|d| d.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) {
            debug
        } else {
            release
        })
}

/// What a search found.
struct Found {
    /// The search ran out of new states (a fixed point), not out of depth.
    fixed_point: bool,
    states: usize,
    transitions: u64,
    /// Decisions seen (the record's last decision after each transition).
    reasons: BTreeMap<&'static str, u64>,
    /// Largest number of count entries and of quarantine entries in any state.
    tables: (usize, usize),
    /// A quarantine entry made room by raising the floor.
    floor_raised: bool,
}

/// Breadth-first search over `events` from a first install until no new abstract state
/// appears (a fixed point), or to `depth` events when given (the quick debug run).
fn search(what: &str, ctx: &Ctx, events: &[Event], depth: Option<usize>) -> Found {
    search_from(what, ctx, vec![first_install()], events, depth)
}

/// A machine before its first start.
fn first_install() -> World {
    World {
        lives: 0,
        invalid: 0,
        build: 0,
        rec: Rec::None,
        store: vec![],
        oracle: Oracle::default(),
    }
}

/// The world after `path` from a first install, every step through the real start
/// sequence and checked like any other.
fn reach(ctx: &Ctx, path: &[Event]) -> World {
    path.iter().fold(first_install(), |w, &e| {
        step(ctx, &w, e).unwrap_or_else(|| panic!("{e:?} does not apply"))
    })
}

/// [`search`] from the given states.
fn search_from(
    what: &str,
    ctx: &Ctx,
    seeds: Vec<World>,
    events: &[Event],
    depth: Option<usize>,
) -> Found {
    let t0 = std::time::Instant::now();
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    let frontier: Vec<World> = seeds
        .into_iter()
        .filter(|w| seen.insert(key(ctx, w)))
        .collect();
    let mut frontier = frontier;
    let mut found = Found {
        fixed_point: false,
        states: 0,
        transitions: 0,
        reasons: BTreeMap::new(),
        tables: (0, 0),
        floor_raised: false,
    };
    let mut d = 0;
    while !frontier.is_empty() && depth.is_none_or(|m| d < m) {
        d += 1;
        let mut next = Vec::new();
        // The successors, computed on every core; merged below in a fixed order.
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = frontier.len().div_ceil(threads).max(1);
        let succ: Vec<(u64, Event, World)> = std::thread::scope(|sc| {
            let hs: Vec<_> = frontier
                .chunks(chunk)
                .map(|part| {
                    sc.spawn(move || {
                        let mut out = Vec::new();
                        for w in part {
                            for &e in events {
                                if let Some(n) = step(ctx, w, e) {
                                    out.push((state_of(&w.rec).map_or(0, |b| b.floor), e, n));
                                }
                            }
                        }
                        out
                    })
                })
                .collect();
            hs.into_iter()
                .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        for (was, e, mut n) in succ {
            {
                found.transitions += 1;
                if let Rec::Ok(s) = n.rec {
                    if let Some(l) = s.last {
                        *found.reasons.entry(l.reason.name()).or_default() += 1;
                    }
                    let tracks = s.tracks.iter().flatten().count();
                    let quarantined = s.quarantine.iter().flatten().count();
                    found.tables = (found.tables.0.max(tracks), found.tables.1.max(quarantined));
                    found.floor_raised |= s.floor > was && matches!(e, Event::Start(..));
                }
                n.oracle.lkg = n.oracle.lkg.max(match n.rec {
                    Rec::Ok(s) => s.lkg.map_or(0, |l| l.version),
                    _ => 0,
                });
                if seen.insert(key(ctx, &n)) {
                    next.push(n);
                }
            }
        }
        eprintln!(
            "{what} depth {d}: {} new states, {} distinct, {} transitions, {:.1} s",
            next.len(),
            seen.len(),
            found.transitions,
            t0.elapsed().as_secs_f64()
        );
        frontier = next;
    }
    found.fixed_point = frontier.is_empty();
    found.states = seen.len();
    eprintln!(
        "model check ({what}): {} after {d} levels: {} distinct states, {} transitions, {:.1} s; largest tables: {} count entries, {} quarantine entries; decisions seen: {:?}",
        if found.fixed_point {
            "FIXED POINT"
        } else {
            "depth bound reached"
        },
        found.states,
        found.transitions,
        t0.elapsed().as_secs_f64(),
        found.tables.0,
        found.tables.1,
        found.reasons
    );
    found
}

/// The depth of the quick run (`FAILSAFE_MODEL_DEPTH`, default 4 in a debug build); a
/// release build searches to the fixed point unless the variable bounds it.
fn depth() -> Option<usize> {
    match env_num("FAILSAFE_MODEL_DEPTH", 4, 0) {
        0 => None,
        d => Some(d),
    }
}

/// Every event — starts in every mode with every fault and ending (kills at each write,
/// a fault in the driver's own setup, its clean failure), live changes of every kind,
/// operator commands, a new driver build, waking a dormant one, a torn record — with up to
/// three versions, to the fixed point: every reachable abstract state, each checked.
#[test]
fn complete_state_space() {
    let versions = u64::try_from(env_num(
        "FAILSAFE_MODEL_VERSIONS",
        VERSIONS as usize,
        VERSIONS as usize,
    ))
    .unwrap();
    let ctx = Ctx {
        max_live: None,
        versions,
        max_invalid: u8::MAX,
        cfg: Config::default(),
        files: files(versions),
    };
    let f = search("every event", &ctx, &events(versions), depth());
    let live = LIVE.lock().unwrap().clone();
    eprintln!("live changes: {live:?}");
    let mut want = vec![
        Reason::NewestContent,
        Reason::NewerQuarantined,
        Reason::WindowsSafeMode,
        Reason::ForceSafeMode,
        Reason::StateLost,
    ];
    if f.fixed_point {
        assert!(depth().is_none());
        want.extend([
            Reason::NothingUsable,
            Reason::LiveUpdate,
            Reason::LiveRollback,
            Reason::DriverDormant,
        ]);
        for o in [
            "ok",
            "already-active",
            "quarantined",
            "invalid-content",
            "not-in-store",
            "no-last-known-good",
            "safe-mode",
            "state-unwritable",
            "older-than-last-known-good",
        ] {
            assert!(live.contains_key(o), "live change never {o}");
        }
    }
    for r in want {
        assert!(
            f.reasons.contains_key(r.name()),
            "never decided {}",
            r.name()
        );
    }
}

/// The bounded tables full. Searching every interleaving of 18 versions from a first
/// install does not end (each version's count is its own dimension: docs/testing.md), so
/// this search starts from two states the real start sequence reaches from a first
/// install (`reach`, every step checked), with threshold 2 (the shortest count that can
/// fill the count table with counts that matter): 16 versions each with one unclean start
/// (the count table full), and 16 versions quarantined for crash-looping (the quarantine
/// table full). From there, every interleaving of: staging two more versions (valid, or
/// one invalid), normal starts ending healthy, clean, crashed, killed in the driver's own
/// setup or in the content's attempt write, a Windows Safe Mode start that crashes, a new
/// driver build and waking a dormant one: to the fixed point. It reaches
/// `newer-uncountable`, a quarantine eviction that raises the floor, and full tables.
#[test]
fn full_tables() {
    let versions = 18;
    let ctx = Ctx {
        max_live: Some(0),
        versions,
        max_invalid: 1,
        cfg: Config {
            threshold: 2,
            ..Config::default()
        },
        files: files(versions),
    };
    let crash = Event::Start(Boot::Normal, Fault::None, End::Crash);
    let good = Event::Stage { valid: true };
    let counted: Vec<Event> = (0..16).flat_map(|_| [good, crash]).collect();
    let quarantined: Vec<Event> = (0..16)
        .flat_map(|_| [good, crash, crash])
        .chain([crash])
        .collect();
    let seeds = vec![reach(&ctx, &counted), reach(&ctx, &quarantined)];
    let counts = |w: &World| {
        state_of(&w.rec).map_or((0, 0), |s| {
            (
                s.tracks.iter().flatten().filter(|t| t.attempts > 0).count(),
                s.quarantine.iter().flatten().count(),
            )
        })
    };
    assert_eq!(counts(&seeds[0]).0, 15, "15 charged, the 16th pending");
    assert_eq!(counts(&seeds[1]).1, 16);
    let mut events = vec![good, Event::Stage { valid: false }];
    for end in [
        End::Healthy,
        End::Clean,
        End::Crash,
        End::KilledAfterWrite(0),
    ] {
        events.push(Event::Start(Boot::Normal, Fault::None, end));
    }
    events.extend([
        Event::Start(Boot::Normal, Fault::None, End::KilledInWrite(1)),
        Event::Start(Boot::WindowsSafe, Fault::None, End::Crash),
        Event::NewBuild,
        Event::Wake,
    ]);
    let f = search_from("full tables", &ctx, seeds, &events, depth());
    assert_eq!(f.tables, (16, 16), "tables never full");
    if f.fixed_point {
        assert!(f.floor_raised, "no quarantine eviction raised the floor");
        for r in [
            Reason::NewerUncountable,
            Reason::NewerQuarantined,
            Reason::NothingUsable,
            Reason::DriverDormant,
        ] {
            assert!(
                f.reasons.contains_key(r.name()),
                "never decided {}",
                r.name()
            );
        }
    }
}
