//! Failsafe's fleet half: content distributed through a TUF repository (`tough`), each
//! release carrying its rollout plan and the plan's state in the target's custom metadata;
//! an agent per machine that stages a version only when its ring is open; health reports
//! through an MQTT broker; a controller that opens the next ring after bake time with
//! enough healthy reports and a failure rate under the threshold, and otherwise halts and
//! publishes the rollback. The console (`failsafectl fleet ...`) drives it; docs/fleet.md
//! describes formats, rules and the broker's role.
//!
//! This crate is kept out of the kernel core and out of the console's MSVC type-check:
//! `tough` verifies through `aws-lc-rs`, whose C build does not cross-compile to MSVC
//! from Linux (docs/decisions/0015-fleet.md).

pub mod agent;
pub mod broker;
pub mod bucket;
pub mod controller;
pub mod error;
pub mod ops;
pub mod plan;
pub mod release;
pub mod repo;
pub mod report;
pub mod status;
pub mod time;

pub use error::{Error, Result};
