//! How each machine stands with a release, from its newest report, and the counts per
//! ring that the controller's rules and `fleet status` use. A machine's ring is computed
//! as its agent computes it (the ring pin it reports, explicit membership, the bucket).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::release::Release;
use crate::report::Report;
use crate::time::secs_between;

/// Most failure descriptions kept per ring (the counts are always complete).
pub const MAX_NAMED: usize = 8;

/// A machine's standing with one version.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Runs the version, health check passed (or it is last-known-good).
    Healthy,
    /// Took it (staged or running), no verdict yet.
    Pending,
    /// Quarantined it or rolled back from it.
    Quarantined,
    /// Crashed on it (unclean ends charged to it).
    Crashed,
    /// Took it (or reported since its ring opened) and then stopped reporting.
    Silent,
    /// Has not taken it (ring not open, or not yet).
    NotTaken,
    /// No report since its ring opened, and none for longer than the silence limit:
    /// not counted (it may be switched off), but then it cannot count as healthy either.
    Offline,
}

impl Verdict {
    /// Counts against the failure threshold.
    pub fn failed(self) -> bool {
        matches!(
            self,
            Verdict::Quarantined | Verdict::Crashed | Verdict::Silent
        )
    }
}

/// Counts for one ring.
#[derive(Serialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct RingTally {
    /// Ring index.
    pub ring: usize,
    /// Its name.
    pub name: String,
    /// Whether it is open.
    pub open: bool,
    /// Machines known to be in it (every machine that ever reported).
    pub machines: u32,
    /// Running the version now.
    pub on_version: u32,
    /// See [`Verdict`].
    pub healthy: u32,
    /// See [`Verdict`].
    pub pending: u32,
    /// See [`Verdict`].
    pub quarantined: u32,
    /// See [`Verdict`].
    pub crashed: u32,
    /// See [`Verdict`].
    pub silent: u32,
    /// See [`Verdict`].
    pub not_taken: u32,
    /// See [`Verdict`].
    pub offline: u32,
    /// Up to [`MAX_NAMED`] failed machines with what happened.
    pub failures: Vec<String>,
}

impl RingTally {
    /// Machines whose verdict counts: healthy, pending and failed.
    pub fn expected(&self) -> u32 {
        self.healthy
            .saturating_add(self.pending)
            .saturating_add(self.failed())
    }

    /// Failed machines.
    pub fn failed(&self) -> u32 {
        self.quarantined
            .saturating_add(self.crashed)
            .saturating_add(self.silent)
    }

    /// Failure share in percent (0 with nothing expected).
    pub fn failure_percent(&self) -> u64 {
        u64::from(self.failed())
            .saturating_mul(100)
            .checked_div(u64::from(self.expected()))
            .unwrap_or(0)
    }
}

/// How one machine stands with `release` (`silence_from`: silence is counted from no
/// earlier than this, the moment the controller last saw the broker come up).
pub fn classify(
    release: &Release,
    r: &Report,
    ring: Option<usize>,
    now: jiff::Timestamp,
    silence_from: jiff::Timestamp,
) -> (Verdict, String) {
    let v = release.content_version;
    let m = &r.machine_state;
    let took_v = r.took.as_ref().filter(|t| t.version == v);
    let took = took_v.is_some() || m.active == Some(v) || m.quarantine(v).is_some();
    let last = r.at.max(silence_from);
    let age = secs_between(last, now);
    let opened = ring.and_then(|i| release.state.opened(i));
    let since_open = opened.is_some_and(|o| r.at >= o);
    if let Some(q) = m.quarantine(v) {
        let d = q
            .detail
            .as_deref()
            .map(|d| format!(": {d}"))
            .unwrap_or_default();
        return (
            Verdict::Quarantined,
            format!("quarantined v{v} ({}{d})", q.reason),
        );
    }
    let unclean = m
        .unclean
        .get(&v)
        .copied()
        .unwrap_or(0)
        .max(took_v.map_or(0, |t| t.unclean_ends));
    if took && unclean > 0 {
        return (
            Verdict::Crashed,
            format!("{unclean} unclean end(s) on v{v}"),
        );
    }
    if age > release.plan.silent_after_secs && (took || since_open) {
        return (
            Verdict::Silent,
            format!(
                "{} v{v} and silent for {age}s (limit {}s)",
                if took { "took" } else { "in an open ring for" },
                release.plan.silent_after_secs
            ),
        );
    }
    if took && m.active == Some(v) && m.running && m.healthy {
        return (Verdict::Healthy, format!("v{v} healthy"));
    }
    if took {
        return (Verdict::Pending, format!("took v{v}, no verdict yet"));
    }
    if opened.is_some() && !since_open && age > release.plan.silent_after_secs {
        return (
            Verdict::Offline,
            format!("no report since its ring opened (last {age}s ago)"),
        );
    }
    (Verdict::NotTaken, "has not taken it".to_owned())
}

/// Per ring counts of `release` over every machine's newest report.
pub fn tally(
    release: &Release,
    reports: &BTreeMap<String, Report>,
    now: jiff::Timestamp,
    silence_from: jiff::Timestamp,
) -> (Vec<RingTally>, u32) {
    let mut rings: Vec<RingTally> = release
        .plan
        .rings
        .iter()
        .enumerate()
        .map(|(i, r)| RingTally {
            ring: i,
            name: r.name.clone(),
            open: i <= release.state.open_ring,
            ..RingTally::default()
        })
        .collect();
    let mut outside = 0u32;
    for (id, r) in reports {
        let ring = crate::bucket::ring_of(&release.plan, id, release.serial, r.ring_pin);
        let Some(t) = ring.and_then(|i| rings.get_mut(i)) else {
            outside = outside.saturating_add(1);
            continue;
        };
        let (verdict, why) = classify(release, r, ring, now, silence_from);
        t.machines = t.machines.saturating_add(1);
        if r.machine_state.active == Some(release.content_version) {
            t.on_version = t.on_version.saturating_add(1);
        }
        let slot = match verdict {
            Verdict::Healthy => &mut t.healthy,
            Verdict::Pending => &mut t.pending,
            Verdict::Quarantined => &mut t.quarantined,
            Verdict::Crashed => &mut t.crashed,
            Verdict::Silent => &mut t.silent,
            Verdict::NotTaken => &mut t.not_taken,
            Verdict::Offline => &mut t.offline,
        };
        *slot = slot.saturating_add(1);
        if verdict.failed() && t.failures.len() < MAX_NAMED {
            t.failures.push(format!("{id} {why}"));
        }
    }
    (rings, outside)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Plan;
    use crate::plan::state::{Pins, RolloutState};
    use crate::report::{MachineState, Quarantined, RepoView, Took};

    fn t(s: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(s).unwrap()
    }

    fn release() -> Release {
        Release {
            schema: 1,
            content_version: 2,
            serial: 1,
            published_at: t(1000),
            plan: Plan::from_toml("silent_after = \"60s\"\n[[ring]]\npercent = 100\n").unwrap(),
            state: RolloutState::start(t(1000), Pins::default()),
        }
    }

    fn report(at: i64, active: u64, healthy: bool, took: bool) -> Report {
        Report {
            schema: crate::report::SCHEMA.into(),
            v: 1,
            machine: "m".into(),
            at: t(at),
            seq: 1,
            agent: "0".into(),
            ring_pin: None,
            repo: RepoView::default(),
            machine_state: MachineState {
                running: true,
                active: Some(active),
                healthy,
                ..MachineState::default()
            },
            took: took.then(|| Took {
                version: 2,
                serial: 1,
                at: t(at),
                boot: 1,
                boots: 0,
                unclean_ends: 0,
            }),
            release: None,
            status: serde_json::Value::Null,
            extra: BTreeMap::new(),
        }
    }

    #[test]
    fn verdicts_follow_the_report_and_silence_counts_from_the_broker() {
        let r = release();
        let v = |rep: &Report, now: i64, from: i64| classify(&r, rep, Some(0), t(now), t(from)).0;
        assert_eq!(v(&report(1010, 2, true, true), 1020, 0), Verdict::Healthy);
        assert_eq!(v(&report(1010, 2, false, true), 1020, 0), Verdict::Pending);
        assert_eq!(v(&report(1010, 1, true, false), 1020, 0), Verdict::NotTaken);
        // Took it, then 61 s without a report: silent (failed).
        assert_eq!(v(&report(1010, 2, false, true), 1071, 0), Verdict::Silent);
        // ... unless the broker itself came back only 30 s ago.
        assert_eq!(
            v(&report(1010, 2, false, true), 1071, 1041),
            Verdict::Pending
        );
        // Reported before the ring opened and never since: offline, not counted.
        assert_eq!(v(&report(900, 1, true, false), 1100, 0), Verdict::Offline);
        let mut q = report(1010, 1, true, true);
        q.machine_state.quarantined.push(Quarantined {
            version: 2,
            reason: "crash-loop".into(),
            detail: Some("3 unclean starts".into()),
        });
        assert_eq!(v(&q, 1020, 0), Verdict::Quarantined);
        let mut c = report(1010, 2, false, true);
        c.machine_state.unclean.insert(2, 1);
        assert_eq!(v(&c, 1020, 0), Verdict::Crashed);
    }
}
