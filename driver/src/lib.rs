//! # failsafeflt — the Windows kernel shell
//!
//! Moves bytes between Windows and `failsafe-loader`, which makes every decision. Layers:
//!
//! | module | needs | built and tested here |
//! |---|---|---|
//! | [`event`], [`etw`], [`active`], [`dacl`], [`reparse`], [`proctable`], [`volumes`], [`config`], [`guard`], [`wire`], [`running`], [`build_id`] | nothing OS-specific | built and unit-tested on Linux |
//! | `flt` (a folder: a file per callback family), `fltwdk` | windows-sys (Filter Manager) | type-checked, clippy-clean and linked by the kernel check; run under Wine with a test double of Filter Manager (driver/hosted/double), never on Windows |
//! | `kernel` | wdk-sys (WDK) | type-checked, clippy-clean and linked by the kernel check (`cargo make kcheck`, `--cfg failsafe_kcheck`: bindings generated from MinGW's or the WDK's headers in place of wdk-sys); run under Wine (the hosted drill), never on Windows |
//! | `drill` | nothing (its hold: windows-sys) | the drill build's test hooks; unit-tested on Linux |
//!
//! The shipping driver is built with `cargo make` (or `cargo wdk build`) in an eWDK prompt
//! (see `docs/windows.md`).
#![cfg_attr(all(windows, not(failsafe_fltcheck), not(test)), no_std)]

extern crate alloc;

pub mod active;
pub mod build_id;
pub mod config;
pub mod dacl;
#[cfg(any(test, feature = "drill"))]
pub mod drill;
pub mod etw;
pub mod event;
pub mod guard;
pub mod proctable;
pub mod reparse;
pub mod running;
pub mod volumes;
pub mod wire;

#[cfg(windows)]
pub mod flt;
#[cfg(windows)]
pub mod fltwdk;

#[cfg(all(windows, failsafe_kcheck))]
mod kbind;

#[cfg(all(windows, not(failsafe_fltcheck)))]
mod kernel;
