//! `failsafectl status`: the record, the last start, the store and what the next start
//! will do. Exit 3 when the record cannot be read: its contents are unknown, and the
//! status says so instead of printing defaults as facts.

use std::path::Path;

use failsafe_loader::state::start::file_digest;
use failsafe_loader::state::{Durable, IoError, Loaded, Prior, State};
use serde_json::json;

use super::settings;
use crate::fail::{Fail, io_code};
use crate::host::{DirStore, MemMedium};
use crate::preview::RecordCopy;
use crate::report::{self, hex};
use crate::state_mirror;
use crate::store::{self, StoreLock, Use};

/// Exit code of `status` when the record is unreadable (state unknown).
pub const EXIT_UNKNOWN: u8 = 3;

pub fn run(
    dir: &Path,
    init: bool,
    ep: &crate::control::Endpoint,
    threshold: Option<u8>,
    keys: &super::verify::KeyArgs,
    json: bool,
) -> Result<u8, Fail> {
    let dir = store::open(dir, init, Use::Read)?;
    let set = settings(&dir, threshold);
    let trust = super::trust_for(&dir, keys)?;
    // The running host's view first (it takes the store lock to re-read the record).
    // On Windows the driver serves only this system's own store: another store's status
    // (WinRE, a mounted disk) must not show the running driver's state as its own.
    #[cfg(windows)]
    let ask =
        !matches!(ep, crate::control::Endpoint::Device) || crate::registry::is_live_store(&dir);
    #[cfg(not(windows))]
    let ask = true;
    let live = match ask
        .then(|| super::live::query(ep))
        .transpose()
        .map(Option::flatten)
    {
        Ok(Some(s)) => (
            super::live::status_json(&s, ep),
            super::live::status_text(&s, ep),
        ),
        Ok(None) if !ask => (
            serde_json::Value::Null,
            "live: not asked: the driver serves this system's own store only\n".to_owned(),
        ),
        Ok(None) => (
            serde_json::Value::Null,
            format!(
                "live: nothing answers ({}): no host running; the record below is as last written\n",
                ep.describe()
            ),
        ),
        Err(e) => (
            json!({"error": e.msg}),
            format!("live: WARNING: {}\n", e.msg),
        ),
    };
    // The record, read once under the shared lock, and handed down from here on.
    let (record, report) = {
        let _lock = StoreLock::shared(&dir);
        (store::read_record(&dir), last_start(&dir))
    };
    let writable = record.writable;
    let (prior, durable) = Durable::open(MemMedium::new(record.bytes.clone()));
    let store = DirStore::new(&dir);
    let versions = store
        .list()
        .map_err(|e| Fail::io(format!("cannot list {}: {e}", store.dir().display())))?;
    let next = crate::preview::next_start(
        RecordCopy {
            bytes: record.bytes,
            write_error: writable
                .as_ref()
                .err()
                .map(|e| IoError { code: io_code(e) }),
        },
        &mut crate::preview::store_of(&dir),
        &set.cfg,
        &trust,
    );
    let last = report;
    let files: Vec<_> = versions
        .iter()
        .map(|&v| {
            let p = store.path(v);
            // The kernel's check, without decoding the rules (memory bounded by the file).
            match crate::read_capped(&p) {
                Ok(b) => match failsafe_loader::check(&b) {
                    Ok(h) if h.version == v => {
                        // Verified as the start verifies it, with the keys it trusts.
                        let refused = failsafe_loader::trust::verify(&b, &trust.trust).err().map(|e| e.code());
                        json!({"version": v, "sha256": hex(&file_digest(&b)), "valid": true, "rules": h.rule_count,
                               "key_id": h.is_signed().then(|| hex(&h.key_id)), "trusted": refused.is_none(), "refused": refused})
                    }
                    Ok(h) => json!({"version": v, "sha256": hex(&file_digest(&b)), "valid": false, "error": format!("header declares version {}", h.version)}),
                    Err(e) => json!({"version": v, "sha256": hex(&file_digest(&b)), "valid": false, "error": e.to_string()}),
                },
                Err(e) => json!({"version": v, "valid": false, "error": format!("cannot read: {e}")}),
            }
        })
        .collect();
    // No record, no report, and neither could be written now (a full or read-only disk):
    // a start here runs without content and leaves no trace, so whether any start ran is
    // unknown; "first install" would be a guess.
    let untraceable = match (&prior, &last, &writable) {
        (Prior::Loaded(Loaded::Fresh), None, Err(e)) => Some(e.to_string()),
        _ => None,
    };
    let known = !matches!(prior, Prior::Unreadable(_));
    let mut st = report::state_json(&prior, durable.state());
    if known {
        st["driver"] = driver_json(durable.state(), set.cfg.threshold());
    }
    let code = if known { 0 } else { EXIT_UNKNOWN };
    // The driver's registry mirror of the record: what the record means, and (Windows, this
    // system's own store) what the registry holds and whether the two agree.
    let mirror = known.then(|| {
        let expected = state_mirror::expected(durable.state(), durable.seq());
        #[cfg(windows)]
        let found = if crate::registry::is_live_store(&dir) {
            state_mirror::read()
        } else {
            Ok(None)
        };
        #[cfg(not(windows))]
        let found = Ok(None);
        let line = match &found {
            Ok(Some(f)) => {
                let (a, d) = state_mirror::compare(&expected, durable.seq(), f);
                Some(state_mirror::text(&a, &d))
            }
            Err(e) => Some(format!("registry mirror: WARNING: {e}")),
            Ok(None) => None,
        };
        (state_mirror::json(&expected, durable.seq(), found), line)
    });
    if json {
        outln!(
            "{}",
            report::versioned(
                json!({"store": dir, "live": live.0, "state": st, "last_start": last.as_ref().map(report::start_report_json),
                   "last_start_known": untraceable.is_none(), "last_start_unknown_why": untraceable.as_ref().map(|e| untraceable_text(e)),
                   "record_writable": writable.as_ref().err().map(ToString::to_string).map_or(json!(true), |e| json!({"writable": false, "error": e})),
                   "registry": set.registry, "registry_mirror": mirror.as_ref().map(|m| &m.0),
                   "content": files, "next_start": next.0, "exit": code})
            )
        );
        return Ok(code);
    }
    outln!("store: {}", dir.display());
    outp!("{}", live.1);
    outp!("{}", report::state_text(&prior, durable.state()));
    if known {
        outp!("{}", driver_text(durable.state(), set.cfg.threshold()));
    }
    if let Some(r) = &last {
        let shown = durable
            .state()
            .last
            .is_some_and(|d| d.boot == r.boot && !r.record_not_written);
        if !shown || r.record_not_written || r.writes_may_not_persist {
            outp!("{}", report::start_report_text(r));
        }
    }
    if let Some(e) = &untraceable {
        outln!("last start:          UNKNOWN: {}", untraceable_text(e));
    }
    if let Err(e) = &writable {
        outln!("  WARNING: the record cannot be written now ({e}): a start activates no content");
    }
    if let Some(t) = &set.registry_text {
        outln!("{t}");
    }
    if let Some((_, Some(line))) = &mirror {
        outln!("{line}");
    }
    outln!("content:");
    if files.is_empty() {
        outln!("  (none)");
    }
    for f in &files {
        let v = f["version"].as_u64().unwrap_or(0);
        let mut tags = Vec::new();
        if known {
            if durable.state().lkg.is_some_and(|l| l.version == v) {
                tags.push("last-known-good".to_owned());
            }
            if let Some(q) = durable.state().quarantined(v) {
                tags.push(format!("QUARANTINED ({})", q.reason.name()));
            }
        }
        let validity = if f["valid"].as_bool() == Some(true) {
            let signed = match (f["key_id"].as_str(), f["refused"].as_str()) {
                (None, _) => "UNSIGNED (refused by the driver)".to_owned(),
                (Some(id), None) => format!("signed by key {id} (trusted)"),
                (Some(id), Some(why)) if trust.known => {
                    format!("signed by key {id}: REFUSED by the host's keys ({why})")
                }
                (Some(id), Some(why)) => {
                    format!("signed by key {id}: not trusted by the keys known here ({why})")
                }
            };
            format!("valid, {} rules, {signed}", f["rules"])
        } else {
            format!("INVALID: {}", f["error"].as_str().unwrap_or("?"))
        };
        outln!(
            "  v{v}: {validity}; sha256 {} {}",
            f["sha256"].as_str().unwrap_or("-"),
            tags.join(" ")
        );
    }
    outln!("trust: {}", trust.source);
    outln!("next start: {}", next.1);
    Ok(code)
}

/// Why the last start cannot be known (no record, no report, neither writable: `e`).
fn untraceable_text(e: &str) -> String {
    format!(
        "there is no state record and no start report, and neither can be written here now ({e}): a start on this store runs WITHOUT CONTENT (state-unwritable) and leaves no trace, so starts may already have run that way; this is not known to be a first install"
    )
}

/// The newest start report: the one beside the record, or (Windows, this system's own
/// store) the driver's registry copy, whichever counts the later boot.
fn last_start(dir: &Path) -> Option<failsafe_loader::state::StartReport> {
    let file = store::read_report(dir);
    #[cfg(windows)]
    {
        let reg = if crate::registry::is_live_store(dir) {
            crate::registry::read().ok().and_then(|s| s.last_start)
        } else {
            None
        };
        match (file, reg) {
            (Some(f), Some(r)) => Some(if r.boot > f.boot { r } else { f }),
            (f, r) => f.or(r),
        }
    }
    #[cfg(not(windows))]
    file
}

/// The driver build entry in words (one line), for `status` and `recover wake`.
pub fn driver_words(s: &State, threshold: u8) -> String {
    match s.driver {
        None => "no driver build recorded yet (no start of this layout has written the record)"
            .to_owned(),
        Some(d) if d.adopt => format!(
            "unknown build (rebuilt record): the next build to start takes {} of its {threshold} tries as used",
            d.unclean
        ),
        Some(d) => format!(
            "{}: {} unclean start(s) without content (dormant at {threshold}){}{}",
            d.build,
            d.unclean,
            d.attempt.map_or(String::new(), |a| format!(
                "; its last attempt (boot {}) {}",
                a.boot,
                a.phase.name()
            )),
            d.dormant
                .map_or(String::new(), |b| format!("; DORMANT since boot {b}")),
        ),
    }
}

/// The driver build, its count and dormancy with the evidence, as JSON.
pub fn driver_json(s: &State, threshold: u8) -> serde_json::Value {
    s.driver.map_or(serde_json::Value::Null, |d| {
        json!({
            "build": (!d.adopt).then(|| d.build.to_string()),
            "unknown_build": d.adopt,
            "unclean_starts_without_content": d.unclean,
            "threshold": threshold,
            "attempt": d.attempt.map(|a| json!({"boot": a.boot, "phase": a.phase.name()})),
            "dormant": d.dormant.map(|since| json!({"since_boot": since, "unclean_starts_without_content": d.unclean})),
        })
    })
}

/// The driver build in words, with a warning block when it is dormant.
pub fn driver_text(s: &State, threshold: u8) -> String {
    let mut t = format!("  driver build:      {}\n", driver_words(s, threshold));
    if let Some(d) = s.driver
        && let Some(since) = d.dormant
    {
        t += &format!(
            "  DORMANT: driver build {} had {} unclean starts in a row with no content active, the last\n  \
             charged at boot {since}: every start of it since sets nothing up (no filtering, no control\n  \
             device, no health check). A new driver build gets fresh tries; `failsafectl recover wake --yes`\n  \
             wakes this one (it may crash the machine up to {threshold} more times).\n",
            d.build, d.unclean
        );
    }
    t
}
