//! The ETW provider's registration with this kernel (the provider and its events are
//! `crate::etw`'s). PASSIVE_LEVEL, `DriverEntry` and teardown only.
//!
//! The `tracelogging` crate imports `EtwRegister`, `EtwUnregister`, `EtwWriteTransfer` and
//! `EtwSetInformation` from ntoskrnl (Microsoft Learn, "EtwRegister function (wdm.h)" and
//! its siblings; every Windows the driver supports exports them). A kernel that lacks one
//! (Wine 8.0's ntoskrnl exports no `Etw*` routine: its loader binds a missing import to a
//! stub that aborts the host at the first call) must never see a call: `register` asks
//! `MmGetSystemRoutineAddress` for each first and, if any is missing, leaves the provider
//! unregistered. An unregistered provider is enabled for nothing, so no event is ever
//! written and no `Etw*` routine is called: the driver runs without the provider.
//!
//! Once only: `REGISTERED` is set before the crate's `register` runs and cleared only by
//! `unregister`, so the crate's register is never called twice or concurrently (its
//! preconditions, vendor/tracelogging/FAILSAFE-PATCH.md).

use core::sync::atomic::{AtomicBool, Ordering};

use super::ffi::{DPFLTR_IHVDRIVER_ID, DPFLTR_WARNING_LEVEL, DbgPrintEx};
use super::nt::{debug_assert_passive, system_routine};

/// The routines the crate imports in kernel mode and the driver's build calls (its
/// `EtwActivityIdControl` is linked only by activity-id helpers the driver never calls).
pub const IMPORTS: [&str; 4] = [
    "EtwRegister",
    "EtwUnregister",
    "EtwWriteTransfer",
    "EtwSetInformation",
];

/// The provider is registered (or its registration is under way).
static REGISTERED: AtomicBool = AtomicBool::new(false);

/// Registers the provider if this kernel exports every routine it needs. Logs (for the
/// debugger, and the hosted drill's log) why not. PASSIVE_LEVEL, `DriverEntry`, first.
#[inline(never)]
pub fn register() {
    debug_assert_passive!();
    if REGISTERED.swap(true, Ordering::AcqRel) {
        return;
    }
    if let Some(missing) = IMPORTS.iter().find(|name| system_routine(name).is_null()) {
        REGISTERED.store(false, Ordering::Release);
        log(c"not registered: the kernel does not export", missing, 0);
        return;
    }
    // SAFETY: once (REGISTERED above); `unregister` runs in teardown, which both a failed
    // DriverEntry and the unload callback call before the image can unload.
    let status = unsafe { crate::etw::register() };
    if status != 0 {
        // Unregister all the same (a no-op without a handle): a provider left registered
        // when the image unloads would be called into freed code.
        let _ = crate::etw::unregister();
        REGISTERED.store(false, Ordering::Release);
        log(c"not registered: EtwRegister failed", "", status);
        return;
    }
    log(c"registered", crate::etw::PROVIDER_NAME, 0);
}

/// Unregisters the provider if `register` registered it. Teardown (a failed `DriverEntry`
/// and unload), PASSIVE_LEVEL, last: events written before it still go out.
pub fn unregister() {
    debug_assert_passive!();
    if REGISTERED.swap(false, Ordering::AcqRel) {
        let _ = crate::etw::unregister();
    }
}

/// One line for the debugger: `failsafeflt: ETW provider <what> <name> (<code>)`.
fn log(what: &core::ffi::CStr, name: &str, code: u32) {
    // The name as a NUL-terminated ASCII copy on the stack (names here are short).
    let mut text = [0u8; 48];
    for (d, s) in text
        .iter_mut()
        .take(47)
        .zip(name.bytes().filter(u8::is_ascii_graphic))
    {
        *d = s;
    }
    // SAFETY: %s takes NUL-terminated strings (`what` is a C string; `text` keeps its
    // last byte 0), %u the u32.
    let _ = unsafe {
        DbgPrintEx(
            DPFLTR_IHVDRIVER_ID,
            DPFLTR_WARNING_LEVEL,
            c"failsafeflt: ETW provider %s %s (%u)\n".as_ptr(),
            what.as_ptr(),
            text.as_ptr(),
            code,
        )
    };
}
