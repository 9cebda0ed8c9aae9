//! The TUF repository through `tough`: role keys and expiry settings ([`keys`]), creating
//! a repository ([`init`]), publishing a new metadata version ([`edit`]: publish, every
//! change of plan or state, timestamp refresh), and the client side the agent uses
//! ([`client`]: HTTP, persistent datastore, expiry, target hashes).
//!
//! Layout of a repository directory `REPO` (what a web server serves):
//! `REPO/metadata/{N.root.json, N.targets.json, N.snapshot.json, timestamp.json}` and
//! `REPO/targets/<sha256>.<N>.fsc` (consistent snapshots: files are never rewritten, only
//! `timestamp.json` is replaced, by rename, last). The keys live elsewhere (`KEYS`).

pub mod client;
pub mod edit;
pub mod init;
pub mod keys;

use std::path::Path;

use crate::error::{Error, Result};

/// A tough error as the fleet reports it: a stable code for what kind of failure it is,
/// and tough's own description.
pub fn tuf_error(what: &str, e: &tough::error::Error) -> Error {
    use tough::error::Error as E;
    let (code, why) = match e {
        E::ExpiredMetadata { role, .. } => (
            "metadata-expired",
            format!(
                "TUF {role} metadata has expired (freeze protection: an expired timestamp may be a replay)"
            ),
        ),
        E::OlderMetadata {
            role,
            current_version,
            new_version,
            ..
        } => (
            "metadata-rollback",
            format!(
                "TUF {role} metadata version {new_version} is older than the trusted version {current_version} (rollback protection)"
            ),
        ),
        E::OlderSnapshotInTimestamp { .. } | E::SnapshotRoleRollback { .. } => (
            "metadata-rollback",
            format!("TUF metadata goes back in version (rollback protection): {e}"),
        ),
        E::HashMismatch {
            calculated,
            expected,
            ..
        } => (
            "target-mismatch",
            format!("the file's SHA-256 is {calculated}, the signed metadata lists {expected}"),
        ),
        E::MaxSizeExceeded { .. } => (
            "target-mismatch",
            format!("the file is longer than the signed metadata lists: {e}"),
        ),
        E::Transport { url, source, .. } => match inner_mismatch(source) {
            Some(why) => (
                "target-mismatch",
                format!("{url} does not match the signed metadata: {why}"),
            ),
            None => ("repo-unreachable", format!("cannot fetch {url}: {source}")),
        },
        E::VerifyMetadata { .. }
        | E::VerifyTrustedMetadata { .. }
        | E::VerifyRoleMetadata { .. } => (
            "metadata-signature",
            format!("TUF metadata signature check failed: {e}"),
        ),
        E::SystemTimeSteppedBackward { .. } => (
            "clock-rollback",
            format!(
                "the system clock went back since the last update (TUF freeze protection): {e}"
            ),
        ),
        _ => ("tuf-error", e.to_string()),
    };
    let e = Error::refused(code, format!("{what}: {why}"));
    if code == "repo-unreachable" {
        Error { exit: 2, ..e }
    } else {
        e
    }
}

/// A length or hash check that failed while a file streamed (tough reports it through
/// the transport's error): the file is there, but it is not what the metadata signs.
fn inner_mismatch(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    use tough::error::Error as E;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(x) = cur {
        if let Some(t) = x.downcast_ref::<E>()
            && matches!(t, E::MaxSizeExceeded { .. } | E::HashMismatch { .. })
        {
            return Some(t.to_string());
        }
        cur = x.source();
    }
    None
}

/// One current-thread runtime for a blocking call into async code (tough, rumqttc).
pub fn block_on<F: std::future::Future>(f: F) -> Result<F::Output> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("runtime", format!("cannot start the async runtime: {e}")))?;
    Ok(rt.block_on(f))
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename,
/// so a reader (a web server, an agent) sees the old file or the new one, never a part.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .map_err(|e| crate::error::io_at("write", "create a file in", dir, &e))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| crate::error::io_at("write", "write", tmp.path(), &e))?;
    // Repository files are served: readable by the web server's user (a temporary file
    // starts 0600). Nothing secret is written here (keys: `keys.rs`).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(|e| crate::error::io_at("write", "set permissions of", tmp.path(), &e))?;
    }
    tmp.persist(path)
        .map_err(|e| crate::error::io_at("write", "replace", path, &e.error))?;
    Ok(())
}

/// A directory path as a `file://` URL (tough's filesystem transport).
pub fn dir_url(dir: &Path) -> Result<url::Url> {
    let abs =
        std::fs::canonicalize(dir).map_err(|e| crate::error::io_at("repo", "open", dir, &e))?;
    url::Url::from_directory_path(&abs).map_err(|()| {
        Error::io(
            "repo",
            format!("{} is not an absolute directory", abs.display()),
        )
    })
}
