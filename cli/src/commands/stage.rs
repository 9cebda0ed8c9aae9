//! `failsafectl stage FILE`: validate content and install it into a store atomically.

use std::path::Path;

use failsafe_loader::check;
use failsafe_loader::state::start::file_digest;
use failsafe_loader::state::{Durable, IoError};
use serde_json::json;

use super::{settings, with_store};
use crate::fail::{Fail, io_code};
use crate::host::{self, DirStore, MemMedium};
use crate::preview::{RecordCopy, StoreView};
use crate::report::{self, hex, out};
use crate::store::{self, StoreLock, Use};

pub struct Args<'a> {
    /// `--live`: where the running host answers.
    pub live: Option<crate::control::Endpoint>,
    pub file: &'a Path,
    pub store: &'a Path,
    pub init: bool,
    pub force: bool,
    pub keep: usize,
    pub threshold: Option<u8>,
    pub dry_run: bool,
    pub json: bool,
    /// The host's keys (`commands::trust_for`).
    pub keys: &'a super::verify::KeyArgs,
    /// Stage content the host's keys refuse (it is quarantined at the next start).
    pub allow_untrusted: bool,
}

pub fn run(a: &Args<'_>) -> Result<u8, Fail> {
    if let Some(ep) = &a.live
        && let Some(version) = super::live::live_version_arg(a.file)
    {
        // A version already in the store: nothing to stage.
        if a.dry_run {
            out(
                a.json,
                json!({"dry_run": true, "would_activate": version, "via": ep.describe()}),
                format!(
                    "dry run: would ask {} to activate version {version} live; nothing was sent",
                    ep.describe()
                ),
            );
            return Ok(0);
        }
        let (v, t) = super::live::activate(ep, version)?;
        out(a.json, json!({ "live": v }), t);
        return Ok(0);
    }
    if a.live.is_some() && !a.file.exists() {
        return Err(Fail::usage(format!(
            "stage --live {}: no such file, and not a content version (expected a content file, or a version in the store such as 3 or v3)",
            a.file.display()
        )));
    }
    let bytes = crate::read_capped(a.file)
        .map_err(|e| Fail::io(format!("cannot read {}: {e}", a.file.display())))?;
    // The kernel's check, without decoding the rules (memory bounded by the file).
    let header = check(&bytes).map_err(|e| {
        Fail::invalid(format!(
            "{}: refused, invalid content: {e}",
            a.file.display()
        ))
    })?;
    let version = header.version;
    let rules = header.rule_count;
    let dir = store::open(
        a.store,
        a.init,
        if a.dry_run { Use::Read } else { Use::Write },
    )?;
    let trust = super::trust_for(&dir, a.keys)?;
    let warnings = trusted(a, &trust, &bytes, header.is_signed())?;
    let _lock = if a.dry_run {
        StoreLock::shared(&dir)
    } else {
        Some(StoreLock::exclusive(&dir)?)
    };
    let store = DirStore::new(&dir);
    let present = store
        .list()
        .map_err(|e| Fail::io(format!("cannot list {}: {e}", store.dir().display())))?;
    // With --live, the very file already staged (same bytes) is not staged again.
    let already = a.live.is_some()
        && present.contains(&version)
        && std::fs::read(store.path(version)).is_ok_and(|b| b == bytes);
    if let Some(&newest) = present.iter().max()
        && newest >= version
        && !a.force
        && !already
    {
        return Err(Fail::refused(
            "not-newer",
            format!(
                "refused: version {version} is not newer than version {newest} already in {} (--force to install anyway)",
                store.dir().display()
            ),
        ));
    }
    // Keep: everything at or above last-known-good, the version of the last attempt, and
    // the `keep` newest of the rest.
    let record = store::read_record(&dir);
    let write_error = record
        .writable
        .as_ref()
        .err()
        .map(|e| IoError { code: io_code(e) });
    let (_, durable) = Durable::open(MemMedium::new(record.bytes.clone()));
    let copy = RecordCopy {
        bytes: record.bytes,
        write_error,
    };
    let st = *durable.state();
    let lkg = st.lkg.map_or(0, |l| l.version);
    let pinned = |v: u64| {
        v >= lkg && lkg != 0 || st.attempt.is_some_and(|a| a.ver.version == v) || v >= version
    };
    let mut older: Vec<u64> = present.iter().copied().filter(|&v| !pinned(v)).collect();
    older.sort_unstable_by(|a, b| b.cmp(a));
    let doomed: Vec<u64> = older.into_iter().skip(a.keep).collect();
    let target = store.path(version);
    let cfg = settings(&dir, a.threshold).cfg;
    let mut after: Vec<u64> = present
        .iter()
        .copied()
        .filter(|v| !doomed.contains(v) && *v != version)
        .collect();
    after.push(version);
    if a.dry_run {
        let mut view = StoreView {
            dir: DirStore::new(&dir),
            versions: Some(after),
            added: Some((version, &bytes)),
        };
        let next = crate::preview::next_start(copy, &mut view, &cfg, &trust);
        out(
            a.json,
            with_store(
                json!({"dry_run": true, "would_stage": version, "path": target, "sha256": hex(&file_digest(&bytes)), "would_remove": doomed, "warnings": warnings, "next_start": next.0}),
                &dir,
            ),
            format!(
                "store: {}\ndry run: would stage version {version} ({} rules) as {}{}\nnext start would be: {}\nnothing was written",
                dir.display(),
                rules,
                target.display(),
                if doomed.is_empty() {
                    String::new()
                } else {
                    format!("\nwould remove old versions: {doomed:?}")
                },
                next.1
            ),
        );
        if let Some(ep) = &a.live {
            out(
                a.json,
                json!({"dry_run": true, "would_activate": version, "via": ep.describe()}),
                format!(
                    "would then ask {} to activate version {version} live",
                    ep.describe()
                ),
            );
        }
        return Ok(0);
    }
    if already {
        drop(_lock);
        return live_after_stage(a, version, &target, None);
    }
    std::fs::create_dir_all(store.dir())
        .map_err(|e| Fail::io(format!("cannot create {}: {e}", store.dir().display())))?;
    host::write_atomic(&target, &bytes)
        .map_err(|e| Fail::io(format!("cannot write {}: {e}", target.display())))?;
    let mut removed = Vec::new();
    for v in doomed {
        if std::fs::remove_file(store.path(v)).is_ok() {
            removed.push(v);
        }
    }
    let _ = host::sync_dir(store.dir());
    store::reserve_report(&dir);
    // The record is as read above (the lock is held and staging does not write it); the
    // store is as it is now.
    let next = crate::preview::next_start(copy, &mut crate::preview::store_of(&dir), &cfg, &trust);
    let staged = (
        with_store(
            json!({"staged": version, "path": target, "sha256": hex(&file_digest(&bytes)), "removed": removed, "warnings": warnings, "next_start": next.0}),
            &dir,
        ),
        format!(
            "store: {}\nstaged version {version} ({} rules) as {}{}\nnext start: {}",
            dir.display(),
            rules,
            target.display(),
            if removed.is_empty() {
                String::new()
            } else {
                format!("\nremoved old versions: {removed:?}")
            },
            next.1
        ),
    );
    if a.live.is_some() {
        // The store lock is released first: the host takes it for its record writes.
        drop(_lock);
        return live_after_stage(a, version, &target, Some(staged));
    }
    out(a.json, staged.0, staged.1);
    Ok(0)
}

/// `stage FILE --live`: the file is in the store; now the running host activates it.
fn live_after_stage(
    a: &Args<'_>,
    version: u64,
    target: &Path,
    staged: Option<(serde_json::Value, String)>,
) -> Result<u8, Fail> {
    let Some(ep) = &a.live else {
        return Ok(0);
    };
    let (mut v, mut t) = staged.unwrap_or_else(|| {
        (
            json!({"staged": version, "path": target, "already_staged": true}),
            format!(
                "version {version} is already staged as {} (same bytes)",
                target.display()
            ),
        )
    });
    match super::live::activate(ep, version) {
        Ok((lv, lt)) => {
            v["live"] = lv;
            t.push('\n');
            t.push_str(&lt);
            out(a.json, v, t);
            Ok(0)
        }
        Err(mut f) => {
            if !a.json {
                outln!("{t}");
            }
            f.msg = format!(
                "version {version} is staged as {}, but {}",
                target.display(),
                f.msg
            );
            Err(f)
        }
    }
}

/// The start refuses content its keys do not verify and quarantines it: staging such a file
/// only costs that start a quarantine, so it is refused here at once (exit 1,
/// `untrusted-content`, with the verifier's reason) unless `--allow-untrusted`. Unsigned
/// content is refused whatever the keys (no key makes it run). A signed file whose key
/// cannot be checked here (the host's keys are not known: none given, not this Windows
/// system's own store) is staged with a warning. Returns the warnings.
fn trusted(
    a: &Args<'_>,
    trust: &crate::preview::TrustView,
    bytes: &[u8],
    signed: bool,
) -> Result<Vec<String>, Fail> {
    let Err(e) = failsafe_loader::trust::verify(bytes, &trust.trust) else {
        return Ok(Vec::new());
    };
    let definite = !signed || trust.known;
    let what = format!(
        "{}: the host's next start would quarantine it ({}: {e}; keys: {})",
        a.file.display(),
        e.code(),
        trust.source
    );
    if definite && !a.allow_untrusted {
        return Err(Fail::refused(
            "untrusted-content",
            format!("{what}; refused (--allow-untrusted stages it anyway)"),
        )
        .with("content_error", report::error_json(&e)));
    }
    let w = if definite {
        format!("{what}; staged anyway (--allow-untrusted)")
    } else {
        format!(
            "{}: signed by a key not among {}: not verified here; a host that does not trust it quarantines it at its next start (pass the host's --key / --test-key to check)",
            a.file.display(),
            trust.source
        )
    };
    eprintln!("warning: {w}");
    Ok(vec![w])
}
