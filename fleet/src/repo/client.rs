//! The agent's side of TUF: load the repository over HTTP (or `file://`) with a datastore
//! that persists between runs — the trusted root chain and the newest timestamp, snapshot
//! and targets seen, so replayed older metadata is refused (rollback protection) — with
//! expiry enforced (freeze protection), and read targets by their signed length and
//! SHA-256. Nothing here decides what to install: that is [`crate::agent`].

use std::path::PathBuf;
use std::time::Duration;

use tough::{
    DefaultTransport, ExpirationEnforcement, HttpTransportBuilder, IntoVec as _, RepositoryLoader,
};

use super::{block_on, tuf_error};
use crate::error::{Error, Result, io_at};
use crate::release::Releases;

/// Where the repository is and what the agent trusts.
#[derive(Debug, Clone)]
pub struct Remote {
    /// Base URL of `metadata/`.
    pub metadata: url::Url,
    /// Base URL of `targets/`.
    pub targets: url::Url,
    /// The trust anchor shipped with the agent (`1.root.json` from `fleet init`).
    pub root: Vec<u8>,
    /// The persistent datastore (created if missing).
    pub datastore: PathBuf,
    /// Per request.
    pub timeout: Duration,
}

impl Remote {
    /// `base` is the repository's URL (the directory holding `metadata/` and `targets/`).
    pub fn new(base: &str, root: Vec<u8>, datastore: PathBuf) -> Result<Remote> {
        let mut b = base.to_owned();
        if !b.ends_with('/') {
            b.push('/');
        }
        let base = url::Url::parse(&b).map_err(|e| {
            Error::refused(
                "url-invalid",
                format!(
                    "repository URL `{base}`: {e} (expected http://host/path/ or file:///dir/)"
                ),
            )
        })?;
        let join = |p: &str| {
            base.join(p)
                .map_err(|e| Error::refused("url-invalid", format!("repository URL `{base}`: {e}")))
        };
        Ok(Remote {
            metadata: join("metadata/")?,
            targets: join("targets/")?,
            root,
            datastore,
            timeout: Duration::from_secs(10),
        })
    }
}

/// A loaded, verified repository.
#[derive(Debug)]
pub struct Loaded {
    /// tough's repository.
    pub repo: tough::Repository,
    /// The releases it lists.
    pub releases: Releases,
}

impl Loaded {
    /// Targets metadata version.
    pub fn targets_version(&self) -> u64 {
        self.repo.targets().signed.version.get()
    }
    /// When the timestamp expires (the freeze window's end).
    pub fn timestamp_expires(&self) -> jiff::Timestamp {
        self.repo.timestamp().signed.expires
    }
}

/// Loads and verifies the repository (TUF client workflow, tough).
pub fn load(r: &Remote) -> Result<Loaded> {
    std::fs::create_dir_all(&r.datastore)
        .map_err(|e| io_at("datastore", "create", &r.datastore, &e))?;
    let http = HttpTransportBuilder::new()
        .timeout(r.timeout)
        .connect_timeout(Duration::from_secs(3))
        .tries(2)
        .initial_backoff(Duration::from_millis(200))
        .max_backoff(Duration::from_secs(1));
    let repo = block_on(async {
        RepositoryLoader::new(&r.root, r.metadata.clone(), r.targets.clone())
            .transport(DefaultTransport::new_with_http_settings(http))
            .datastore(r.datastore.clone())
            .expiration_enforcement(ExpirationEnforcement::Safe)
            .load()
            .await
            .map_err(|e| tuf_error(&format!("TUF repository {}", r.metadata), &e))
    })??;
    let releases = super::edit::releases_of(&repo);
    Ok(Loaded { repo, releases })
}

/// Downloads a listed target, checked against its signed length and SHA-256.
pub fn fetch(l: &Loaded, name: &str) -> Result<Vec<u8>> {
    let tn = tough::TargetName::new(name).map_err(|e| tuf_error("target name", &e))?;
    block_on(async {
        match l.repo.read_target(&tn).await {
            Ok(Some(stream)) => stream
                .into_vec()
                .await
                .map_err(|e| tuf_error(&format!("target {name}"), &e)),
            Ok(None) => Err(Error::refused(
                "not-listed",
                format!("target {name} is not listed in the signed targets metadata"),
            )),
            Err(e) => Err(tuf_error(&format!("target {name}"), &e)),
        }
    })?
}
