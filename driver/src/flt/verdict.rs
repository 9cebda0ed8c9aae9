//! What the callbacks share (IRQL ≤ APC_LEVEL): who asked and whether the operation is
//! evaluated at all (`prologue`), the lock-free read of the active rule set
//! (`with_rules`), and a verdict's consequence (`judge`: audit, the own-directory veto,
//! `Deny`; `deny_pre` completes a denied pre-operation).

use core::sync::atomic::Ordering;

use failsafe_loader::{Action, EventType, Match};
use windows_sys::Wdk::Storage::FileSystem::Minifilters::{
    FLT_CALLBACK_DATA, FLT_IO_PARAMETER_BLOCK, FLT_PREOP_CALLBACK_STATUS, FLT_PREOP_COMPLETE,
    FLT_PREOP_SUCCESS_NO_CALLBACK, FLTFL_CALLBACK_DATA_IRP_OPERATION, FltGetRequestorProcessId,
};
use windows_sys::Win32::Foundation::STATUS_ACCESS_DENIED;

use failsafe_loader::control::AuditEvent;
// wdm.h / ntddk.h; windows-sys 0.61.2 Wdk::System::SystemServices (ntoskrnl.exe exports).
use windows_sys::Wdk::System::SystemServices::{
    KeEnterCriticalRegion, KeGetCurrentProcessorNumberEx, KeLeaveCriticalRegion,
};

use super::audit::audit;
use super::instance::VOLUMES_PENDING;
use super::{ACTIVE, Host, KERNEL_MODE, OWN_DIR, SYSTEM_PID};

/// Completes a pre-operation with `STATUS_ACCESS_DENIED`. `data` stays a raw pointer until
/// here: a `&mut` to the callback data is formed only to complete the operation, never
/// while the Filter Manager's routines are also given the pointer.
///
/// # Safety
/// `data` is the callback data of the current pre-operation callback.
pub(super) unsafe fn deny_pre(data: *mut FLT_CALLBACK_DATA) -> FLT_PREOP_CALLBACK_STATUS {
    // SAFETY: valid callback data (contract above); no other reference to it is live here.
    match unsafe { data.as_mut() } {
        Some(d) => {
            d.IoStatus.Anonymous.Status = STATUS_ACCESS_DENIED;
            d.IoStatus.Information = 0;
            FLT_PREOP_COMPLETE
        }
        None => FLT_PREOP_SUCCESS_NO_CALLBACK,
    }
}

/// Content never blocks the driver's own directory (the operation's file, or a rename or
/// link target); if that directory is unknown, it never blocks the System process's
/// kernel-mode requests, which include the driver's own.
fn block_vetoed(req: &Requestor, path: &[u16], target: &[u16]) -> bool {
    OWN_DIR
        .with(|own| own.contains(path) || own.contains(target))
        .unwrap_or(req.kernel_mode && req.pid == SYSTEM_PID)
}

/// What a verdict asks of the operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Let it go on.
    Pass,
    /// Refuse it (`STATUS_ACCESS_DENIED`; a pre-operation completes it, a post-create
    /// cancels the open).
    Deny,
}

/// Records a verdict (audit queue and debugger line for `block` and `audit`) and says what
/// it asks: `Deny` for a `block` outside the driver's own directory. `path` and `target`
/// in the Filter Manager's (device) form, which the own-directory guard compares;
/// `image` the requesting process's.
pub(super) fn judge<H: Host>(
    m: Option<Match>,
    kind: EventType,
    (path, target): (&[u16], &[u16]),
    req: &Requestor,
    image: &[u16],
) -> Outcome {
    let pid = req.pid;
    match m {
        Some(m) if m.action == Action::Block => {
            let vetoed = block_vetoed(req, path, target);
            audit(&audit_event(&m, kind, pid, vetoed), path, image);
            H::report(&m, kind, path, pid, image, vetoed);
            if vetoed { Outcome::Pass } else { Outcome::Deny }
        }
        Some(m) if m.action == Action::Audit => {
            audit(&audit_event(&m, kind, pid, false), path, image);
            H::report(&m, kind, path, pid, image, false);
            Outcome::Pass
        }
        _ => Outcome::Pass,
    }
}

fn audit_event(m: &Match, kind: EventType, pid: u64, vetoed: bool) -> AuditEvent {
    AuditEvent {
        action: m.action,
        event_type: kind,
        not_applied: vetoed,
        rule_id: m.rule_id,
        pid,
    }
}

/// Common early exits: not an IRP operation, or no content active (pass-through without
/// a name lookup).
fn skip(data: &FLT_CALLBACK_DATA) -> bool {
    data.Flags & FLTFL_CALLBACK_DATA_IRP_OPERATION == 0 || with_rules(|_| ()).is_none()
}

/// Reads the active rule set inside a critical region: the callbacks run in the caller's
/// thread, where a normal kernel APC (a user-mode `SuspendThread`) could otherwise stop
/// the thread while it is counted as a reader, and a live swap would then wait for it
/// with the record lock held. IRQL ≤ APC_LEVEL (Microsoft Learn, "KeEnterCriticalRegion").
pub(super) fn with_rules<R>(f: impl FnOnce(&failsafe_loader::RuleSet) -> R) -> Option<R> {
    with_rules_paused(|| (), f)
}

/// [`with_rules`] for an operation of process `pid`: in the drill build, a reader the
/// hosted drill holds (crate::drill) before its load or inside its read; in a release
/// build, [`with_rules`].
pub(super) fn with_rules_held<R>(
    pid: u64,
    f: impl FnOnce(&failsafe_loader::RuleSet) -> R,
) -> Option<R> {
    with_rules_paused(
        || drill_hold(pid, true),
        |rs| {
            drill_hold(pid, false);
            f(rs)
        },
    )
}

/// [`with_rules`] with `pause` between the reader's count and its load
/// (`active::Swappable::with_on_paused`).
fn with_rules_paused<R>(
    pause: impl FnOnce(),
    f: impl FnOnce(&failsafe_loader::RuleSet) -> R,
) -> Option<R> {
    // SAFETY: callable at IRQL ≤ APC_LEVEL, where every callback runs; paired below.
    unsafe { KeEnterCriticalRegion() };
    let r = ACTIVE.with_on_paused(current_cpu(), pause, f);
    // SAFETY: entered above, on this thread.
    unsafe { KeLeaveCriticalRegion() };
    r
}

/// The drill build's held reader (crate::drill): before the load, or inside the read.
/// Nothing in a release build.
#[inline(always)]
fn drill_hold(pid: u64, before_load: bool) {
    #[cfg(feature = "drill")]
    crate::drill::hold(
        pid,
        if before_load {
            crate::drill::Place::BeforeLoad
        } else {
            crate::drill::Place::Inside
        },
    );
    #[cfg(not(feature = "drill"))]
    let _ = (pid, before_load);
}

/// The current processor's number (any IRQL; a null PROCESSOR_NUMBER pointer is allowed:
/// only the number is returned).
fn current_cpu() -> usize {
    // SAFETY: no pointer is written (null); any IRQL.
    let cpu = unsafe { KeGetCurrentProcessorNumberEx(core::ptr::null_mut()) };
    usize::try_from(cpu).unwrap_or(0)
}

/// A volume still waits for its DOS name: have the kernel layer try again (it limits how
/// often). One atomic read when none does.
pub(super) fn poke_volumes<H: Host>() {
    if VOLUMES_PENDING.load(Ordering::Acquire) {
        H::learn_volume_names(false);
    }
}

/// Who asked for the operation, and where it runs.
pub(super) struct Requestor {
    pub(super) pid: u64,
    /// `RequestorMode == KernelMode`.
    pub(super) kernel_mode: bool,
    /// The current processor's number (the scratch pool's and the reader counts' place).
    pub(super) cpu: usize,
}

/// What both pre-operation callbacks start from: the requestor and the parameter block;
/// `None` when the operation is not evaluated. Reads the callback data through a shared
/// reference that ends here.
///
/// # Safety
/// `data` is the callback data the Filter Manager passed to the current callback.
pub(super) unsafe fn prologue<'a>(
    data: *mut FLT_CALLBACK_DATA,
) -> Option<(Requestor, &'a FLT_IO_PARAMETER_BLOCK)> {
    // SAFETY: valid callback data for the duration of the call (contract above).
    let d = unsafe { data.as_ref() }?;
    if skip(d) {
        return None;
    }
    let kernel_mode = d.RequestorMode == KERNEL_MODE;
    // SAFETY: Iopb points to the parameter block of this callback data (a structure apart
    // from FLT_CALLBACK_DATA), valid for the call.
    let iopb = unsafe { d.Iopb.as_ref() }?;
    // SAFETY: `data` is the valid callback data of the current callback.
    let pid = u64::from(unsafe { FltGetRequestorProcessId(data) });
    let cpu = current_cpu();
    Some((
        Requestor {
            pid,
            kernel_mode,
            cpu,
        },
        iopb,
    ))
}
