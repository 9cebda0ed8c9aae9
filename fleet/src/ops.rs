//! The publisher's and the responder's commands: publish a release, halt, resume, roll
//! back, pin, refresh. Each is one new signed metadata version (TUF versions only go up: a
//! halt or a rollback is new metadata, never a removed file), made under the publish lock
//! from the repository as it is on disk at that moment.

use std::path::Path;

use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::plan::state::{Phase, Pins, RolloutState};
use crate::release::{Release, Releases};
use crate::repo::edit::{self, Changes, Committed};
use crate::repo::keys::KeyDir;
use crate::time::now;

/// Largest content file accepted for publication (the validator's own limit is lower).
pub const MAX_CONTENT: u64 = 64 * 1024 * 1024;

/// Reads a content file, bounded.
pub fn read_content(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read as _;
    let f =
        std::fs::File::open(path).map_err(|e| crate::error::io_at("publish", "open", path, &e))?;
    let mut b = Vec::new();
    f.take(MAX_CONTENT.saturating_add(1))
        .read_to_end(&mut b)
        .map_err(|e| crate::error::io_at("publish", "read", path, &e))?;
    if b.len() as u64 > MAX_CONTENT {
        return Err(Error::refused(
            "too-large",
            format!("{}: larger than {MAX_CONTENT} bytes", path.display()),
        ));
    }
    Ok(b)
}

/// What a publish made.
#[derive(Debug)]
pub struct Published {
    /// The metadata version.
    pub committed: Committed,
    /// The release.
    pub release: Release,
    /// Releases superseded (their rollout stops; their rings take the new one).
    pub superseded: Vec<u64>,
}

/// Publishes `bytes` (already checked by the caller: content signature and validator,
/// returning `version`) with `plan`. Refused: a version already published, or not newer
/// than the newest published.
pub fn publish(
    repo: &Path,
    keys: &KeyDir,
    bytes: Vec<u8>,
    version: u64,
    plan: Plan,
) -> Result<Published> {
    plan.check()?;
    let (c, (release, superseded)) = edit::transact(repo, keys, |local| {
        let rels = &local.releases;
        if let Some((_, r)) = rels.by_version(version) {
            return Err(Error::refused(
                "already-published",
                format!(
                    "v{version} is already published (serial {}, {}): publish a new version, or `fleet resume` / `fleet rollback` it",
                    r.serial,
                    r.state.phase.name()
                ),
            ));
        }
        if let Some(newest) = rels.list.iter().map(|(_, r)| r.content_version).max()
            && newest > version
        {
            return Err(Error::refused(
                "not-newer",
                format!(
                    "v{version} is older than v{newest}, already published (content versions only go up)"
                ),
            ));
        }
        let t = now();
        let serial = rels
            .list
            .iter()
            .map(|(_, r)| r.serial)
            .max()
            .unwrap_or(0)
            .saturating_add(1);
        let pins = rels
            .head()
            .map(|h| h.state.pins.clone())
            .unwrap_or_default();
        let mut changes = Changes::default();
        let mut superseded = Vec::new();
        for (name, r) in &rels.list {
            if r.state.phase == Phase::Rolling {
                let mut n = r.clone();
                n.state.halt(
                    t,
                    "publisher",
                    format!("superseded by v{version} (serial {serial})"),
                    None,
                );
                changes.update.push((name.clone(), n));
                superseded.push(r.content_version);
            }
        }
        let release = Release {
            schema: crate::release::SCHEMA,
            content_version: version,
            serial,
            published_at: t,
            plan,
            state: RolloutState::start(t, pins),
        };
        changes
            .add
            .push((Release::target_name(version), bytes, release.clone()));
        Ok((Some(changes), (release, superseded)))
    })?;
    let committed = c.ok_or_else(|| Error::io("publish", "nothing was published"))?;
    Ok(Published {
        committed,
        release,
        superseded,
    })
}

/// Which release a responder's command is about: `version`, else the rolling one, else
/// the newest.
fn pick(rels: &Releases, version: Option<u64>) -> Result<&(String, Release)> {
    match version {
        Some(v) => rels.by_version(v).ok_or_else(|| {
            Error::refused("not-published", format!("v{v} is not a published release"))
        }),
        None => rels
            .list
            .iter()
            .rev()
            .find(|(_, r)| r.state.phase == Phase::Rolling)
            .or_else(|| rels.list.last())
            .ok_or_else(|| Error::refused("no-release", "the repository lists no release")),
    }
}

/// A responder's change to one release: `f` edits a copy (and says what it did).
fn responder(
    repo: &Path,
    keys: &KeyDir,
    version: Option<u64>,
    f: impl FnOnce(&Releases, &mut Release) -> Result<String>,
) -> Result<(Committed, Release, String)> {
    let (c, (r, what)) = edit::transact(repo, keys, |local| {
        let (name, r) = pick(&local.releases, version)?;
        let mut n = r.clone();
        let what = f(&local.releases, &mut n)?;
        let mut changes = Changes::default();
        changes.update.push((name.clone(), n.clone()));
        Ok((Some(changes), (n, what)))
    })?;
    let c = c.ok_or_else(|| Error::io("responder", "nothing was published"))?;
    Ok((c, r, what))
}

/// `fleet halt`: no machine takes the version any more; those that have it keep it.
pub fn halt(
    repo: &Path,
    keys: &KeyDir,
    version: Option<u64>,
    reason: &str,
) -> Result<(Committed, Release, String)> {
    responder(repo, keys, version, |_, r| {
        if !r.state.phase.admits() {
            return Err(Error::refused(
                "already-stopped",
                format!("v{} is already {}", r.content_version, r.state.phase.name()),
            ));
        }
        r.state.halt(now(), "responder", reason.to_owned(), None);
        Ok(format!("v{} halted: {reason}", r.content_version))
    })
}

/// `fleet resume`: a halted rollout continues where it stopped (the open ring's bake time
/// starts again). A rolled-back release is not resumed: its machines refused or undid it.
pub fn resume(
    repo: &Path,
    keys: &KeyDir,
    version: Option<u64>,
    reason: &str,
) -> Result<(Committed, Release, String)> {
    responder(repo, keys, version, |_, r| {
        match r.state.phase {
            Phase::Halted => {}
            Phase::RolledBack => {
                return Err(Error::refused(
                    "rolled-back",
                    format!(
                        "v{} was rolled back (machines undid or quarantined it): publish a new version instead",
                        r.content_version
                    ),
                ));
            }
            p => {
                return Err(Error::refused(
                    "not-halted",
                    format!("v{} is {} (expected halted)", r.content_version, p.name()),
                ));
            }
        }
        let t = now();
        let k = r.state.open_ring;
        if let Some(o) = r.state.opened_at.get_mut(k) {
            *o = t;
        }
        r.state.phase = Phase::Rolling;
        r.state.halt = None;
        r.state.note(
            t,
            "responder",
            format!("resumed at ring {k} (bake time restarts): {reason}"),
        );
        Ok(format!(
            "v{} resumed at ring {k}: {reason}",
            r.content_version
        ))
    })
}

/// `fleet rollback`: halt, and machines running the version go back to last-known-good.
pub fn rollback(
    repo: &Path,
    keys: &KeyDir,
    version: Option<u64>,
    reason: &str,
) -> Result<(Committed, Release, String)> {
    responder(repo, keys, version, |rels, r| {
        if r.state.phase == Phase::RolledBack {
            return Err(Error::refused(
                "already-stopped",
                format!("v{} is already rolled back", r.content_version),
            ));
        }
        let to = crate::controller::rollback_target(rels, r);
        r.state
            .halt(now(), "responder", reason.to_owned(), Some(to));
        Ok(format!(
            "v{} rolled back{}: {reason}",
            r.content_version,
            to.map(|v| format!(" (previous release v{v})"))
                .unwrap_or_default()
        ))
    })
}

/// Whom a pin is for.
#[derive(Debug, Clone)]
pub enum PinTarget {
    /// One machine.
    Machine(String),
    /// A ring (index).
    Ring(usize),
}

/// `fleet pin`: hold a machine or a ring at `version` (`None`: clear the pin). Pins live in
/// the newest release's state and are carried into every later release.
pub fn pin(
    repo: &Path,
    keys: &KeyDir,
    who: &PinTarget,
    version: Option<u64>,
) -> Result<(Committed, Release, String)> {
    let (c, (r, what)) = edit::transact(repo, keys, |local| {
        let rels = &local.releases;
        let Some((name, head)) = rels.list.last() else {
            return Err(Error::refused(
                "no-release",
                "the repository lists no release",
            ));
        };
        if let Some(v) = version
            && rels.by_version(v).is_none()
        {
            return Err(Error::refused(
                "not-published",
                format!("v{v} is not a published release (a pin names a listed version)"),
            ));
        }
        let mut n = head.clone();
        let pins: &mut Pins = &mut n.state.pins;
        let (map, key, label) = match who {
            PinTarget::Machine(m) => {
                crate::plan::check_id(m)?;
                (&mut pins.machines, m.clone(), format!("machine {m}"))
            }
            PinTarget::Ring(i) => (&mut pins.rings, i.to_string(), format!("ring {i}")),
        };
        let what = match version {
            Some(v) => {
                map.insert(key, v);
                format!("{label} pinned to v{v}")
            }
            None => {
                if map.remove(&key).is_none() {
                    return Err(Error::refused("not-pinned", format!("{label} has no pin")));
                }
                format!("{label} unpinned")
            }
        };
        n.state.note(now(), "responder", what.clone());
        let mut changes = Changes::default();
        changes.update.push((name.clone(), n.clone()));
        Ok((Some(changes), (n, what)))
    })?;
    let c = c.ok_or_else(|| Error::io("pin", "nothing was published"))?;
    Ok((c, r, what))
}

/// `fleet refresh`: re-sign targets, snapshot and timestamp with fresh expiry (the
/// controller does this by itself before half the timestamp's life is gone).
pub fn refresh(repo: &Path, keys: &KeyDir) -> Result<Committed> {
    let (c, ()) = edit::transact(repo, keys, |_| Ok((Some(Changes::default()), ())))?;
    c.ok_or_else(|| Error::io("refresh", "nothing was published"))
}
