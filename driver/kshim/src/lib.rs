//! What the kernel check (`cargo make kcheck`, `--cfg failsafe_kcheck`) links in place of
//! wdk-panic and wdk-sys, which cannot be built without the WDK. A crate of its own, so
//! that the driver crate compiles exactly the items of its release build in the check:
//! the only `failsafe_kcheck` switches left in `driver/src` choose where the bindings come
//! from and which of the two crates supplies these symbols (`tests/tests/kcheck_items.rs`
//! holds that line). Never part of a shipped driver.
//!
//! - The panic handler: wdk-panic 0.5's behaviour, a bugcheck with its code `0x52504E43`
//!   ("RPNC"), so dumps read the same whichever build produced them. The core is proven
//!   free of reachable panics (proof/); the driver denies the lints that would add one.
//! - `_fltused`: the MSVC convention that marks an image using floating point; LLVM emits
//!   a reference whenever the IR has a floating-point type (the reference comes from
//!   `core`). wdk-sys 0.5 defines it in its `lib.rs`.
//! - `__CxxFrameHandler3`: the personality routine named by the unwind tables of the
//!   precompiled `core`/`alloc` (built with unwinding). With `panic = "abort"` nothing
//!   unwinds, so it is never called (rust-lang/rust#101134); wdk-sys 0.5 defines it too.

#![no_std]

#[cfg(all(windows, failsafe_kcheck, not(test)))]
mod kernel {
    /// wdk-panic 0.5's bugcheck code.
    const RUST_PANIC: u32 = 0x5250_4E43;

    #[link(name = "ntoskrnl")]
    unsafe extern "C" {
        /// wdm.h: `DECLSPEC_NORETURN VOID KeBugCheckEx(ULONG BugCheckCode, ULONG_PTR
        /// BugCheckParameter1, ..., ULONG_PTR BugCheckParameter4)`; callable at any IRQL
        /// (Microsoft Learn, "KeBugCheckEx function (wdm.h)").
        fn KeBugCheckEx(code: u32, p1: usize, p2: usize, p3: usize, p4: usize) -> !;
    }

    #[panic_handler]
    fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
        // SAFETY: KeBugCheckEx never returns; callable at any IRQL.
        unsafe { KeBugCheckEx(RUST_PANIC, 0, 0, 0, 0) }
    }

    #[unsafe(no_mangle)]
    #[used]
    static _fltused: i32 = 0;

    /// Never called (see the crate documentation); returns `ExceptionContinueSearch` (1)
    /// were it ever reached, so no frame is ever claimed.
    #[unsafe(no_mangle)]
    pub extern "system" fn __CxxFrameHandler3() -> i32 {
        1
    }
}
