//! What this machine should do with the releases it sees, as a pure function of the
//! verified releases, the machine's id and ring pin, its state and the agent's ledger
//! (unit-tested below; docs/fleet.md, "The agent's rules", says the same in words):
//!
//! 1. A rolled-back release's version is undone first: running (and not last-known-good)
//!    → `failsafectl rollback`; staged for the next boot and never run → removed.
//!    Last-known-good already → left (the driver never goes below last-known-good; a newer
//!    release replaces it), and said so.
//! 2. Otherwise the newest release the machine may take: not halted or rolled back; its
//!    ring (pin, explicit membership, bucket) is open; no responder's pin holds it below;
//!    the driver is new enough. A responder's machine pin names the version outright.
//! 3. That version is staged (live or for the next boot, as its ring says) unless the
//!    machine has it, refused it (quarantined) or is past it; a staged version whose ring
//!    activates live is activated once.

use crate::plan::state::Phase;
use crate::plan::{Activation, parse_dotted, version_at_least};
use crate::release::{Release, Releases};
use crate::report::MachineState;

use super::ledger::Ledger;

/// What to do this pass.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Nothing (`code` for the report, `why` in words).
    Idle {
        /// The release concerned, if any.
        release: Option<Release>,
        /// The machine's ring in it.
        ring: Option<usize>,
        /// Stable code.
        code: &'static str,
        /// Why, in words.
        why: String,
    },
    /// Fetch `target`, check it, stage it (live or not).
    Stage {
        /// The release.
        release: Release,
        /// Its target name.
        target: String,
        /// The machine's ring.
        ring: Option<usize>,
        /// Activate now through the control channel.
        live: bool,
    },
    /// Activate the staged version live.
    Activate {
        /// The release.
        release: Release,
        /// The machine's ring.
        ring: Option<usize>,
    },
    /// `failsafectl rollback`: the running version was rolled back by the fleet.
    Rollback {
        /// The rolled-back release.
        release: Release,
    },
    /// Remove the staged, never-run version of a rolled-back release.
    Unstage {
        /// The rolled-back release.
        release: Release,
    },
}

fn idle(release: Option<&Release>, ring: Option<usize>, code: &'static str, why: String) -> Action {
    Action::Idle {
        release: release.cloned(),
        ring,
        code,
        why,
    }
}

/// Decides (see the module's rules).
pub fn decide(
    rels: &Releases,
    machine: &str,
    pin: Option<usize>,
    m: &MachineState,
    driver: &str,
    ledger: &Ledger,
) -> Action {
    // 1. Undo rolled-back versions.
    let mut blocked = None;
    for (_, r) in rels.list.iter().rev() {
        if r.state.phase != Phase::RolledBack {
            continue;
        }
        let v = r.content_version;
        if m.quarantine(v).is_some() {
            continue;
        }
        let lkg = m.last_known_good == Some(v);
        if m.active == Some(v) {
            if lkg {
                // Nothing to undo here; a newer release may still be taken below.
                blocked = Some(idle(
                    Some(r),
                    None,
                    "rollback-blocked",
                    format!(
                        "v{v} was rolled back by the fleet, but it is this machine's last-known-good (the driver never goes below it): a newer release replaces it"
                    ),
                ));
                break;
            }
            if m.running {
                return Action::Rollback { release: r.clone() };
            }
            return idle(
                Some(r),
                None,
                "rollback-waiting",
                format!(
                    "v{v} was rolled back by the fleet; the host is not running: rolling back once it is"
                ),
            );
        }
        if m.staged.contains(&v) && !lkg {
            return Action::Unstage { release: r.clone() };
        }
    }
    let head = rels.head();
    let pins = head.map(|h| h.state.pins.clone()).unwrap_or_default();
    // The newest version the machine has and may run (a quarantined one does not count).
    let have = m
        .staged
        .iter()
        .copied()
        .chain(m.active)
        .filter(|v| m.quarantine(*v).is_none())
        .max()
        .unwrap_or(0);
    // 2. The release to follow.
    let mut chosen: Option<(&Release, Option<usize>)> = None;
    let mut first_why: Option<(&Release, Option<usize>, &'static str, String)> = None;
    if let Some(&pv) = pins.machines.get(machine) {
        match rels.by_version(pv) {
            Some((_, r)) if r.state.phase != Phase::RolledBack => {
                let ring = crate::bucket::ring_of(&r.plan, machine, r.serial, pin);
                chosen = Some((r, ring));
            }
            _ => {
                return idle(
                    head,
                    None,
                    "pinned-unavailable",
                    format!(
                        "pinned to v{pv} by the responder, but no release of v{pv} may be taken (not listed, or rolled back)"
                    ),
                );
            }
        }
    }
    if chosen.is_none() {
        for (_, r) in rels.list.iter().rev() {
            let ring = crate::bucket::ring_of(&r.plan, machine, r.serial, pin);
            let why: Option<(&'static str, String)> = if !r.state.phase.admits() {
                Some((
                    "halted",
                    format!(
                        "v{} is {} ({})",
                        r.content_version,
                        r.state.phase.name(),
                        r.state
                            .halt
                            .as_ref()
                            .map_or("no reason recorded", |h| h.reason.as_str())
                    ),
                ))
            } else if let Some(ring) = ring {
                if ring > r.state.open_ring {
                    Some((
                        "waiting-for-ring",
                        format!(
                            "v{}: this machine is in ring {ring} (`{}`); ring {} is open",
                            r.content_version,
                            r.plan.rings.get(ring).map_or("", |x| x.name.as_str()),
                            r.state.open_ring
                        ),
                    ))
                } else if let Some(p) = pins
                    .for_machine(machine, Some(ring))
                    .filter(|p| *p < r.content_version)
                {
                    Some((
                        "pinned",
                        format!(
                            "v{}: ring {ring} is pinned to v{p} by the responder",
                            r.content_version
                        ),
                    ))
                } else {
                    r.plan.min_driver.as_ref().and_then(|need| {
                        let ok = match (parse_dotted(driver), parse_dotted(need)) {
                            (Some(h), Some(n)) => version_at_least(&h, &n),
                            _ => false,
                        };
                        (!ok).then(|| {
                            (
                                "driver-too-old",
                                format!(
                                    "v{} needs driver {need}; this machine runs {driver}",
                                    r.content_version
                                ),
                            )
                        })
                    })
                }
            } else {
                Some((
                    "outside-plan",
                    format!(
                        "v{}: no ring of its plan takes this machine",
                        r.content_version
                    ),
                ))
            };
            match why {
                None => {
                    chosen = Some((r, ring));
                    break;
                }
                Some((code, w)) => {
                    if first_why.is_none() {
                        first_why = Some((r, ring, code, w));
                    }
                    // A release this machine already has ends the search: an older one
                    // is nothing to take.
                    if r.content_version <= have {
                        break;
                    }
                }
            }
        }
    }
    let Some((r, ring)) = chosen else {
        if let Some(b) = blocked {
            return b;
        }
        return match first_why {
            Some((r, ring, code, why)) => idle(Some(r), ring, code, why),
            None => idle(
                None,
                None,
                "no-release",
                "the repository lists no release".into(),
            ),
        };
    };
    // 3. Take it.
    let a = take(r, ring, m, ledger, have);
    if let (Action::Idle { .. }, Some(b)) = (&a, blocked) {
        return b;
    }
    // Idle on an older release because a newer one is not for this machine yet: the
    // newer one's reason is the news.
    match (a, first_why) {
        (Action::Idle { why: here, .. }, Some((w, wring, code, why))) if w.serial > r.serial => {
            idle(Some(w), wring, code, format!("{why}; this machine: {here}"))
        }
        (a, _) => a,
    }
}

fn take(r: &Release, ring: Option<usize>, m: &MachineState, ledger: &Ledger, have: u64) -> Action {
    let v = r.content_version;
    let live = ring
        .and_then(|i| r.plan.rings.get(i))
        .is_none_or(|x| x.activation == Activation::Live);
    if let Some(q) = m.quarantine(v) {
        return idle(
            Some(r),
            ring,
            "quarantined-here",
            format!(
                "v{v} is quarantined on this machine ({}): not taken again",
                q.reason
            ),
        );
    }
    if m.active == Some(v) {
        let h = if m.healthy {
            "healthy"
        } else {
            "health check pending"
        };
        return idle(Some(r), ring, "running", format!("v{v} runs ({h})"));
    }
    if let Some(l) = m.last_known_good.filter(|l| *l > v) {
        return idle(
            Some(r),
            ring,
            "below-last-known-good",
            format!("v{v} is older than last-known-good v{l}: never taken"),
        );
    }
    if m.staged.contains(&v) {
        if live && m.running && !ledger.was_live(v) {
            return Action::Activate {
                release: r.clone(),
                ring,
            };
        }
        return idle(
            Some(r),
            ring,
            "staged",
            format!("v{v} is staged; the next start activates it"),
        );
    }
    if have > v {
        return idle(
            Some(r),
            ring,
            "ahead",
            format!("the machine already has v{have}, newer than v{v}"),
        );
    }
    Action::Stage {
        release: r.clone(),
        target: Release::target_name(v),
        ring,
        live: live && m.running,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Plan;
    use crate::plan::state::{Pins, RolloutState};
    use crate::report::Quarantined;

    fn plan() -> Plan {
        Plan::from_toml(
            "[[ring]]\nmachines = [\"canary\"]\n[[ring]]\npercent = 100\nactivation = \"next-boot\"\n",
        )
        .unwrap()
    }

    fn release(v: u64, serial: u64, phase: Phase, open: usize) -> Release {
        let t = jiff::Timestamp::UNIX_EPOCH;
        let mut state = RolloutState::start(t, Pins::default());
        state.phase = phase;
        state.open_ring = open;
        Release {
            schema: 1,
            content_version: v,
            serial,
            published_at: t,
            plan: plan(),
            state,
        }
    }

    fn rels(rs: Vec<Release>) -> Releases {
        Releases {
            list: rs
                .into_iter()
                .map(|r| (Release::target_name(r.content_version), r))
                .collect(),
            invalid: Vec::new(),
        }
    }

    fn on(v: u64) -> MachineState {
        MachineState {
            record: "ok".into(),
            running: true,
            active: Some(v),
            healthy: true,
            last_known_good: Some(v),
            staged: vec![v],
            ..MachineState::default()
        }
    }

    fn code(a: &Action) -> &'static str {
        match a {
            Action::Idle { code, .. } => code,
            Action::Stage { live: true, .. } => "stage-live",
            Action::Stage { live: false, .. } => "stage-next-boot",
            Action::Activate { .. } => "activate",
            Action::Rollback { .. } => "rollback",
            Action::Unstage { .. } => "unstage",
        }
    }

    #[test]
    fn only_open_rings_take_a_release_each_as_its_ring_says() {
        let l = Ledger::default();
        let r = rels(vec![
            release(1, 1, Phase::Complete, 1),
            release(2, 2, Phase::Rolling, 0),
        ]);
        assert_eq!(
            code(&decide(&r, "canary", None, &on(1), "0.1.0", &l)),
            "stage-live"
        );
        let a = decide(&r, "m07", None, &on(1), "0.1.0", &l);
        assert_eq!(code(&a), "waiting-for-ring");
        // Ring 1 open: next boot, as its plan says.
        let r = rels(vec![
            release(1, 1, Phase::Complete, 1),
            release(2, 2, Phase::Rolling, 1),
        ]);
        assert_eq!(
            code(&decide(&r, "m07", None, &on(1), "0.1.0", &l)),
            "stage-next-boot"
        );
        // The machine's ring pin puts it in ring 0.
        let r = rels(vec![
            release(1, 1, Phase::Complete, 1),
            release(2, 2, Phase::Rolling, 0),
        ]);
        assert_eq!(
            code(&decide(&r, "m07", Some(0), &on(1), "0.1.0", &l)),
            "stage-live"
        );
    }

    #[test]
    fn halted_quarantined_and_old_versions_are_not_taken() {
        let l = Ledger::default();
        let r = rels(vec![
            release(1, 1, Phase::Complete, 1),
            release(2, 2, Phase::Halted, 1),
        ]);
        assert_eq!(
            code(&decide(&r, "canary", None, &on(1), "0.1.0", &l)),
            "halted"
        );
        let r = rels(vec![
            release(1, 1, Phase::Complete, 1),
            release(2, 2, Phase::Rolling, 1),
        ]);
        let mut m = on(1);
        m.staged.push(2);
        m.quarantined.push(Quarantined {
            version: 2,
            reason: "crash-loop".into(),
            detail: None,
        });
        assert_eq!(
            code(&decide(&r, "canary", None, &m, "0.1.0", &l)),
            "quarantined-here"
        );
        assert_eq!(
            code(&decide(&r, "canary", None, &on(3), "0.1.0", &l)),
            "below-last-known-good"
        );
        let mut r2 = release(2, 2, Phase::Rolling, 1);
        r2.plan.min_driver = Some("0.2.0".into());
        let r = rels(vec![release(1, 1, Phase::Complete, 1), r2]);
        assert_eq!(
            code(&decide(&r, "canary", None, &on(1), "0.1.9", &l)),
            "driver-too-old"
        );
        assert_eq!(
            code(&decide(&r, "canary", None, &on(1), "0.2.0", &l)),
            "stage-live"
        );
    }

    #[test]
    fn a_rollback_undoes_running_and_staged_versions_but_not_last_known_good() {
        let l = Ledger::default();
        let r = rels(vec![
            release(1, 1, Phase::Complete, 1),
            release(2, 2, Phase::RolledBack, 0),
        ]);
        let mut m = on(1);
        m.active = Some(2);
        m.healthy = false;
        m.staged.push(2);
        assert_eq!(
            code(&decide(&r, "canary", None, &m, "0.1.0", &l)),
            "rollback"
        );
        m.running = false;
        assert_eq!(
            code(&decide(&r, "canary", None, &m, "0.1.0", &l)),
            "rollback-waiting"
        );
        let mut m = on(1);
        m.staged.push(2);
        assert_eq!(
            code(&decide(&r, "canary", None, &m, "0.1.0", &l)),
            "unstage"
        );
        assert_eq!(
            code(&decide(&r, "canary", None, &on(2), "0.1.0", &l)),
            "rollback-blocked"
        );
        // ... but a newer release is still taken.
        let r3 = rels(vec![
            release(1, 1, Phase::Complete, 1),
            release(2, 2, Phase::RolledBack, 0),
            release(3, 3, Phase::Rolling, 0),
        ]);
        assert_eq!(
            code(&decide(&r3, "canary", None, &on(2), "0.1.0", &l)),
            "stage-live"
        );
        // Quarantined already: nothing to undo; v1 runs and the news is the rollback.
        let mut m = on(1);
        m.staged.push(2);
        m.quarantined.push(Quarantined {
            version: 2,
            reason: "crash-loop".into(),
            detail: None,
        });
        let a = decide(&r, "canary", None, &m, "0.1.0", &l);
        assert_eq!(code(&a), "halted");
        let Action::Idle { why, .. } = a else {
            unreachable!()
        };
        assert!(why.ends_with("this machine: v1 runs (healthy)"), "{why}");
    }

    #[test]
    fn pins_hold_or_name_a_version_and_live_activation_happens_once() {
        let mut r1 = release(1, 1, Phase::Complete, 1);
        let mut r3 = release(3, 3, Phase::Rolling, 1);
        r3.state.pins.rings.insert("1".into(), 1);
        r1.state.pins = r3.state.pins.clone();
        let r = rels(vec![r1.clone(), r3.clone()]);
        let l = Ledger::default();
        assert_eq!(
            code(&decide(&r, "m07", None, &on(1), "0.1.0", &l)),
            "pinned"
        );
        assert_eq!(
            code(&decide(&r, "canary", None, &on(1), "0.1.0", &l)),
            "stage-live"
        );
        r3.state.pins.machines.insert("canary".into(), 1);
        let r = rels(vec![r1, r3]);
        assert_eq!(
            code(&decide(&r, "canary", None, &on(1), "0.1.0", &l)),
            "running"
        );
        // Staged, ring live, host up: activated once, then left to the counter.
        let r = rels(vec![
            release(1, 1, Phase::Complete, 1),
            release(2, 2, Phase::Rolling, 0),
        ]);
        let mut m = on(1);
        m.staged.push(2);
        assert_eq!(
            code(&decide(&r, "canary", None, &m, "0.1.0", &l)),
            "activate"
        );
        let mut l2 = Ledger::default();
        l2.tried_live(2);
        assert_eq!(
            code(&decide(&r, "canary", None, &m, "0.1.0", &l2)),
            "staged"
        );
    }
}
