//! The repository's role keys (Ed25519, PKCS#8, one file per role, mode 0600) and its
//! settings (expiry per role), in a keys directory that is never served. The root key
//! signs only `root.json`: after `fleet init` it can be moved offline; publishing and the
//! controller need the targets, snapshot and timestamp keys (online roles; docs/fleet.md,
//! "Keys").

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tough::key_source::{KeySource, LocalKeySource};

use crate::error::{Error, Result, io_at};

/// The four top-level TUF roles, in the order files are named.
pub const ROLES: [&str; 4] = ["root", "targets", "snapshot", "timestamp"];

/// Expiry per role, in seconds (TUF: clients refuse metadata past its expiry).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expiry {
    /// Root: rotated by hand, offline key (default 365 days).
    pub root: u64,
    /// Targets: re-signed at every publish and state change (default 30 days).
    pub targets: u64,
    /// Snapshot (default 7 days).
    pub snapshot: u64,
    /// Timestamp: the freeze window, re-signed by the controller (default 1 day).
    pub timestamp: u64,
}

impl Default for Expiry {
    fn default() -> Self {
        Expiry {
            root: 365 * 86_400,
            targets: 30 * 86_400,
            snapshot: 7 * 86_400,
            timestamp: 86_400,
        }
    }
}

/// `KEYS/repo.json`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Format of this file (1).
    pub format: u32,
    /// Expiry per role.
    pub expiry: Expiry,
}

/// The keys directory.
#[derive(Debug, Clone)]
pub struct KeyDir {
    dir: PathBuf,
}

impl KeyDir {
    /// The keys directory at `dir` (nothing is read yet).
    pub fn new(dir: &Path) -> Self {
        KeyDir {
            dir: dir.to_path_buf(),
        }
    }

    /// Its path.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The key file of `role`.
    pub fn key_path(&self, role: &str) -> PathBuf {
        self.dir.join(format!("{role}.pk8"))
    }

    /// Creates the directory (0700) and four new keys; refuses to overwrite a key.
    pub fn generate(&self, expiry: Expiry) -> Result<()> {
        create_private_dir(&self.dir)?;
        let rng = aws_lc_rs::rand::SystemRandom::new();
        for role in ROLES {
            let pkcs8 = aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|e| Error::io("keys", format!("cannot generate the {role} key: {e}")))?;
            write_private(&self.key_path(role), pkcs8.as_ref())?;
        }
        let settings = Settings { format: 1, expiry };
        let text = serde_json::to_vec_pretty(&settings)
            .map_err(|e| Error::io("keys", format!("cannot encode settings: {e}")))?;
        write_private(&self.dir.join("repo.json"), &text)
    }

    /// The settings (`repo.json`).
    pub fn settings(&self) -> Result<Settings> {
        let p = self.dir.join("repo.json");
        let bytes = std::fs::read(&p).map_err(|e| io_at("keys", "read", &p, &e))?;
        let s: Settings = serde_json::from_slice(&bytes).map_err(|e| {
            Error::refused(
                "keys",
                format!("{}: not fleet repository settings: {e}", p.display()),
            )
        })?;
        if s.format != 1 {
            return Err(Error::refused(
                "keys",
                format!("{}: format {} (expected 1)", p.display(), s.format),
            ));
        }
        Ok(s)
    }

    /// Key sources for `roles`; each file must exist (a missing root key is expected once
    /// it is offline, so callers name only what they need).
    pub fn sources(&self, roles: &[&str]) -> Result<Vec<Box<dyn KeySource>>> {
        let mut out: Vec<Box<dyn KeySource>> = Vec::new();
        for role in roles {
            let path = self.key_path(role);
            if !path.is_file() {
                return Err(Error::refused(
                    "key-missing",
                    format!(
                        "the {role} key {} is missing (expected the file `fleet init` wrote; the {role} role signs this change)",
                        path.display()
                    ),
                ));
            }
            out.push(Box::new(LocalKeySource { path }));
        }
        Ok(out)
    }
}

fn create_private_dir(dir: &Path) -> Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        b.mode(0o700);
    }
    b.create(dir).map_err(|e| io_at("keys", "create", dir, &e))
}

/// Creates `path` (refusing an existing file) readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        o.mode(0o600);
    }
    let mut f = o.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Error::refused(
                "exists",
                format!(
                    "refused: {} exists (keys are never overwritten)",
                    path.display()
                ),
            )
        } else {
            io_at("keys", "create", path, &e)
        }
    })?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| io_at("keys", "write", path, &e))
}
