//! `fleet status`: per release (newest first) its phase, open ring, halt reason and pins,
//! and per ring the machines, how many run the version, are healthy, pending, quarantined
//! it, crashed on it, went silent, have not taken it, are offline; with the controller's
//! decision as it would be now. Reads the repository on disk and the broker.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::controller::rules::{self, Decision};
use crate::controller::tally::{self, RingTally};
use crate::plan::state::{Phase, RolloutState};
use crate::report::Report;

/// One release's status.
#[derive(Serialize, Debug)]
pub struct ReleaseStatus {
    /// Serial.
    pub serial: u64,
    /// Content version.
    pub content_version: u64,
    /// Phase.
    pub phase: &'static str,
    /// State as published.
    pub state: RolloutState,
    /// Per ring.
    pub rings: Vec<RingTally>,
    /// Machines no ring of the plan takes.
    pub outside_plan: u32,
    /// What the controller would decide now (rolling releases only).
    pub next: Option<String>,
    /// The plan, one line per ring.
    pub plan: Vec<String>,
}

/// Builds the status of `rels` over `reports`.
pub fn build(
    rels: &crate::release::Releases,
    reports: &BTreeMap<String, Report>,
    now: jiff::Timestamp,
    silence_from: jiff::Timestamp,
    limit: usize,
) -> Vec<ReleaseStatus> {
    rels.list
        .iter()
        .rev()
        .take(limit)
        .map(|(_, r)| {
            let (rings, outside) = tally::tally(r, reports, now, silence_from);
            let next =
                (r.state.phase == Phase::Rolling).then(|| match rules::decide(r, &rings, now) {
                    Decision::Wait(w) => format!("wait: {w}"),
                    Decision::Advance(w) => format!("advance: {w}"),
                    Decision::Complete(w) => format!("complete: {w}"),
                    Decision::Halt(w) => format!("HALT: {w}"),
                });
            ReleaseStatus {
                serial: r.serial,
                content_version: r.content_version,
                phase: r.state.phase.name(),
                state: r.state.clone(),
                rings,
                outside_plan: outside,
                next,
                plan: r.plan.describe(),
            }
        })
        .collect()
}

/// The status as text.
pub fn text(list: &[ReleaseStatus]) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    for r in list {
        let _ = writeln!(
            s,
            "v{} (serial {}): {}{}",
            r.content_version,
            r.serial,
            r.phase.to_uppercase(),
            match r.state.phase {
                Phase::Rolling => format!(", ring {} open", r.state.open_ring),
                _ => String::new(),
            }
        );
        if let Some(h) = &r.state.halt {
            let _ = writeln!(s, "  halted {} by {}: {}", h.at, h.by, h.reason);
        }
        if let Some(v) = r.state.rollback_to {
            let _ = writeln!(s, "  rolled back (previous release v{v})");
        }
        for (m, v) in &r.state.pins.machines {
            let _ = writeln!(s, "  pin: machine {m} at v{v}");
        }
        for (g, v) in &r.state.pins.rings {
            let _ = writeln!(s, "  pin: ring {g} at v{v}");
        }
        let _ = writeln!(
            s,
            "  {:<4} {:<12} {:>5} {:>6} {:>7} {:>7} {:>5} {:>7} {:>6} {:>9} {:>7}",
            "ring",
            "name",
            "open",
            "mach.",
            "on-ver",
            "healthy",
            "pend.",
            "quarant",
            "crash",
            "silent",
            "not-yet"
        );
        for t in &r.rings {
            let _ = writeln!(
                s,
                "  {:<4} {:<12} {:>5} {:>6} {:>7} {:>7} {:>5} {:>7} {:>6} {:>9} {:>7}",
                t.ring,
                t.name,
                if t.open { "yes" } else { "no" },
                t.machines,
                t.on_version,
                t.healthy,
                t.pending,
                t.quarantined,
                t.crashed,
                t.silent,
                t.not_taken.saturating_add(t.offline)
            );
            for f in &t.failures {
                let _ = writeln!(s, "       failed: {f}");
            }
        }
        if r.outside_plan > 0 {
            let _ = writeln!(s, "  {} machine(s) outside the plan", r.outside_plan);
        }
        if let Some(n) = &r.next {
            let _ = writeln!(s, "  controller now: {n}");
        }
    }
    s
}
