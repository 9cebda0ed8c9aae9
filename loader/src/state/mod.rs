//! The boot-attempt counter and safe mode: durable record, pure decision functions, and
//! the start sequence over the OS-provided medium, store and clock.

pub mod machine;
pub mod record;
pub mod start;

pub use machine::{Begin, Choice, Config, Env, Prior};
pub use record::{
    Attempt, LastDecision, Loaded, Mode, Phase, QEntry, QuarantineReason, Reason, State, Ver,
};
pub use start::{
    Clock, ContentStore, Durable, HealthTimer, IoError, Rejection, Started, StateMedium, start,
};
