//! # The double's self-test filter (`fltselftest.sys`) — hosted under Wine, NOT Windows
//!
//! A minifilter of a few hundred lines that the hosted drill loads in a session of its
//! own (driver/hosted/double/run.py, scenario "double-selftest") in place of Failsafe's
//! driver. It exists to check the Filter Manager double itself on what Failsafe's driver
//! does not use (yet): post-create callbacks with a completion context,
//! `FltGetRequestorProcessId`, `FltCancelFileOpen`, `FltGetTunneledName`, draining post
//! callbacks at a manual detach, `IRP_MJ_SHUTDOWN` through the filter, instance
//! query-teardown / teardown-start / teardown-complete; and to break, once each, the
//! contracts the double's verifier checks (driver/hosted/double/src/verify.rs), so that a
//! check that can never fire would show.
//!
//! What it does is chosen per operation by the requestor's process id: `MARK | action`
//! ([`action`]); any other process gets `FLT_PREOP_SUCCESS_NO_CALLBACK`. A post callback
//! reports what it saw in `IoStatus.Information` (the double returns it in the result's
//! `information`): [`SEEN`] plus bits. Counts of instance callbacks go to the debug
//! output at unload, one line the runner reads:
//! `fltselftest: unload: setups S, query-teardowns Q, teardown-starts T, teardown-completes
//! C, drained posts D, posts pending at teardown-complete P, shutdown callbacks H`.
//!
//! Every contract is from Microsoft Learn: "FLT_REGISTRATION", "PFLT_PRE_OPERATION_CALLBACK",
//! "PFLT_POST_OPERATION_CALLBACK", "FltCancelFileOpen function", "FltGetTunneledName
//! function", "FltGetRequestorProcessId function", "PFLT_INSTANCE_QUERY_TEARDOWN_CALLBACK",
//! "PFLT_INSTANCE_TEARDOWN_CALLBACK", "PFLT_FILTER_UNLOAD_CALLBACK", "FltUnregisterFilter
//! function", "FltInitializePushLock function", "FltReleasePushLock function".
#![cfg_attr(all(windows, not(test)), no_std)]

#[cfg(windows)]
mod filter;

/// What a create's requestor id asks for (`MARK | action`).
pub mod action {
    /// The high half of a requestor id the self-test acts on.
    pub const MARK: u32 = 0x5E1F_0000;
    /// Post-create with a completion context; the post callback checks the context, the
    /// requestor id and a name query, and reports them (`SEEN | 1 | 2 | 4`).
    pub const POST: u32 = 1;
    /// Post-create cancels the open (`FltCancelFileOpen`) and fails it
    /// (`STATUS_ACCESS_DENIED`): the documented use, no violation.
    pub const CANCEL: u32 = 2;
    /// Post-create cancels the open and leaves the success status (verifier code 16).
    pub const CANCEL_KEEP_SUCCESS: u32 = 3;
    /// Post-create asks for the tunneled name and reports its `Name.Length` in
    /// `Information` (`NO_TUNNEL` when the double has none).
    pub const TUNNEL: u32 = 4;
    /// `FltGetTunneledName` in the pre-operation callback (code 17).
    pub const TUNNEL_IN_PRE: u32 = 5;
    /// `FltCancelFileOpen` in the pre-operation callback (code 15).
    pub const CANCEL_IN_PRE: u32 = 6;
    /// An undocumented pre-operation status, 0x77 (code 2).
    pub const BAD_PRE_STATUS: u32 = 7;
    /// `FLT_PREOP_COMPLETE` with `STATUS_PENDING` (code 3).
    pub const COMPLETE_PENDING: u32 = 8;
    /// A completion context with `FLT_PREOP_SUCCESS_NO_CALLBACK` (code 5).
    pub const CONTEXT_NO_CALLBACK: u32 = 9;
    /// A name information not released (code 8).
    pub const LEAK_NAME: u32 = 10;
    /// A name information released twice (code 7).
    pub const DOUBLE_RELEASE: u32 = 11;
    /// `FLT_POSTOP_MORE_PROCESSING_REQUIRED` without `FltCompletePendedPostOperation`
    /// (code 6).
    pub const POST_MORE_PROCESSING: u32 = 12;
    /// `FltReleasePushLock` of a lock not held (code 12); the lock is then left
    /// initialized, so the unload check reports it (code 20, leftover "push locks").
    pub const PUSH_LOCK_NOT_HELD: u32 = 13;
    /// Post-create cancels an open the file system failed (code 15).
    pub const CANCEL_FAILED_CREATE: u32 = 14;
    /// `FLT_PREOP_COMPLETE` with `STATUS_ACCESS_DENIED`: the documented refusal.
    pub const DENY: u32 = 15;
    /// On set-information (registered without a post callback):
    /// `FLT_PREOP_SUCCESS_WITH_CALLBACK` (code 4).
    pub const WITH_CALLBACK_NO_POST: u32 = 20;
}

/// What a post callback reports in `IoStatus.Information`: `SEEN` plus
/// 1 (the context is the pre callback's), 2 (`FltGetRequestorProcessId` gave the id),
/// 4 (a normalized name query succeeded and was released).
pub const SEEN: u32 = 0x600D_0000;
/// `Information` when `FltGetTunneledName` answered no tunneled name (NULL).
pub const NO_TUNNEL: u32 = 0x7E00_0000;

/// A panic here is a fault of the test machinery: it ends the host process.
#[cfg(all(windows, not(test)))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    // SAFETY: KeBugCheckEx never returns; Wine ends the host process.
    unsafe { filter::KeBugCheckEx(0x4644_5354, 0, 0, 0, 0) }
}

/// Link-time symbols rustc's MSVC output references (as the double's lib.rs says).
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
