//! Panic-freedom proof for `failsafe-loader`.
//!
//! This `no_std` staticlib exports every entry point that runs on untrusted input or at
//! boot. Its panic handler calls `failsafe_reachable_panic`, a symbol defined nowhere. After
//! a release build with LTO, the archive references that symbol if and only if some path
//! from an exported function can reach a panic (an index out of bounds, an overflow check,
//! an `unwrap`, an infallible allocation that fails, ...). `proof/check.sh` builds it for
//! the host, `x86_64-pc-windows-msvc` and `aarch64-pc-windows-msvc` and fails if
//! `llvm-nm -u` lists the symbol. The inputs come in as arguments (slices, function
//! pointers), so the optimizer can assume nothing about them.
#![no_std]

extern crate alloc;

use alloc::vec::Vec;
use core::alloc::{GlobalAlloc, Layout};

use failsafe_loader::control::{self, AuditEvent, EventRing, Status};
use failsafe_loader::state::machine::{
    self, Activation, Begin, Config, Env, HealthEvidence, Prior,
};
use failsafe_loader::state::record::{self, RECORD_LEN, SLOT_LEN, State};
use failsafe_loader::state::start::start_with_trust;
use failsafe_loader::state::{ContentStore, IoError, StateMedium, start};
use failsafe_loader::trust::{KeyKind, Trust, verify};
use failsafe_loader::{Event, Input, RuleSet, validate};

unsafe extern "C" {
    /// Defined nowhere: a reference to it in the built archive is a reachable panic.
    fn failsafe_reachable_panic() -> !;
    fn failsafe_alloc(size: usize, align: usize) -> *mut u8;
    fn failsafe_free(ptr: *mut u8, size: usize, align: usize);
}

#[panic_handler]
fn on_panic(_: &core::panic::PanicInfo<'_>) -> ! {
    // SAFETY: never defined; the proof is that no call to it survives optimization.
    unsafe { failsafe_reachable_panic() }
}

/// The kernel's allocator stands behind these two symbols (the driver's own pool allocator,
/// `driver/src/kernel/pool.rs`, which returns null on failure); the proof needs only that
/// they may fail.
struct ExternAlloc;

// SAFETY: forwards to an allocator that honours the GlobalAlloc contract or returns null.
unsafe impl GlobalAlloc for ExternAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: size and alignment come from a valid Layout.
        unsafe { failsafe_alloc(layout.size(), layout.align()) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: ptr was returned by alloc with this layout (GlobalAlloc contract).
        unsafe { failsafe_free(ptr, layout.size(), layout.align()) }
    }
}

#[global_allocator]
static ALLOC: ExternAlloc = ExternAlloc;

/// Content validation: the error ordinal, or `u32::MAX` when valid.
#[unsafe(no_mangle)]
pub fn fs_validate(bytes: &[u8]) -> u32 {
    match validate(bytes) {
        Ok(v) => u32::try_from(v.content.rules.len()).unwrap_or(0),
        Err(e) => e.ordinal(),
    }
}

/// Validation and rule-set compilation (what activation does).
#[unsafe(no_mangle)]
pub fn fs_load(bytes: &[u8], out: &mut Option<RuleSet>) -> bool {
    *out = RuleSet::load(bytes).ok();
    out.is_some()
}

/// Signature verification with keys from the caller (the driver's registry blob), then the
/// kernel's load of verified content: the error ordinal, or `u32::MAX` when it loads.
#[unsafe(no_mangle)]
pub fn fs_verify(bytes: &[u8], keys: &[u8], test_signing: bool, out: &mut Option<RuleSet>) -> u32 {
    let mut trust = Trust::builtin();
    trust.set_test_signing(test_signing);
    if trust.add_keys(keys, KeyKind::Test).is_err() {
        return u32::MAX - 1;
    }
    if let Err(e) = verify(bytes, &trust) {
        return e.ordinal();
    }
    match RuleSet::load_trusted(bytes, &trust) {
        Ok(rs) => {
            *out = Some(rs);
            u32::MAX
        }
        Err(e) => e.ordinal(),
    }
}

/// Evaluation of an event with any number of inputs of any types.
#[unsafe(no_mangle)]
pub fn fs_evaluate(rs: &RuleSet, set_info: bool, inputs: &[Input<'_>]) -> u64 {
    let kind = if set_info {
        failsafe_loader::EventType::FileSetInfo
    } else {
        failsafe_loader::EventType::FileCreate
    };
    rs.evaluate(&Event::new(kind, inputs))
        .map_or(u64::MAX, |m| u64::from(m.rule_id))
}

/// State record decode (both slots).
#[unsafe(no_mangle)]
pub fn fs_decode_record(bytes: &[u8]) -> u64 {
    match record::decode_record(bytes) {
        record::Loaded::Ok(s) => s.state.boot,
        record::Loaded::Lost => 1,
        record::Loaded::Fresh => 2,
    }
}

/// The start decision as pure functions: begin, then choose.
#[unsafe(no_mangle)]
pub fn fs_decide(
    prior: &Prior,
    store: &[u64],
    excluded: &[u64],
    cfg: &Config,
    env: &Env,
    out: &mut State,
) -> u64 {
    match machine::begin(*prior, cfg, env) {
        Begin::Safe { write, .. } => {
            *out = write.unwrap_or_default();
            0
        }
        Begin::Choose(mut s) => {
            let c = machine::choose(&mut s, store, excluded, cfg, env);
            *out = s;
            c.target.unwrap_or(0)
        }
    }
}

/// The post-start events (health with its evidence, clean shutdown), the operator's
/// commands (rebuild and wake among them) and the start report's encoding.
#[allow(clippy::too_many_arguments)]
#[unsafe(no_mangle)]
pub fn fs_events(
    s: &State,
    which: u8,
    version: u64,
    ver: &record::Ver,
    ordinal: u32,
    act: &Activation,
    evidence: &HealthEvidence,
    cfg: &Config,
    present: &[record::Ver],
    report: &[u8],
    out: &mut State,
) -> bool {
    let mut n = *s;
    let r = match which {
        0 => machine::healthy(s, act, evidence, cfg),
        1 => machine::clean_shutdown(s, act),
        2 => Some(machine::set_force_safe(s, version != 0)),
        3 => Some(machine::reset(s)),
        4 => machine::unquarantine(s, version),
        5 => {
            let _ = machine::record_attempt(&mut n, *ver);
            Some(n)
        }
        6 => Some(machine::rebuild(present, cfg, version != 0)),
        7 => record::decode_report(report).map(|r| {
            n.boot = r.boot;
            let bytes = record::encode_report(&r);
            n.floor = u64::from(bytes.first().copied().unwrap_or(0));
            n
        }),
        8 => machine::wake(s),
        _ => {
            machine::reject_invalid(&mut n, *ver, ordinal);
            Some(n)
        }
    };
    match r {
        Some(x) => {
            *out = x;
            true
        }
        None => false,
    }
}

/// The control channel: a request from user mode decoded, and each response the driver
/// writes into the caller's buffer (the audit queue's push and drain among them).
#[unsafe(no_mangle)]
pub fn fs_control(
    request: &[u8],
    out: &mut [u8],
    status: &Status,
    ring: &mut EventRing,
    event: &AuditEvent,
    path: &[u16],
    process: &[u16],
) -> usize {
    let n = match control::decode_request(request) {
        Err(e) => control::encode_refused(out, 0, e.code(), &e),
        Ok(control::Request::Query) => control::encode_status(out, status),
        Ok(control::Request::Activate { version }) => {
            control::encode_changed(out, control::kind::ACTIVATE, version, status.boot)
        }
        Ok(control::Request::Rollback) => {
            let _ = ring.push(event, path, process);
            control::encode_changed(out, control::kind::ROLLBACK, status.lkg, status.boot)
        }
        Ok(control::Request::ReadEvents { cursor }) => ring.read_into(out, cursor),
        Ok(req) => {
            // An operator's change arriving on the read-only IOCTL is refused.
            let code = u16::from(!control::admitted(control::IOCTL_CONTROL_READ, &req));
            control::encode_refused(out, req.kind(), code, &"")
        }
    };
    n.unwrap_or(0)
}

/// The operator's changes as the driver applies them for the console (control request,
/// record lock held): the start's record, then the change a decoded request asks for.
#[unsafe(no_mangle)]
pub fn fs_operator(medium: Medium, mut store: Store, cfg: &Config, env: &Env, request: &[u8]) -> u16 {
    let mut s = start(medium, &mut store, cfg, env);
    let Some((change, confirmed)) = control::decode_request(request)
        .ok()
        .and_then(|r| control::Change::of(&r))
    else {
        return 0;
    };
    match control::operator::apply(&mut s.durable, change, confirmed) {
        Ok(()) => 1,
        Err(e) => e.code(),
    }
}

/// Slot encoding.
#[unsafe(no_mangle)]
pub fn fs_encode_slot(s: &State, seq: u64, out: &mut [u8; SLOT_LEN]) {
    *out = record::encode_slot(s, seq);
}

/// Media whose behaviour is unknown to the optimizer.
pub struct Medium {
    read: fn(&mut [u8; RECORD_LEN]) -> Result<bool, IoError>,
    write: fn(usize, &[u8; SLOT_LEN]) -> Result<(), IoError>,
}

impl StateMedium for Medium {
    fn read(&mut self, buf: &mut [u8; RECORD_LEN]) -> Result<bool, IoError> {
        (self.read)(buf)
    }
    fn write_slot(&mut self, slot: usize, bytes: &[u8; SLOT_LEN]) -> Result<(), IoError> {
        (self.write)(slot, bytes)
    }
}

/// A content store whose behaviour is unknown to the optimizer.
pub struct Store {
    versions: fn(&mut Vec<u64>) -> Result<(), IoError>,
    read: fn(u64, usize, &mut Vec<u8>) -> Result<(), IoError>,
}

impl ContentStore for Store {
    fn versions(&mut self, out: &mut Vec<u64>) -> Result<(), IoError> {
        (self.versions)(out)
    }
    fn read(&mut self, version: u64, limit: usize, buf: &mut Vec<u8>) -> Result<(), IoError> {
        (self.read)(version, limit, buf)
    }
}

/// The whole start sequence, its start report, then the health check and clean shutdown,
/// as `DriverEntry`, the health work item and the shutdown notification run them: the
/// content's, or with no content the driver build's (issue 20).
#[unsafe(no_mangle)]
pub fn fs_start(
    medium: Medium,
    mut store: Store,
    cfg: &Config,
    env: &Env,
    evidence: &HealthEvidence,
    report: &mut [u8; record::REPORT_LEN],
) -> u64 {
    let mut s = start(medium, &mut store, cfg, env);
    *report = record::encode_report(&s.report());
    if let Some(act) = s.activation {
        let _ = s.durable.health(&act, evidence, cfg);
        let _ = s.durable.clean_shutdown(&act);
    } else if let Some(b) = s.build {
        let _ = s.durable.build_health(&b, evidence, cfg);
        let _ = s.durable.build_shutdown(&b);
    }
    s.active.map_or(0, |(v, _)| v.version)
}

/// The start sequence with a trust list built as the driver builds it (compiled-in release
/// keys, test keys from the registry, the test-signing switch).
#[unsafe(no_mangle)]
pub fn fs_start_trusted(
    medium: Medium,
    mut store: Store,
    cfg: &Config,
    env: &Env,
    keys: &[u8],
    test_signing: bool,
    report: &mut [u8; record::REPORT_LEN],
) -> u64 {
    let mut trust = Trust::builtin();
    trust.set_test_signing(test_signing);
    let _ = trust.add_keys(keys, KeyKind::Test);
    let s = start_with_trust(medium, &mut store, cfg, env, &trust);
    *report = record::encode_report(&s.report());
    s.active.map_or(0, |(v, _)| v.version)
}

/// Live activation and rollback on the running system (issue 11), as the driver's control
/// device runs them: the start's record, then a live activation of `version` and a
/// rollback, each with the running activation.
#[unsafe(no_mangle)]
pub fn fs_live(
    medium: Medium,
    mut store: Store,
    cfg: &Config,
    env: &Env,
    keys: &[u8],
    version: u64,
    active: &Option<Activation>,
) -> u64 {
    let mut trust = Trust::builtin();
    let _ = trust.add_keys(keys, KeyKind::Test);
    let mut s = start_with_trust(medium, &mut store, cfg, env, &trust);
    let mut now = active.or(s.activation);
    let mut code = 0u64;
    match s
        .durable
        .live_activate(now.as_ref(), &mut store, version, cfg, env, &trust)
    {
        Ok((a, _)) => now = Some(a),
        Err(e) => code = u64::from(e.code()),
    }
    match s.durable.rollback(now.as_ref(), &mut store, cfg, env, &trust) {
        Ok(r) => code = code.wrapping_add(r.map_or(0, |(a, _)| a.ver.version)),
        Err(e) => code = code.wrapping_add(u64::from(e.code())),
    }
    code
}
