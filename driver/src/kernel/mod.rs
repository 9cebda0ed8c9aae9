//! The kernel layer: `DriverEntry`, its teardown, and the modules they use. Runs on
//! Windows; checked on every CI run by the kernel check (`cargo make kcheck`:
//! type-checked and clippy-clean against bindings generated from a header set, and linked
//! into a `.sys` whose PE is inspected) — see docs/windows.md for what that proves and
//! what only a Windows run proves.
//!
//! | module | what | IRQL |
//! |---|---|---|
//! | [`ffi`] | every import, constants with their headers | — |
//! | [`globals`] | every global, who writes and reads it | — |
//! | [`nt`] | names, handles, synchronous file I/O | PASSIVE |
//! | [`storedir`] | the store's directory: opened once, reparse and DACL checked, held | PASSIVE |
//! | [`medium`], [`store`] | the state record and the content store over `Zw*`, relative to it | PASSIVE |
//! | [`registry`] | `Parameters`, Safe Mode | PASSIVE |
//! | [`mirror`] | the record's meaning under `Parameters\State` | PASSIVE |
//! | [`etw`] | the ETW provider's registration (`crate::etw` writes the events) | PASSIVE |
//! | [`health`] | health timer, DPC, health check, canary, shutdown, power jobs | DPC at DISPATCH, rest PASSIVE |
//! | [`worker`] | the driver's own system thread: control requests, health, volume names, power | post ≤ DISPATCH; jobs PASSIVE |
//! | [`power`] | the `\Callback\PowerState` callback (Fast Startup) | ≤ DISPATCH; posts |
//! | [`host`] | audit lines, unload, shutdown, process notify | ≤ APC; PASSIVE |
//! | [`dosnames`] | volumes' DOS names (a job of the thread), ADR 0013 | queue ≤ APC; round PASSIVE |
//! | [`pool`] | the global allocator | ≤ APC |

pub mod control;
pub mod dosnames;
pub mod etw;
pub mod ffi;
pub mod globals;
pub mod health;
pub mod host;
pub mod medium;
pub mod mirror;
pub mod nt;
pub mod pool;
pub mod power;
pub mod registry;
pub mod store;
pub mod storedir;
pub mod worker;

// The panic handler and two link-time symbols: wdk-panic and wdk-sys in the shipped build;
// their stand-in crate in the kernel check, which has no WDK. Nothing else of the driver
// differs between the two, so the check lints the release build's item set
// (tests/tests/kcheck_items.rs).
#[cfg(all(not(test), failsafe_kcheck))]
extern crate failsafe_kshim;
#[cfg(all(not(test), not(failsafe_kcheck)))]
extern crate wdk_panic;

use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use failsafe_loader::control::{EventRing, ring};
use failsafe_loader::state::Config;
use failsafe_loader::state::Env;
use failsafe_loader::state::record::encode_report;
use failsafe_loader::state::start::{Started, begin_start, finish_start};
use failsafe_loader::trust::Trust;
use windows_sys::Wdk::Storage::FileSystem::Minifilters::{
    FLT_OPERATION_REGISTRATION, FLT_REGISTRATION, FltRegisterFilter, FltStartFiltering,
};

use crate::active::try_box;
use crate::config::config_from;
use crate::flt::{self, ACTIVE, FILTER, OWN_DIR, Static};
use crate::guard::OwnDir;
use crate::proctable::ProcessTable;
use crate::volumes::VolumeTable;
use ffi::{
    _EVENT_TYPE, DRIVER_OBJECT, KERNEL_MODE, KeInitializeDpc, KeInitializeEvent, KeInitializeTimer,
    NTSTATUS, ObQueryNameString, ObReferenceObjectByHandle, ObfDereferenceObject, PCUNICODE_STRING,
    PsSetCreateProcessNotifyRoutineEx, STATUS_INSUFFICIENT_RESOURCES, STATUS_SUCCESS,
};
use globals::{
    DPC, POWER_DONE, PROCESS_NOTIFY, Running, STATE_LOCK, TIMER, VOLUME_IDLE, WORK_IDLE,
};
use host::{Kernel, process_notify};
use medium::KernelMedium;
use nt::{Wide, debug_assert_passive};
use store::KernelStore;

#[global_allocator]
static GLOBAL_ALLOCATOR: pool::Pool = pool::Pool;

/// Bugcheck code of the drill build: "FSDC", Failsafe Drill Crash.
#[cfg(feature = "drill")]
const DRILL_BUGCHECK: u32 = 0x4653_4443;
/// Bugcheck code of the drill build's fault in its own setup: "FSDS", Failsafe Drill Setup.
#[cfg(feature = "drill")]
const DRILL_SETUP_BUGCHECK: u32 = 0x4653_4453;
/// Process-image table size: 256 sets of 4 (about 530 KiB of paged pool).
const PROCESS_SETS: usize = 256;

static OPERATIONS: Static<[FLT_OPERATION_REGISTRATION; flt::OPERATIONS]> =
    Static(flt::operations::<Kernel>());
static REGISTRATION: Static<FLT_REGISTRATION> =
    Static(flt::registration::<Kernel>(OPERATIONS.0.as_ptr()));

/// The driver's entry point (PASSIVE_LEVEL, System process).
///
/// Order (docs/boot-safety.md, "What is charged"): the configuration is read and the
/// start's first half runs (`begin_start`: the record read, the previous start's unclean
/// end charged, this start's attempt of the build made durable) before any setup of the
/// driver's own, so a fault in that setup is charged to the build. A dormant build returns
/// here, having set nothing up (ADR 0016). Then the driver's own setup — the filter
/// registration (its operation table holds the `IRP_MJ_SHUTDOWN` pre-operation), the
/// driver's thread, the power-state callback, the control device, the process notify
/// routine, the volume table and the callbacks' scratch pool; a failure there closes the build's attempt as clean
/// and charges nothing — then the content decision (`finish_start`: the content's attempt
/// durable before it is parsed), activation, and filtering. A failure to start filtering
/// closes the attempts as not run.
///
/// # Safety
/// Called by the I/O manager with a valid driver object and registry path.
#[unsafe(export_name = "DriverEntry")]
pub unsafe extern "system" fn driver_entry(
    driver: &mut DRIVER_OBJECT,
    registry_path: PCUNICODE_STRING,
) -> NTSTATUS {
    debug_assert_passive!();
    pool::init();
    health::init_clock();
    // SAFETY: static storage, initialized once here before any use; a synchronization event
    // that starts signaled serves as a mutex.
    unsafe { KeInitializeEvent(STATE_LOCK.ptr(), _EVENT_TYPE::SynchronizationEvent, 1) };
    // SAFETY: static storage, initialized once here before any use; a notification event,
    // signaled: no health check in flight.
    unsafe { KeInitializeEvent(WORK_IDLE.ptr(), _EVENT_TYPE::NotificationEvent, 1) };
    // SAFETY: static storage, initialized once here before any use; signaled: no volume
    // volume-name round in flight.
    unsafe { KeInitializeEvent(VOLUME_IDLE.ptr(), _EVENT_TYPE::NotificationEvent, 1) };
    // SAFETY: static storage, initialized once here before any use; signaled: no power job
    // waited for.
    unsafe { KeInitializeEvent(POWER_DONE.ptr(), _EVENT_TYPE::NotificationEvent, 1) };
    // SAFETY: static storage, initialized once.
    unsafe { KeInitializeTimer(TIMER.ptr()) };
    // SAFETY: static storage; health_dpc has the KDEFERRED_ROUTINE signature.
    unsafe { KeInitializeDpc(DPC.ptr(), Some(health::health_dpc), core::ptr::null_mut()) };
    // First, so that every failure below is an event (unregistered on every failed return).
    etw::register();

    let Some(params) = parameters(registry_path) else {
        return refuse("Parameters", STATUS_INSUFFICIENT_RESOURCES);
    };
    let cfg = config_from(&params.values);
    let safe_boot = registry::windows_safe_mode();
    let env = Env {
        windows_safe_mode: safe_boot != 0,
        writes_may_not_persist: registry::write_filter_present(),
        build: crate::build_id::BUILD,
    };
    // A ContentDirectory that is set but unusable: refuse to start (before the decision:
    // nothing is charged) rather than count attempts in a store the operator does not look
    // at. Logged for the debugger; the service's start fails with this status.
    let Some(dir) = params.dir else {
        log_refusal(c"ContentDirectory is set but unusable (type, length or a %variable%)");
        return refuse("ContentDirectory", ffi::STATUS_INVALID_PARAMETER);
    };
    let (Some(medium), Some(mut store)) = (KernelMedium::new(), KernelStore::new()) else {
        return refuse("ContentDirectory", STATUS_INSUFFICIENT_RESOURCES);
    };
    // The store's directory, opened once and held: a reparse point or a DACL that lets
    // others write refuses the start; a loose DACL is replaced (storedir.rs says how).
    let policy = storedir::Policy {
        report_only: params.drill_store_acl_report_only,
    };
    if let Err(status) = storedir::open(&dir, policy) {
        return refuse("ContentDirectory", status);
    }

    // 1. The start's first half: this start's attempt of the build is durable before the
    //    driver's own setup runs (a fault there is the build's).
    let mut started = begin_start(medium, &cfg, &env, &params.trust);
    if started.dormant() {
        // The decision is an event too; then the provider goes with the image.
        start_events(&started, &cfg, safe_boot);
        etw::unregister();
        mirror::write_once(
            &params.service,
            started.durable.state(),
            started.durable.seq(),
        );
        let status = dormant(&params.service, &started);
        // The store's directory is the one thing opened before the decision: closed once
        // the record and the store, which use its handle, are gone.
        drop((started, store));
        storedir::close();
        return status;
    }
    log_build(&started);
    #[cfg(feature = "drill")]
    if params.drill_setup_fault && started.build.is_some() {
        // SAFETY: deliberate: the drill build's fault in its own setup, after the build's
        // attempt is durable and before any content is chosen.
        unsafe { ffi::KeBugCheckEx(DRILL_SETUP_BUGCHECK, 0, 0, 0, 0) };
    }
    #[cfg(not(feature = "drill"))]
    let _ = params.drill_setup_fault;

    // 2. The driver's own setup. Nothing here charges content; a failure ends the start
    //    cleanly (the build's attempt closed, nothing charged).
    if let Err((step, status)) = setup(driver) {
        crate::etw::setup_failed(step, status);
        close_build(&mut started);
        mirror::write_once(
            &params.service,
            started.durable.state(),
            started.durable.seq(),
        );
        // The record and the store go before teardown closes their directory.
        drop((started, store));
        teardown();
        return status;
    }
    // The control channel and its event queue are optional: without them the driver runs
    // and the console reads the record file (control.rs says why a failure here never
    // refuses the start).
    events_init();
    let control = control::create(driver).is_ok();
    if !control {
        log_warning(c"control channel unavailable (the driver runs without it)");
        crate::etw::driver_warning("control channel unavailable");
    }
    if !mirror::open(&params.service) {
        crate::etw::driver_warning("registry mirror (Parameters\\State) unavailable");
    }
    // The process table is optional: without it `process` is empty (criteria on it are
    // then false, as for any missing input).
    let process_table = ProcessTable::try_new(PROCESS_SETS);
    let processes = process_table.is_some();
    if let Some(table) = process_table {
        // SAFETY: once, before the notify routine is registered.
        unsafe { flt::processes_init(table) };
        // SAFETY: process_notify has the PCREATE_PROCESS_NOTIFY_ROUTINE_EX signature; the
        // image is linked with /INTEGRITYCHECK, which this routine requires.
        if unsafe { PsSetCreateProcessNotifyRoutineEx(Some(process_notify), 0) } >= 0 {
            PROCESS_NOTIFY.store(true, Ordering::Release);
        }
    }
    volumes_init();
    flt::scratch_init();
    // Content never blocks inside the driver's own directory. Unresolvable (no directory
    // yet, out of memory): the callbacks then never block the System process's kernel-mode
    // requests, the driver's own among them (`flt::OWN_DIR`).
    if let Some(own) = own_dir().and_then(|d| try_box(d).ok()) {
        let _ = OWN_DIR.publish(own);
    }

    // 3. The content decision: the content's attempt is durable before it is parsed.
    finish_start(&mut started, &mut store, &cfg, &env, &params.trust);
    let _ = registry::write_last_start(&params.service, &encode_report(&started.report()));
    start_events(&started, &cfg, safe_boot);
    let (active_version, armed) = keep_running(started, cfg, store, env, &params.trust);
    health::with_state(|s| s.as_ref().map(mirror::write_locked));
    log_start(safe_boot, active_version);

    #[cfg(feature = "drill")]
    if params.drill_version.is_some() && params.drill_version == active_version {
        // SAFETY: deliberate: the drill build's crash, after the attempt is durable.
        unsafe { ffi::KeBugCheckEx(DRILL_BUGCHECK, active_version.unwrap_or(0), 0, 0, 0) };
    }
    #[cfg(not(feature = "drill"))]
    let _ = params.drill_version;

    // 4. Filtering. If it cannot start, nothing ran: close the attempts as clean.
    // SAFETY: a filter handle registered by setup().
    let status = unsafe { FltStartFiltering(FILTER.load(Ordering::Acquire)) };
    if status < 0 {
        crate::etw::setup_failed("FltStartFiltering", status);
        health::close_clean(crate::running::Close::NotRun);
        teardown();
        return status;
    }
    // The health window: content's, or (no content active) the build's own.
    if armed {
        health::arm(cfg.healthy_after_secs);
    }
    crate::etw::driver_started(cfg!(feature = "drill"), control, processes);
    STATUS_SUCCESS
}

/// A refusal before the driver's own setup ran: the event, then the provider goes (nothing
/// else was set up). PASSIVE_LEVEL.
fn refuse(step: &'static str, status: NTSTATUS) -> NTSTATUS {
    crate::etw::setup_failed(step, status);
    etw::unregister();
    status
}

/// The start decision's events: `StartDecision`; `Quarantine` for each version this
/// start quarantined; `ContentRefused` for each file it refused; `Fallback` when it runs
/// older content than the newest or none for want of usable content. PASSIVE_LEVEL.
#[inline(never)]
fn start_events(started: &Started<KernelMedium>, cfg: &Config, safe_boot: u32) {
    let report = started.report();
    let st = started.durable.state();
    crate::etw::start_decision(
        &report,
        st.attempts(report.version),
        cfg.threshold,
        cfg.force_safe_mode,
        safe_boot,
    );
    for r in &started.rejected {
        crate::etw::content_refused(r);
    }
    if !report.record_not_written {
        for q in st.quarantine.iter().flatten().filter(|q| q.boot == st.boot) {
            crate::etw::quarantine(q);
        }
    }
    if report.mode == failsafe_loader::state::Mode::Fallback
        || matches!(
            report.reason,
            failsafe_loader::state::Reason::NothingUsable
                | failsafe_loader::state::Reason::NewerUncountable
        )
    {
        crate::etw::fallback(
            &report,
            st.lkg.map_or(0, |l| l.version),
            u32::try_from(started.rejected.len()).unwrap_or(u32::MAX),
            u32::try_from(started.unreadable.len()).unwrap_or(u32::MAX),
        );
    }
}

/// A dormant build's start (ADR 0016): the decision is in the record (written by
/// `begin_start`), the start report goes to `LastStart`, one line to the debugger; nothing
/// was set up, so nothing is torn down. A failure status: the I/O manager unloads the
/// image and the service control manager logs the start as failed (Microsoft Learn,
/// "DriverEntry Return Values"). PASSIVE_LEVEL.
#[inline(never)]
fn dormant(service: &Wide, started: &Started<KernelMedium>) -> NTSTATUS {
    let _ = registry::write_last_start(service, &encode_report(&started.report()));
    let d = started.durable.state().driver;
    let (a, b, c) = crate::build_id::BUILD.parts();
    // SAFETY: %I64u takes the u64s, %s a NUL-terminated static string.
    let _ = unsafe {
        ffi::DbgPrintEx(
            ffi::DPFLTR_IHVDRIVER_ID,
            ffi::DPFLTR_WARNING_LEVEL,
            c"failsafeflt: dormant: build %I64u.%I64u.%I64u has had %I64u unclean starts without content (dormant since boot %I64u): %s\n".as_ptr(),
            a,
            b,
            c,
            d.map_or(0, |d| u64::from(d.unclean)),
            d.and_then(|d| d.dormant).unwrap_or(0),
            c"nothing set up; a new build or `failsafectl recover wake --yes` ends it".as_ptr(),
        )
    };
    ffi::STATUS_REQUEST_ABORTED
}

/// One line for the debugger (and the hosted drill's log): the build's attempt is durable.
fn log_build(started: &Started<KernelMedium>) {
    let Some(b) = started.build else {
        return;
    };
    let (x, y, z) = crate::build_id::BUILD.parts();
    // SAFETY: %I64u takes the u64s.
    let _ = unsafe {
        ffi::DbgPrintEx(
            ffi::DPFLTR_IHVDRIVER_ID,
            ffi::DPFLTR_INFO_LEVEL,
            c"failsafeflt: build %I64u.%I64u.%I64u attempt durable (boot %I64u)\n".as_ptr(),
            x,
            y,
            z,
            b.boot,
        )
    };
}

/// A start that ends on a failure of the driver's own setup: its build attempt is closed
/// as clean (it did not crash). PASSIVE_LEVEL.
#[inline(never)]
fn close_build(started: &mut Started<KernelMedium>) {
    if let Some(b) = started.build {
        let _ = started.durable.build_shutdown(&b);
    }
}

/// Installs the volume table (ADR 0013), which is optional: without it paths stay in
/// device form. Before `FltStartFiltering`, after which instance setup fills it. Its own
/// frame, apart from `DriverEntry`'s (the image's stack budget, tests/tests/pe.rs).
#[inline(never)]
fn volumes_init() {
    if let Some(table) = VolumeTable::try_new() {
        // SAFETY: once (DriverEntry), before filtering starts: no instance setup or
        // callback yet.
        unsafe { flt::volumes_init(table) };
    }
}

/// The service's parameters, in pool memory: `DriverEntry`'s frame is on the start's
/// deep call chain (tests/tests/pe.rs budgets it), and the parameters (the trusted keys
/// among them) need not be. PASSIVE_LEVEL.
#[inline(never)]
fn parameters(registry_path: PCUNICODE_STRING) -> Option<alloc::boxed::Box<registry::Parameters>> {
    registry::read_parameters(registry_path).and_then(|p| try_box(p).ok())
}

/// The audit-event queue: allocated once; without memory, a queue that counts every
/// event as dropped. PASSIVE_LEVEL, `DriverEntry`, before filtering starts.
#[inline(never)]
fn events_init() {
    flt::events_init(
        EventRing::with_capacity(ring::DEFAULT_CAPACITY).unwrap_or(EventRing::disabled()),
    );
}

/// Publishes the start's rule set and keeps what the health, shutdown and control events
/// need (`Running`, built here so that `DriverEntry`'s frame, on the start's deep call
/// chain, does not hold it). Returns the version that runs and whether a health window is
/// to be armed (this start's content attempt, or its build attempt, is in progress).
/// Should moving the rule set to pool memory fail, the content never runs: the attempt is
/// closed as clean, and live changes stay allowed (`running::Running::after_start`).
/// PASSIVE_LEVEL.
#[inline(never)]
fn keep_running(
    started: Started<KernelMedium>,
    cfg: Config,
    store: KernelStore,
    env: Env,
    trust: &Trust,
) -> (Option<u64>, bool) {
    let publish = |rules| try_box(rules).is_ok_and(|b| ACTIVE.publish(b).is_ok());
    let (running, version) =
        Running::after_start(started, publish, cfg, store, env, *trust, health::now());
    // The health window is armed for this start's content, or without content for its
    // build (its count of unclean starts without content is cleared by a healthy period).
    let armed = running.activation.is_some() || running.build.is_some();
    health::with_state(|s| *s = Some(running));
    (version, armed)
}

/// One line for the debugger (and the hosted drill's log): what the start read and chose.
fn log_start(safe_boot: u32, active: Option<u64>) {
    // SAFETY: %u takes the u32, %I64u the u64, %s a NUL-terminated static string.
    let _ = unsafe {
        ffi::DbgPrintEx(
            ffi::DPFLTR_IHVDRIVER_ID,
            ffi::DPFLTR_INFO_LEVEL,
            c"failsafeflt: start: InitSafeBootMode=%u, content %s %I64u\n".as_ptr(),
            safe_boot,
            if active.is_some() {
                c"version"
            } else {
                c"none"
            }
            .as_ptr(),
            active.unwrap_or(0),
        )
    };
}

/// Why the driver refused to start, for the debugger.
fn log_refusal(why: &core::ffi::CStr) {
    // SAFETY: %s takes a NUL-terminated string.
    let _ = unsafe {
        ffi::DbgPrintEx(
            ffi::DPFLTR_IHVDRIVER_ID,
            ffi::DPFLTR_WARNING_LEVEL,
            c"failsafeflt: not started: %s\n".as_ptr(),
            why.as_ptr(),
        )
    };
}

/// Something the driver runs without, for the debugger.
fn log_warning(what: &core::ffi::CStr) {
    // SAFETY: %s takes a NUL-terminated string.
    let _ = unsafe {
        ffi::DbgPrintEx(
            ffi::DPFLTR_IHVDRIVER_ID,
            ffi::DPFLTR_WARNING_LEVEL,
            c"failsafeflt: warning: %s\n".as_ptr(),
            what.as_ptr(),
        )
    };
}

/// Filter registration (not started; its operation table includes the `IRP_MJ_SHUTDOWN`
/// pre-operation callback that closes the attempt at shutdown), the driver's thread, and
/// the power-state callback (optional). PASSIVE_LEVEL.
fn setup(driver: &mut DRIVER_OBJECT) -> Result<(), (&'static str, NTSTATUS)> {
    debug_assert_passive!();
    let mut filter = 0isize;
    // SAFETY: windows-sys's DRIVER_OBJECT is a different Rust type for the same C struct
    // (REFERENCES.md): cast at the boundary. REGISTRATION is static and outlives the filter.
    let status = unsafe {
        FltRegisterFilter(
            core::ptr::from_mut(driver).cast(),
            &REGISTRATION.0,
            &mut filter,
        )
    };
    if status < 0 {
        return Err(("FltRegisterFilter", status));
    }
    FILTER.store(filter, Ordering::Release);
    // The health check and control requests run on it: without it, refuse to run.
    worker::start().map_err(|status| ("PsCreateSystemThread", status))?;
    if !power::register() {
        log_warning(c"power-state callback unavailable (a discarded hibernation is charged)");
    }
    Ok(())
}

/// The driver's directory as the Filter Manager names files in it
/// (`\Device\HarddiskVolumeN\…`): the handle `storedir` holds, its file object referenced
/// (`ObReferenceObjectByHandle`, no type check, kernel mode) and named by the object
/// manager (`ObQueryNameString`: an `OBJECT_NAME_INFORMATION`, a `UNICODE_STRING` whose
/// buffer follows it; ntifs.h, Microsoft Learn "ObQueryNameString function (ntifs.h)").
/// `ZwQueryObject` with class 1 would be shorter, but the WDK's headers do not declare
/// that class (MinGW's do): the kernel check against the real headers caught it.
/// PASSIVE_LEVEL.
fn own_dir() -> Option<OwnDir> {
    debug_assert_passive!();
    let h = storedir::handle();
    if h.is_null() {
        return None;
    }
    let mut object: *mut core::ffi::c_void = core::ptr::null_mut();
    // SAFETY: a live kernel handle; kernel mode with no type check is allowed for kernel
    // handles; `object` is a live local; no handle information requested.
    let status = unsafe {
        ObReferenceObjectByHandle(
            h,
            0,
            core::ptr::null_mut(),
            KERNEL_MODE,
            &mut object,
            core::ptr::null_mut(),
        )
    };
    if status < 0 || object.is_null() {
        return None;
    }
    let name = object_name(object);
    // SAFETY: the reference taken above, released once.
    let _ = unsafe { ObfDereferenceObject(object) };
    name
}

/// The object manager's name of a referenced object: a 1 KiB buffer first, then once more
/// with the size the first call reported (`ReturnLength` on `STATUS_INFO_LENGTH_MISMATCH`,
/// Microsoft Learn "ObQueryNameString"). PASSIVE_LEVEL.
fn object_name(object: *mut core::ffi::c_void) -> Option<OwnDir> {
    let mut bytes = 1024u32;
    for _ in 0..2 {
        match object_name_sized(object, bytes) {
            Ok(name) => return name,
            Err(needed) if needed > bytes && needed <= 0x1_0000 => bytes = needed,
            Err(_) => return None,
        }
    }
    None
}

/// One `ObQueryNameString` into a `bytes`-long buffer: the name, or the size needed.
fn object_name_sized(object: *mut core::ffi::c_void, bytes: u32) -> Result<Option<OwnDir>, u32> {
    // u64 elements: the UNICODE_STRING at the start is pointer-aligned.
    let words = usize::try_from(bytes / 8).map_err(|_| 0u32)?;
    let mut buf: Vec<u64> = Vec::new();
    buf.try_reserve_exact(words).map_err(|_| 0u32)?;
    buf.resize(words, 0);
    let len = u32::try_from(buf.len().saturating_mul(8)).map_err(|_| 0u32)?;
    let mut got = 0u32;
    // SAFETY: a referenced object; `buf` is live, `len` bytes, aligned for
    // OBJECT_NAME_INFORMATION; `got` is a live local.
    let status = unsafe { ObQueryNameString(object, buf.as_mut_ptr().cast(), len, &mut got) };
    if status < 0 {
        return Err(got);
    }
    // SAFETY: on success the buffer starts with an OBJECT_NAME_INFORMATION.
    let info = unsafe { &*buf.as_ptr().cast::<ffi::wdk_sys::OBJECT_NAME_INFORMATION>() };
    let name = &info.Name;
    let units = usize::from(name.Length) / 2;
    let start = buf.as_ptr().cast::<u16>();
    let end = start.wrapping_add(buf.len().saturating_mul(4));
    if name.Buffer.is_null()
        || name.Buffer.cast_const() < start
        || name.Buffer.cast_const().wrapping_add(units) > end
    {
        return Ok(None); // the name must lie inside our buffer
    }
    // SAFETY: `units` code units at Buffer, inside `buf` (checked above), written by the
    // object manager.
    Ok(OwnDir::try_new(unsafe {
        core::slice::from_raw_parts(name.Buffer, units)
    }))
}

/// Undoes whatever `DriverEntry` set up, in reverse order; idempotent. PASSIVE_LEVEL: a
/// failed `DriverEntry` and the filter's unload callback.
pub fn teardown() {
    debug_assert_passive!();
    // Control requests first: they use everything below.
    control::remove();
    if PROCESS_NOTIFY.swap(false, Ordering::AcqRel) {
        // SAFETY: removes the routine registered in DriverEntry.
        let _ = unsafe { PsSetCreateProcessNotifyRoutineEx(Some(process_notify), 1) };
    }
    // No power job is posted after this (a callback in progress has returned).
    power::unregister();
    // Timer, DPC and health check stopped for real before anything they use is freed.
    health::quiesce();
    // Unregisters the filter (waits for every callback), then frees the rule set.
    flt::unregister_and_free();
    // No callback or instance setup can queue a volume-name round any more: wait for the
    // last, release the disk device objects the volume table still holds (every instance
    // was torn down, so normally none), free the table.
    dosnames::quiesce();
    while let Some(disk) = flt::take_volume_reference() {
        dosnames::release(disk);
    }
    // SAFETY: the filter is unregistered, the notify routine removed and the rounds
    // finished: nothing else uses the volume table.
    unsafe { flt::volumes_free() };
    // SAFETY: the filter is unregistered and the notify routine removed: nothing else
    // uses the process table.
    unsafe { flt::processes_free() };
    // The filter is unregistered and the control channel removed: nothing else uses the
    // event queue.
    flt::events_free(control::sleep_1ms);
    // Every producer of jobs is gone: the thread leaves, and is waited for.
    worker::stop();
    health::with_state(|s| *s = None);
    // The record, the store and the canary were the directory's last users.
    storedir::close();
    // Nothing writes the record any more; the provider last, so teardown's own failures
    // above could still be events.
    mirror::close();
    etw::unregister();
}
