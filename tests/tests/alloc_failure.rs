//! Allocation failure: with an allocator that fails the Nth allocation, validation,
//! compilation and the whole start sequence return errors (never abort), for every N up to
//! the number of allocations a realistic file needs; and evaluation allocates nothing.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use failsafe_loader::state::record::{RECORD_LEN, SLOT_LEN};
use failsafe_loader::state::start::start_with_trust;
use failsafe_loader::state::{Config, ContentStore, Env, IoError, Reason, StateMedium};
use failsafe_loader::text::split_path;
use failsafe_loader::trust::{CONTEXT, KeyKind, Trust, key_id};
use failsafe_loader::{ErrorKind, Event, EventType, Input, RuleSet, validate};

thread_local! {
    /// Allocations left before the armed failure (None: never fail).
    static FAIL_IN: Cell<Option<usize>> = const { Cell::new(None) };
    static COUNT: Cell<usize> = const { Cell::new(0) };
}

struct Failing;

// SAFETY: forwards to the system allocator or returns null, as GlobalAlloc allows.
unsafe impl GlobalAlloc for Failing {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let fail = FAIL_IN
            .try_with(|f| match f.get() {
                Some(0) => true,
                Some(n) => {
                    f.set(Some(n - 1));
                    false
                }
                None => false,
            })
            .unwrap_or(false);
        let _ = COUNT.try_with(|c| c.set(c.get() + 1));
        if fail {
            std::ptr::null_mut()
        } else {
            // SAFETY: same layout contract as ours.
            unsafe { System.alloc(layout) }
        }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: ptr came from System.alloc with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static A: Failing = Failing;

/// Runs `f` counting this thread's allocations, failing the `fail_at`-th (0-based).
fn with_failure<R>(fail_at: Option<usize>, f: impl FnOnce() -> R) -> (R, usize) {
    COUNT.with(|c| c.set(0));
    FAIL_IN.with(|x| x.set(fail_at));
    let r = f();
    FAIL_IN.with(|x| x.set(None));
    (r, COUNT.with(Cell::get))
}

const SAMPLE: &[u8] = include_bytes!("../golden/sample-v1.fsc");
const EVERY_OP: &[u8] = include_bytes!("../golden/every-operator.fsc");

#[test]
fn validation_and_compilation_fail_cleanly_at_every_allocation() {
    for file in [SAMPLE, EVERY_OP] {
        let (ok, needed) = with_failure(None, || validate(file).is_ok());
        assert!(ok);
        assert!(
            needed > 20,
            "a realistic file needs many allocations, counted {needed}"
        );
        eprintln!("validate: failed each of {needed} allocations in turn");
        for n in 0..needed {
            let (r, _) = with_failure(Some(n), || validate(file));
            let e = r.expect_err("an allocation failed, so validation must fail");
            assert_eq!(e.kind, ErrorKind::OutOfMemory, "allocation #{n}: {e}");
        }
        let v = validate(file).unwrap();
        let (ok, needed) = with_failure(None, || RuleSet::compile(&v).is_ok());
        assert!(ok && needed > 10, "compile needs {needed} allocations");
        eprintln!("compile: failed each of {needed} allocations in turn");
        for n in 0..needed {
            let (r, _) = with_failure(Some(n), || RuleSet::compile(&v));
            assert!(r.is_err(), "allocation #{n}: compile must fail");
        }
    }
}

/// The record in a fixed array: the medium itself must not allocate.
struct Mem {
    rec: [u8; RECORD_LEN],
    present: bool,
}

impl Mem {
    fn new() -> Self {
        Mem {
            rec: [0; RECORD_LEN],
            present: false,
        }
    }
}

impl StateMedium for &mut Mem {
    fn read(&mut self, buf: &mut [u8; RECORD_LEN]) -> Result<bool, IoError> {
        buf.copy_from_slice(&self.rec);
        Ok(self.present)
    }
    fn write_slot(&mut self, slot: usize, bytes: &[u8; SLOT_LEN]) -> Result<(), IoError> {
        self.rec[slot * SLOT_LEN..(slot + 1) * SLOT_LEN].copy_from_slice(bytes);
        self.present = true;
        Ok(())
    }
}

/// The golden sample signed with a key generated for this run, and the trust in that key.
fn signed_sample() -> &'static (Vec<u8>, Trust) {
    static S: std::sync::OnceLock<(Vec<u8>, Trust)> = std::sync::OnceLock::new();
    S.get_or_init(|| {
        let kp = ed25519_compact::KeyPair::generate();
        let id = key_id(&kp.pk);
        let mut bytes = failsafe_loader::format::prepare_signed(SAMPLE, id).unwrap();
        let sig = kp.sk.sign([CONTEXT, &bytes[..80]].concat(), None);
        bytes.extend_from_slice(&sig[..]);
        let mut trust = Trust::EMPTY;
        trust.add(*kp.pk, KeyKind::Release).unwrap();
        (bytes, trust)
    })
}

fn start<M: StateMedium>(
    m: M,
    store: &mut Store,
    cfg: &Config,
    env: &Env,
) -> failsafe_loader::state::Started<M> {
    start_with_trust(m, store, cfg, env, &signed_sample().1)
}

/// A store whose own allocations are fallible too (as the driver's must be).
struct Store;
impl ContentStore for Store {
    fn versions(&mut self, out: &mut Vec<u64>) -> Result<(), IoError> {
        out.try_reserve(1).map_err(|_| IoError { code: 12 })?;
        out.push(1);
        Ok(())
    }
    fn read(&mut self, _: u64, _: usize, buf: &mut Vec<u8>) -> Result<(), IoError> {
        let signed = &signed_sample().0;
        buf.clear();
        buf.try_reserve(signed.len())
            .map_err(|_| IoError { code: 12 })?;
        buf.extend_from_slice(signed);
        Ok(())
    }
}

#[test]
fn the_start_sequence_survives_failure_at_every_allocation_and_never_quarantines_for_it() {
    let cfg = Config::default();
    let env = Env::default();
    let _ = signed_sample(); // signed before any allocation is counted
    let (active, needed) = with_failure(None, || {
        let mut m = Mem::new();
        start(&mut m, &mut Store, &cfg, &env)
            .active
            .map(|(v, _)| v.version)
    });
    assert_eq!(active, Some(1));
    eprintln!("start: failed each of {needed} allocations in turn");
    for n in 0..needed {
        let mut m = Mem::new();
        let ((active, reason, quarantined), _) = with_failure(Some(n), || {
            let s = start(&mut m, &mut Store, &cfg, &env);
            let q = s.durable.state().quarantine.iter().flatten().count();
            (s.active.map(|(v, _)| v.version), s.choice.reason, q)
        });
        assert_eq!(
            quarantined, 0,
            "allocation #{n}: out of memory must not quarantine content"
        );
        if active.is_none() {
            assert!(
                matches!(
                    reason,
                    Reason::NothingUsable
                        | Reason::NewerUnreadable
                        | Reason::OutOfMemory
                        | Reason::StoreUnreadable
                ),
                "allocation #{n}: {reason:?}"
            );
        }
    }
}

#[test]
fn evaluation_allocates_nothing() {
    let rs = RuleSet::load(SAMPLE).unwrap();
    let paths = [
        "\\Device\\HarddiskVolume3\\Users\\bob\\Documents\\q3.xlsx.locky",
        "\\Device\\HarddiskVolume3\\Windows\\System32\\drivers\\etc\\hosts",
        "\\Device\\HarddiskVolume3\\Users\\bob\\AppData\\Local\\Temp\\setup.exe",
        "\\Device\\HarddiskVolume3\\Windows\\Temp\\lsass_01.dmp",
        "",
    ];
    let owned: Vec<Vec<u16>> = paths.iter().map(|p| p.encode_utf16().collect()).collect();
    let proc_: Vec<u16> = "\\Device\\HarddiskVolume3\\Temp\\x.exe"
        .encode_utf16()
        .collect();
    let mut decided = 0;
    let ((), allocations) = with_failure(None, || {
        for p in &owned {
            let (parent, name, ext) = split_path(p);
            let inputs = [
                Input::Str(p),
                Input::Str(name),
                Input::Str(ext),
                Input::Str(parent),
                Input::Str(&proc_),
                Input::Int(4),
                Input::Int(0x12_0116),
                Input::Int(2),
                Input::Int(0),
                Input::Flag(false),
                Input::Flag(false),
            ];
            for kind in EventType::ALL {
                if rs.evaluate(&Event::new(kind, &inputs)).is_some() {
                    decided += 1;
                }
            }
        }
    });
    assert_eq!(allocations, 0, "evaluate allocated");
    assert!(
        decided >= 3,
        "the events were meant to match rules: {decided}"
    );
}
