//! The start sequence and state machine over in-memory media. (The same sequence across
//! real process crashes and a real file is exercised by `failsafe-tests`.)
#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]
#![allow(clippy::arithmetic_side_effects, clippy::as_conversions)]

mod common;
use common::*;

use std::collections::BTreeMap;

use failsafe_loader::state::machine::{
    Activation, HealthEvidence, LiveRefusal, PriorKind, clean_shutdown, healthy, live_check,
    rebuild, reset, rollback_in, set_force_safe, unquarantine,
};
use failsafe_loader::state::record::{
    MAX_TRACKED, RECORD_LEN, REPORT_LEN, SLOT_LEN, decode_record, decode_report, encode_report,
    encode_slot,
};
use failsafe_loader::state::start::file_digest;
use failsafe_loader::state::{
    Config, ContentStore, Durable, Env, IoError, Loaded, Mode, Phase, QuarantineReason, Reason,
    Started, State, StateMedium, Ver,
};
use failsafe_loader::{Action, EventType, Op};

/// The driver's start with the tests' trusted key (content is signed with it).
fn start<M: StateMedium, S: ContentStore>(
    medium: M,
    store: &mut S,
    cfg: &Config,
    env: &Env,
) -> Started<M> {
    failsafe_loader::state::start::start_with_trust(medium, store, cfg, env, &trusted())
}

#[derive(Default)]
struct Mem {
    rec: Option<Vec<u8>>,
    fail_writes: bool,
    fail_reads: bool,
    /// Writes that succeed before every later one fails (None: no limit).
    writes_left: Option<usize>,
    /// Every state written, in order.
    log: Vec<State>,
}

impl StateMedium for &mut Mem {
    fn read(&mut self, buf: &mut [u8; RECORD_LEN]) -> Result<bool, IoError> {
        if self.fail_reads {
            return Err(IoError { code: 5 });
        }
        match &self.rec {
            None => Ok(false),
            Some(r) => {
                buf[..r.len()].copy_from_slice(r);
                Ok(true)
            }
        }
    }
    fn write_slot(&mut self, slot: usize, bytes: &[u8; SLOT_LEN]) -> Result<(), IoError> {
        if self.fail_writes {
            return Err(IoError { code: 28 });
        }
        if let Some(n) = self.writes_left.as_mut() {
            if *n == 0 {
                return Err(IoError { code: 28 });
            }
            *n -= 1;
        }
        self.log.push(
            failsafe_loader::state::record::decode_slot(bytes)
                .unwrap()
                .0,
        );
        let rec = self.rec.get_or_insert_with(|| vec![0; RECORD_LEN]);
        rec[slot * SLOT_LEN..(slot + 1) * SLOT_LEN].copy_from_slice(bytes);
        Ok(())
    }
}

#[derive(Default)]
struct Store {
    files: BTreeMap<u64, Vec<u8>>,
    unreadable: Vec<u64>,
}

impl Store {
    fn stage(&mut self, version: u64) {
        let mut c = one_rule();
        c.version = version;
        self.files.insert(version, signed(&c));
    }
    fn stage_invalid(&mut self, version: u64) {
        let c = failsafe_loader::Content {
            version,
            rules: vec![rule(
                21,
                EventType::FileSetInfo,
                Action::Block,
                vec![flag(Op::IsTrue, 10)],
            )],
        };
        self.files.insert(version, signed(&c));
    }
}

impl ContentStore for Store {
    fn versions(&mut self, out: &mut Vec<u64>) -> Result<(), IoError> {
        out.extend(self.files.keys());
        Ok(())
    }
    fn read(&mut self, version: u64, limit: usize, buf: &mut Vec<u8>) -> Result<(), IoError> {
        if self.unreadable.contains(&version) {
            return Err(IoError { code: 32 });
        }
        let f = self.files.get(&version).ok_or(IoError { code: 2 })?;
        buf.clear();
        buf.extend_from_slice(&f[..f.len().min(limit)]);
        Ok(())
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Then {
    Crash,
    Healthy,
    Clean,
}

fn passing(cfg: &Config) -> HealthEvidence {
    HealthEvidence {
        uptime_secs: cfg.healthy_after_secs,
        canary: Ok(()),
    }
}

/// One boot: returns (mode, reason, active version), then ends as `then` says, through the
/// API the driver uses: outcomes close only what this start activated.
fn boot(
    mem: &mut Mem,
    store: &mut Store,
    cfg: &Config,
    env: &Env,
    then: Then,
) -> (Mode, Reason, Option<u64>) {
    let mut s = start(mem, store, cfg, env);
    let active = s.active.as_ref().map(|(v, _)| v.version);
    assert_eq!(active, s.activation.map(|a| a.ver.version));
    if let Some(act) = s.activation {
        match then {
            Then::Crash => {}
            Then::Healthy => {
                let h = s.durable.health(&act, &passing(cfg), cfg).unwrap().unwrap();
                assert!(h.passed);
                assert!(
                    !s.durable.clean_shutdown(&act).unwrap(),
                    "healthy closed it"
                );
            }
            Then::Clean => {
                assert!(s.durable.clean_shutdown(&act).unwrap());
            }
        }
    } else if let Some(b) = s.build {
        // No content: the outcome closes the build's attempt.
        match then {
            Then::Crash => {}
            Then::Healthy => {
                let h = s.durable.build_health(&b, &passing(cfg), cfg).unwrap();
                assert!(h.unwrap().passed);
            }
            Then::Clean => assert!(s.durable.build_shutdown(&b).unwrap()),
        }
    }
    (s.choice.mode, s.choice.reason, active)
}

/// The same boot, but its outcome is applied with the pure functions to whatever attempt
/// the record shows in progress, as the old `healthy(s)` / `clean_shutdown(s)` did: used to
/// show that a start which activated nothing cannot close an earlier start's attempt.
fn boot_closing_whatever_is_pending(
    mem: &mut Mem,
    store: &mut Store,
    cfg: &Config,
    env: &Env,
    then: Then,
) -> (Mode, Reason, Option<u64>) {
    let mut s = start(mem, store, cfg, env);
    let st = *s.durable.state();
    let guess = st.attempt.map(|a| Activation {
        ver: a.ver,
        boot: a.boot,
    });
    if let Some(act) = guess {
        let closed = match then {
            Then::Crash => None,
            Then::Healthy => healthy(&st, &act, &passing(cfg), cfg),
            Then::Clean => clean_shutdown(&st, &act),
        };
        if let Some(n) = closed {
            s.durable.apply(|_| Some(n)).unwrap();
        }
    }
    (
        s.choice.mode,
        s.choice.reason,
        s.active.as_ref().map(|(v, _)| v.version),
    )
}

fn state_of(mem: &Mem) -> State {
    match decode_record(mem.rec.as_ref().unwrap()) {
        Loaded::Ok(s) => s.state,
        other => panic!("no valid state: {other:?}"),
    }
}

fn cfg() -> Config {
    Config::default()
}

fn env() -> Env {
    Env::default()
}

#[test]
fn crash_every_boot_quarantines_after_threshold_and_falls_back() {
    let (mut mem, mut store) = (Mem::default(), Store::default());
    store.stage(1);
    assert_eq!(
        boot(&mut mem, &mut store, &cfg(), &env(), Then::Healthy),
        (Mode::Normal, Reason::NewestContent, Some(1))
    );
    store.stage(2);
    for n in 1..=3 {
        assert_eq!(
            boot(&mut mem, &mut store, &cfg(), &env(), Then::Crash),
            (Mode::Normal, Reason::NewestContent, Some(2)),
            "start {n}"
        );
    }
    assert_eq!(
        boot(&mut mem, &mut store, &cfg(), &env(), Then::Crash),
        (Mode::Fallback, Reason::NewerQuarantined, Some(1))
    );
    let s = state_of(&mem);
    let q = s.quarantined(2).unwrap();
    assert_eq!((q.reason, q.detail), (QuarantineReason::CrashLoop, 3));
    // The fallback target has its own count: v1 crashed once at start 4.
    assert_eq!(
        boot(&mut mem, &mut store, &cfg(), &env(), Then::Healthy),
        (Mode::Fallback, Reason::NewerQuarantined, Some(1))
    );
    assert_eq!(state_of(&mem).attempts(1), 0);
}

#[test]
fn one_unrelated_crash_does_not_quarantine() {
    let (mut mem, mut store) = (Mem::default(), Store::default());
    store.stage(5);
    boot(&mut mem, &mut store, &cfg(), &env(), Then::Crash);
    boot(&mut mem, &mut store, &cfg(), &env(), Then::Healthy);
    let s = state_of(&mem);
    assert_eq!(s.attempts(5), 0);
    assert_eq!(s.lkg.unwrap().version, 5);
    assert!(s.quarantined(5).is_none());
}

#[test]
fn rejecting_a_new_version_does_not_reset_the_fallback_count() {
    let (mut mem, mut store) = (Mem::default(), Store::default());
    store.stage(1);
    boot(&mut mem, &mut store, &cfg(), &env(), Then::Healthy);
    boot(&mut mem, &mut store, &cfg(), &env(), Then::Crash); // v1: 1 charged at next start
    store.stage_invalid(2);
    let (mode, reason, active) = boot(&mut mem, &mut store, &cfg(), &env(), Then::Crash);
    assert_eq!(
        (mode, reason, active),
        (Mode::Fallback, Reason::NewerQuarantined, Some(1))
    );
    let s = state_of(&mem);
    assert_eq!(s.quarantined(2).unwrap().reason, QuarantineReason::Invalid);
    assert_eq!(
        s.attempts(1),
        1,
        "v1 keeps its count while v2 is tried and rejected"
    );
    boot(&mut mem, &mut store, &cfg(), &env(), Then::Crash); // v1 charged: 2
    assert_eq!(state_of(&mem).attempts(1), 2);
}

#[test]
fn last_known_good_crashing_too_means_no_content_and_no_older() {
    let (mut mem, mut store) = (Mem::default(), Store::default());
    store.stage(1);
    boot(&mut mem, &mut store, &cfg(), &env(), Then::Healthy);
    store.stage(2);
    boot(&mut mem, &mut store, &cfg(), &env(), Then::Healthy); // lkg = 2
    store.stage(3);
    for _ in 0..3 {
        assert_eq!(
            boot(&mut mem, &mut store, &cfg(), &env(), Then::Crash).2,
            Some(3)
        );
    }
    for _ in 0..3 {
        assert_eq!(
            boot(&mut mem, &mut store, &cfg(), &env(), Then::Crash).2,
            Some(2)
        );
    }
    // v1 is older than last-known-good: never tried automatically.
    assert_eq!(
        boot(&mut mem, &mut store, &cfg(), &env(), Then::Crash),
        (Mode::Fallback, Reason::NothingUsable, None)
    );
    assert_eq!(
        boot(&mut mem, &mut store, &cfg(), &env(), Then::Crash),
        (Mode::Fallback, Reason::NothingUsable, None)
    );
    let s = state_of(&mem);
    assert!(s.quarantined(2).is_some() && s.quarantined(3).is_some());
    assert_eq!(s.lkg.unwrap().version, 2);
    // A newer version staged later is tried.
    store.stage(4);
    assert_eq!(
        boot(&mut mem, &mut store, &cfg(), &env(), Then::Healthy),
        (Mode::Normal, Reason::NewestContent, Some(4))
    );
}

#[test]
fn clean_shutdowns_before_healthy_are_not_charged() {
    let (mut mem, mut store) = (Mem::default(), Store::default());
    store.stage(9);
    for _ in 0..10 {
        assert_eq!(
            boot(&mut mem, &mut store, &cfg(), &env(), Then::Clean).2,
            Some(9)
        );
    }
    assert_eq!(state_of(&mem).attempts(9), 0);
    assert_eq!(state_of(&mem).attempt.unwrap().phase, Phase::Clean);
}

#[test]
fn unreadable_file_falls_back_without_quarantine() {
    let (mut mem, mut store) = (Mem::default(), Store::default());
    store.stage(1);
    boot(&mut mem, &mut store, &cfg(), &env(), Then::Healthy);
    store.stage(2);
    store.unreadable.push(2);
    assert_eq!(
        boot(&mut mem, &mut store, &cfg(), &env(), Then::Clean),
        (Mode::Fallback, Reason::NewerUnreadable, Some(1))
    );
    assert!(state_of(&mem).quarantined(2).is_none());
    store.unreadable.clear();
    assert_eq!(
        boot(&mut mem, &mut store, &cfg(), &env(), Then::Clean).2,
        Some(2)
    );
}

#[test]
fn safe_mode_switches_activate_nothing_and_touch_no_counters() {
    let (mut mem, mut store) = (Mem::default(), Store::default());
    store.stage(1);
    boot(&mut mem, &mut store, &cfg(), &env(), Then::Crash); // v1 in progress, uncharged yet
    let before = state_of(&mem);
    let win = Env {
        windows_safe_mode: true,
        ..Env::default()
    };
    assert_eq!(
        boot(&mut mem, &mut store, &cfg(), &win, Then::Crash),
        (Mode::Safe, Reason::WindowsSafeMode, None)
    );
    let forced = Config {
        force_safe_mode: true,
        ..cfg()
    };
    assert_eq!(
        boot(&mut mem, &mut store, &forced, &env(), Then::Crash),
        (Mode::Safe, Reason::ForceSafeMode, None)
    );
    let after = state_of(&mem);
    assert_eq!(
        (after.attempt, after.tracks, after.quarantine),
        (before.attempt, before.tracks, before.quarantine)
    );
    // The operator's switch in the record works the same way.
    let mut s = after;
    s = set_force_safe(&s, true);
    mem.rec = Some([encode_slot(&s, 100), [0; SLOT_LEN]].concat());
    assert_eq!(
        boot(&mut mem, &mut store, &cfg(), &env(), Then::Crash),
        (Mode::Safe, Reason::ForceSafeMode, None)
    );
    let off = set_force_safe(&state_of(&mem), false);
    mem.rec = Some([encode_slot(&off, 200), [0; SLOT_LEN]].concat());
    // Back to normal: the crash before the switches is charged now, to v1.
    assert_eq!(
        boot(&mut mem, &mut store, &cfg(), &env(), Then::Crash),
        (Mode::Normal, Reason::NewestContent, Some(1))
    );
    assert_eq!(state_of(&mem).attempts(1), 1);
}

#[test]
fn first_install_differs_from_corrupt_state() {
    let (mut mem, mut store) = (Mem::default(), Store::default());
    store.stage(3);
    assert_eq!(
        boot(&mut mem, &mut store, &cfg(), &env(), Then::Clean),
        (Mode::Normal, Reason::NewestContent, Some(3))
    );
    mem.rec = Some(vec![0xA5; RECORD_LEN]);
    assert_eq!(
        boot(&mut mem, &mut store, &cfg(), &env(), Then::Crash),
        (Mode::Safe, Reason::StateLost, None)
    );
    let s = state_of(&mem);
    assert_eq!(s.last.unwrap().reason, Reason::StateLost);
    // The next start proceeds from the fresh record.
    assert_eq!(
        boot(&mut mem, &mut store, &cfg(), &env(), Then::Crash),
        (Mode::Normal, Reason::NewestContent, Some(3))
    );
}

#[test]
fn unreadable_or_unwritable_state_activates_nothing() {
    let (mut mem, mut store) = (Mem::default(), Store::default());
    store.stage(3);
    mem.fail_reads = true;
    assert_eq!(
        boot(&mut mem, &mut store, &cfg(), &env(), Then::Crash),
        (Mode::Safe, Reason::StateUnreadable, None)
    );
    assert!(
        mem.rec.is_none(),
        "nothing written when the record could not be read"
    );
    mem.fail_reads = false;
    mem.fail_writes = true;
    assert_eq!(
        boot(&mut mem, &mut store, &cfg(), &env(), Then::Crash),
        (Mode::Safe, Reason::StateUnwritable, None)
    );
}

#[test]
fn operator_unquarantine_and_reset() {
    let (mut mem, mut store) = (Mem::default(), Store::default());
    store.stage_invalid(4);
    store.stage(3);
    assert_eq!(
        boot(&mut mem, &mut store, &cfg(), &env(), Then::Healthy),
        (Mode::Fallback, Reason::NewerQuarantined, Some(3))
    );
    let s = state_of(&mem);
    assert!(unquarantine(&s, 3).is_none(), "3 is not quarantined");
    let lifted = unquarantine(&s, 4).unwrap();
    assert!(lifted.quarantined(4).is_none());
    let r = reset(&s);
    assert!(r.lkg.is_none() && r.quarantine.iter().all(Option::is_none));
    assert_eq!(r.boot, s.boot);
}

#[test]
fn threshold_is_clamped() {
    assert_eq!(
        Config {
            threshold: 0,
            ..cfg()
        }
        .threshold(),
        1
    );
    assert_eq!(
        Config {
            threshold: 200,
            ..cfg()
        }
        .threshold(),
        16
    );
    let (mut mem, mut store) = (Mem::default(), Store::default());
    store.stage(1);
    let one = Config {
        threshold: 0,
        ..cfg()
    };
    assert_eq!(
        boot(&mut mem, &mut store, &one, &env(), Then::Crash).2,
        Some(1)
    );
    assert_eq!(
        boot(&mut mem, &mut store, &one, &env(), Then::Crash),
        (Mode::Fallback, Reason::NothingUsable, None)
    );
}

#[test]
fn slots_alternate_and_a_torn_slot_keeps_the_other() {
    let s1 = State {
        boot: 1,
        ..State::default()
    };
    let s2 = State {
        boot: 2,
        ..State::default()
    };
    let mut rec = [encode_slot(&s1, 1), encode_slot(&s2, 2)].concat();
    assert!(matches!(decode_record(&rec), Loaded::Ok(x) if x.state.boot == 2 && x.slot == 1));
    rec[SLOT_LEN + 500] ^= 1;
    assert!(matches!(decode_record(&rec), Loaded::Ok(x) if x.state.boot == 1 && x.slot == 0));
    rec[10] ^= 1;
    assert_eq!(decode_record(&rec), Loaded::Lost);
}

#[test]
fn many_quarantined_versions_end_the_start_loop() {
    // More invalid versions than quarantine entries: the start must still end.
    let (mut mem, mut store) = (Mem::default(), Store::default());
    for v in 1..=40 {
        store.stage_invalid(v);
    }
    assert_eq!(
        boot(&mut mem, &mut store, &cfg(), &env(), Then::Crash),
        (Mode::Fallback, Reason::NothingUsable, None)
    );
}

#[test]
fn nine_versions_each_crashing_once_are_all_still_counted() {
    // Nine versions, each tried once and crashed: every one keeps its count of 1.
    let (mut mem, mut store) = (Mem::default(), Store::default());
    for v in 1..=9 {
        store.stage(v);
        assert_eq!(
            boot(&mut mem, &mut store, &cfg(), &env(), Then::Crash).2,
            Some(v)
        );
    }
    let s = state_of(&mem);
    assert!(
        s.quarantine.iter().all(Option::is_none),
        "nobody quarantined"
    );
    assert!(s.track(9).is_some());
    for v in 1..=8 {
        assert_eq!(s.attempts(v), 1, "v{v}");
    }
}

#[test]
fn a_crash_looping_version_is_not_released_by_quarantine_evictions() {
    // Found by the boot_sequence fuzzer: more versions to quarantine than entries. A
    // crash-looping v2 was quarantined (count cleared), then evicted to make room for an
    // invalid version, and came back with fresh attempts.
    let (mut mem, mut store) = (Mem::default(), Store::default());
    store.stage(2);
    for v in 3..=14 {
        store.stage_invalid(v);
    }
    let mut consecutive = 0;
    for boot_no in 0..30 {
        let (_, _, active) = boot(&mut mem, &mut store, &cfg(), &env(), Then::Crash);
        if active == Some(2) {
            consecutive += 1;
        }
        assert!(
            consecutive <= 3,
            "boot {boot_no}: v2 activated {consecutive} times without healthy"
        );
    }
    assert_eq!(consecutive, 3);
    let s = state_of(&mem);
    assert!(
        s.quarantined(2).is_some() || s.floor >= 2,
        "v2 stays out: quarantined or below the floor"
    );
    // The operator's reset clears the floor.
    assert_eq!(reset(&s).floor, 0);
}

// ---- Issue 15: holes in the fail-safe.

fn safe_env() -> Env {
    Env {
        windows_safe_mode: true,
        ..Env::default()
    }
}

/// Item 1: crash, safe-mode boot (clean shutdown or even "healthy"), crash, crash: the
/// start after the third crash quarantines v2. Before the fix, the safe-mode boot's
/// outcome marked v2's pending attempt clean and v2 got extra tries.
#[test]
fn a_safe_mode_start_never_closes_a_pending_crash() {
    for (how, safe_e, safe_c) in [
        ("windows safe mode", safe_env(), cfg()),
        (
            "force-safe-mode",
            env(),
            Config {
                force_safe_mode: true,
                ..cfg()
            },
        ),
    ] {
        for then in [Then::Clean, Then::Healthy] {
            let (mut mem, mut store) = (Mem::default(), Store::default());
            store.stage(1);
            boot(&mut mem, &mut store, &cfg(), &env(), Then::Healthy);
            store.stage(2);
            assert_eq!(
                boot(&mut mem, &mut store, &cfg(), &env(), Then::Crash).2,
                Some(2)
            );
            // The responder boots safe mode to look around, and the machine shuts down
            // cleanly (or stays up long enough to be "healthy"): nothing of v2's closes.
            let (mode, _, active) =
                boot_closing_whatever_is_pending(&mut mem, &mut store, &safe_c, &safe_e, then);
            assert_eq!((mode, active), (Mode::Safe, None), "{how}");
            let s = state_of(&mem);
            assert_eq!(
                s.pending().map(|a| a.ver.version),
                Some(2),
                "{how} {then:?}"
            );
            assert_eq!(s.attempts(2), 0, "{how}: not charged in safe mode");
            assert_eq!(
                boot(&mut mem, &mut store, &cfg(), &env(), Then::Crash).2,
                Some(2)
            );
            assert_eq!(state_of(&mem).attempts(2), 1, "{how}: charged once");
            assert_eq!(
                boot(&mut mem, &mut store, &cfg(), &env(), Then::Crash).2,
                Some(2)
            );
            assert_eq!(state_of(&mem).attempts(2), 2);
            assert_eq!(
                boot(&mut mem, &mut store, &cfg(), &env(), Then::Clean),
                (Mode::Fallback, Reason::NewerQuarantined, Some(1)),
                "{how} {then:?}: the third crash quarantines v2"
            );
            let q = *state_of(&mem).quarantined(2).unwrap();
            assert_eq!((q.reason, q.detail), (QuarantineReason::CrashLoop, 3));
        }
    }
}

/// Item 1: an activation is good only in the start that made it. After a safe start (which
/// counts a boot), the old activation no longer closes the pending attempt.
#[test]
fn a_stale_activation_closes_nothing() {
    let (mut mem, mut store) = (Mem::default(), Store::default());
    store.stage(1);
    let s = start(&mut mem, &mut store, &cfg(), &env());
    let act = s.activation.unwrap();
    assert!(clean_shutdown(s.durable.state(), &act).is_some());
    drop(s);
    let s = start(&mut mem, &mut store, &cfg(), &safe_env());
    assert!(s.activation.is_none());
    let st = *s.durable.state();
    assert_eq!(st.pending().unwrap().ver, act.ver);
    assert_eq!(clean_shutdown(&st, &act), None);
    assert_eq!(healthy(&st, &act, &passing(&cfg()), &cfg()), None);
    // An activation for another version or boot never matches either.
    let other = Activation {
        boot: act.boot,
        ver: Ver {
            version: 1,
            digest: [7; 32],
        },
    };
    let s = start(&mut mem, &mut store, &cfg(), &env());
    assert_eq!(clean_shutdown(s.durable.state(), &other), None);
}

/// Item 1: a start whose record could not be written activated nothing; the pending
/// attempt stays pending and is charged exactly once by the next start.
#[test]
fn an_unwritable_start_leaves_the_pending_attempt_for_one_charge() {
    let (mut mem, mut store) = (Mem::default(), Store::default());
    store.stage(1);
    boot(&mut mem, &mut store, &cfg(), &env(), Then::Healthy);
    store.stage(2);
    boot(&mut mem, &mut store, &cfg(), &env(), Then::Crash);
    mem.fail_writes = true;
    for _ in 0..3 {
        let s = start(&mut mem, &mut store, &cfg(), &env());
        assert_eq!(s.choice.reason, Reason::StateUnwritable);
        assert!(s.activation.is_none() && s.active.is_none());
        assert_eq!(s.persist_error, Some(IoError { code: 28 }));
        let r = s.report();
        assert!(r.record_not_written);
        assert_eq!(
            (r.reason, r.error),
            (Reason::StateUnwritable, Some(IoError { code: 28 }))
        );
    }
    mem.fail_writes = false;
    boot(&mut mem, &mut store, &cfg(), &env(), Then::Clean);
    assert_eq!(state_of(&mem).attempts(2), 1, "charged exactly once");
}

/// Item 2: with every count entry holding an unclean start, a new version is not tried
/// (the record refuses to try what it cannot count); nobody is quarantined before its
/// threshold. Before the fix, the oldest was quarantined after one crash.
#[test]
fn a_full_count_table_refuses_to_try_and_never_quarantines_early() {
    let (mut mem, mut store) = (Mem::default(), Store::default());
    store.stage(1);
    boot(&mut mem, &mut store, &cfg(), &env(), Then::Healthy);
    let mut unclean: BTreeMap<u64, u32> = BTreeMap::new();
    let mut uncountable = 0;
    let last = MAX_TRACKED as u64 + 6;
    for v in 2..=last {
        store.stage(v);
        let (_, reason, active) = boot(&mut mem, &mut store, &cfg(), &env(), Then::Crash);
        if reason == Reason::NewerUncountable {
            uncountable += 1;
        }
        let a = active.unwrap();
        *unclean.entry(a).or_default() += 1;
        let s = state_of(&mem);
        for q in s.quarantine.iter().flatten() {
            assert_eq!(q.reason, QuarantineReason::CrashLoop);
            assert_eq!(
                unclean[&q.ver.version], 3,
                "v{} quarantined after {} unclean starts",
                q.ver.version, unclean[&q.ver.version]
            );
        }
        assert!(unclean.values().all(|&c| c <= 3));
    }
    assert!(uncountable > 0, "the table filled up");
    assert!(state_of(&mem).quarantine.iter().flatten().count() > 0);
    // The exact case: 1 healthy, then 2..=10 each crash once: nobody quarantined.
    let (mut mem, mut store) = (Mem::default(), Store::default());
    store.stage(1);
    boot(&mut mem, &mut store, &cfg(), &env(), Then::Healthy);
    for v in 2..=10 {
        store.stage(v);
        assert_eq!(
            boot(&mut mem, &mut store, &cfg(), &env(), Then::Crash).2,
            Some(v)
        );
    }
    boot(&mut mem, &mut store, &cfg(), &env(), Then::Clean);
    assert!(state_of(&mem).quarantine.iter().all(Option::is_none));
}

/// Item 2: once a version reaches healthy, the counts below it are dropped and the new
/// version that could not be counted is tried.
#[test]
fn an_uncountable_version_is_tried_once_room_is_made() {
    let (mut mem, mut store) = (Mem::default(), Store::default());
    store.stage(1);
    boot(&mut mem, &mut store, &cfg(), &env(), Then::Healthy);
    // v1 (last-known-good) and v2..=v16 each crashed once fill the 16 count entries.
    let full = MAX_TRACKED as u64;
    for v in 2..=full {
        store.stage(v);
        boot(&mut mem, &mut store, &cfg(), &env(), Then::Crash);
    }
    store.stage(full + 1);
    let (mode, reason, active) = boot(&mut mem, &mut store, &cfg(), &env(), Then::Healthy);
    assert_eq!(
        (mode, reason, active),
        (Mode::Fallback, Reason::NewerUncountable, Some(full))
    );
    assert_eq!(state_of(&mem).attempts(full), 0, "healthy cleared it");
    assert_eq!(
        boot(&mut mem, &mut store, &cfg(), &env(), Then::Clean),
        (Mode::Normal, Reason::NewestContent, Some(full + 1))
    );
}

/// Item 3: a crash-loop quarantine carries the SHA-256 of the file whose starts were
/// counted (it was all zero before: the digest was looked up after the attempt was gone).
#[test]
fn crash_loop_quarantine_carries_the_real_digest() {
    let (mut mem, mut store) = (Mem::default(), Store::default());
    store.stage(1);
    boot(&mut mem, &mut store, &cfg(), &env(), Then::Healthy);
    store.stage(2);
    for _ in 0..4 {
        boot(&mut mem, &mut store, &cfg(), &env(), Then::Crash);
    }
    let want = file_digest(&store.files[&2]);
    let q = *state_of(&mem).quarantined(2).unwrap();
    assert_eq!(q.reason, QuarantineReason::CrashLoop);
    assert_eq!(q.ver.digest, want);
    assert_ne!(q.ver.digest, [0; 32]);
    // Also when the threshold is lowered below a count already charged (quarantined in
    // `choose`, from the count entry's digest).
    let (mut mem, mut store) = (Mem::default(), Store::default());
    store.stage(5);
    boot(&mut mem, &mut store, &cfg(), &env(), Then::Crash);
    boot(&mut mem, &mut store, &cfg(), &env(), Then::Crash);
    let one = Config {
        threshold: 1,
        ..cfg()
    };
    boot(&mut mem, &mut store, &one, &env(), Then::Crash);
    let q = *state_of(&mem).quarantined(5).unwrap();
    assert_eq!(q.ver.digest, file_digest(&store.files[&5]));
}

/// Health: uptime alone is not healthy. A failed canary is recorded with its error, the
/// attempt stays in progress and is charged at the next start.
#[test]
fn healthy_needs_the_canary_and_the_uptime() {
    let c = Config {
        healthy_after_secs: 120,
        ..cfg()
    };
    let (mut mem, mut store) = (Mem::default(), Store::default());
    store.stage(1);
    let mut s = start(&mut mem, &mut store, &c, &env());
    let act = s.activation.unwrap();
    let failed = HealthEvidence {
        uptime_secs: 600,
        canary: Err(IoError { code: 5 }),
    };
    let h = s.durable.health(&act, &failed, &c).unwrap().unwrap();
    assert!(!h.passed);
    assert_eq!(h.canary, Err(IoError { code: 5 }));
    let early = HealthEvidence {
        uptime_secs: 119,
        canary: Ok(()),
    };
    assert!(!s.durable.health(&act, &early, &c).unwrap().unwrap().passed);
    drop(s);
    let st = state_of(&mem);
    assert_eq!(st.pending().map(|a| a.ver.version), Some(1));
    assert_eq!(st.lkg, None);
    let h = st.health.unwrap();
    assert_eq!((h.version, h.uptime_secs, h.passed), (1, 119, false));
    // The next start charges it.
    boot(&mut mem, &mut store, &c, &env(), Then::Crash);
    assert_eq!(state_of(&mem).attempts(1), 1);
    // Both: healthy, and the evidence is in the record.
    let mut s = start(&mut mem, &mut store, &c, &env());
    let act = s.activation.unwrap();
    let ok = HealthEvidence {
        uptime_secs: 120,
        canary: Ok(()),
    };
    assert!(s.durable.health(&act, &ok, &c).unwrap().unwrap().passed);
    let st = state_of(&mem);
    assert_eq!(st.lkg.map(|l| l.version), Some(1));
    assert_eq!(st.attempts(1), 0);
    assert_eq!(st.attempt.unwrap().phase, Phase::Healthy);
    assert!(st.health.unwrap().passed);
}

/// Item 4: a responder's rebuild of an unreadable record: every stored version gets one
/// try (threshold - 1 assumed used), no last-known-good; what does not fit the count table
/// is below the floor.
#[test]
fn rebuild_puts_every_stored_version_on_probation() {
    let ver = |v: u64| Ver {
        version: v,
        digest: [v as u8; 32],
    };
    let s = rebuild(&[ver(3), ver(1), ver(2)], &cfg(), false);
    assert_eq!((s.attempts(1), s.attempts(2), s.attempts(3)), (2, 2, 2));
    assert_eq!(s.track(3).unwrap().ver.digest, [3; 32]);
    assert_eq!((s.lkg, s.floor, s.force_safe), (None, 0, false));
    let many: Vec<Ver> = (1..=MAX_TRACKED as u64 + 3).map(ver).collect();
    let s = rebuild(&many, &cfg(), true);
    assert_eq!(s.floor, 3, "the three oldest do not fit");
    assert!(s.force_safe);
    assert_eq!(s.attempts(4), 2);
    // Run from it: the newest gets one try; one crash quarantines it; then the next.
    let (mut mem, mut store) = (Mem::default(), Store::default());
    store.stage(1);
    store.stage(2);
    let r = rebuild(
        &[1u64, 2].map(|v| Ver {
            version: v,
            digest: file_digest(&store.files[&v]),
        }),
        &cfg(),
        false,
    );
    mem.rec = Some([encode_slot(&r, 1), [0; SLOT_LEN]].concat());
    assert_eq!(
        boot(&mut mem, &mut store, &cfg(), &env(), Then::Crash).2,
        Some(2)
    );
    assert_eq!(
        boot(&mut mem, &mut store, &cfg(), &env(), Then::Healthy),
        (Mode::Fallback, Reason::NewerQuarantined, Some(1))
    );
    let s = state_of(&mem);
    let q = s.quarantined(2).unwrap();
    assert_eq!((q.detail, q.ver.digest), (3, file_digest(&store.files[&2])));
    assert_eq!(s.lkg.map(|l| l.version), Some(1));
}

/// Item 4: the read error reaches the caller (the console prints it).
#[test]
fn an_unreadable_record_reports_its_error() {
    let (mut mem, mut store) = (Mem::default(), Store::default());
    mem.fail_reads = true;
    store.stage(1);
    let s = start(&mut mem, &mut store, &cfg(), &env());
    assert_eq!(s.prior, PriorKind::Unreadable(IoError { code: 5 }));
    let r = s.report();
    assert_eq!(
        (r.reason, r.record_not_written, r.error),
        (Reason::StateUnreadable, true, Some(IoError { code: 5 }))
    );
}

/// Item 5: the start report round-trips and rejects damage.
#[test]
fn start_reports_round_trip() {
    let (mut mem, mut store) = (Mem::default(), Store::default());
    store.stage(4);
    let s = start(
        &mut mem,
        &mut store,
        &cfg(),
        &Env {
            writes_may_not_persist: true,
            ..env()
        },
    );
    let r = s.report();
    // Two writes: the build's attempt before setup, then the content's attempt.
    assert_eq!((r.version, r.boot, r.record_seq), (4, 1, 2));
    assert_eq!(r.build, (0, [0; 8]), "the tests' build: Env::default()");
    assert!(r.writes_may_not_persist && !r.record_not_written);
    let bytes = encode_report(&r);
    assert_eq!(bytes.len(), REPORT_LEN);
    assert_eq!(decode_report(&bytes), Some(r));
    for i in 0..REPORT_LEN {
        let mut b = bytes;
        b[i] ^= 0x40;
        assert_eq!(decode_report(&b), None, "byte {i}");
    }
    assert_eq!(decode_report(&bytes[1..]), None);
}

/// Write filters: the flag is recorded in the decision; it changes no decision.
#[test]
fn writes_may_not_persist_is_recorded_not_acted_on() {
    let (mut mem, mut store) = (Mem::default(), Store::default());
    store.stage(1);
    let uwf = Env {
        writes_may_not_persist: true,
        ..env()
    };
    assert_eq!(
        boot(&mut mem, &mut store, &cfg(), &uwf, Then::Clean),
        (Mode::Normal, Reason::NewestContent, Some(1))
    );
    assert!(state_of(&mem).last.unwrap().writes_may_not_persist);
    boot(&mut mem, &mut store, &cfg(), &env(), Then::Clean);
    assert!(!state_of(&mem).last.unwrap().writes_may_not_persist);
    boot(
        &mut mem,
        &mut store,
        &cfg(),
        &Env {
            windows_safe_mode: true,
            writes_may_not_persist: true,
            ..Env::default()
        },
        Then::Clean,
    );
    let l = state_of(&mem).last.unwrap();
    assert_eq!(
        (l.reason, l.writes_may_not_persist),
        (Reason::WindowsSafeMode, true)
    );
}

/// Reset forgets history but not the crash of the start in progress.
#[test]
fn reset_keeps_the_pending_attempt() {
    let (mut mem, mut store) = (Mem::default(), Store::default());
    store.stage(1);
    boot(&mut mem, &mut store, &cfg(), &env(), Then::Crash);
    boot(&mut mem, &mut store, &cfg(), &env(), Then::Crash);
    let s = state_of(&mem);
    assert_eq!(s.attempts(1), 1);
    let r = reset(&s);
    assert_eq!(r.attempts(1), 0);
    assert_eq!(r.pending(), s.pending());
    mem.rec = Some([encode_slot(&r, 50), [0; SLOT_LEN]].concat());
    boot(&mut mem, &mut store, &cfg(), &env(), Then::Clean);
    assert_eq!(
        state_of(&mem).attempts(1),
        1,
        "the pending crash is charged once"
    );
}

// ---- Live activation and rollback (issue 11).

/// A live activation of `v` through a `Durable` opened on `mem`, as the running driver's
/// (it re-reads the record first, so a fresh one is the same): the activation and the
/// version of the rule set it loaded.
fn live(
    mem: &mut Mem,
    store: &mut Store,
    active: Option<&Activation>,
    v: u64,
    cfg: &Config,
    env: &Env,
) -> Result<(Activation, u64), LiveRefusal> {
    let (_, mut d) = Durable::open(mem);
    d.live_activate(active, store, v, cfg, env, &trusted())
        .map(|(a, rs)| (a, rs.version()))
}

fn rollback(
    mem: &mut Mem,
    store: &mut Store,
    active: Option<&Activation>,
    cfg: &Config,
    env: &Env,
) -> Result<Option<(Activation, u64)>, LiveRefusal> {
    let (_, mut d) = Durable::open(mem);
    d.rollback(active, store, cfg, env, &trusted())
        .map(|r| r.map(|(a, rs)| (a, rs.version())))
}

/// A start that leaves its content running (no outcome yet): its activation.
fn run(mem: &mut Mem, store: &mut Store, cfg: &Config) -> Option<Activation> {
    start(mem, store, cfg, &env()).activation
}

fn health(mem: &mut Mem, act: &Activation, cfg: &Config) -> bool {
    let (_, mut d) = Durable::open(mem);
    d.health(act, &passing(cfg), cfg)
        .unwrap()
        .is_some_and(|h| h.passed)
}

fn put_state(mem: &mut Mem, s: &State) {
    mem.rec = Some([encode_slot(s, 9), [0; SLOT_LEN]].concat());
}

/// Asserts `f` is refused with `want` and left the medium's bytes as they were.
#[track_caller]
fn refused_unchanged<T: std::fmt::Debug>(
    mem: &mut Mem,
    want: LiveRefusal,
    f: impl FnOnce(&mut Mem) -> Result<T, LiveRefusal>,
) {
    let before = mem.rec.clone();
    let writes = mem.log.len();
    assert_eq!(f(mem).unwrap_err(), want);
    assert_eq!(mem.rec, before, "a refused live change changed the record");
    assert_eq!(mem.log.len(), writes, "a refused live change wrote");
}

/// Running v1 (healthy, last-known-good), v2 and v3 staged.
fn healthy_on_v1() -> (Mem, Store, Activation) {
    let (mut mem, mut store) = (Mem::default(), Store::default());
    store.stage(1);
    let act = run(&mut mem, &mut store, &cfg()).unwrap();
    assert!(health(&mut mem, &act, &cfg()));
    store.stage(2);
    store.stage(3);
    (mem, store, act)
}

#[test]
fn live_refusals_each_say_why_and_change_nothing() {
    let (c, e) = (cfg(), env());
    let (mut mem, mut store, v1) = healthy_on_v1();
    let a = Some(&v1);
    // Safe mode: Windows Safe Mode, the configuration's switch, the record's switch.
    let ws = Env {
        windows_safe_mode: true,
        ..e
    };
    let want = LiveRefusal::SafeMode {
        reason: Reason::WindowsSafeMode,
    };
    refused_unchanged(&mut mem, want, |m| live(m, &mut store, a, 2, &c, &ws));
    let fc = Config {
        force_safe_mode: true,
        ..c
    };
    let want = LiveRefusal::SafeMode {
        reason: Reason::ForceSafeMode,
    };
    refused_unchanged(&mut mem, want, |m| live(m, &mut store, a, 2, &fc, &e));
    let mut st = state_of(&mem);
    put_state(&mut mem, &set_force_safe(&st, true));
    refused_unchanged(&mut mem, want, |m| live(m, &mut store, a, 2, &c, &e));
    refused_unchanged(&mut mem, want, |m| rollback(m, &mut store, a, &c, &e));
    put_state(&mut mem, &st);
    // Already active; version 0 and a version the store does not hold.
    let want = LiveRefusal::AlreadyActive { version: 1 };
    refused_unchanged(&mut mem, want, |m| live(m, &mut store, a, 1, &c, &e));
    let want = LiveRefusal::NotInStore { version: 0 };
    refused_unchanged(&mut mem, want, |m| live(m, &mut store, a, 0, &c, &e));
    let want = LiveRefusal::NotInStore { version: 9 };
    refused_unchanged(&mut mem, want, |m| live(m, &mut store, a, 9, &c, &e));
    // Unreadable file.
    store.unreadable.push(2);
    let want = LiveRefusal::Unreadable {
        version: 2,
        error: IoError { code: 32 },
    };
    refused_unchanged(&mut mem, want, |m| live(m, &mut store, a, 2, &c, &e));
    store.unreadable.clear();
    // Unreadable record: not re-read, nothing written.
    mem.fail_reads = true;
    let want = LiveRefusal::StateUnwritable {
        error: IoError { code: 5 },
    };
    refused_unchanged(&mut mem, want, |m| live(m, &mut store, a, 2, &c, &e));
    mem.fail_reads = false;
    // Unwritable record: no swap, the record as it was.
    mem.fail_writes = true;
    let want = LiveRefusal::StateUnwritable {
        error: IoError { code: 28 },
    };
    refused_unchanged(&mut mem, want, |m| live(m, &mut store, a, 2, &c, &e));
    mem.fail_writes = false;
    // Quarantined, older than last-known-good, below the floor, attempts used, uncountable:
    // crafted records.
    st.lkg = Some(Ver {
        version: 2,
        digest: file_digest(&store.files[&2]),
    });
    st.floor = 4;
    store.stage(4);
    store.stage(5);
    store.stage(6);
    st.quarantine[0] = Some(failsafe_loader::state::QEntry {
        ver: Ver {
            version: 3,
            digest: [3; 32],
        },
        reason: QuarantineReason::CrashLoop,
        detail: 3,
        boot: 1,
    });
    st.tracks[1] = Some(failsafe_loader::state::record::Track {
        ver: Ver {
            version: 5,
            digest: [5; 32],
        },
        attempts: 2,
    });
    st.attempt = None;
    put_state(&mut mem, &st);
    let want = LiveRefusal::Quarantined {
        version: 3,
        reason: QuarantineReason::CrashLoop,
    };
    refused_unchanged(&mut mem, want, |m| live(m, &mut store, None, 3, &c, &e));
    let want = LiveRefusal::OlderThanLastKnownGood { version: 1, lkg: 2 };
    refused_unchanged(&mut mem, want, |m| live(m, &mut store, None, 1, &c, &e));
    let want = LiveRefusal::BelowFloor {
        version: 4,
        floor: 4,
    };
    refused_unchanged(&mut mem, want, |m| live(m, &mut store, None, 4, &c, &e));
    let low = Config { threshold: 2, ..c };
    let want = LiveRefusal::AttemptsUsed {
        version: 5,
        attempts: 2,
    };
    refused_unchanged(&mut mem, want, |m| live(m, &mut store, None, 5, &low, &e));
    // Every count entry holds an unclean count of a version that may still be chosen.
    for (i, t) in st.tracks.iter_mut().enumerate() {
        *t = Some(failsafe_loader::state::record::Track {
            ver: Ver {
                version: 100 + i as u64,
                digest: [1; 32],
            },
            attempts: 1,
        });
    }
    put_state(&mut mem, &st);
    let want = LiveRefusal::Uncountable { version: 6 };
    refused_unchanged(&mut mem, want, |m| live(m, &mut store, None, 6, &c, &e));
    assert_eq!(live_check(&st, None, 6, &c, &e), Err(want));
}

#[test]
fn live_refusal_names_codes_and_sentences_are_stable() {
    let all = [
        LiveRefusal::SafeMode {
            reason: Reason::ForceSafeMode,
        },
        LiveRefusal::AlreadyActive { version: 1 },
        LiveRefusal::Quarantined {
            version: 1,
            reason: QuarantineReason::RolledBack,
        },
        LiveRefusal::OlderThanLastKnownGood { version: 1, lkg: 2 },
        LiveRefusal::BelowFloor {
            version: 1,
            floor: 2,
        },
        LiveRefusal::Uncountable { version: 1 },
        LiveRefusal::NotInStore { version: 1 },
        LiveRefusal::Unreadable {
            version: 1,
            error: IoError { code: 2 },
        },
        LiveRefusal::Invalid {
            version: 1,
            error: failsafe_loader::RuleSet::load(b"nope").unwrap_err(),
        },
        LiveRefusal::NoLastKnownGood,
        LiveRefusal::LastKnownGoodChanged { version: 1 },
        LiveRefusal::StateUnwritable {
            error: IoError { code: 28 },
        },
        LiveRefusal::OutOfMemory,
        LiveRefusal::AttemptsUsed {
            version: 1,
            attempts: 3,
        },
        LiveRefusal::PendingAttempt { version: 1 },
    ];
    let codes: Vec<u16> = all.iter().map(LiveRefusal::code).collect();
    assert_eq!(codes, (1..=15).collect::<Vec<u16>>());
    let names: Vec<&str> = all.iter().map(LiveRefusal::name).collect();
    assert_eq!(
        names,
        [
            "safe-mode",
            "already-active",
            "quarantined",
            "older-than-last-known-good",
            "below-floor",
            "uncountable",
            "not-in-store",
            "unreadable",
            "invalid-content",
            "no-last-known-good",
            "last-known-good-changed",
            "state-unwritable",
            "out-of-memory",
            "attempts-used",
            "pending-attempt",
        ]
    );
    assert_eq!(
        all[3].to_string(),
        "version 1 is older than last-known-good 2: expected at least 2"
    );
    assert_eq!(Reason::LiveUpdate.name(), "live-update");
    assert_eq!(Reason::LiveRollback.name(), "live-rollback");
    assert_eq!(QuarantineReason::RolledBack.name(), "rolled-back");
    // The new codes round-trip through the record.
    let mut st = State {
        last: Some(failsafe_loader::state::LastDecision {
            mode: Mode::Fallback,
            reason: Reason::LiveRollback,
            version: 2,
            boot: 3,
            writes_may_not_persist: false,
            test_signing: false,
        }),
        ..State::default()
    };
    st.quarantine[0] = Some(failsafe_loader::state::QEntry {
        ver: Ver {
            version: 4,
            digest: [4; 32],
        },
        reason: QuarantineReason::RolledBack,
        detail: 0,
        boot: 3,
    });
    let back = failsafe_loader::state::record::decode_slot(&encode_slot(&st, 1))
        .unwrap()
        .0;
    assert_eq!(back, st);
}

/// Invalid content pushed live is rejected after its attempt was made durable (first
/// write: v2 in progress), then the state before is written back: the record's content is
/// as before, v2 is not quarantined, v1 still runs and can still become healthy.
#[test]
fn invalid_live_content_is_rejected_and_changes_nothing() {
    let (c, e) = (cfg(), env());
    let (mut mem, mut store) = (Mem::default(), Store::default());
    store.stage(1);
    let v1 = run(&mut mem, &mut store, &c).unwrap();
    store.stage_invalid(2);
    let before = state_of(&mem);
    let writes = mem.log.len();
    let r = live(&mut mem, &mut store, Some(&v1), 2, &c, &e).unwrap_err();
    let LiveRefusal::Invalid { version: 2, error } = r else {
        panic!("{r:?}")
    };
    assert_eq!(error.code(), "field-out-of-range");
    let w = &mem.log[writes..];
    assert_eq!(w.len(), 2, "the attempt, then the restore");
    let p = w[0].pending().unwrap();
    assert_eq!(
        (p.ver.version, p.boot),
        (2, v1.boot),
        "durable before parsing"
    );
    assert_eq!(w[0].last.unwrap().reason, Reason::LiveUpdate);
    assert_eq!(state_of(&mem), before, "net record unchanged");
    assert!(state_of(&mem).quarantined(2).is_none());
    assert!(
        health(&mut mem, &v1, &c),
        "v1's activation still closes its attempt"
    );
    // A start that picks v2 rejects and quarantines it, as always.
    assert_eq!(
        boot(&mut mem, &mut store, &c, &e, Then::Healthy),
        (Mode::Fallback, Reason::NewerQuarantined, Some(1))
    );
    assert_eq!(
        state_of(&mem).quarantined(2).unwrap().reason,
        QuarantineReason::Invalid
    );
}

/// The restore after a rejected parse fails: the record keeps v2 in progress; v1 keeps
/// running but can no longer close an attempt; the next start charges v2 once.
#[test]
fn a_failed_restore_leaves_the_rejected_version_charged_once() {
    let (c, e) = (cfg(), env());
    let (mut mem, mut store) = (Mem::default(), Store::default());
    store.stage(1);
    let v1 = run(&mut mem, &mut store, &c).unwrap();
    assert!(health(&mut mem, &v1, &c));
    store.stage_invalid(2);
    mem.writes_left = Some(1);
    let r = live(&mut mem, &mut store, Some(&v1), 2, &c, &e);
    assert!(
        matches!(r, Err(LiveRefusal::Invalid { version: 2, .. })),
        "{r:?}"
    );
    mem.writes_left = None;
    let st = state_of(&mem);
    assert_eq!(st.pending().unwrap().ver.version, 2);
    assert!(
        !health(&mut mem, &v1, &c),
        "v1's activation closes nothing now"
    );
    // Even a clean shutdown of the running v1 cannot close v2's attempt: charged once.
    let (_, mut d) = Durable::open(&mut mem);
    assert!(!d.clean_shutdown(&v1).unwrap());
    drop(d);
    let s = start(&mut mem, &mut store, &c, &e);
    assert_eq!(
        s.durable.state().quarantined(2).unwrap().reason,
        QuarantineReason::Invalid
    );
    drop(s);
    // v2 was charged once before the start rejected it (its count went with the quarantine):
    // the start's writes show a count of 1, never 2.
    assert!(mem.log.iter().any(|s| s.attempts(2) == 1));
    assert!(mem.log.iter().all(|s| s.attempts(2) <= 1));
}

/// A live swap: a crash before healthy is charged to the live version, not to the one it
/// replaced; the old activation closes nothing; health after the swap makes it
/// last-known-good.
#[test]
fn a_crash_after_a_live_swap_is_charged_to_the_live_version() {
    let (c, e) = (cfg(), env());
    let (mut mem, mut store) = (Mem::default(), Store::default());
    store.stage(1);
    let v1 = run(&mut mem, &mut store, &c).unwrap();
    store.stage(2);
    let (v2, loaded) = live(&mut mem, &mut store, Some(&v1), 2, &c, &e).unwrap();
    assert_eq!((v2.ver.version, v2.boot, loaded), (2, v1.boot, 2));
    let st = state_of(&mem);
    let d = st.last.unwrap();
    assert_eq!(
        (d.mode, d.reason, d.version),
        (Mode::Normal, Reason::LiveUpdate, 2)
    );
    assert!(
        !health(&mut mem, &v1, &c),
        "the replaced activation closes nothing"
    );
    // Die before healthy.
    let s = start(&mut mem, &mut store, &c, &e);
    assert_eq!(s.durable.state().attempts(2), 1, "charged to v2");
    assert_eq!(s.durable.state().attempts(1), 0, "not to v1");
    let now = s.activation.unwrap();
    drop(s);
    assert_eq!(now.ver.version, 2);
    assert!(health(&mut mem, &now, &c));
    assert_eq!(state_of(&mem).lkg.unwrap().version, 2);
}

/// The July 2024 timeline at the core: healthy on v1; v2 pushed live; the machine dies
/// three times on v2 (once live, twice at boot) -> the third charge quarantines v2 at the
/// start's beginning and that start runs v1; then v3 pushed live becomes last-known-good
/// after a health check.
#[test]
fn july_2024_timeline_live() {
    let (c, e) = (cfg(), env());
    let (mut mem, mut store) = (Mem::default(), Store::default());
    store.stage(1);
    let v1 = run(&mut mem, &mut store, &c).unwrap();
    assert!(health(&mut mem, &v1, &c));
    assert_eq!(state_of(&mem).lkg.unwrap().version, 1);
    store.stage(2);
    let (_v2, _) = live(&mut mem, &mut store, Some(&v1), 2, &c, &e).unwrap();
    // Dies before healthy. Next start: v2 charged (1), boots v2.
    assert_eq!(
        boot(&mut mem, &mut store, &c, &e, Then::Crash),
        (Mode::Normal, Reason::NewestContent, Some(2))
    );
    let st = state_of(&mem);
    assert_eq!(st.attempts(2), 1);
    // Dies (2), boots v2 again.
    assert_eq!(
        boot(&mut mem, &mut store, &c, &e, Then::Crash),
        (Mode::Normal, Reason::NewestContent, Some(2))
    );
    assert_eq!(state_of(&mem).attempts(2), 2);
    // Dies (3 = threshold): quarantined at that start's beginning; it runs v1.
    let s = start(&mut mem, &mut store, &c, &e);
    assert_eq!(
        (s.choice.mode, s.choice.reason),
        (Mode::Fallback, Reason::NewerQuarantined)
    );
    let q = *s.durable.state().quarantined(2).unwrap();
    assert_eq!((q.reason, q.detail), (QuarantineReason::CrashLoop, 3));
    let v1b = s.activation.unwrap();
    assert_eq!(v1b.ver.version, 1);
    drop(s);
    // Pushing v2 again live is refused; v3 goes in and becomes last-known-good.
    let want = LiveRefusal::Quarantined {
        version: 2,
        reason: QuarantineReason::CrashLoop,
    };
    refused_unchanged(&mut mem, want, |m| {
        live(m, &mut store, Some(&v1b), 2, &c, &e)
    });
    store.stage(3);
    let (v3, _) = live(&mut mem, &mut store, Some(&v1b), 3, &c, &e).unwrap();
    assert_eq!(state_of(&mem).lkg.unwrap().version, 1, "not before health");
    let (_, mut d) = Durable::open(&mut mem);
    let short = HealthEvidence {
        uptime_secs: c.healthy_after_secs - 1,
        canary: Ok(()),
    };
    assert!(!d.health(&v3, &short, &c).unwrap().unwrap().passed);
    drop(d);
    assert_eq!(state_of(&mem).lkg.unwrap().version, 1);
    assert!(health(&mut mem, &v3, &c));
    assert_eq!(state_of(&mem).lkg.unwrap().version, 3);
}

/// Rollback from a live version: it is quarantined (rolled-back), last-known-good's attempt
/// is in progress (a crash then is charged to it), the decision says so.
#[test]
fn rollback_quarantines_the_version_rolled_back_from() {
    let (c, e) = (cfg(), env());
    let (mut mem, mut store, v1) = healthy_on_v1();
    let (v2, _) = live(&mut mem, &mut store, Some(&v1), 2, &c, &e).unwrap();
    let (back, loaded) = rollback(&mut mem, &mut store, Some(&v2), &c, &e)
        .unwrap()
        .unwrap();
    assert_eq!((back.ver.version, loaded), (1, 1));
    let st = state_of(&mem);
    let q = st.quarantined(2).unwrap();
    assert_eq!((q.reason, q.detail), (QuarantineReason::RolledBack, 0));
    let d = st.last.unwrap();
    assert_eq!(
        (d.mode, d.reason, d.version),
        (Mode::Fallback, Reason::LiveRollback, 1)
    );
    assert_eq!(st.pending().unwrap().ver.version, 1);
    // Already on last-known-good: refused.
    let want = LiveRefusal::AlreadyActive { version: 1 };
    refused_unchanged(&mut mem, want, |m| {
        rollback(m, &mut store, Some(&back), &c, &e)
    });
    // v2 cannot come back live while quarantined.
    let want = LiveRefusal::Quarantined {
        version: 2,
        reason: QuarantineReason::RolledBack,
    };
    refused_unchanged(&mut mem, want, |m| {
        live(m, &mut store, Some(&back), 2, &c, &e)
    });
    // A crash after the rollback is charged to v1; the next start runs v3 (newest).
    let s = start(&mut mem, &mut store, &c, &e);
    assert_eq!(s.durable.state().attempts(1), 1);
    assert_eq!(s.activation.unwrap().ver.version, 3);
}

#[test]
fn rollback_refusals_and_rollback_without_last_known_good() {
    let (c, e) = (cfg(), env());
    let (mut mem, mut store) = (Mem::default(), Store::default());
    // Nothing active, no last-known-good.
    store.stage(1);
    let v1 = run(&mut mem, &mut store, &c).unwrap();
    let (_, mut d) = Durable::open(&mut mem);
    d.clean_shutdown(&v1).unwrap();
    drop(d);
    refused_unchanged(&mut mem, LiveRefusal::NoLastKnownGood, |m| {
        rollback(m, &mut store, None, &c, &e)
    });
    // Running v1 without a last-known-good: rollback leaves nothing active.
    let v1 = run(&mut mem, &mut store, &c).unwrap();
    assert_eq!(rollback(&mut mem, &mut store, Some(&v1), &c, &e), Ok(None));
    let st = state_of(&mem);
    assert_eq!(st.attempt, None);
    assert_eq!(
        st.quarantined(1).map(|q| q.reason),
        Some(QuarantineReason::RolledBack)
    );
    let d = st.last.unwrap();
    assert_eq!(
        (d.mode, d.reason, d.version),
        (Mode::Fallback, Reason::LiveRollback, 0)
    );
    // Last-known-good's file changed since it was healthy: refused before anything is
    // written; so is an unreadable one.
    let (mut mem, mut store, v1) = healthy_on_v1();
    let (v2, _) = live(&mut mem, &mut store, Some(&v1), 2, &c, &e).unwrap();
    let good = store.files[&1].clone();
    let mut other = one_rule();
    other.version = 1;
    other.rules[0].id = 77;
    store.files.insert(1, signed(&other));
    let want = LiveRefusal::LastKnownGoodChanged { version: 1 };
    refused_unchanged(&mut mem, want, |m| {
        rollback(m, &mut store, Some(&v2), &c, &e)
    });
    store.files.insert(1, good);
    store.unreadable.push(1);
    let want = LiveRefusal::Unreadable {
        version: 1,
        error: IoError { code: 32 },
    };
    refused_unchanged(&mut mem, want, |m| {
        rollback(m, &mut store, Some(&v2), &c, &e)
    });
    store.unreadable.clear();
    // Quarantined last-known-good: never activated live.
    let mut st = state_of(&mem);
    st.quarantine[0] = Some(failsafe_loader::state::QEntry {
        ver: st.lkg.unwrap(),
        reason: QuarantineReason::CrashLoop,
        detail: 3,
        boot: st.boot,
    });
    let saved = st;
    let want = LiveRefusal::Quarantined {
        version: 1,
        reason: QuarantineReason::CrashLoop,
    };
    assert_eq!(rollback_in(&mut st, Some(&v2), &e), Err(want));
    assert_eq!(st, saved, "rollback_in changes nothing when it refuses");
    put_state(&mut mem, &st);
    refused_unchanged(&mut mem, want, |m| {
        rollback(m, &mut store, Some(&v2), &c, &e)
    });
}

/// A start that decided safe mode for a reason other than a switch (here the record was
/// lost) stays without content until the next start: no live change.
#[test]
fn no_live_change_after_a_safe_start() {
    let (c, e) = (cfg(), env());
    let (mut mem, mut store) = (Mem::default(), Store::default());
    store.stage(1);
    mem.rec = Some(vec![0xA5; RECORD_LEN]);
    assert!(run(&mut mem, &mut store, &c).is_none());
    let want = LiveRefusal::SafeMode {
        reason: Reason::StateLost,
    };
    refused_unchanged(&mut mem, want, |m| live(m, &mut store, None, 1, &c, &e));
    refused_unchanged(&mut mem, want, |m| rollback(m, &mut store, None, &c, &e));
    // The next start is normal; then live changes are possible again.
    let v1 = run(&mut mem, &mut store, &c).unwrap();
    store.stage(2);
    assert_eq!(
        live(&mut mem, &mut store, Some(&v1), 2, &c, &e).unwrap().1,
        2
    );
}

/// A start that could not write the record leaves the previous start's attempt pending;
/// a live change then would lose that crash: refused, and the next start charges it.
#[test]
fn a_live_change_never_replaces_an_uncharged_attempt() {
    let (c, e) = (cfg(), env());
    let (mut mem, mut store) = (Mem::default(), Store::default());
    store.stage(1);
    run(&mut mem, &mut store, &c).unwrap();
    mem.fail_writes = true;
    let mut s = start(&mut mem, &mut store, &c, &e);
    assert!(s.activation.is_none());
    s.durable.medium_mut().fail_writes = false;
    // The running start's own record knows it decided safe mode.
    let mut d = s.durable;
    store.stage(2);
    assert_eq!(
        d.live_activate(None, &mut store, 2, &c, &e, &trusted())
            .map(|_| ()),
        Err(LiveRefusal::SafeMode {
            reason: Reason::StateUnwritable
        })
    );
    drop(d);
    // A record opened afresh (a host) sees the uncharged attempt.
    let want = LiveRefusal::PendingAttempt { version: 1 };
    refused_unchanged(&mut mem, want, |m| live(m, &mut store, None, 2, &c, &e));
    refused_unchanged(&mut mem, want, |m| rollback(m, &mut store, None, &c, &e));
    let s = start(&mut mem, &mut store, &c, &e);
    assert_eq!(s.durable.state().attempts(1), 1);
}

/// Rolling back to the version that ran before in the same boot gives an activation equal
/// to the first one. Harmless: the holder replaces its activation at each swap, and either
/// one closes the same attempt, which is the one now running (docs/boot-safety.md).
#[test]
fn rollback_to_the_same_version_in_one_boot_is_the_same_activation() {
    let (c, e) = (cfg(), env());
    let (mut mem, mut store) = (Mem::default(), Store::default());
    store.stage(1);
    let first = run(&mut mem, &mut store, &c).unwrap();
    assert!(health(&mut mem, &first, &c));
    let v1 = run(&mut mem, &mut store, &c).unwrap();
    store.stage(2);
    let (v2, _) = live(&mut mem, &mut store, Some(&v1), 2, &c, &e).unwrap();
    let (back, _) = rollback(&mut mem, &mut store, Some(&v2), &c, &e)
        .unwrap()
        .unwrap();
    assert_eq!(back, v1);
    assert!(!health(&mut mem, &v2, &c), "v2's activation closes nothing");
    assert!(health(&mut mem, &back, &c));
    assert_eq!(state_of(&mem).lkg.unwrap().version, 1);
}

/// Last-known-good's file is unchanged but no longer loads (its key is not trusted any
/// more): the rollback's write (v2 quarantined, v1 in progress) is undone — v2 keeps
/// running, not quarantined, the record as before.
#[test]
fn a_rollback_whose_target_no_longer_loads_changes_nothing() {
    let (c, e) = (cfg(), env());
    let (mut mem, mut store, v1) = healthy_on_v1();
    let (v2, _) = live(&mut mem, &mut store, Some(&v1), 2, &c, &e).unwrap();
    let before = state_of(&mem);
    let writes = mem.log.len();
    let (_, mut d) = Durable::open(&mut mem);
    let r = d.rollback(
        Some(&v2),
        &mut store,
        &c,
        &e,
        &failsafe_loader::trust::Trust::builtin(),
    );
    drop(d);
    let Err(LiveRefusal::Invalid { version: 1, error }) = r else {
        panic!("{:?}", r.map(|x| x.map(|(a, _)| a)))
    };
    assert_eq!(error.code(), "unknown-key");
    assert_eq!(mem.log.len(), writes + 2, "the rollback, then the restore");
    assert!(
        mem.log[writes].quarantined(2).is_some(),
        "durable before loading"
    );
    assert_eq!(state_of(&mem), before);
    assert!(
        health(&mut mem, &v2, &c),
        "v2's activation still closes its attempt"
    );
}

/// A live activation of last-known-good's version whose file is not the file that was
/// healthy (its SHA-256 differs from the one recorded) is refused as rollback refuses it,
/// before anything is written: the record would otherwise call new bytes by a proven
/// version. The file as recorded still activates.
#[test]
fn a_live_activation_of_a_changed_last_known_good_is_refused() {
    let (c, e) = (cfg(), env());
    let (mut mem, mut store, v1) = healthy_on_v1();
    let (v2, _) = live(&mut mem, &mut store, Some(&v1), 2, &c, &e).unwrap();
    let good = store.files[&1].clone();
    let mut other = one_rule();
    other.version = 1;
    other.rules[0].id = 77;
    store.files.insert(1, signed(&other));
    let want = LiveRefusal::LastKnownGoodChanged { version: 1 };
    refused_unchanged(&mut mem, want, |m| {
        live(m, &mut store, Some(&v2), 1, &c, &e)
    });
    store.files.insert(1, good);
    let (a, loaded) = live(&mut mem, &mut store, Some(&v2), 1, &c, &e).unwrap();
    assert_eq!((a.ver.version, loaded), (1, 1));
    assert_eq!(a.ver, state_of(&mem).lkg.unwrap());
}

// ---- The driver build under the counter (issue 20): dormancy.

fn build(n: u8) -> failsafe_loader::state::BuildId {
    failsafe_loader::state::BuildId {
        version: failsafe_loader::state::BuildId::pack(0, 1, u16::from(n)),
        digest: [n; 32],
    }
}

fn on(b: u8) -> Env {
    Env {
        build: build(b),
        ..Env::default()
    }
}

fn driver_of(mem: &Mem) -> failsafe_loader::state::DriverTrack {
    state_of(mem).driver.expect("a driver entry")
}

/// No content at all and the build crashes at every start: each unclean end is the build's;
/// the start after the third is dormant (nothing set up, nothing charged) and stays so.
#[test]
fn a_build_crashing_without_content_goes_dormant_at_threshold() {
    let (c, e) = (cfg(), on(1));
    let (mut mem, mut store) = (Mem::default(), Store::default());
    for n in 1..=3u8 {
        let s = start(&mut mem, &mut store, &c, &e);
        assert_eq!(s.choice.reason, Reason::NoContentStaged);
        assert!(s.build.is_some() && !s.dormant());
        drop(s);
        // Charged at the next start: n - 1 so far.
        assert_eq!(driver_of(&mem).unclean, n - 1);
    }
    let s = start(&mut mem, &mut store, &c, &e);
    assert!(s.dormant());
    assert_eq!(
        (s.choice.mode, s.choice.reason, s.build, s.activation),
        (Mode::Safe, Reason::DriverDormant, None, None)
    );
    assert_eq!(s.report().reason, Reason::DriverDormant);
    drop(s);
    let d = driver_of(&mem);
    assert_eq!((d.unclean, d.dormant, d.attempt), (3, Some(4), None));
    assert_eq!(state_of(&mem).last.unwrap().reason, Reason::DriverDormant);
    // Dormant starts (any mode) count a boot and charge nothing.
    for env in [
        e,
        Env {
            windows_safe_mode: true,
            ..e
        },
    ] {
        let s = start(&mut mem, &mut store, &c, &env);
        assert!(s.dormant());
        drop(s);
        assert_eq!(driver_of(&mem).unclean, 3);
    }
    assert_eq!(state_of(&mem).boot, 6);
    // A live change on a dormant start is refused (nothing runs to take it).
    let (_, mut d) = Durable::open(&mut mem);
    store.stage(1);
    let r = d.live_activate(None, &mut store, 1, &c, &e, &trusted());
    assert!(
        matches!(
            r,
            Err(LiveRefusal::SafeMode {
                reason: Reason::DriverDormant
            })
        ),
        "{r:?}"
    );
}

/// The documented worst case: a build that crashes whatever runs. Content is charged first
/// (v2, then last-known-good v1, each `threshold` times), then the starts without content:
/// threshold × (versions tried + 1) = 3 × 3 = 9 unclean starts, and the tenth is dormant.
#[test]
fn content_crash_loops_end_first_then_the_build_goes_dormant() {
    let (c, e) = (cfg(), on(1));
    let (mut mem, mut store) = (Mem::default(), Store::default());
    store.stage(1);
    assert_eq!(
        boot(&mut mem, &mut store, &c, &e, Then::Healthy),
        (Mode::Normal, Reason::NewestContent, Some(1))
    );
    store.stage(2);
    let mut seen = Vec::new();
    loop {
        let (m, r, v) = boot(&mut mem, &mut store, &c, &e, Then::Crash);
        seen.push((r, v));
        if r == Reason::DriverDormant {
            assert_eq!((m, v), (Mode::Safe, None));
            break;
        }
        assert!(seen.len() < 20, "never dormant: {seen:?}");
    }
    let want: Vec<(Reason, Option<u64>)> = [
        [(Reason::NewestContent, Some(2)); 3],
        [(Reason::NewerQuarantined, Some(1)); 3],
        [(Reason::NothingUsable, None); 3],
    ]
    .concat()
    .into_iter()
    .chain([(Reason::DriverDormant, None)])
    .collect();
    assert_eq!(seen, want);
    let st = state_of(&mem);
    assert!(st.quarantined(1).is_some() && st.quarantined(2).is_some());
    assert_eq!(driver_of(&mem).unclean, 3, "only the content-less starts");
}

/// A new build gets fresh tries; the dormant one's entry goes with it.
#[test]
fn a_new_build_gets_fresh_tries() {
    let c = cfg();
    let (mut mem, mut store) = (Mem::default(), Store::default());
    for _ in 0..4 {
        boot(&mut mem, &mut store, &c, &on(1), Then::Crash);
    }
    assert!(driver_of(&mem).dormant.is_some());
    store.stage(1);
    assert_eq!(
        boot(&mut mem, &mut store, &c, &on(2), Then::Healthy),
        (Mode::Normal, Reason::NewestContent, Some(1))
    );
    let d = driver_of(&mem);
    assert_eq!((d.build, d.unclean, d.dormant), (build(2), 0, None));
    // Going back to the old build is a new build again: fresh tries, not dormant.
    assert_eq!(
        boot(&mut mem, &mut store, &c, &on(1), Then::Clean).1,
        Reason::NewestContent
    );
}

/// Safe starts (Windows Safe Mode, force-safe) neither charge nor close the build's pending
/// attempt, exactly as for content: crash, Safe Mode boot, crash, crash: dormant next.
#[test]
fn safe_starts_neither_charge_nor_close_the_build() {
    let c = cfg();
    let (mut mem, mut store) = (Mem::default(), Store::default());
    boot(&mut mem, &mut store, &c, &on(1), Then::Crash);
    let safe = Env {
        windows_safe_mode: true,
        ..on(1)
    };
    let s = start(&mut mem, &mut store, &c, &safe);
    assert_eq!((s.choice.reason, s.build), (Reason::WindowsSafeMode, None));
    drop(s);
    assert_eq!(driver_of(&mem).pending().unwrap().boot, 1, "still pending");
    boot(&mut mem, &mut store, &c, &on(1), Then::Crash);
    boot(&mut mem, &mut store, &c, &on(1), Then::Crash);
    assert_eq!(
        boot(&mut mem, &mut store, &c, &on(1), Then::Clean).1,
        Reason::DriverDormant
    );
}

/// A healthy period without content clears the build's count (its canary and uptime, as
/// for content); a clean shutdown neither charges nor clears.
#[test]
fn healthy_without_content_clears_the_build_count() {
    let c = cfg();
    let (mut mem, mut store) = (Mem::default(), Store::default());
    boot(&mut mem, &mut store, &c, &on(1), Then::Crash);
    boot(&mut mem, &mut store, &c, &on(1), Then::Crash);
    boot(&mut mem, &mut store, &c, &on(1), Then::Clean);
    assert_eq!(
        driver_of(&mem).unclean,
        2,
        "clean: neither charged nor cleared"
    );
    boot(&mut mem, &mut store, &c, &on(1), Then::Healthy);
    let d = driver_of(&mem);
    assert_eq!((d.unclean, d.attempt.unwrap().phase), (0, Phase::Healthy));
    let h = state_of(&mem).health.unwrap();
    assert!(h.passed && h.version == 0, "{h:?}");
    // A failed canary records the check and clears nothing.
    boot(&mut mem, &mut store, &c, &on(1), Then::Crash);
    let mut s = start(&mut mem, &mut store, &c, &on(1));
    let b = s.build.unwrap();
    let failed = HealthEvidence {
        canary: Err(IoError { code: 5 }),
        ..passing(&c)
    };
    assert!(
        !s.durable
            .build_health(&b, &failed, &c)
            .unwrap()
            .unwrap()
            .passed
    );
    drop(s);
    assert_eq!(driver_of(&mem).unclean, 1);
}

/// The driver's own setup failing cleanly (`DriverEntry` returns an error) closes its build
/// attempt: nothing is charged for it. The attempt is durable before setup (the first write).
#[test]
fn a_setup_failure_closes_the_build_attempt() {
    let c = cfg();
    let (mut mem, mut store) = (Mem::default(), Store::default());
    store.stage(1);
    let mut s = failsafe_loader::state::begin_start(&mut mem, &c, &on(1), &trusted());
    let b = s.build.unwrap();
    assert_eq!(s.durable.seq(), 1, "durable before setup");
    assert!(s.durable.build_shutdown(&b).unwrap());
    drop(s);
    assert_eq!(driver_of(&mem).attempt.unwrap().phase, Phase::Clean);
    boot(&mut mem, &mut store, &c, &on(1), Then::Clean);
    assert_eq!(driver_of(&mem).unclean, 0);
    // The second half after a successful setup: content as always.
    let mut s = failsafe_loader::state::begin_start(&mut mem, &c, &on(1), &trusted());
    failsafe_loader::state::finish_start(&mut s, &mut store, &c, &on(1), &trusted());
    assert_eq!(s.active.as_ref().map(|(v, _)| v.version), Some(1));
}

/// Content pushed live onto a start without content: an unclean end is the content's.
#[test]
fn a_crash_after_a_live_push_onto_no_content_is_the_contents() {
    let (c, e) = (cfg(), on(1));
    let (mut mem, mut store) = (Mem::default(), Store::default());
    let s = start(&mut mem, &mut store, &c, &e);
    assert_eq!(s.choice.reason, Reason::NoContentStaged);
    drop(s);
    store.stage(1);
    let (_, mut d) = Durable::open(&mut mem);
    d.live_activate(None, &mut store, 1, &c, &e, &trusted())
        .unwrap();
    drop(d);
    boot(&mut mem, &mut store, &c, &e, Then::Clean);
    assert_eq!(state_of(&mem).attempts(1), 1);
    assert_eq!(driver_of(&mem).unclean, 0);
}

/// `recover wake`: fresh tries for the dormant build; refused (None) when not dormant.
#[test]
fn wake_gives_the_dormant_build_fresh_tries() {
    let c = cfg();
    let (mut mem, mut store) = (Mem::default(), Store::default());
    for _ in 0..3 {
        boot(&mut mem, &mut store, &c, &on(1), Then::Crash);
    }
    assert!(failsafe_loader::state::machine::wake(&state_of(&mem)).is_none());
    boot(&mut mem, &mut store, &c, &on(1), Then::Crash);
    let woken = failsafe_loader::state::machine::wake(&state_of(&mem)).unwrap();
    put_state(&mut mem, &woken);
    assert_eq!(
        boot(&mut mem, &mut store, &c, &on(1), Then::Crash).1,
        Reason::NoContentStaged
    );
    assert_eq!(driver_of(&mem).unclean, 0);
    // `reset` is content history only: it keeps the build's count and dormancy.
    let r = reset(&state_of(&mem));
    assert_eq!(r.driver, state_of(&mem).driver);
}

/// A rebuilt record does not know the build's history: whichever build starts next takes
/// the entry with one try left, as every stored version gets.
#[test]
fn a_rebuilt_record_puts_the_build_on_probation() {
    let c = cfg();
    let (mut mem, mut store) = (Mem::default(), Store::default());
    put_state(&mut mem, &rebuild(&[], &c, false));
    boot(&mut mem, &mut store, &c, &on(7), Then::Crash);
    let d = driver_of(&mem);
    assert_eq!((d.build, d.adopt, d.unclean), (build(7), false, 2));
    assert_eq!(
        boot(&mut mem, &mut store, &c, &on(7), Then::Crash).1,
        Reason::DriverDormant
    );
}

/// Layout 3 writes the build at fixed offsets; a layout-2 slot (no build bytes) still
/// reads, without a driver entry, and its first start takes the build fresh.
#[test]
fn record_layout_3_and_layout_2_records_still_read() {
    let st = State {
        boot: 9,
        driver: Some(failsafe_loader::state::DriverTrack {
            build: build(3),
            adopt: false,
            unclean: 2,
            attempt: Some(failsafe_loader::state::BuildAttempt {
                phase: Phase::InProgress,
                boot: 9,
            }),
            dormant: Some(8),
        }),
        ..State::default()
    };
    let b = encode_slot(&st, 5);
    assert_eq!(&b[4..6], &3u16.to_le_bytes(), "layout 3");
    assert_eq!(&b[1848..1856], &build(3).version.to_le_bytes());
    assert_eq!(&b[1856..1888], &[3u8; 32]);
    assert_eq!(
        &b[1888..1891],
        &[0b011, 1, 2],
        "present + dormant, in-progress, 2"
    );
    assert_eq!(&b[1896..1904], &9u64.to_le_bytes());
    assert_eq!(&b[1904..1912], &8u64.to_le_bytes());
    assert_eq!(
        failsafe_loader::state::record::decode_slot(&b),
        Some((st, 5))
    );
    // Unknown flag bits are refused.
    let mut bad = b;
    bad[1888] = 0x09;
    let sum = sha2_of(&bad[..2016]);
    bad[2016..].copy_from_slice(&sum);
    assert_eq!(failsafe_loader::state::record::decode_slot(&bad), None);
    // A layout-2 slot: the same bytes a layout-2 writer wrote (zero after the floor).
    let old = State {
        boot: 4,
        lkg: Some(Ver {
            version: 2,
            digest: [7; 32],
        }),
        ..State::default()
    };
    let mut b2 = encode_slot(&old, 3);
    b2[4..6].copy_from_slice(&2u16.to_le_bytes());
    let sum = sha2_of(&b2[..2016]);
    b2[2016..].copy_from_slice(&sum);
    assert_eq!(
        failsafe_loader::state::record::decode_slot(&b2),
        Some((old, 3))
    );
    let mut mem = Mem {
        rec: Some([b2.to_vec(), vec![0; SLOT_LEN]].concat()),
        ..Mem::default()
    };
    let mut store = Store::default();
    store.stage(2);
    boot(&mut mem, &mut store, &cfg(), &on(4), Then::Crash);
    let d = driver_of(&mem);
    assert_eq!((d.build, d.unclean, d.dormant), (build(4), 0, None));
}

fn sha2_of(b: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(b).into()
}
