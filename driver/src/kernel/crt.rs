//! Two link-time symbols that rustc's MSVC output references and that wdk-sys 0.5 defines
//! in its own `lib.rs` (`crates/wdk-sys/src/lib.rs`), needed here only for the kernel
//! check's link, where wdk-sys is absent. Neither is a kernel routine:
//! - `_fltused`: the MSVC convention that marks an image using floating point; LLVM emits a
//!   reference whenever the IR has a floating-point type (the core formats no floats at
//!   run time; the reference comes from `core`).
//! - `__CxxFrameHandler3`: the personality routine named by the unwind tables of the
//!   precompiled `core`/`alloc` (built with unwinding). With `panic = "abort"` nothing
//!   unwinds, so it is never called (rust-lang/rust#101134), exactly as in wdk-sys.

#[unsafe(no_mangle)]
#[used]
static _fltused: i32 = 0;

/// Never called (see the module documentation); returns `ExceptionContinueSearch` (1)
/// were it ever reached, so no frame is ever claimed.
#[unsafe(no_mangle)]
pub extern "system" fn __CxxFrameHandler3() -> i32 {
    1
}
