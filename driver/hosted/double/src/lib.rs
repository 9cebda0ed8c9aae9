//! # A test double of Filter Manager (`fltmgr.sys`) — hosted under Wine, NOT Windows
//!
//! Wine 8.0's own `fltmgr.sys` is a stub (no instance, no callback, no unload), so under it
//! the driver's file-system half never runs. This crate builds a native `fltmgr.sys` that
//! Wine loads in its place (`WINEDLLOVERRIDES=fltmgr.sys=n`, the file in the prefix's
//! `system32\drivers`, started as the `FltMgr` service the driver's INF depends on). It
//! implements, from Microsoft's documented contracts (each function names its Microsoft
//! Learn page), what the driver imports from FLTMGR.SYS and what the driver's next version
//! is expected to add; synthetic volumes and instances; operations sent by a test client
//! through the double's own device (`\\.\FltMgrDouble`, see [`proto`]); and the checks a
//! verifier makes (every name released, references balanced, documented callback values
//! only, nothing of the driver's left at unload: [`verify`]).
//!
//! What it is not: Windows, or Windows' Filter Manager. It is a second implementation of
//! the documented contract, good for running the driver's real code paths, for finding
//! contract violations the documents name, and for comparing verdicts; it does not prove
//! behaviour that depends on Windows' implementation (timing, IRQL, real file systems).
//!
//! | file | owns |
//! |---|---|
//! | [`ffi`] | kernel routines it calls (ntoskrnl, hal), with their headers |
//! | [`layout`] | the WDK's structure layouts it builds, asserted against the real headers |
//! | [`kit`] | small helpers: static cells, strings, time, log |
//! | [`verify`] | the verifier: violation codes, counters, records |
//! | [`filter`] | `FltRegisterFilter`, `FltStartFiltering`, `FltUnregisterFilter`, unload |
//! | [`volumes`] | synthetic volumes and instances: attach, detach, names, disk devices |
//! | [`names`] | name information: get, destination, parse, reference, release, tunnel |
//! | [`ops`] | operations: callback data, pre/post callbacks, `FltCancelFileOpen`, shutdown |
//! | [`pushlock`] | `FltInitializePushLock` and its family |
//! | [`interpose`] | the four ntoskrnl routines Wine lacks that the double answers instead |
//! | [`device`] | the double's device: requests, worker threads |
//! | [`proto`] | the request/response format (docs/windows.md, "The double's protocol") |
#![cfg_attr(all(windows, not(test)), no_std)]

#[cfg(windows)]
pub mod device;
#[cfg(windows)]
pub mod ffi;
#[cfg(windows)]
pub mod filter;
#[cfg(windows)]
pub mod interpose;
#[cfg(windows)]
pub mod kit;
#[cfg(windows)]
pub mod layout;
#[cfg(windows)]
pub mod names;
#[cfg(windows)]
pub mod ops;
pub mod proto;
#[cfg(windows)]
pub mod pushlock;
#[cfg(windows)]
pub mod verify;
#[cfg(windows)]
pub mod volumes;

/// A panic in the double is a fault of the test machinery: it ends the host process as a
/// driver bugcheck would, with its own code ("FDPN"), so the runner reports it as such.
#[cfg(all(windows, not(test)))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    // SAFETY: KeBugCheckEx never returns; Wine ends the host process.
    unsafe { ffi::KeBugCheckEx(0x4644_504E, 0, 0, 0, 0) }
}

/// Link-time symbols rustc's MSVC output references (as driver/src/kernel/crt.rs says:
/// `_fltused` for floating point in `core`, `__CxxFrameHandler3` named by the unwind tables
/// of the precompiled `core`, never called with `panic = "abort"`).
#[cfg(all(windows, not(test)))]
mod crt {
    #[unsafe(no_mangle)]
    #[used]
    static _fltused: i32 = 0;

    /// Never called; returns `ExceptionContinueSearch` were it reached.
    #[unsafe(no_mangle)]
    pub extern "system" fn __CxxFrameHandler3() -> i32 {
        1
    }
}
