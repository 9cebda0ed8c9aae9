//! The kernel's side of the Filter Manager layer (`flt::Host`): audit lines and unload; and
//! the process-creation notify routine that feeds the process-image table.

use core::sync::atomic::Ordering;

use failsafe_loader::{Action, EventType, Match};

use super::ffi::{
    DPFLTR_IHVDRIVER_ID, DPFLTR_WARNING_LEVEL, DbgPrintEx, HANDLE, NTSTATUS, PCUNICODE_STRING,
    PEPROCESS, PS_CREATE_NOTIFY_INFO, STATUS_SUCCESS, UNICODE_STRING,
};
use super::globals::LAST_REPORT;
use crate::flt::{self, Host};

/// The host the Filter Manager callbacks are instantiated with.
#[derive(Debug)]
pub struct Kernel;

/// Audit lines: at most one per 10 ms (interrupt time is in 100 ns units).
const REPORT_INTERVAL: u64 = 100_000;

impl Host for Kernel {
    fn report(m: &Match, kind: EventType, path: &[u16], pid: u64, image: &[u16], vetoed: bool) {
        let now = super::health::now();
        crate::etw::matched(m, kind, path, pid, image, vetoed, now);
        let last = LAST_REPORT.load(Ordering::Relaxed);
        if now.saturating_sub(last) < REPORT_INTERVAL
            || LAST_REPORT
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        // The path's tail as ASCII ('?' for anything else), NUL-terminated: `%s` is valid at
        // any IRQL (`%wZ` needs PASSIVE_LEVEL). 256 bytes on the stack.
        let mut text = [0u8; 256];
        let room = text.len().saturating_sub(1);
        let tail = path.get(path.len().saturating_sub(room)..).unwrap_or(&[]);
        for (d, &u) in text.iter_mut().zip(tail) {
            *d = u8::try_from(u)
                .ok()
                .filter(|b| (0x20..0x7F).contains(b))
                .unwrap_or(b'?');
        }
        let action = match (m.action, vetoed) {
            (Action::Block, true) => c"block (not applied: the driver's own directory)",
            (Action::Allow, _) => c"allow",
            (Action::Audit, _) => c"audit",
            (Action::Block, false) => c"block",
        };
        let kind = match kind {
            EventType::FileCreate => c"file-create",
            EventType::FileSetInfo => c"file-set-info",
        };
        // SAFETY: the format string's conversions match the arguments: %s (NUL-terminated
        // static string), %u (u32), %s (static), %I64u (u64), %s (NUL-terminated buffer:
        // `text` has at least one trailing NUL).
        let _ = unsafe {
            DbgPrintEx(
                DPFLTR_IHVDRIVER_ID,
                DPFLTR_WARNING_LEVEL,
                c"failsafeflt: %s rule %u on %s pid %I64u: %s\n".as_ptr(),
                action.as_ptr(),
                m.rule_id,
                kind.as_ptr(),
                pid,
                text.as_ptr(),
            )
        };
    }

    fn learn_volume_names(now: bool) {
        super::dosnames::queue(now);
    }

    fn release_disk(disk: *mut core::ffi::c_void) {
        super::dosnames::release(disk);
    }

    fn shutdown() {
        super::health::shutdown();
    }

    fn unload(flags: u32) -> NTSTATUS {
        crate::etw::driver_stopped(flags);
        // An orderly stop (`fltmc unload`, `sc stop`, uninstall) is not a crash: close this
        // start's attempt as clean before the shutdown notification goes away, or the next
        // start would charge it.
        // Control requests end first, so none opens an attempt after it is closed.
        super::control::remove();
        super::health::close_clean(crate::running::Close::Stop);
        super::teardown();
        // Drill build: what of the pool is still out after the whole teardown (the hosted
        // drill asserts nothing; pool.rs).
        #[cfg(feature = "drill")]
        super::pool::report();
        STATUS_SUCCESS
    }
}

/// Process creation / exit (PASSIVE_LEVEL): feeds the process-image table.
pub unsafe extern "C" fn process_notify(
    _process: PEPROCESS,
    pid: HANDLE,
    info: *mut PS_CREATE_NOTIFY_INFO,
) {
    // A process id is a HANDLE-sized integer.
    let pid = u64::try_from(pid.addr()).unwrap_or(0);
    // SAFETY: valid for the duration of the callback when non-null (creation); null on exit.
    match unsafe { info.as_ref() } {
        Some(i) => {
            let image: PCUNICODE_STRING = i.ImageFileName;
            // SAFETY: ImageFileName is a valid UNICODE_STRING during the callback, or null.
            let name: Option<&UNICODE_STRING> = unsafe { image.as_ref() };
            let units = name.filter(|n| !n.Buffer.is_null()).map_or(&[][..], |n| {
                // SAFETY: `Length` bytes of UTF-16 at `Buffer`, valid during the callback.
                unsafe { core::slice::from_raw_parts(n.Buffer, usize::from(n.Length) / 2) }
            });
            flt::process_started(pid, units);
        }
        None => flt::process_exited(pid),
    }
}
