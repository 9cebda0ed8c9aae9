//! The controller (`fleet advance`, one pass; `--follow`, a loop): reads every machine's
//! newest report from the broker, applies the rules ([`rules`]) to the rolling release
//! over the per-ring counts ([`tally`]), and publishes the result as a new metadata
//! version: the next ring open, the rollout complete, or halted with the reason and rolled
//! back. It also re-signs the timestamp before half its lifetime is gone, so agents never
//! see a live repository expire. Without the broker it decides nothing (no data is not
//! good data) and says so; silence is counted only from when it last saw the broker come
//! up (`KEYS/controller.json`), so a broker outage does not make the fleet look silent.

pub mod rules;
pub mod tally;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::broker::Broker;
use crate::error::{Error, Result};
use crate::plan::state::Phase;
use crate::release::Release;
use crate::repo::edit::{self, Changes, Committed};
use crate::repo::keys::KeyDir;
use crate::report::Report;
use crate::time::{now, secs_between};
pub use rules::Decision;

/// The controller's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Repository directory.
    pub repo: PathBuf,
    /// Keys (targets, snapshot, timestamp).
    pub keys: KeyDir,
    /// The broker.
    pub broker: Broker,
    /// How long the broker may stay quiet before all retained reports are taken as read.
    pub quiet: Duration,
}

/// `KEYS/controller.json`.
#[derive(Serialize, Deserialize, Debug, Default)]
struct Memory {
    /// Since when the broker has answered without a gap (`None`: it did not last time).
    broker_up_since: Option<jiff::Timestamp>,
}

fn memory_path(keys: &KeyDir) -> PathBuf {
    keys.dir().join("controller.json")
}

fn recall(keys: &KeyDir) -> Memory {
    std::fs::read(memory_path(keys))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn remember(keys: &KeyDir, m: &Memory) -> Result<()> {
    let b = serde_json::to_vec_pretty(m).map_err(|e| {
        Error::io(
            "controller",
            format!("cannot encode controller memory: {e}"),
        )
    })?;
    crate::repo::write_atomic(&memory_path(keys), &b)
}

/// One pass's result.
#[derive(Debug)]
pub struct Outcome {
    /// What was decided, for the rolling release (serial, version, decision).
    pub decision: Option<(u64, u64, Decision)>,
    /// The new metadata version, when something was published.
    pub published: Option<Committed>,
    /// The broker could not be read: nothing was decided.
    pub broker_error: Option<Error>,
    /// Reports that could not be read (machine: error).
    pub bad_reports: Vec<String>,
    /// Machines that reported.
    pub machines: usize,
}

/// Reads the reports (parsed ones, and the errors of the rest).
pub fn read_reports(
    b: &Broker,
    quiet: Duration,
) -> Result<(BTreeMap<String, Report>, Vec<String>)> {
    let all = b.collect("failsafe-controller", quiet)?;
    let mut ok = BTreeMap::new();
    let mut bad = Vec::new();
    for (id, r) in all {
        match r {
            Ok(r) => {
                ok.insert(id, r);
            }
            Err(e) => bad.push(e.msg),
        }
    }
    Ok((ok, bad))
}

/// The version machines go back to when `r` is rolled back: the newest older release that
/// was not rolled back itself (for the record; each machine returns to its own
/// last-known-good).
pub fn rollback_target(rels: &crate::release::Releases, r: &Release) -> Option<u64> {
    rels.list
        .iter()
        .rev()
        .filter(|(_, x)| x.serial < r.serial && x.state.phase != Phase::RolledBack)
        .map(|(_, x)| x.content_version)
        .next()
}

/// Whether the timestamp should be re-signed now (less than half its lifetime left).
fn stale(local: &edit::Local, keys: &KeyDir) -> Result<bool> {
    let life = keys.settings()?.expiry.timestamp;
    let left = secs_between(now(), local.repo.timestamp().signed.expires);
    Ok(left < life / 2)
}

/// One pass.
pub fn advance(cfg: &Config) -> Result<Outcome> {
    let mut mem = recall(&cfg.keys);
    let reports = read_reports(&cfg.broker, cfg.quiet);
    let (reports, bad, broker_error) = match reports {
        Ok((r, b)) => {
            if mem.broker_up_since.is_none() {
                mem.broker_up_since = Some(now());
            }
            (Some(r), b, None)
        }
        Err(e) => {
            mem.broker_up_since = None;
            (None, Vec::new(), Some(e))
        }
    };
    remember(&cfg.keys, &mem)?;
    let silence_from = mem.broker_up_since.unwrap_or_else(now);
    let machines = reports.as_ref().map_or(0, BTreeMap::len);
    let (published, decision) = edit::transact(&cfg.repo, &cfg.keys, |local| {
        let refresh = stale(local, &cfg.keys)?;
        let rolling = local
            .releases
            .list
            .iter()
            .rev()
            .find(|(_, r)| r.state.phase == Phase::Rolling);
        let mut decision = None;
        let mut changes = Changes::default();
        if let (Some((name, rel)), Some(reports)) = (rolling, &reports) {
            let t = now();
            let (rings, _) = tally::tally(rel, reports, t, silence_from);
            let d = rules::decide(rel, &rings, t);
            let mut next = rel.clone();
            match &d {
                Decision::Wait(_) => {}
                Decision::Advance(why) => {
                    let n = next.state.open_ring.saturating_add(1);
                    next.state
                        .open_next(t, "controller", format!("ring {n} opened: {why}"));
                }
                Decision::Complete(why) => {
                    next.state.phase = Phase::Complete;
                    next.state.note(t, "controller", format!("complete: {why}"));
                }
                Decision::Halt(why) => {
                    let to = rollback_target(&local.releases, rel);
                    next.state.halt(t, "controller", why.clone(), Some(to));
                }
            }
            if next != *rel {
                changes.update.push((name.clone(), next));
            }
            decision = Some((rel.serial, rel.content_version, d));
        }
        let publish = !changes.is_empty() || refresh;
        Ok((publish.then_some(changes), decision))
    })?;
    Ok(Outcome {
        decision,
        published,
        broker_error,
        bad_reports: bad,
        machines,
    })
}

/// Exported for `fleet status`: every report and the broker's state.
pub fn silence_origin(keys: &KeyDir) -> Option<jiff::Timestamp> {
    recall(keys).broker_up_since
}

/// The path of a repository's metadata directory (for messages).
pub fn metadata_dir(repo: &Path) -> PathBuf {
    repo.join("metadata")
}
