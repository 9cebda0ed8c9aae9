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
//!
//! The drill build (feature `drill`) also keeps account, for the hosted drill's unload
//! check: allocations and bytes outstanding under the tag, and frees; it fills a block
//! with `0xFD` before freeing it, as Driver Verifier's special pool makes a read after free
//! visible (a rule set read after its free then faults or decides nonsense instead of
//! reading stale data that still looks right). [`report`] prints the account (the driver's
//! unload calls it after its teardown; the hosted drill asserts zero outstanding).

use core::alloc::{GlobalAlloc, Layout};
use core::ffi::c_void;
#[cfg(feature = "drill")]
use core::sync::atomic::AtomicI64;
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

/// Drill build: blocks and bytes outstanding under [`TAG`], and blocks freed.
#[cfg(feature = "drill")]
static OUTSTANDING: AtomicI64 = AtomicI64::new(0);
#[cfg(feature = "drill")]
static OUTSTANDING_BYTES: AtomicI64 = AtomicI64::new(0);
#[cfg(feature = "drill")]
static FREED: AtomicI64 = AtomicI64::new(0);

/// Drill build: one line with the allocations outstanding under [`TAG`] (the hosted
/// drill's unload check reads it: `failsafeflt: drill: pool Fsfe outstanding N blocks, B
/// bytes; F freed`). Any IRQL ≤ DISPATCH_LEVEL (`DbgPrintEx` with `%I64d`).
#[cfg(feature = "drill")]
pub fn report() {
    // SAFETY: the format's conversions match the three i64 arguments.
    let _ = unsafe {
        super::ffi::DbgPrintEx(
            super::ffi::DPFLTR_IHVDRIVER_ID,
            super::ffi::DPFLTR_WARNING_LEVEL,
            c"failsafeflt: drill: pool Fsfe outstanding %I64d blocks, %I64d bytes; %I64d freed\n"
                .as_ptr(),
            OUTSTANDING.load(Ordering::Acquire),
            OUTSTANDING_BYTES.load(Ordering::Acquire),
            FREED.load(Ordering::Acquire),
        )
    };
}

/// Drill build: counts a block in or out.
#[cfg(feature = "drill")]
fn account(size: usize, sign: i64) {
    let bytes = i64::try_from(size).unwrap_or(i64::MAX).saturating_mul(sign);
    OUTSTANDING.fetch_add(sign, Ordering::AcqRel);
    OUTSTANDING_BYTES.fetch_add(bytes, Ordering::AcqRel);
    if sign < 0 {
        FREED.fetch_add(1, Ordering::AcqRel);
    }
}

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
        let p: *mut u8 = if f.is_null() {
            // SAFETY: IRQL ≤ APC_LEVEL (checked), as paged pool requires.
            unsafe { ExAllocatePoolWithTag(_POOL_TYPE::PagedPool, size, TAG) }.cast()
        } else {
            // SAFETY: `f` is the kernel's ExAllocatePool2, whose signature ExAllocatePool2Fn
            // states (wdm.h); a function pointer and a data pointer have the same size here.
            let f: ExAllocatePool2Fn =
                unsafe { core::mem::transmute::<*mut c_void, ExAllocatePool2Fn>(f) };
            // SAFETY: IRQL ≤ APC_LEVEL (checked), as paged pool requires.
            unsafe { f(POOL_FLAG_PAGED, size, TAG) }.cast()
        };
        #[cfg(feature = "drill")]
        if !p.is_null() {
            account(size, 1);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        #[cfg(feature = "drill")]
        {
            let size = layout.size().max(1);
            // SAFETY: `ptr` is a live block of at least `size` bytes from `alloc` (GlobalAlloc's
            // contract), about to be freed: nothing reads it any more by right.
            unsafe { core::ptr::write_bytes(ptr, 0xFD, size) };
            account(size, -1);
        }
        #[cfg(not(feature = "drill"))]
        let _ = layout;
        // SAFETY: `ptr` came from `alloc` above (GlobalAlloc's contract), with this tag.
        unsafe { ExFreePoolWithTag(ptr.cast(), TAG) };
    }
}
