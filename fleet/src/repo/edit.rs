//! The publisher's side: read the repository as it is on disk, apply changes (new content,
//! a release's plan state, removals), sign a new targets, snapshot and timestamp version
//! with the online keys, and put the files in place so that a reader never sees a mix:
//! content and versioned metadata first (new names), `timestamp.json` last, by rename.
//! One writer at a time: `KEYS/publish.lock` is held from reading to writing, so the
//! controller and a responder never overwrite each other's change.

use std::path::{Path, PathBuf};

use tough::editor::RepositoryEditor;
use tough::schema::Target;
use tough::{ExpirationEnforcement, FilesystemTransport, RepositoryLoader};

use super::keys::KeyDir;
use super::{block_on, dir_url, tuf_error, write_atomic};
use crate::error::{Error, Result, io_at};
use crate::release::{Release, Releases};
use crate::time::{after, now};

/// What one new metadata version changes.
#[derive(Debug, Default)]
pub struct Changes {
    /// New content: target name, file bytes, release.
    pub add: Vec<(String, Vec<u8>, Release)>,
    /// Existing targets whose release (custom metadata) changes.
    pub update: Vec<(String, Release)>,
    /// Targets no longer listed.
    pub remove: Vec<String>,
}

impl Changes {
    /// Whether nothing changes (a refresh: new versions and expiry only).
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.update.is_empty() && self.remove.is_empty()
    }
}

/// The versions a change was published as.
#[derive(Debug, Clone, Copy)]
pub struct Committed {
    /// New targets metadata version.
    pub targets_version: u64,
    /// New timestamp version.
    pub timestamp_version: u64,
    /// When the new timestamp expires.
    pub timestamp_expires: jiff::Timestamp,
}

/// The repository as it is on disk now.
#[derive(Debug)]
pub struct Local {
    /// tough's view (verified with the repository's own root chain; expiry not enforced,
    /// so an expired repository can be refreshed).
    pub repo: tough::Repository,
    /// Its releases.
    pub releases: Releases,
}

impl Local {
    /// The targets version.
    pub fn targets_version(&self) -> u64 {
        self.repo.targets().signed.version.get()
    }
}

/// The newest `N.root.json` in the metadata directory.
fn latest_root(meta: &Path) -> Result<PathBuf> {
    let rd = std::fs::read_dir(meta).map_err(|e| io_at("repo", "list", meta, &e))?;
    let mut best: Option<(u64, PathBuf)> = None;
    for ent in rd.flatten() {
        let name = ent.file_name().to_string_lossy().into_owned();
        if let Some(n) = name
            .strip_suffix(".root.json")
            .and_then(|n| n.parse::<u64>().ok())
            && best.as_ref().is_none_or(|(b, _)| n > *b)
        {
            best = Some((n, ent.path()));
        }
    }
    best.map(|(_, p)| p).ok_or_else(|| {
        Error::refused(
            "repo-missing",
            format!(
                "{} holds no root metadata (expected N.root.json: run `failsafectl fleet init` first)",
                meta.display()
            ),
        )
    })
}

/// Reads the repository in `repo` from disk.
pub fn load(repo: &Path) -> Result<Local> {
    let meta = repo.join("metadata");
    let root_path = meta.join("1.root.json");
    let root = std::fs::read(&root_path).map_err(|e| {
        Error::refused(
            "repo-missing",
            format!(
                "cannot read {} ({e}): not a fleet repository (run `failsafectl fleet init` first)",
                root_path.display()
            ),
        )
    })?;
    let meta_url = dir_url(&meta)?;
    let targets_url = dir_url(&repo.join("targets"))?;
    let repo = block_on(async {
        RepositoryLoader::new(&root, meta_url, targets_url)
            .transport(FilesystemTransport)
            .expiration_enforcement(ExpirationEnforcement::Unsafe)
            .load()
            .await
            .map_err(|e| tuf_error("read the repository", &e))
    })??;
    let releases = releases_of(&repo);
    Ok(Local { repo, releases })
}

/// The releases a loaded repository lists.
pub fn releases_of(repo: &tough::Repository) -> Releases {
    Releases::collect(repo.all_targets().map(|(n, t)| (n.raw(), &t.custom)))
}

/// Holds `KEYS/publish.lock` for the life of the value.
#[derive(Debug)]
pub struct PublishLock {
    _file: std::fs::File,
}

impl PublishLock {
    /// Waits for the lock (another publisher holds it only for one change).
    pub fn take(keys: &KeyDir) -> Result<PublishLock> {
        let p = keys.dir().join("publish.lock");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .map_err(|e| io_at("lock", "open", &p, &e))?;
        f.lock().map_err(|e| io_at("lock", "lock", &p, &e))?;
        Ok(PublishLock { _file: f })
    }
}

/// Under the publish lock: reads the repository, lets `f` decide the changes (`None`: no
/// change, nothing is written), publishes them as a new metadata version.
pub fn transact<T>(
    repo: &Path,
    keys: &KeyDir,
    f: impl FnOnce(&Local) -> Result<(Option<Changes>, T)>,
) -> Result<(Option<Committed>, T)> {
    let _lock = PublishLock::take(keys)?;
    let local = load(repo)?;
    let (changes, t) = f(&local)?;
    let Some(changes) = changes else {
        return Ok((None, t));
    };
    let c = commit(repo, keys, Some(local.repo), &changes)?;
    Ok((Some(c), t))
}

/// Publishes `changes` on top of what is on disk (used by `init` for the first version).
pub fn change(repo: &Path, keys: &KeyDir, changes: &Changes) -> Result<Committed> {
    let _lock = PublishLock::take(keys)?;
    let current = if repo.join("metadata").join("timestamp.json").exists() {
        Some(load(repo)?.repo)
    } else {
        None
    };
    commit(repo, keys, current, changes)
}

fn bump(v: Option<u64>) -> Result<std::num::NonZeroU64> {
    v.unwrap_or(0)
        .checked_add(1)
        .and_then(std::num::NonZeroU64::new)
        .ok_or_else(|| Error::refused("repo", "metadata version overflow"))
}

fn commit(
    repo: &Path,
    keys: &KeyDir,
    current: Option<tough::Repository>,
    changes: &Changes,
) -> Result<Committed> {
    let meta = repo.join("metadata");
    let targets_dir = repo.join("targets");
    let expiry = keys.settings()?.expiry;
    let sources = keys.sources(&["targets", "snapshot", "timestamp"])?;
    let root_path = latest_root(&meta)?;
    let old = current.as_ref().map(|r| {
        (
            r.targets().signed.version.get(),
            r.snapshot().signed.version.get(),
            r.timestamp().signed.version.get(),
        )
    });
    let existing: Vec<(String, Target)> = current
        .as_ref()
        .map(|r| {
            r.all_targets()
                .map(|(n, t)| (n.raw().to_owned(), t.clone()))
                .collect()
        })
        .unwrap_or_default();
    // New content files go in first, under their hash (consistent snapshots), so any
    // metadata that lists them finds them. The listing describes the bytes given, never
    // whatever a file at that path holds; a file there with other bytes is replaced.
    let mut added = Vec::new();
    for (name, bytes, release) in &changes.add {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
        let path = targets_dir.join(format!("{}.{name}", hex(digest.as_ref())));
        if std::fs::read(&path).ok().as_deref() != Some(bytes.as_slice()) {
            write_atomic(&path, bytes)?;
        }
        let mut t = Target {
            length: bytes.len() as u64,
            hashes: tough::schema::Hashes {
                sha256: digest.as_ref().to_vec().into(),
                _extra: std::collections::HashMap::new(),
            },
            custom: std::collections::HashMap::new(),
            _extra: std::collections::HashMap::new(),
        };
        t.custom
            .insert(crate::release::CUSTOM_KEY.to_owned(), release.to_custom()?);
        added.push((name.clone(), t));
    }
    let now = now();
    let ts_expires = after(now, expiry.timestamp);
    let (tv, sv, tsv) = (
        bump(old.map(|o| o.0))?,
        bump(old.map(|o| o.1))?,
        bump(old.map(|o| o.2))?,
    );
    let staging = tempfile::Builder::new()
        .prefix(".staging")
        .tempdir_in(repo)
        .map_err(|e| io_at("repo", "create a staging directory in", repo, &e))?;
    block_on(async {
        let mut ed = match current {
            Some(r) => RepositoryEditor::from_repo(&root_path, r).await,
            None => RepositoryEditor::new(&root_path).await,
        }
        .map_err(|e| tuf_error("edit the repository", &e))?;
        for name in &changes.remove {
            let tn = tough::TargetName::new(name.as_str())
                .map_err(|e| tuf_error("remove a target", &e))?;
            ed.remove_target(&tn)
                .map_err(|e| tuf_error("remove a target", &e))?;
        }
        for (name, release) in &changes.update {
            let Some((_, t)) = existing.iter().find(|(n, _)| n == name) else {
                return Err(Error::refused(
                    "target-missing",
                    format!("target {name} is not listed (expected a published release)"),
                ));
            };
            let mut t = t.clone();
            t.custom
                .insert(crate::release::CUSTOM_KEY.to_owned(), release.to_custom()?);
            ed.add_target(name.as_str(), t)
                .map_err(|e| tuf_error("update a target", &e))?;
        }
        for (name, t) in added {
            ed.add_target(name.as_str(), t)
                .map_err(|e| tuf_error("add a target", &e))?;
        }
        ed.targets_version(tv)
            .map_err(|e| tuf_error("set the targets version", &e))?
            .targets_expires(after(now, expiry.targets))
            .map_err(|e| tuf_error("set the targets expiry", &e))?
            .snapshot_version(sv)
            .snapshot_expires(after(now, expiry.snapshot))
            .timestamp_version(tsv)
            .timestamp_expires(ts_expires);
        let signed = ed
            .sign(&sources)
            .await
            .map_err(|e| tuf_error("sign the new metadata", &e))?;
        signed
            .write(staging.path())
            .await
            .map_err(|e| tuf_error("write the new metadata", &e))
    })??;
    // Versioned files first (new names: nobody reads them yet), timestamp.json last.
    let mut names: Vec<String> = std::fs::read_dir(staging.path())
        .map_err(|e| io_at("repo", "list", staging.path(), &e))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort_by_key(|n| n == "timestamp.json");
    for n in names {
        let from = staging.path().join(&n);
        let to = meta.join(&n);
        if n.ends_with(".root.json") && to.exists() {
            continue;
        }
        std::fs::rename(&from, &to).map_err(|e| io_at("repo", "move into place", &to, &e))?;
    }
    if let Ok(d) = std::fs::File::open(&meta) {
        let _ = d.sync_all();
    }
    Ok(Committed {
        targets_version: tv.get(),
        timestamp_version: tsv.get(),
        timestamp_expires: ts_expires,
    })
}

/// Lower-case hex.
pub fn hex(b: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(b.len().saturating_mul(2));
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}
