//! System power transitions, for Fast Startup: its "shutdown" hibernates the kernel
//! session and sends no `IRP_MJ_SHUTDOWN`, so without this a hibernation whose file is
//! later discarded (a cold boot instead of a resume) would charge good content
//! (`running::Running::power`, issue 19 finding 8).
//!
//! The `\Callback\PowerState` callback object (Microsoft Learn, "Using a System-Defined
//! Callback Object": notified "before the power manager sends the system set-power IRP"
//! when "a transition to a system sleep or shutdown state is imminent", at IRQL ≤
//! DISPATCH_LEVEL) with `Argument1 == PO_CB_SYSTEM_STATE_LOCK` (wdm.h: 3): `Argument2` 0
//! before a sleep or hibernation, 1 back in S0. The callback only posts the job to the
//! driver's thread (`worker`), which writes the record at PASSIVE_LEVEL; at PASSIVE_LEVEL
//! it also waits for that write (at most `POWER_WAIT`) so the record is durable before the
//! system goes down.
//!
//! Optional: without the callback (it could not be registered) the driver runs as before,
//! and a discarded hibernation is charged as an unclean end.

use core::ffi::c_void;
use core::sync::atomic::{AtomicPtr, Ordering};

use super::ffi::{
    _KWAIT_REASON, ExCreateCallback, ExRegisterCallback, ExUnregisterCallback, KERNEL_MODE,
    KeResetEvent, KeWaitForSingleObject, LARGE_INTEGER, OBJ_CASE_INSENSITIVE, OBJECT_ATTRIBUTES,
    ObfDereferenceObject, PASSIVE_LEVEL, PCALLBACK_OBJECT, PO_CB_SYSTEM_STATE_LOCK,
};
use super::globals::POWER_DONE;
use super::nt::{Wide, debug_assert_passive, irql};
use super::worker;

/// The callback object (referenced by `ExCreateCallback`) and our registration on it.
static OBJECT: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());
static REGISTRATION: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());

/// Longest wait of the callback for the record write before a sleep (100 ns units,
/// relative): 10 s. The write takes milliseconds; a control request in progress on the
/// thread may hold it about a second more. Past this the system sleeps anyway and the
/// attempt stays in progress (charged only if the hibernation is then discarded).
const POWER_WAIT: i64 = -100_000_000;

/// Registers the callback. `DriverEntry`, PASSIVE_LEVEL, after the thread started.
/// `ExCreateCallback` (wdm.h; opens the existing object, `Create` FALSE, as "Using a
/// System-Defined Callback Object" says; `AllowMultipleCallbacks` TRUE) and
/// `ExRegisterCallback` (wdm.h: a registration handle, null on failure).
pub fn register() -> bool {
    debug_assert_passive!();
    let Some(mut name) = Wide::from_str("\\Callback\\PowerState") else {
        return false;
    };
    let mut us = name.unicode();
    let mut attrs = OBJECT_ATTRIBUTES {
        Length: u32::try_from(size_of::<OBJECT_ATTRIBUTES>()).unwrap_or(0),
        RootDirectory: core::ptr::null_mut(),
        ObjectName: &mut us,
        Attributes: OBJ_CASE_INSENSITIVE,
        SecurityDescriptor: core::ptr::null_mut(),
        SecurityQualityOfService: core::ptr::null_mut(),
    };
    let mut object: PCALLBACK_OBJECT = core::ptr::null_mut();
    // SAFETY: PASSIVE_LEVEL; `attrs` names a live UNICODE_STRING over `name`; `object` is a
    // live local the routine fills with a referenced callback object.
    let status = unsafe { ExCreateCallback(&mut object, &mut attrs, 0, 1) };
    if status < 0 || object.is_null() {
        return false;
    }
    // SAFETY: a callback object just opened; `power_state` has the CALLBACK_FUNCTION
    // signature and lives in this image until `unregister` has removed it.
    let registration =
        unsafe { ExRegisterCallback(object, Some(power_state), core::ptr::null_mut()) };
    if registration.is_null() {
        // SAFETY: the reference ExCreateCallback returned, released once.
        let _ = unsafe { ObfDereferenceObject(object.cast()) };
        return false;
    }
    OBJECT.store(object.cast(), Ordering::Release);
    REGISTRATION.store(registration, Ordering::Release);
    true
}

/// Removes the callback and releases the object. Teardown, PASSIVE_LEVEL, before the thread
/// stops. `ExUnregisterCallback` (wdm.h) does not return while the routine runs (it waits
/// for a callback in progress; the ReactOS reimplementation, `ntoskrnl/ex/callback.c`,
/// shows the mechanism), and that routine's wait ends when the thread has written.
pub fn unregister() {
    debug_assert_passive!();
    let registration = REGISTRATION.swap(core::ptr::null_mut(), Ordering::AcqRel);
    if !registration.is_null() {
        // SAFETY: the handle ExRegisterCallback returned, removed once.
        unsafe { ExUnregisterCallback(registration) };
    }
    let object = OBJECT.swap(core::ptr::null_mut(), Ordering::AcqRel);
    if !object.is_null() {
        // SAFETY: the reference ExCreateCallback returned, released once.
        let _ = unsafe { ObfDereferenceObject(object) };
    }
}

/// The `\Callback\PowerState` routine (IRQL ≤ DISPATCH_LEVEL).
unsafe extern "C" fn power_state(
    _context: *mut c_void,
    argument1: *mut c_void,
    argument2: *mut c_void,
) {
    if argument1.addr() != PO_CB_SYSTEM_STATE_LOCK {
        return; // AC/DC and policy changes
    }
    if argument2.addr() != 0 {
        worker::post(worker::RESUME);
        return;
    }
    let passive = irql() == PASSIVE_LEVEL;
    if passive {
        // SAFETY: initialized notification event (DriverEntry); reset before the post.
        let _ = unsafe { KeResetEvent(POWER_DONE.ptr()) };
    }
    worker::post(worker::SUSPEND);
    if passive && worker::running() {
        let mut timeout = LARGE_INTEGER {
            QuadPart: POWER_WAIT,
        };
        // SAFETY: the event above; a bounded kernel-mode wait at PASSIVE_LEVEL.
        let _ = unsafe {
            KeWaitForSingleObject(
                POWER_DONE.ptr().cast(),
                _KWAIT_REASON::Executive,
                KERNEL_MODE,
                0,
                &mut timeout,
            )
        };
    }
}
