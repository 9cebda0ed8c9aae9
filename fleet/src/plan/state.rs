//! The rollout's state, published beside the plan in the target's custom metadata: which
//! ring is open since when, whether the rollout halted (why, when, by whom) and rolled
//! back, the responder's pins, and a bounded history. Every change is a new TUF targets
//! version (docs/fleet.md, "State machine").

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Most history entries kept (the oldest are dropped; the metadata stays small).
pub const MAX_HISTORY: usize = 64;

/// Where a rollout is.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Rings up to `open_ring` may take the version.
    Rolling,
    /// The last ring baked with enough healthy reports: nothing left to decide.
    Complete,
    /// Stopped: no machine takes the version any more; those that have it keep it.
    Halted,
    /// Stopped, and machines that run the version go back (`failsafectl rollback`); a
    /// machine that only staged it for the next boot has it removed.
    RolledBack,
}

impl Phase {
    /// As status prints it.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Rolling => "rolling",
            Phase::Complete => "complete",
            Phase::Halted => "halted",
            Phase::RolledBack => "rolled-back",
        }
    }

    /// Whether machines in open rings may take the version.
    pub fn admits(self) -> bool {
        matches!(self, Phase::Rolling | Phase::Complete)
    }
}

/// Why and when a rollout stopped.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Halt {
    /// The controller's reason (the ring, the numbers, the machines) or the responder's.
    pub reason: String,
    /// When.
    pub at: jiff::Timestamp,
    /// `controller` or `responder`.
    pub by: String,
}

/// One entry of the history.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// When.
    pub at: jiff::Timestamp,
    /// `publisher`, `controller` or `responder`.
    pub by: String,
    /// What changed, in words.
    pub what: String,
}

/// The responder's pins: hold machines (by id) or rings (by index) at a content version.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Pins {
    /// Machine id -> content version.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub machines: BTreeMap<String, u64>,
    /// Ring index (as a string, JSON keys are strings) -> content version.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rings: BTreeMap<String, u64>,
}

impl Pins {
    /// The version `machine` (in ring `ring` of the release at hand) is held at.
    pub fn for_machine(&self, machine: &str, ring: Option<usize>) -> Option<u64> {
        self.machines
            .get(machine)
            .copied()
            .or_else(|| ring.and_then(|r| self.rings.get(&r.to_string()).copied()))
    }

    /// Whether there is no pin at all.
    pub fn is_empty(&self) -> bool {
        self.machines.is_empty() && self.rings.is_empty()
    }
}

/// The state of one release's rollout.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RolloutState {
    /// Where it is.
    pub phase: Phase,
    /// The highest open ring (rings 0..=open_ring may take the version).
    pub open_ring: usize,
    /// When each open ring opened (index = ring).
    pub opened_at: Vec<jiff::Timestamp>,
    /// Set once halted (also when rolled back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub halt: Option<Halt>,
    /// Rolled back: the content version machines go back to (their last-known-good; this
    /// is the previous release's version, for the record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_to: Option<u64>,
    /// The responder's pins (the newest release's apply to the whole fleet).
    #[serde(default, skip_serializing_if = "Pins::is_empty")]
    pub pins: Pins,
    /// What happened, oldest first (bounded).
    #[serde(default)]
    pub history: Vec<Event>,
}

impl RolloutState {
    /// A release just published: ring 0 open now.
    pub fn start(now: jiff::Timestamp, pins: Pins) -> Self {
        let mut s = RolloutState {
            phase: Phase::Rolling,
            open_ring: 0,
            opened_at: vec![now],
            halt: None,
            rollback_to: None,
            pins,
            history: Vec::new(),
        };
        s.note(now, "publisher", "published; ring 0 open".to_owned());
        s
    }

    /// Adds a history entry, dropping the oldest beyond [`MAX_HISTORY`].
    pub fn note(&mut self, at: jiff::Timestamp, by: &str, what: String) {
        self.history.push(Event {
            at,
            by: by.to_owned(),
            what,
        });
        if self.history.len() > MAX_HISTORY {
            let extra = self.history.len().saturating_sub(MAX_HISTORY);
            self.history.drain(..extra);
        }
    }

    /// When `ring` opened, if it did.
    pub fn opened(&self, ring: usize) -> Option<jiff::Timestamp> {
        self.opened_at.get(ring).copied()
    }

    /// Opens the next ring (the caller checked the rules).
    pub fn open_next(&mut self, now: jiff::Timestamp, by: &str, why: String) {
        self.open_ring = self.open_ring.saturating_add(1);
        self.opened_at.push(now);
        self.note(now, by, why);
    }

    /// Halts (and with `rollback_to`, rolls back).
    pub fn halt(
        &mut self,
        now: jiff::Timestamp,
        by: &str,
        reason: String,
        rollback: Option<Option<u64>>,
    ) {
        self.phase = if rollback.is_some() {
            Phase::RolledBack
        } else {
            Phase::Halted
        };
        self.rollback_to = rollback.flatten();
        let what = match rollback {
            Some(Some(v)) => format!("halted and rolled back to v{v}: {reason}"),
            Some(None) => format!("halted and rolled back: {reason}"),
            None => format!("halted: {reason}"),
        };
        self.halt = Some(Halt {
            reason,
            at: now,
            by: by.to_owned(),
        });
        self.note(now, by, what);
    }
}
