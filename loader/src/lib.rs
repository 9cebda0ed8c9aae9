//! # failsafe-loader
//!
//! The portable core of the Failsafe minifilter. Every decision the driver makes is made
//! here, in `no_std` + `alloc` Rust without `unsafe`, so that it is built, tested, fuzzed
//! and proven panic-free on any host:
//!
//! - [`schema`]: event types and their numbered, typed input fields;
//! - [`format`]: content format v1, its encoder and its validator;
//! - [`engine`]: the compiled rule set and its allocation-free evaluator;
//! - [`eval`]: events and the meaning of a criterion (shared by engine and reference scan);
//! - [`trust`]: trusted keys and the signature check that runs before any parsing;
//! - [`state`]: the boot-attempt counter, its durable record and the start decision;
//! - [`control`]: the console's control protocol and the audit-event queue;
//! - [`view`]: content validated and decoded by reference, for tools facing hostile files.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

pub mod content;
pub mod control;
pub mod engine;
pub mod error;
pub mod eval;
pub mod format;
pub mod mem;
pub mod schema;
pub mod state;
pub mod text;
pub mod trust;
pub mod view;

pub use content::{Content, Criterion, Rule, Values};
pub use engine::RuleSet;
pub use error::{AllocError, ContentError, ErrorKind, Location};
pub use eval::{Event, Input, Match};
pub use format::{Header, Validated, check, encode, validate};
pub use schema::{Action, EventType, FieldKind, Op};
