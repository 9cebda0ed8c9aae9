//! The boot-attempt counter and safe mode: durable record, pure decision functions, and
//! the start sequence over the OS-provided medium, store and clock.

pub mod machine;
pub mod mirror;
pub mod record;
pub mod start;

pub use machine::{
    Activation, Begin, BuildActivation, Choice, Config, Env, HealthEvidence, LiveRefusal, Prior,
};
pub use record::{
    Attempt, BuildAttempt, BuildId, DriverTrack, HealthCheck, LastDecision, Loaded, Mode, Phase,
    QEntry, QuarantineReason, Reason, StartReport, State, Ver,
};
pub use start::{
    Clock, ContentStore, Durable, HealthTimer, IoError, Rejection, Started, StateMedium,
    begin_start, finish_start, start,
};
