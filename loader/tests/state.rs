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
    clean_shutdown, healthy, reset, set_force_safe, unquarantine,
};
use failsafe_loader::state::record::{RECORD_LEN, SLOT_LEN, decode_record, encode_slot};
use failsafe_loader::state::{
    Config, ContentStore, Env, IoError, Loaded, Mode, Phase, QuarantineReason, Reason, State,
    StateMedium, start,
};
use failsafe_loader::{Action, EventType, Op, encode};

#[derive(Default)]
struct Mem {
    rec: Option<Vec<u8>>,
    fail_writes: bool,
    fail_reads: bool,
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
        self.files.insert(version, encode(&c).unwrap());
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
        self.files.insert(version, encode(&c).unwrap());
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

/// One boot: returns (mode, reason, active version), then ends as `then` says.
fn boot(
    mem: &mut Mem,
    store: &mut Store,
    cfg: &Config,
    env: &Env,
    then: Then,
) -> (Mode, Reason, Option<u64>) {
    let mut s = start(mem, store, cfg, env);
    let active = s.active.as_ref().map(|(v, _)| v.version);
    match then {
        Then::Crash => {}
        Then::Healthy => {
            s.durable.apply(healthy).unwrap();
        }
        Then::Clean => {
            s.durable.apply(clean_shutdown).unwrap();
        }
    }
    (s.choice.mode, s.choice.reason, active)
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
fn a_full_count_table_never_forgets_an_unclean_count() {
    // Nine versions, each tried once and crashed: the ninth needs a count slot while all
    // eight hold an unclean start. The oldest is quarantined rather than forgotten (a
    // forgotten count would give it fresh attempts if it were ever chosen again).
    let (mut mem, mut store) = (Mem::default(), Store::default());
    for v in 1..=9 {
        store.stage(v);
        assert_eq!(
            boot(&mut mem, &mut store, &cfg(), &env(), Then::Crash).2,
            Some(v)
        );
    }
    let s = state_of(&mem);
    let q = s.quarantined(1).expect("v1 quarantined, not forgotten");
    assert_eq!((q.reason, q.detail), (QuarantineReason::CrashLoop, 1));
    assert!(s.tracks.iter().flatten().any(|t| t.version == 9));
    for v in 2..=8 {
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
