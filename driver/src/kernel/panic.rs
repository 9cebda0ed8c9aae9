//! Panic handler for the kernel check's build (`--cfg failsafe_kcheck`), where wdk-panic
//! (which depends on wdk-sys) is not available. Same behaviour as wdk-panic 0.5: a panic
//! in a driver is a bugcheck. The code is wdk-panic's, `0x52504E43` ("RPNC"), so crash
//! dumps read the same whichever build produced them. The core is proven free of
//! reachable panics (proof/); the driver crate denies the lints that would add one.

/// wdk-panic 0.5's bugcheck code.
const RUST_PANIC: u32 = 0x5250_4E43;

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    // SAFETY: KeBugCheckEx never returns; callable at any IRQL.
    unsafe { super::ffi::KeBugCheckEx(RUST_PANIC, 0, 0, 0, 0) }
}
