//! The global allocator: paged pool, tag `Fsfe`, `ExAllocatePool2` where the kernel has it
//! (Windows 10 2004 and later), resolved at run time with `MmGetSystemRoutineAddress`,
//! else `ExAllocatePoolWithTag` (earlier Windows 10, and Wine).
//!
//! Why paged (docs/decisions/0006-pool.md): everything on the heap — the content file
//! while it is validated (up to 32 MiB), the compiled rule set, the process table, the
//! record and path buffers — is touched only at IRQL ≤ APC_LEVEL: `DriverEntry`, the
//! health check and the shutdown callback run at PASSIVE_LEVEL, the pre-operation
//! callbacks at ≤ APC_LEVEL (paging I/O is never evaluated), the process notify routine at
//! PASSIVE_LEVEL. The only DISPATCH_LEVEL code, the timer DPC, touches static storage only.
//! An allocation request above APC_LEVEL therefore means a bug: it fails (null) instead of
//! returning paged memory that would fault at that IRQL.
//!
//! Alignment: pool blocks are 16-byte aligned on x64 and arm64; a larger alignment is
//! refused (null) rather than silently ignored. Every content path allocates fallibly
//! (`try_reserve`), so null becomes an error, never a panic.

use core::alloc::{GlobalAlloc, Layout};
use core::ffi::c_void;
use core::sync::atomic::{AtomicPtr, Ordering};

use super::ffi::{
    _POOL_TYPE, APC_LEVEL, ExAllocatePool2Fn, ExAllocatePoolWithTag, ExFreePoolWithTag,
    POOL_FLAG_PAGED,
};
use super::nt::{irql, system_routine};

/// Pool tag (shown as `Fsfe` by poolmon and `!pool`).
pub const TAG: u32 = u32::from_le_bytes(*b"Fsfe");
const MAX_ALIGN: usize = 16;

static ALLOCATE_POOL2: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());

/// Looks up `ExAllocatePool2`. PASSIVE_LEVEL (`MmGetSystemRoutineAddress` requires it);
/// called first thing in `DriverEntry`. Allocations before it use the fallback.
pub fn init() {
    ALLOCATE_POOL2.store(system_routine("ExAllocatePool2"), Ordering::Release);
}

/// The driver's allocator (see the module documentation).
#[derive(Debug)]
pub struct Pool;

// SAFETY: `alloc` returns null or a fresh pool block of at least `layout.size()` bytes,
// aligned to 16 ≥ `layout.align()` (larger alignments are refused); `dealloc` frees blocks
// from `alloc` with the same tag. The pool routines are thread-safe.
unsafe impl GlobalAlloc for Pool {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() > MAX_ALIGN || irql() > APC_LEVEL {
            return core::ptr::null_mut();
        }
        let size = layout.size().max(1);
        let f = ALLOCATE_POOL2.load(Ordering::Acquire);
        if f.is_null() {
            // SAFETY: IRQL ≤ APC_LEVEL (checked), as paged pool requires.
            unsafe { ExAllocatePoolWithTag(_POOL_TYPE::PagedPool, size, TAG) }.cast()
        } else {
            // SAFETY: `f` is the kernel's ExAllocatePool2, whose signature ExAllocatePool2Fn
            // states (wdm.h); a function pointer and a data pointer have the same size here.
            let f: ExAllocatePool2Fn =
                unsafe { core::mem::transmute::<*mut c_void, ExAllocatePool2Fn>(f) };
            // SAFETY: IRQL ≤ APC_LEVEL (checked), as paged pool requires.
            unsafe { f(POOL_FLAG_PAGED, size, TAG) }.cast()
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above (GlobalAlloc's contract), with this tag.
        unsafe { ExFreePoolWithTag(ptr.cast(), TAG) };
    }
}
