//! # failsafeflt — the Windows kernel shell
//!
//! Moves bytes between Windows and `failsafe-loader`, which makes every decision. Layers:
//!
//! | module | needs | built and tested here |
//! |---|---|---|
//! | [`event`], [`active`], [`proctable`], [`config`] | nothing OS-specific | yes: built and unit-tested on Linux |
//! | `flt` | windows-sys (Filter Manager) | type-checked for `x86_64-pc-windows-msvc` with `--cfg failsafe_fltcheck`; never run |
//! | `kernel` | wdk-sys (WDK) | **never compiled here**: needs the WDK (eWDK prompt or Windows CI) |
//!
//! The driver is built with `cargo make` in an eWDK prompt (see `docs/windows.md`).
#![cfg_attr(all(windows, not(failsafe_fltcheck), not(test)), no_std)]

extern crate alloc;

pub mod active;
pub mod config;
pub mod event;
pub mod proctable;

#[cfg(windows)]
pub mod flt;

#[cfg(all(windows, not(failsafe_fltcheck)))]
mod kernel;
