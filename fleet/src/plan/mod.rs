//! The rollout plan: rings (by explicit membership or by a cumulative share of the fleet),
//! bake time, failure threshold and minimum healthy reports per ring, how each ring
//! activates (live or at the next boot), when a silent machine counts as failed, and the
//! minimum driver version. Operators write it in TOML ([`Plan::from_toml`]); it travels as
//! JSON inside the target's custom metadata. Format: docs/fleet.md, "The plan".

pub mod state;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::time::{parse_duration, show_duration};

/// Most rings a plan may have.
pub const MAX_RINGS: usize = 16;
/// Most machines a ring may name explicitly (larger rings go by percentage).
pub const MAX_MEMBERS: usize = 10_000;
/// Longest machine id (characters): Windows' `MachineGuid` is 36, systemd's machine id 32.
pub const MAX_ID_LEN: usize = 128;

/// How a ring's machines take the version.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Activation {
    /// `stage --live`: the running driver activates it now (through the same boot-attempt
    /// rules as a start).
    Live,
    /// `stage`: the next start activates it.
    NextBoot,
}

impl Activation {
    /// As the plan writes it.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Live => "live",
            Activation::NextBoot => "next-boot",
        }
    }
}

/// One ring.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Ring {
    /// Shown in status and halt reasons.
    pub name: String,
    /// Explicit membership: these machine ids (the ring's only members).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machines: Option<Vec<String>>,
    /// Membership by bucket: the cumulative share of the fleet (1..=100) this ring and the
    /// percentage rings before it reach.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<u8>,
    /// Seconds the ring runs the version before the next ring may open.
    pub bake_secs: u64,
    /// Highest tolerated share of failed machines (0..=100); above it the rollout halts.
    pub max_failure_percent: u8,
    /// Healthy reports on the version the ring needs before the next ring opens.
    pub min_reports: u32,
    /// Live or at the next boot.
    pub activation: Activation,
}

/// A validated plan.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// In order: ring 0 opens at publication.
    pub rings: Vec<Ring>,
    /// A machine that took the version (or reported since its ring opened) and has not
    /// reported for this long counts as failed.
    pub silent_after_secs: u64,
    /// Machines whose driver is older do not take the version (dotted numbers, `0.1.0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_driver: Option<String>,
}

/// The TOML an operator writes (durations with units; unknown keys refused).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Source {
    #[serde(rename = "ring", default)]
    rings: Vec<RingSource>,
    silent_after: Option<String>,
    min_driver: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RingSource {
    name: Option<String>,
    machines: Option<Vec<String>>,
    percent: Option<i64>,
    bake: Option<String>,
    max_failure_percent: Option<i64>,
    min_reports: Option<i64>,
    activation: Option<String>,
}

/// The default silence limit: 10 minutes (an agent reports every pass; a scheduled task
/// every few minutes).
pub const DEFAULT_SILENT_AFTER: u64 = 600;

impl Plan {
    /// Reads a plan written in TOML; every rule is checked ([`Plan::check`]).
    pub fn from_toml(text: &str) -> Result<Plan> {
        let src: Source = toml::from_str(text).map_err(|e| {
            Error::refused("plan-invalid", format!("plan: {}", e.to_string().trim()))
        })?;
        let mut rings = Vec::new();
        for (i, r) in src.rings.into_iter().enumerate() {
            let at = |f: &str| format!("plan ring {i} {f}");
            let num =
                |f: &str, v: Option<i64>, lo: i64, hi: i64, default: Option<i64>| -> Result<i64> {
                    match v.or(default) {
                        Some(n) if (lo..=hi).contains(&n) => Ok(n),
                        Some(n) => Err(Error::refused(
                            "plan-invalid",
                            format!("{}: {n} is out of range (expected {lo}..={hi})", at(f)),
                        )),
                        None => Err(Error::refused(
                            "plan-invalid",
                            format!("{}: missing (expected a number {lo}..={hi})", at(f)),
                        )),
                    }
                };
            let activation = match r.activation.as_deref() {
                None | Some("live") => Activation::Live,
                Some("next-boot") => Activation::NextBoot,
                Some(other) => {
                    return Err(Error::refused(
                        "plan-invalid",
                        format!(
                            "{}: `{other}` (expected live or next-boot)",
                            at("activation")
                        ),
                    ));
                }
            };
            let percent = match r.percent {
                Some(p) => {
                    Some(u8::try_from(num("percent", Some(p), 1, 100, None)?).unwrap_or(100))
                }
                None => None,
            };
            rings.push(Ring {
                name: r.name.unwrap_or_else(|| format!("ring{i}")),
                machines: r.machines,
                percent,
                bake_secs: parse_duration(&at("bake"), r.bake.as_deref().unwrap_or("0s"))?,
                max_failure_percent: u8::try_from(num(
                    "max_failure_percent",
                    r.max_failure_percent,
                    0,
                    100,
                    Some(0),
                )?)
                .unwrap_or(0),
                min_reports: u32::try_from(num(
                    "min_reports",
                    r.min_reports,
                    1,
                    1_000_000_000,
                    Some(1),
                )?)
                .unwrap_or(1),
                activation,
            });
        }
        let plan = Plan {
            rings,
            silent_after_secs: match &src.silent_after {
                Some(s) => parse_duration("plan silent_after", s)?,
                None => DEFAULT_SILENT_AFTER,
            },
            min_driver: src.min_driver,
        };
        plan.check()?;
        Ok(plan)
    }

    /// The rules every plan obeys, whether written by an operator or read from metadata.
    pub fn check(&self) -> Result<()> {
        let bad = |m: String| Err(Error::refused("plan-invalid", m));
        if self.rings.is_empty() {
            return bad("plan: no rings (expected at least one [[ring]])".into());
        }
        if self.rings.len() > MAX_RINGS {
            return bad(format!(
                "plan: {} rings (expected at most {MAX_RINGS})",
                self.rings.len()
            ));
        }
        if self.silent_after_secs == 0 {
            return bad("plan silent_after: 0s (expected at least 1s: a report takes time)".into());
        }
        if let Some(d) = &self.min_driver
            && parse_dotted(d).is_none()
        {
            return bad(format!(
                "plan min_driver: `{d}` is not a version (expected dotted numbers such as 0.1.0)"
            ));
        }
        let mut seen: Vec<&str> = Vec::new();
        let mut last_percent: Option<(usize, u8)> = None;
        for (i, r) in self.rings.iter().enumerate() {
            let at = format!("plan ring {i} (`{}`)", r.name);
            match (&r.machines, r.percent) {
                (Some(_), Some(_)) => {
                    return bad(format!(
                        "{at}: has both machines and percent (expected one: explicit membership or a share of the fleet)"
                    ));
                }
                (None, None) => {
                    return bad(format!(
                        "{at}: has neither machines nor percent (expected one: machines = [\"id\", ...] or percent = 1..100)"
                    ));
                }
                (Some(ms), None) => {
                    if ms.is_empty() || ms.len() > MAX_MEMBERS {
                        return bad(format!(
                            "{at}: {} machines (expected 1..={MAX_MEMBERS})",
                            ms.len()
                        ));
                    }
                    for m in ms {
                        check_id(m).map_err(|e| {
                            Error::refused("plan-invalid", format!("{at}: {}", e.msg))
                        })?;
                        if seen.contains(&m.as_str()) {
                            return bad(format!(
                                "{at}: machine `{m}` is named twice (expected each machine in one ring)"
                            ));
                        }
                        seen.push(m);
                    }
                    if u64::from(r.min_reports) > ms.len() as u64 {
                        return bad(format!(
                            "{at}: min_reports {} exceeds its {} machines (the ring could never advance)",
                            r.min_reports,
                            ms.len()
                        ));
                    }
                }
                (None, Some(p)) => {
                    if !(1..=100).contains(&p) {
                        return bad(format!("{at}: percent {p} (expected 1..=100)"));
                    }
                    if let Some((j, q)) = last_percent
                        && p <= q
                    {
                        return bad(format!(
                            "{at}: percent {p} is not above ring {j}'s {q} (percent is the cumulative share of the fleet, so each ring's must be larger)"
                        ));
                    }
                    last_percent = Some((i, p));
                }
            }
            if r.max_failure_percent > 100 {
                return bad(format!(
                    "{at}: max_failure_percent {} (expected 0..=100)",
                    r.max_failure_percent
                ));
            }
            if r.min_reports == 0 {
                return bad(format!(
                    "{at}: min_reports 0 (expected at least 1: a ring with no data must not advance)"
                ));
            }
            if r.bake_secs > crate::time::MAX_SECS || r.name.is_empty() || r.name.len() > 64 {
                return bad(format!(
                    "{at}: bake {}s or name length {} out of range (expected bake <= 400d, name 1..=64 characters)",
                    r.bake_secs,
                    r.name.len()
                ));
            }
        }
        Ok(())
    }

    /// One line per ring, as `status` and `publish` print the plan.
    pub fn describe(&self) -> Vec<String> {
        self.rings
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let who = match (&r.machines, r.percent) {
                    (Some(ms), _) => format!("{} named machine(s)", ms.len()),
                    (None, Some(p)) => format!("up to {p}% of the fleet"),
                    (None, None) => "nobody".to_owned(),
                };
                format!(
                    "ring {i} `{}`: {who}, {}, bake {}, halt above {}% failed, needs {} healthy report(s)",
                    r.name,
                    r.activation.name(),
                    show_duration(r.bake_secs),
                    r.max_failure_percent,
                    r.min_reports
                )
            })
            .collect()
    }
}

/// A machine id: 1..=128 characters of `A-Z a-z 0-9 - _ . :` (it becomes part of an MQTT
/// topic and a file name, so no `/`, `+`, `#` or spaces).
pub fn check_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
    if ok {
        Ok(())
    } else {
        Err(Error::refused(
            "machine-id-invalid",
            format!(
                "machine id `{id}` (expected 1..={MAX_ID_LEN} characters of A-Z a-z 0-9 - _ . :)"
            ),
        ))
    }
}

/// `1.2.3` as numbers (up to 4 parts), for the minimum driver version.
pub fn parse_dotted(s: &str) -> Option<Vec<u64>> {
    let parts: Option<Vec<u64>> = s.split('.').map(|p| p.parse().ok()).collect();
    parts.filter(|p| !p.is_empty() && p.len() <= 4)
}

/// Whether `have` is at least `need` (missing parts count as 0).
pub fn version_at_least(have: &[u64], need: &[u64]) -> bool {
    let n = have.len().max(need.len());
    for i in 0..n {
        let a = have.get(i).copied().unwrap_or(0);
        let b = need.get(i).copied().unwrap_or(0);
        if a != b {
            return a > b;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const JULY: &str = r#"
silent_after = "30s"
min_driver = "0.1.0"
[[ring]]
name = "canary"
machines = ["m00", "m01"]
bake = "10m"
min_reports = 2
[[ring]]
name = "early"
percent = 10
bake = "1h"
max_failure_percent = 5
min_reports = 3
activation = "next-boot"
[[ring]]
name = "broad"
percent = 100
"#;

    #[test]
    fn a_plan_reads_with_defaults_and_units() {
        let p = Plan::from_toml(JULY).unwrap();
        assert_eq!(p.rings.len(), 3);
        assert_eq!(p.rings[0].bake_secs, 600);
        assert_eq!(p.rings[0].activation, Activation::Live);
        assert_eq!(p.rings[1].activation, Activation::NextBoot);
        assert_eq!(p.rings[2].min_reports, 1);
        assert_eq!(p.rings[2].max_failure_percent, 0);
        assert_eq!(p.silent_after_secs, 30);
        // It survives the trip through metadata.
        let back: Plan = serde_json::from_value(serde_json::to_value(&p).unwrap()).unwrap();
        assert_eq!(back, p);
        back.check().unwrap();
    }

    fn refused(src: &str) -> Error {
        let e = Plan::from_toml(src).unwrap_err();
        assert_eq!(e.code, "plan-invalid", "{e}");
        e
    }

    #[test]
    fn bad_plans_are_refused_with_the_ring_and_the_rule() {
        let e = refused("[[ring]]\nmachines = [\"a\"]\npercent = 5\n");
        assert!(e.msg.contains("plan ring 0 (`ring0`): has both"), "{e}");
        let e = refused("[[ring]]\nbake = \"1h\"\n");
        assert!(e.msg.contains("has neither machines nor percent"), "{e}");
        let e = refused("[[ring]]\npercent = 20\n[[ring]]\npercent = 10\n");
        assert!(
            e.msg
                .contains("plan ring 1 (`ring1`): percent 10 is not above ring 0's 20"),
            "{e}"
        );
        let e = refused("[[ring]]\nmachines = [\"a\"]\nmin_reports = 2\n");
        assert!(
            e.msg.contains("min_reports 2 exceeds its 1 machines"),
            "{e}"
        );
        let e = refused("[[ring]]\npercent = 100\nmin_reports = 0\n");
        assert!(
            e.msg.contains("plan ring 0 min_reports: 0 is out of range"),
            "{e}"
        );
        let e = refused("[[ring]]\npercent = 101\n");
        assert!(
            e.msg
                .contains("percent: 101 is out of range (expected 1..=100)"),
            "{e}"
        );
        let e = refused("[[ring]]\nmachines = [\"a/b\"]\n");
        assert!(e.msg.contains("machine id `a/b`"), "{e}");
        let e = refused("[[ring]]\nmachines = [\"a\"]\n[[ring]]\nmachines = [\"a\"]\n");
        assert!(e.msg.contains("machine `a` is named twice"), "{e}");
        let e = refused("[[ring]]\npercent = 100\nactivation = \"now\"\n");
        assert!(
            e.msg
                .contains("activation: `now` (expected live or next-boot)"),
            "{e}"
        );
        let e = refused("rings = 3\n");
        assert!(e.msg.contains("unknown field `rings`"), "{e}");
        let e = refused("");
        assert!(e.msg.contains("no rings"), "{e}");
        let e = refused("min_driver = \"one\"\n[[ring]]\npercent = 100\n");
        assert!(e.msg.contains("min_driver: `one` is not a version"), "{e}");
    }

    #[test]
    fn driver_versions_compare_numerically() {
        let v = |s| parse_dotted(s).unwrap();
        assert!(version_at_least(&v("0.10.0"), &v("0.9.1")));
        assert!(version_at_least(&v("1.0"), &v("1.0.0")));
        assert!(!version_at_least(&v("0.1.0"), &v("0.2")));
        assert!(parse_dotted("1.x").is_none());
    }
}
