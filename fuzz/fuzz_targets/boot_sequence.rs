//! Arbitrary sequences of boot events driven through the real start sequence over an
//! in-memory medium and store, checking the boot-counter invariants after every boot
//! against a model kept here (not the core's counts): no quarantined version activated; at
//! most `threshold` consecutive unclean starts; no crash-loop quarantine below threshold; a
//! pending unclean attempt is never lost (it stays pending or is charged exactly once);
//! safe mode activates nothing; last-known-good never goes backwards. Live activations and
//! rollbacks after a start: never a quarantined version or one below last-known-good, a
//! refused change leaves the record as it was, last-known-good moves only by a passed
//! health check, and the unclean end after a swap is charged to the live version.
//! The driver build (issue 20): a fault in the driver's own setup, new builds and waking a
//! dormant one; at most `threshold` unclean starts without content, dormant exactly then,
//! and a dormant start runs nothing.
//! Content is signed with the fuzz key and started with trust in it.
#![no_main]

#[path = "common/key.rs"]
mod key;

use std::collections::BTreeMap;

use arbitrary::Arbitrary;
use failsafe_loader::state::machine::{
    Activation, HealthEvidence, LiveRefusal, set_force_safe, unquarantine, wake,
};
use failsafe_loader::state::record::{Loaded, RECORD_LEN, SLOT_LEN, decode_record};
use failsafe_loader::state::start::{begin_start, finish_start};
use failsafe_loader::state::{
    BuildId, Config, ContentStore, Env, IoError, QuarantineReason, Reason, StateMedium,
};
use failsafe_loader::trust::KeyKind;
use failsafe_loader::{Action, Content, Criterion, EventType, Op, Rule, Values, encode};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Step {
    StageGood,
    StageBad,
    Crash,
    Healthy,
    Clean,
    /// The health check's canary fails (the filter stack is broken), then a clean shutdown.
    CanaryFailsThenClean,
    /// The canary fails, then the machine dies.
    CanaryFailsThenCrash,
    /// A write torn after this many bytes (mod the slot size).
    TornWrite(u16),
    Unreadable(bool),
    WindowsSafeMode,
    ForceSafe(bool),
    Unquarantine(u8),
    /// A normal start, then a live activation, then the end `end % 4` (crash, healthy,
    /// clean, canary fails then clean). `sel` bit 0: a new version is pushed to the store
    /// on the running system first (bit 1: an invalid one) and activated; otherwise version
    /// `newest - (sel >> 2) % 3` is (0: not in the store).
    Live(u8, u8),
    /// A normal start, then the operator's live rollback, then the end as for `Live`.
    Rollback(u8),
    /// A start whose driver faults in its own setup (after its build's attempt is durable).
    SetupFault,
    /// Another driver build is installed (`n % 3` of three).
    NewBuild(u8),
    /// The operator wakes a dormant build.
    Wake,
}

#[derive(Clone, Copy)]
enum LiveOp {
    Activate(u64),
    /// Push a new version (invalid if `true`) to the store, then activate it.
    Push(bool),
    Rollback,
}

struct Mem {
    rec: Option<Vec<u8>>,
    tear_at: Option<usize>,
    /// The state of the first complete write of the current start.
    first: Option<failsafe_loader::state::State>,
}

impl StateMedium for &mut Mem {
    fn read(&mut self, buf: &mut [u8; RECORD_LEN]) -> Result<bool, IoError> {
        match &self.rec {
            None => Ok(false),
            Some(r) => {
                buf.copy_from_slice(r);
                Ok(true)
            }
        }
    }
    fn write_slot(&mut self, slot: usize, bytes: &[u8; SLOT_LEN]) -> Result<(), IoError> {
        let r = self.rec.get_or_insert_with(|| vec![0; RECORD_LEN]);
        let n = self.tear_at.take().unwrap_or(SLOT_LEN);
        r[slot * SLOT_LEN..slot * SLOT_LEN + n].copy_from_slice(&bytes[..n]);
        if n < SLOT_LEN {
            Err(IoError { code: -1 })
        } else {
            if self.first.is_none() {
                self.first = failsafe_loader::state::record::decode_slot(bytes).map(|x| x.0);
            }
            Ok(())
        }
    }
}

#[derive(Default)]
struct Store {
    files: BTreeMap<u64, Vec<u8>>,
    unreadable: bool,
}

impl ContentStore for Store {
    fn versions(&mut self, out: &mut Vec<u64>) -> Result<(), IoError> {
        out.extend(self.files.keys());
        Ok(())
    }
    fn read(&mut self, version: u64, _: usize, buf: &mut Vec<u8>) -> Result<(), IoError> {
        if self.unreadable {
            return Err(IoError { code: 32 });
        }
        *buf = self
            .files
            .get(&version)
            .cloned()
            .ok_or(IoError { code: 2 })?;
        Ok(())
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Healthy,
    Clean,
    CanaryFailsThenClean,
    CanaryFailsThenCrash,
}

fn content(version: u64, bad: bool) -> Vec<u8> {
    let field = if bad { 10 } else { 9 }; // file-set-info has 10 fields
    let c = Content {
        version,
        rules: vec![Rule {
            id: 1,
            event: EventType::FileSetInfo,
            action: Action::Block,
            criteria: vec![Criterion {
                field,
                op: Op::IsTrue,
                negate: false,
                values: Values::None,
            }],
            exceptions: vec![],
        }],
    };
    key::sign(&encode(&c).expect("encodable")).expect("signable")
}

fuzz_target!(|steps: Vec<Step>| {
    let trust = key::trust(KeyKind::Release, false);
    let cfg = Config::default();
    let threshold = u64::from(cfg.threshold());
    let mut mem = Mem {
        rec: None,
        tear_at: None,
        first: None,
    };
    let mut store = Store::default();
    let mut newest = 0u64;
    let mut unclean: BTreeMap<u64, u64> = BTreeMap::new();
    let mut lkg_seen = 0u64;
    let mut force = false;
    // The driver build installed, the one the record counts, and its unclean starts without
    // content since it was last healthy (woken, or first started).
    let mut build = 0u8;
    let mut counted: Option<u8> = None;
    let mut build_unclean = 0u64;
    let build_id = |b: u8| BuildId {
        version: u64::from(b),
        digest: [b; 32],
    };
    for step in steps.into_iter().take(200) {
        let before = match mem.rec.as_deref().map(decode_record) {
            Some(Loaded::Ok(s)) => Some(s.state),
            _ => None,
        };
        let mut env = Env {
            build: build_id(build),
            ..Env::default()
        };
        let mut then = None;
        let mut live = None;
        let mut setup_fault = false;
        let end_of = |e: u8| match e % 4 {
            0 => None,
            1 => Some(Outcome::Healthy),
            2 => Some(Outcome::Clean),
            _ => Some(Outcome::CanaryFailsThenClean),
        };
        match step {
            Step::StageGood | Step::StageBad => {
                newest += 1;
                store
                    .files
                    .insert(newest, content(newest, matches!(step, Step::StageBad)));
                continue;
            }
            Step::ForceSafe(on) => {
                if let Some(s) = before {
                    force = on;
                    let rec = mem.rec.get_or_insert_with(|| vec![0; RECORD_LEN]);
                    let seq = match decode_record(rec) {
                        Loaded::Ok(x) => x.seq,
                        _ => 0,
                    };
                    rec[..SLOT_LEN].copy_from_slice(&failsafe_loader::state::record::encode_slot(
                        &set_force_safe(&s, on),
                        seq + 1,
                    ));
                    rec[SLOT_LEN..].fill(0);
                }
                continue;
            }
            Step::Unquarantine(v) => {
                if let Some(n) = before.and_then(|s| unquarantine(&s, u64::from(v))) {
                    let rec = mem.rec.get_or_insert_with(|| vec![0; RECORD_LEN]);
                    rec[..SLOT_LEN].copy_from_slice(&failsafe_loader::state::record::encode_slot(
                        &n,
                        u64::MAX / 2,
                    ));
                    rec[SLOT_LEN..].fill(0);
                    unclean.remove(&u64::from(v));
                }
                continue;
            }
            Step::TornWrite(n) => mem.tear_at = Some(usize::from(n) % SLOT_LEN),
            Step::Unreadable(on) => store.unreadable = on,
            Step::WindowsSafeMode => env.windows_safe_mode = true,
            Step::Crash => {}
            Step::Healthy => then = Some(Outcome::Healthy),
            Step::Clean => then = Some(Outcome::Clean),
            Step::CanaryFailsThenClean => then = Some(Outcome::CanaryFailsThenClean),
            Step::CanaryFailsThenCrash => then = Some(Outcome::CanaryFailsThenCrash),
            Step::Live(sel, e) => {
                live = Some(if sel & 1 == 1 {
                    LiveOp::Push(sel & 2 == 2)
                } else {
                    LiveOp::Activate(newest.saturating_sub(u64::from(sel >> 2) % 3))
                });
                then = end_of(e);
            }
            Step::Rollback(e) => {
                live = Some(LiveOp::Rollback);
                then = end_of(e);
            }
            Step::SetupFault => setup_fault = true,
            Step::NewBuild(n) => {
                build = n % 3;
                continue;
            }
            Step::Wake => {
                if let Some(n) = before.and_then(|s| wake(&s)) {
                    let rec = mem.rec.get_or_insert_with(|| vec![0; RECORD_LEN]);
                    rec[..SLOT_LEN].copy_from_slice(&failsafe_loader::state::record::encode_slot(
                        &n,
                        u64::MAX / 2,
                    ));
                    rec[SLOT_LEN..].fill(0);
                    build_unclean = 0;
                }
                continue;
            }
        }
        mem.first = None;
        let was_dormant = before.is_some_and(|b| {
            b.driver
                .is_some_and(|d| d.dormant.is_some() && !d.adopt && d.build == env.build)
        });
        let mut s = begin_start(&mut mem, &cfg, &env, &trust);
        if s.build.is_some() {
            // The build starts: another build than the one counted gets fresh tries.
            if counted != Some(build) {
                counted = Some(build);
                build_unclean = 0;
            }
        }
        if setup_fault {
            // The driver's setup dies: nothing more of this start runs.
            if s.build.is_some() {
                build_unclean += 1;
            }
            assert!(s.active.is_none());
            drop(s);
            mem.tear_at = None;
            assert!(build_unclean <= threshold, "the build: {build_unclean} unclean starts");
            continue;
        }
        finish_start(&mut s, &mut store, &cfg, &env, &trust);
        if s.dormant() {
            assert!(s.active.is_none() && s.activation.is_none() && s.build.is_none());
            if !was_dormant {
                assert_eq!(build_unclean, threshold, "dormant after {build_unclean}");
            }
        }
        let mut active = s.active.as_ref().map(|(v, _)| v.version);
        if let Some(v) = active {
            assert!(
                before.is_none_or(|b| b.quarantined(v).is_none()),
                "quarantined v{v} activated"
            );
        } else {
            assert!(s.activation.is_none());
        }
        let mut running: Option<Activation> = s.activation;
        if let Some(op) = live {
            let op = match op {
                LiveOp::Push(bad) => {
                    newest += 1;
                    store.files.insert(newest, content(newest, bad));
                    LiveOp::Activate(newest)
                }
                op => op,
            };
            let (bytes, st) = {
                let m = s.durable.medium_mut();
                let st = match m.rec.as_deref().map(decode_record) {
                    Some(Loaded::Ok(x)) => Some(x.state),
                    _ => None,
                };
                (m.rec.clone(), st)
            };
            let r = match op {
                LiveOp::Activate(v) => s
                    .durable
                    .live_activate(running.as_ref(), &mut store, v, &cfg, &env, &trust)
                    .map(|(a, rs)| {
                        assert_eq!(rs.version(), v);
                        Some(a)
                    }),
                // Rollback (a push became an activation above).
                _ => s
                    .durable
                    .rollback(running.as_ref(), &mut store, &cfg, &env, &trust)
                    .map(|r| r.map(|(a, _)| a)),
            };
            let m = s.durable.medium_mut();
            let now = match m.rec.as_deref().map(decode_record) {
                Some(Loaded::Ok(x)) => Some(x.state),
                _ => None,
            };
            assert_eq!(
                now.and_then(|x| x.lkg),
                st.and_then(|x| x.lkg),
                "a live change moved last-known-good"
            );
            match r {
                Ok(a) => {
                    if let (Some(a), Some(b)) = (a, st) {
                        let v = a.ver.version;
                        assert!(b.quarantined(v).is_none(), "quarantined v{v} activated live");
                        assert!(b.lkg.is_none_or(|l| l.version <= v), "v{v} below LKG live");
                        // The unclean end from here on is the live version's.
                        assert_eq!(now.and_then(|x| x.pending().map(|p| p.ver)), Some(a.ver));
                    }
                    assert!(!force && !env.windows_safe_mode, "live change in safe mode");
                    running = a;
                    active = a.map(|a| a.ver.version);
                }
                Err(LiveRefusal::Invalid { .. } | LiveRefusal::OutOfMemory) => {
                    assert_eq!(now, st, "rejected live content changed the record");
                }
                Err(e) => assert_eq!(m.rec, bytes, "refused live change ({e}) wrote"),
            }
        }
        if let Some(v) = active {
            let act = running.expect("active content has its activation");
            let ok = HealthEvidence {
                uptime_secs: cfg.healthy_after_secs,
                canary: Ok(()),
            };
            let failed = HealthEvidence {
                canary: Err(IoError { code: 5 }),
                ..ok
            };
            let c = unclean.entry(v).or_insert(0);
            match then {
                Some(Outcome::Healthy) => {
                    if matches!(s.durable.health(&act, &ok, &cfg), Ok(Some(h)) if h.passed) {
                        *c = 0;
                    } else {
                        *c += 1; // the healthy write failed: the start counts as unclean
                    }
                }
                Some(Outcome::Clean) => {
                    if s.durable.clean_shutdown(&act).is_err() {
                        *c += 1;
                    }
                }
                Some(Outcome::CanaryFailsThenClean) => {
                    let h = s.durable.health(&act, &failed, &cfg);
                    assert!(
                        !matches!(h, Ok(Some(h)) if h.passed),
                        "healthy without a canary"
                    );
                    if s.durable.clean_shutdown(&act).is_err() {
                        *c += 1;
                    }
                }
                Some(Outcome::CanaryFailsThenCrash) => {
                    let h = s.durable.health(&act, &failed, &cfg);
                    assert!(
                        !matches!(h, Ok(Some(h)) if h.passed),
                        "healthy without a canary"
                    );
                    *c += 1;
                }
                None => *c += 1,
            }
            assert!(*c <= threshold, "v{v}: {c} consecutive unclean starts");
            if then == Some(Outcome::Healthy) && *c == 0 {
                build_unclean = 0; // healthy with content: the build too
            }
        } else if let Some(b) = s.build {
            // No content active: the outcome is the build's.
            let ok = HealthEvidence {
                uptime_secs: cfg.healthy_after_secs,
                canary: Ok(()),
            };
            let failed = HealthEvidence {
                canary: Err(IoError { code: 5 }),
                ..ok
            };
            match then {
                Some(Outcome::Healthy) => {
                    if matches!(s.durable.build_health(&b, &ok, &cfg), Ok(Some(h)) if h.passed) {
                        build_unclean = 0;
                    } else {
                        build_unclean += 1;
                    }
                }
                Some(Outcome::Clean | Outcome::CanaryFailsThenClean) => {
                    if then == Some(Outcome::CanaryFailsThenClean) {
                        let h = s.durable.build_health(&b, &failed, &cfg);
                        assert!(!matches!(h, Ok(Some(h)) if h.passed), "healthy without a canary");
                    }
                    if s.durable.build_shutdown(&b) != Ok(true) {
                        build_unclean += 1;
                    }
                }
                Some(Outcome::CanaryFailsThenCrash) | None => build_unclean += 1,
            }
            assert!(build_unclean <= threshold, "the build: {build_unclean} unclean starts");
        }
        if force || env.windows_safe_mode {
            assert_eq!(active, None, "safe mode activated content");
        }
        let reason = s.choice.reason;
        drop(s);
        mem.tear_at = None;
        let after = match mem.rec.as_deref().map(decode_record) {
            Some(Loaded::Ok(x)) => Some(x.state),
            _ => None,
        };
        if reason == Reason::StateLost {
            unclean.clear(); // a lost record loses its history (DESIGN: "state lost")
            counted = None;
            build_unclean = 0;
        }
        if let Some(a) = after {
            let lkg = a.lkg.map_or(0, |l| l.version);
            assert!(lkg >= lkg_seen, "last-known-good went backwards");
            lkg_seen = lkg;
            // No crash-loop quarantine below threshold: a new entry's version has exactly
            // `threshold` unclean starts in the model.
            for q in a.quarantine.iter().flatten() {
                let new = before.is_none_or(|b| b.quarantined(q.ver.version).is_none());
                if new && q.reason == QuarantineReason::CrashLoop {
                    let n = unclean.get(&q.ver.version).copied().unwrap_or(0);
                    assert_eq!(
                        n, threshold,
                        "v{} quarantined after {n} unclean starts",
                        q.ver.version
                    );
                    assert_eq!(u64::from(q.detail), threshold);
                    assert_ne!(
                        q.ver.digest, [0; 32],
                        "quarantine without the file's digest"
                    );
                }
            }
            // A pending unclean attempt is never lost: the start's first durable write (the
            // one that charges it) still shows it pending, or charged exactly once (its count
            // one more, or quarantined at its threshold).
            let a = mem.first.unwrap_or(a);
            if let Some(p) = before.and_then(|b| b.pending().copied()) {
                let b = before.unwrap_or_default();
                let v = p.ver.version;
                let still = a.pending().is_some_and(|x| *x == p);
                let charged = a.attempts(v) == b.attempts(v) + 1
                    || a.quarantined(v)
                        .is_some_and(|q| q.reason == QuarantineReason::CrashLoop);
                assert!(still || charged, "v{v}'s pending unclean attempt was lost");
            }
        }
    }
});
