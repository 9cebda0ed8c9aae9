//! The controller's rules for the open ring of a rolling release (docs/fleet.md, "The
//! controller's rules"):
//!
//! - **Breach → halt and roll back**, at once, whatever the bake time: in any open ring,
//!   failed machines (quarantined or rolled back the version, crashed on it, or took it
//!   and went silent) above the ring's `max_failure_percent` of the machines that took it.
//! - **Insufficient data → halt and roll back**: the open ring's bake time and the silence
//!   limit have both passed and fewer machines than needed report it healthy (AWS
//!   AppConfig rolls back on an alarm *or insufficient data*).
//! - **Advance**: bake time passed, no breach, at least `min_reports` healthy reports (or
//!   every machine of a smaller ring; an empty ring only waits its bake time, but a plan
//!   no machine has reported in never advances). The last ring's advance completes the
//!   rollout.
//! - Otherwise **wait**, and say for what.

use super::tally::RingTally;
use crate::release::Release;
use crate::time::{secs_between, show_duration};

/// What the controller does with a release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing yet: why.
    Wait(String),
    /// Open the next ring: why.
    Advance(String),
    /// The last ring baked healthy: why.
    Complete(String),
    /// Halt and publish the rollback: why.
    Halt(String),
}

/// Decides for a rolling `release` given its ring counts.
pub fn decide(release: &Release, rings: &[RingTally], now: jiff::Timestamp) -> Decision {
    let k = release.state.open_ring;
    let v = release.content_version;
    for t in rings.iter().take(k.saturating_add(1)) {
        let max = release
            .plan
            .rings
            .get(t.ring)
            .map_or(0, |r| r.max_failure_percent);
        let failed = u64::from(t.failed());
        let expected = u64::from(t.expected());
        if failed > 0 && failed.saturating_mul(100) > u64::from(max).saturating_mul(expected) {
            return Decision::Halt(format!(
                "ring {} `{}`: {failed} of {expected} machine(s) that took v{v} failed ({}%, above the threshold of {max}%): {}",
                t.ring,
                t.name,
                t.failure_percent(),
                t.failures.join("; ")
            ));
        }
    }
    let (Some(ring), Some(t), Some(opened)) = (
        release.plan.rings.get(k),
        rings.get(k),
        release.state.opened(k),
    ) else {
        return Decision::Wait("the open ring is not in the plan".into());
    };
    let open_for = secs_between(opened, now);
    let need = u64::from(ring.min_reports).min(u64::from(t.machines));
    let healthy = u64::from(t.healthy);
    let baked = open_for >= ring.bake_secs;
    let last = k.saturating_add(1) >= release.plan.rings.len();
    let done = |what: String| {
        if last {
            Decision::Complete(what)
        } else {
            Decision::Advance(what)
        }
    };
    if rings.iter().all(|r| r.machines == 0) {
        return Decision::Wait("no machine of the plan has reported yet".into());
    }
    if t.machines == 0 {
        return if baked {
            done(format!(
                "ring {k} `{}` has no machines; its bake time {} passed",
                ring.name,
                show_duration(ring.bake_secs)
            ))
        } else {
            Decision::Wait(format!(
                "ring {k} `{}` has no machines; bake {} of {}",
                ring.name,
                show_duration(open_for),
                show_duration(ring.bake_secs)
            ))
        };
    }
    if baked && healthy >= need {
        return done(format!(
            "ring {k} `{}`: {healthy} healthy report(s) (needed {need}), {} failed, baked {} (bake time {})",
            ring.name,
            t.failed(),
            show_duration(open_for),
            show_duration(ring.bake_secs)
        ));
    }
    let deadline = ring
        .bake_secs
        .saturating_add(release.plan.silent_after_secs);
    if open_for > deadline {
        return Decision::Halt(format!(
            "ring {k} `{}`: insufficient data: {healthy} healthy report(s) of the {need} needed, {} after it opened (bake {} + silence limit {}); {} pending, {} offline, {} not taken",
            ring.name,
            show_duration(open_for),
            show_duration(ring.bake_secs),
            show_duration(release.plan.silent_after_secs),
            t.pending,
            t.offline,
            t.not_taken
        ));
    }
    Decision::Wait(format!(
        "ring {k} `{}`: {healthy} of {need} healthy report(s), baked {} of {}",
        ring.name,
        show_duration(open_for),
        show_duration(ring.bake_secs)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Plan;
    use crate::plan::state::{Pins, RolloutState};

    fn release(open: usize, opened_secs_ago: &[i64]) -> (Release, jiff::Timestamp) {
        let now = jiff::Timestamp::from_second(1_000_000).unwrap();
        let plan = Plan::from_toml(
            "silent_after = \"60s\"\n[[ring]]\nmachines = [\"a\", \"b\"]\nbake = \"10m\"\nmin_reports = 2\n[[ring]]\npercent = 10\nbake = \"1h\"\nmax_failure_percent = 10\nmin_reports = 3\n[[ring]]\npercent = 100\n",
        )
        .unwrap();
        let mut state = RolloutState::start(now, Pins::default());
        state.open_ring = open;
        state.opened_at = opened_secs_ago
            .iter()
            .map(|s| jiff::Timestamp::from_second(1_000_000 - s).unwrap())
            .collect();
        (
            Release {
                schema: 1,
                content_version: 2,
                serial: 1,
                published_at: now,
                plan,
                state,
            },
            now,
        )
    }

    fn ring(i: usize, machines: u32, healthy: u32, failed: u32) -> RingTally {
        RingTally {
            ring: i,
            name: format!("r{i}"),
            machines,
            healthy,
            quarantined: failed,
            failures: (0..failed)
                .map(|n| format!("m{n} quarantined v2"))
                .collect(),
            ..RingTally::default()
        }
    }

    fn kind(d: &Decision) -> &'static str {
        match d {
            Decision::Wait(_) => "wait",
            Decision::Advance(_) => "advance",
            Decision::Complete(_) => "complete",
            Decision::Halt(_) => "halt",
        }
    }

    #[test]
    fn a_failure_above_the_threshold_halts_at_once_whatever_the_bake() {
        let (r, now) = release(0, &[5]);
        let d = decide(
            &r,
            &[ring(0, 2, 1, 1), ring(1, 5, 0, 0), ring(2, 40, 0, 0)],
            now,
        );
        assert_eq!(kind(&d), "halt");
        let Decision::Halt(why) = d else {
            unreachable!()
        };
        assert!(why.starts_with("ring 0 `r0`: 1 of 2 machine(s) that took v2 failed (50%, above the threshold of 0%): m0 quarantined v2"), "{why}");
        // Ring 1 tolerates 10%: 1 of 20 (5%) is no breach; 3 of 20 (15%) is.
        let (r, now) = release(1, &[7200, 4000]);
        assert_eq!(
            kind(&decide(
                &r,
                &[ring(0, 2, 2, 0), ring(1, 20, 19, 1), ring(2, 40, 0, 0)],
                now
            )),
            "advance"
        );
        assert_eq!(
            kind(&decide(
                &r,
                &[ring(0, 2, 2, 0), ring(1, 20, 17, 3), ring(2, 40, 0, 0)],
                now
            )),
            "halt"
        );
    }

    #[test]
    fn the_next_ring_opens_only_after_bake_with_enough_healthy_reports() {
        let (r, now) = release(0, &[599]);
        let d = decide(
            &r,
            &[ring(0, 2, 2, 0), ring(1, 5, 0, 0), ring(2, 40, 0, 0)],
            now,
        );
        assert_eq!(kind(&d), "wait", "{d:?}");
        let (r, now) = release(0, &[600]);
        assert_eq!(
            kind(&decide(
                &r,
                &[ring(0, 2, 2, 0), ring(1, 5, 0, 0), ring(2, 40, 0, 0)],
                now
            )),
            "advance"
        );
        assert_eq!(
            kind(&decide(
                &r,
                &[ring(0, 2, 1, 0), ring(1, 5, 0, 0), ring(2, 40, 0, 0)],
                now
            )),
            "wait"
        );
        // The last ring completes.
        let (r, now) = release(2, &[9000, 8000, 10]);
        assert_eq!(
            kind(&decide(
                &r,
                &[ring(0, 2, 2, 0), ring(1, 5, 5, 0), ring(2, 40, 1, 0)],
                now
            )),
            "complete"
        );
        // No machine of the plan has reported: never advances.
        let (r, now) = release(0, &[100_000]);
        assert_eq!(
            kind(&decide(
                &r,
                &[ring(0, 0, 0, 0), ring(1, 0, 0, 0), ring(2, 0, 0, 0)],
                now
            )),
            "wait"
        );
    }

    #[test]
    fn too_few_healthy_reports_after_bake_and_the_silence_limit_halt() {
        // 10 min bake + 60 s silence limit = 660 s.
        let (r, now) = release(0, &[660]);
        assert_eq!(
            kind(&decide(
                &r,
                &[ring(0, 2, 1, 0), ring(1, 5, 0, 0), ring(2, 40, 0, 0)],
                now
            )),
            "wait"
        );
        let (r, now) = release(0, &[661]);
        let d = decide(
            &r,
            &[ring(0, 2, 1, 0), ring(1, 5, 0, 0), ring(2, 40, 0, 0)],
            now,
        );
        let Decision::Halt(why) = d else {
            panic!("{d:?}")
        };
        assert!(
            why.contains("insufficient data: 1 healthy report(s) of the 2 needed"),
            "{why}"
        );
    }
}
