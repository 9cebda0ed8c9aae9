//! `fleet init`: four new role keys and a repository whose first metadata lists nothing.
//! Root: version 1, one Ed25519 key per role, threshold 1 (a larger fleet raises the root
//! threshold by hand: docs/fleet.md, "Keys"), consistent snapshots on.

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};

use tough::editor::signed::SignedRole;
use tough::schema::{KeyHolder, RoleKeys, RoleType, Root};
use tough::sign::Sign as _;

use super::edit;
use super::keys::{Expiry, KeyDir, ROLES};
use super::{block_on, tuf_error};
use crate::error::{Error, Result, io_at};
use crate::time::{after, now};

/// What `init` made.
#[derive(Debug)]
pub struct Initialized {
    /// The first root metadata: ship it with every agent (`--root`), the trust anchor.
    pub root: PathBuf,
    /// Key id of each role (hex), in [`ROLES`] order.
    pub key_ids: Vec<(String, String)>,
}

/// Creates keys in `keys` and the repository in `repo` (both must not hold a fleet yet).
pub fn init(repo: &Path, keys: &KeyDir, expiry: Expiry) -> Result<Initialized> {
    let meta = repo.join("metadata");
    if meta.join("1.root.json").exists() {
        return Err(Error::refused(
            "exists",
            format!(
                "refused: {} already holds a repository (expected an empty directory)",
                repo.display()
            ),
        ));
    }
    keys.generate(expiry)?;
    for d in [&meta, &repo.join("targets")] {
        std::fs::create_dir_all(d).map_err(|e| io_at("repo", "create", d, &e))?;
    }
    let mut root = Root {
        spec_version: "1.0.0".to_owned(),
        consistent_snapshot: true,
        version: NonZeroU64::MIN,
        expires: after(now(), expiry.root),
        keys: HashMap::new(),
        roles: HashMap::new(),
        _extra: HashMap::new(),
    };
    let mut key_ids = Vec::new();
    for role in ROLES {
        let path = keys.key_path(role);
        let pkcs8 = std::fs::read(&path).map_err(|e| io_at("keys", "read", &path, &e))?;
        let pair = aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8(&pkcs8).map_err(|e| {
            Error::refused(
                "keys",
                format!("{}: not an Ed25519 key: {e}", path.display()),
            )
        })?;
        let key = pair.tuf_key();
        let id = key
            .key_id()
            .map_err(|e| Error::io("keys", format!("cannot compute the {role} key id: {e}")))?;
        key_ids.push((role.to_owned(), super::edit::hex(&id)));
        root.keys.insert(id.clone(), key);
        let rt = match role {
            "root" => RoleType::Root,
            "targets" => RoleType::Targets,
            "snapshot" => RoleType::Snapshot,
            _ => RoleType::Timestamp,
        };
        root.roles.insert(
            rt,
            RoleKeys {
                keyids: vec![id],
                threshold: NonZeroU64::MIN,
                _extra: HashMap::new(),
            },
        );
    }
    let sources = keys.sources(&["root"])?;
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let holder = KeyHolder::Root(root.clone());
    block_on(async {
        let signed = SignedRole::new(root, &holder, &sources, &rng)
            .await
            .map_err(|e| tuf_error("sign root", &e))?;
        signed
            .write(&meta, true)
            .await
            .map_err(|e| tuf_error("write root", &e))
    })??;
    // The first targets, snapshot and timestamp: an empty release list.
    edit::change(repo, keys, &edit::Changes::default())?;
    Ok(Initialized {
        root: meta.join("1.root.json"),
        key_ids,
    })
}
