//! The Filter Manager layer: the callbacks the Filter Manager calls and the tables they
//! read. FFI from `windows-sys` 0.61.2 (`Wdk::Storage::FileSystem::Minifilters`, linked to
//! `fltmgr.sys`); wdk-sys 0.5 has no Filter Manager bindings. Every declaration used here
//! was checked against `windows-sys-0.61.2/src/Windows/Wdk/Storage/FileSystem/Minifilters/mod.rs`
//! and the header it is generated from, `fltkernel.h` (Microsoft Learn, "fltkernel.h
//! header"), and the layouts against clang's offsets over the WDK's headers: where
//! windows-sys differs (`FLT_PARAMETERS` for create and set-information), `crate::fltwdk`
//! reads them.
//!
//! Generic over [`Host`], which the wdk-sys layer (`kernel/`) implements. That keeps this
//! folder free of wdk-sys, so it is type-checked on Linux:
//! `RUSTFLAGS="--cfg failsafe_fltcheck" cargo check -p failsafeflt --target x86_64-pc-windows-msvc`.
//!
//! | file | owns | IRQL |
//! |---|---|---|
//! | [`registration`] | the operation table, `FLT_REGISTRATION`, filter unload, unregistering | PASSIVE |
//! | [`create`] | the `IRP_MJ_CREATE` pre- and post-operation callbacks (open by ID, tunneled names, deletes through a create) | PASSIVE |
//! | [`setinfo`] | the `IRP_MJ_SET_INFORMATION` pre-operation callback (rename, link, delete) | PASSIVE or APC |
//! | [`verdict`] | what the callbacks share: who asked, whether to look, the rule set's read, a verdict's consequence | the callbacks' (≤ APC) |
//! | [`scratch`] | the callbacks' path buffers (a preallocated pool) and their stack checks | ≤ APC |
//! | [`names`] | name information from the Filter Manager, released on drop | ≤ APC |
//! | [`instance`] | instance setup and teardown, the volume table (ADR 0013) | PASSIVE; table reads ≤ APC |
//! | [`process`] | the process-image table the process-notify routine fills | PASSIVE; reads ≤ APC |
//! | [`audit`] | the audit-event queue callbacks fill and the console drains | ≤ APC; drain PASSIVE |
//! | [`lock`] | the push lock the volume and process tables are kept under | ≤ APC |
//!
//! Nothing here allocates: names come from the Filter Manager's name cache (released on
//! every path by `NameInfo`'s `Drop`), paths are converted and the process image copied
//! into a scratch slot allocated once at `DriverEntry`, and the rule set is read through
//! [`Active`] without a lock.

use core::ffi::c_void;
use core::sync::atomic::AtomicIsize;

use failsafe_loader::{EventType, Match};
use windows_sys::Win32::Foundation::NTSTATUS;

use crate::active::{Active, Published};
use crate::guard::OwnDir;

mod audit;
mod create;
mod instance;
mod lock;
mod names;
mod process;
mod registration;
mod scratch;
mod setinfo;
mod verdict;

pub use audit::{events_counts, events_free, events_init, events_read};
pub use create::{REFUSED_DELETE_BY_ID, post_create, pre_create};
pub use instance::{
    instance_query_teardown, instance_setup, instance_teardown_complete, take_pending_volume,
    take_volume_reference, volume_attempted, volumes_free, volumes_init,
};
pub use process::{process_exited, process_started, processes_free, processes_init};
pub use registration::{
    OPERATIONS, Static, filter_unload, operations, pre_shutdown, registration, unregister_and_free,
};
pub use scratch::{SCRATCH_ON_STACK, SKIPPED_LOW_STACK, init as scratch_init};
pub use setinfo::pre_set_information;

/// What the kernel layer provides to the callbacks.
pub trait Host: 'static {
    /// Records an audited or blocked operation (rate-limited `DbgPrintEx` in the driver).
    /// `vetoed`: a `block` that was not applied because the operation is inside the
    /// driver's own directory. `image`: the requesting process's image as the rule saw
    /// it (held by the callback). Called at the callback's IRQL (PASSIVE_LEVEL or
    /// APC_LEVEL); must not block.
    fn report(m: &Match, kind: EventType, path: &[u16], pid: u64, image: &[u16], vetoed: bool);
    /// The filter unload callback (PASSIVE_LEVEL): tear everything down, in order.
    fn unload(flags: u32) -> NTSTATUS;
    /// The system shuts down (the `IRP_MJ_SHUTDOWN` pre-operation callback, PASSIVE_LEVEL,
    /// once per attached volume): close this start's attempt as clean.
    fn shutdown();
    /// Some volume's DOS name is not known yet: have the kernel layer ask the mount
    /// manager, at PASSIVE_LEVEL outside this thread (a round on its own thread), at most once per
    /// `volumes::RETRY_INTERVAL` unless `now` (a volume just attached). Called at the
    /// callback's IRQL (≤ APC_LEVEL); must not block.
    fn learn_volume_names(now: bool);
    /// Releases the reference on a disk device object that `FltGetDiskDeviceObject`
    /// returned (`ObDereferenceObject`). IRQL ≤ DISPATCH_LEVEL.
    fn release_disk(disk: *mut c_void);
}

/// `KernelMode` (wdm.h `MODE`): the value of `FLT_CALLBACK_DATA::RequestorMode` for
/// kernel-mode requests.
const KERNEL_MODE: i8 = 0;
/// The System process id. Its kernel-mode requests are evaluated like any other (the SMB
/// server issues them for remote clients); only if the driver's own directory could not
/// be resolved are they exempt from `block`, so that content can still never block the
/// driver's own record writes.
const SYSTEM_PID: u64 = 4;

/// The filter handle from `FltRegisterFilter` (`PFLT_FILTER` is `isize` in windows-sys).
pub static FILTER: AtomicIsize = AtomicIsize::new(0);
/// The active rule set.
pub static ACTIVE: Active = Active::new();
/// The driver's own directory, where `block` is never applied (`crate::guard`).
pub static OWN_DIR: Published<OwnDir> = Published::new();
