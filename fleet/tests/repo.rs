//! The TUF side on its own, through `file://` URLs (no servers): a repository made by
//! `init` and `publish` loads with the agent's client; replayed older metadata, an
//! expired timestamp, a file that differs from its signed hash and length, and a file
//! that is not listed are each refused with their own code. The same refusals over HTTP
//! with real servers: the fleet drill.

use std::path::Path;

use failsafe_fleet::plan::Plan;
use failsafe_fleet::plan::state::Phase;
use failsafe_fleet::repo::client::{self, Remote};
use failsafe_fleet::repo::keys::{Expiry, KeyDir};
use failsafe_fleet::repo::{edit, init};

const PLAN: &str = "[[ring]]\nmachines = [\"m00\"]\n[[ring]]\npercent = 100\n";

fn repo(dir: &Path, timestamp_secs: u64) -> (std::path::PathBuf, KeyDir, Vec<u8>) {
    let r = dir.join("repo");
    let keys = KeyDir::new(&dir.join("keys"));
    let expiry = Expiry {
        timestamp: timestamp_secs,
        ..Expiry::default()
    };
    let i = init::init(&r, &keys, expiry).unwrap();
    let root = std::fs::read(i.root).unwrap();
    (r, keys, root)
}

fn remote(r: &Path, root: &[u8], store: &Path) -> Remote {
    let url = url::Url::from_directory_path(std::fs::canonicalize(r).unwrap()).unwrap();
    Remote::new(url.as_str(), root.to_vec(), store.to_path_buf()).unwrap()
}

fn publish(r: &Path, keys: &KeyDir, v: u64) {
    let bytes = format!("content v{v}").into_bytes();
    failsafe_fleet::ops::publish(r, keys, bytes, v, Plan::from_toml(PLAN).unwrap()).unwrap();
}

#[test]
fn a_published_release_loads_with_its_plan_and_the_target_matches() {
    let d = tempfile::tempdir().unwrap();
    let (r, keys, root) = repo(d.path(), 86_400);
    publish(&r, &keys, 1);
    let l = client::load(&remote(&r, &root, &d.path().join("ds"))).unwrap();
    let (name, rel) = l.releases.list.first().unwrap();
    assert_eq!(
        (name.as_str(), rel.content_version, rel.serial),
        ("1.fsc", 1, 1)
    );
    assert_eq!(rel.state.phase, Phase::Rolling);
    assert_eq!(client::fetch(&l, "1.fsc").unwrap(), b"content v1");
    // Every change is a new version: a halt publishes targets version 3.
    let (c, _, _) = failsafe_fleet::ops::halt(&r, &keys, None, "test").unwrap();
    assert_eq!(c.targets_version, 3);
    let l = client::load(&remote(&r, &root, &d.path().join("ds"))).unwrap();
    assert_eq!(l.releases.head().unwrap().state.phase, Phase::Halted);
    let e = client::fetch(&l, "9.fsc").unwrap_err();
    assert_eq!(e.code, "not-listed", "{e}");
}

#[test]
fn replayed_older_metadata_is_refused_by_the_datastore() {
    let d = tempfile::tempdir().unwrap();
    let (r, keys, root) = repo(d.path(), 86_400);
    publish(&r, &keys, 1);
    let ts = r.join("metadata/timestamp.json");
    let old = std::fs::read(&ts).unwrap();
    publish(&r, &keys, 2);
    let ds = d.path().join("ds");
    client::load(&remote(&r, &root, &ds)).unwrap();
    std::fs::write(&ts, old).unwrap();
    let e = client::load(&remote(&r, &root, &ds)).unwrap_err();
    assert_eq!(e.code, "metadata-rollback", "{e}");
    assert!(e.msg.contains("older than the trusted version"), "{e}");
    // A fresh machine (empty datastore) has nothing to compare with: TUF's guarantee is
    // per datastore, which is why the agent's must persist.
    assert!(client::load(&remote(&r, &root, &d.path().join("fresh"))).is_ok());
}

#[test]
fn an_expired_timestamp_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let (r, keys, root) = repo(d.path(), 1);
    publish(&r, &keys, 1);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let e = client::load(&remote(&r, &root, &d.path().join("ds"))).unwrap_err();
    assert_eq!(e.code, "metadata-expired", "{e}");
    assert!(e.msg.contains("timestamp metadata has expired"), "{e}");
}

#[test]
fn a_file_that_differs_from_its_signed_hash_or_length_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let (r, keys, root) = repo(d.path(), 86_400);
    publish(&r, &keys, 1);
    let l = client::load(&remote(&r, &root, &d.path().join("ds"))).unwrap();
    let file = std::fs::read_dir(r.join("targets"))
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with(".1.fsc"))
        .unwrap()
        .path();
    // Same length, other bytes: the hash.
    std::fs::write(&file, b"content vX").unwrap();
    let e = client::fetch(&l, "1.fsc").unwrap_err();
    assert_eq!(e.code, "target-mismatch", "{e}");
    // Longer: the length.
    std::fs::write(&file, b"content v1 and more").unwrap();
    let e = client::fetch(&l, "1.fsc").unwrap_err();
    assert_eq!(e.code, "target-mismatch", "{e}");
    assert!(
        e.msg.contains("exceeded") || e.msg.contains("longer"),
        "{e}"
    );
    // The publisher lists what it was given, and repairs a corrupted file on the next
    // publication of the same bytes.
    let local = edit::load(&r).unwrap();
    assert_eq!(local.releases.list.len(), 1);
}

#[test]
fn publishing_refuses_a_repeated_or_older_version_and_supersedes_a_rolling_one() {
    let d = tempfile::tempdir().unwrap();
    let (r, keys, _) = repo(d.path(), 86_400);
    publish(&r, &keys, 2);
    let p = || Plan::from_toml(PLAN).unwrap();
    let e = failsafe_fleet::ops::publish(&r, &keys, b"x".to_vec(), 2, p()).unwrap_err();
    assert_eq!(e.code, "already-published", "{e}");
    let e = failsafe_fleet::ops::publish(&r, &keys, b"x".to_vec(), 1, p()).unwrap_err();
    assert_eq!(e.code, "not-newer", "{e}");
    let out = failsafe_fleet::ops::publish(&r, &keys, b"y".to_vec(), 3, p()).unwrap();
    assert_eq!(out.superseded, vec![2]);
    let local = edit::load(&r).unwrap();
    let (_, two) = local.releases.by_version(2).unwrap();
    assert_eq!(two.state.phase, Phase::Halted);
    assert!(
        two.state
            .halt
            .as_ref()
            .unwrap()
            .reason
            .contains("superseded by v3")
    );
    // A rolled-back release does not resume; a halted one does, with its bake restarted.
    failsafe_fleet::ops::rollback(&r, &keys, Some(3), "test").unwrap();
    let e = failsafe_fleet::ops::resume(&r, &keys, Some(3), "test").unwrap_err();
    assert_eq!(e.code, "rolled-back", "{e}");
    failsafe_fleet::ops::resume(&r, &keys, Some(2), "test").unwrap();
    let e = failsafe_fleet::ops::pin(&r, &keys, &failsafe_fleet::ops::PinTarget::Ring(1), Some(9))
        .unwrap_err();
    assert_eq!(e.code, "not-published", "{e}");
}
