//! Arbitrary sequences of boot events driven through the real start sequence over an
//! in-memory medium and store, checking the boot-counter invariants after every boot.
#![no_main]

use std::collections::BTreeMap;

use arbitrary::Arbitrary;
use failsafe_loader::state::machine::{clean_shutdown, healthy, set_force_safe, unquarantine};
use failsafe_loader::state::record::{Loaded, RECORD_LEN, SLOT_LEN, decode_record};
use failsafe_loader::state::{Config, ContentStore, Env, IoError, StateMedium, start};
use failsafe_loader::{Action, Content, Criterion, EventType, Op, Rule, Values, encode};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Step {
    StageGood,
    StageBad,
    Crash,
    Healthy,
    Clean,
    /// A write torn after this many bytes (mod the slot size).
    TornWrite(u16),
    Unreadable(bool),
    WindowsSafeMode,
    ForceSafe(bool),
    Unquarantine(u8),
}

struct Mem {
    rec: Option<Vec<u8>>,
    tear_at: Option<usize>,
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
        if n < SLOT_LEN { Err(IoError { code: -1 }) } else { Ok(()) }
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
        *buf = self.files.get(&version).cloned().ok_or(IoError { code: 2 })?;
        Ok(())
    }
}

fn content(version: u64, bad: bool) -> Vec<u8> {
    let field = if bad { 10 } else { 9 }; // file-set-info has 10 fields
    let c = Content {
        version,
        rules: vec![Rule {
            id: 1,
            event: EventType::FileSetInfo,
            action: Action::Block,
            criteria: vec![Criterion { field, op: Op::IsTrue, negate: false, values: Values::None }],
            exceptions: vec![],
        }],
    };
    encode(&c).expect("encodable")
}

fuzz_target!(|steps: Vec<Step>| {
    let cfg = Config::default();
    let threshold = u64::from(cfg.threshold());
    let mut mem = Mem { rec: None, tear_at: None };
    let mut store = Store::default();
    let mut newest = 0u64;
    let mut unclean: BTreeMap<u64, u64> = BTreeMap::new();
    let mut lkg_seen = 0u64;
    let mut force = false;
    for step in steps.into_iter().take(200) {
        let before = match mem.rec.as_deref().map(decode_record) {
            Some(Loaded::Ok(s)) => Some(s.state),
            _ => None,
        };
        let mut env = Env::default();
        let mut then = None;
        match step {
            Step::StageGood | Step::StageBad => {
                newest += 1;
                store.files.insert(newest, content(newest, matches!(step, Step::StageBad)));
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
                    rec[..SLOT_LEN].copy_from_slice(&failsafe_loader::state::record::encode_slot(&set_force_safe(&s, on), seq + 1));
                    rec[SLOT_LEN..].fill(0);
                }
                continue;
            }
            Step::Unquarantine(v) => {
                if let Some(n) = before.and_then(|s| unquarantine(&s, u64::from(v))) {
                    let rec = mem.rec.get_or_insert_with(|| vec![0; RECORD_LEN]);
                    rec[..SLOT_LEN].copy_from_slice(&failsafe_loader::state::record::encode_slot(&n, u64::MAX / 2));
                    rec[SLOT_LEN..].fill(0);
                    unclean.remove(&u64::from(v));
                }
                continue;
            }
            Step::TornWrite(n) => mem.tear_at = Some(usize::from(n) % SLOT_LEN),
            Step::Unreadable(on) => store.unreadable = on,
            Step::WindowsSafeMode => env.windows_safe_mode = true,
            Step::Crash => {}
            Step::Healthy => then = Some(true),
            Step::Clean => then = Some(false),
        }
        let mut s = start(&mut mem, &mut store, &cfg, &env);
        let active = s.active.as_ref().map(|(v, _)| v.version);
        if let Some(v) = active {
            assert!(before.is_none_or(|b| b.quarantined(v).is_none()), "quarantined v{v} activated");
            let c = unclean.entry(v).or_insert(0);
            match then {
                Some(true) => {
                    let _ = s.durable.apply(healthy);
                    *c = 0;
                }
                Some(false) => {
                    let _ = s.durable.apply(clean_shutdown);
                }
                None => *c += 1,
            }
            assert!(*c <= threshold, "v{v}: {c} consecutive unclean starts");
        }
        if force || env.windows_safe_mode {
            assert_eq!(active, None, "safe mode activated content");
        }
        mem.tear_at = None;
        if let Some(Loaded::Ok(x)) = mem.rec.as_deref().map(decode_record) {
            let lkg = x.state.lkg.map_or(0, |l| l.version);
            assert!(lkg >= lkg_seen, "last-known-good went backwards");
            lkg_seen = lkg;
        }
    }
});
