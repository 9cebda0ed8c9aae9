//! The process-image table: filled by the kernel layer's process-notify routine
//! (PASSIVE_LEVEL), read by the pre-operation callbacks (≤ APC_LEVEL) for the `process`
//! input, under a push lock.

use super::instance::dos_path;
use super::lock::{PushLock, Read, Write};
use crate::proctable::{MAX_UNITS, ProcessTable};
use crate::volumes::MAX_PATH_UNITS;

/// The process table, filled by the process-notify routine, read by the callbacks.
static PROCESSES: PushLock<ProcessTable> = PushLock::new();

/// Installs the process table (PASSIVE_LEVEL, `DriverEntry`, before the process-notify
/// routine is registered).
///
/// # Safety
/// Called once, before any other function of this module touches the process table.
pub unsafe fn processes_init(table: ProcessTable) {
    // SAFETY: once, first (contract above).
    unsafe { PROCESSES.init(table) };
}

/// A process started (process-notify routine, PASSIVE_LEVEL): its image (`\??\C:\x` or
/// device form) is recorded as authors write it (`C:\x`, ADR 0013). The volume table's
/// lock is released before the process table's is taken: never both at once.
pub fn process_started(pid: u64, image: &[u16]) {
    let mut buf = [0u16; MAX_PATH_UNITS];
    let image = dos_path(image, &mut buf);
    if let Some(t) = PROCESSES.write().as_mut().and_then(Write::get) {
        t.insert(pid, image);
    }
}

/// A process exited (process-notify routine, PASSIVE_LEVEL).
pub fn process_exited(pid: u64) {
    if let Some(t) = PROCESSES.write().as_mut().and_then(Write::get) {
        t.remove(pid);
    }
}

/// The image of process `pid` into `out` (the scratch's image buffer, `MAX_UNITS` units);
/// its length, 0 when unknown or `out` is of another size.
pub(super) fn process_image(pid: u64, out: &mut [u16]) -> usize {
    let Ok(out) = <&mut [u16; MAX_UNITS]>::try_from(out) else {
        return 0;
    };
    let guard = PROCESSES.read();
    guard
        .as_ref()
        .and_then(Read::get)
        .map_or(0, |t| t.get_into(pid, out))
}

/// Frees the process table (unload, after the notify routine was removed and the filter
/// unregistered).
///
/// # Safety
/// No callback or notify routine may run concurrently or afterwards.
pub unsafe fn processes_free() {
    // SAFETY: contract above.
    unsafe { PROCESSES.free() };
}
