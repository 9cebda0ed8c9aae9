//! What the next start would do: the driver's own start sequence (`start_with_trust`) run
//! on a copy of the record in memory, against the store's real files (or the store as a
//! `stage --dry-run` would leave it), with the trust the driver would verify with. So the
//! preview reads, verifies and validates exactly what the start would: a file that cannot
//! be read now is skipped (not quarantined), a file the trust refuses or the validator
//! rejects is quarantined, and a record that cannot be written makes it `state-unwritable`
//! — it never predicts a run that the start would quarantine. What it cannot know: Windows
//! Safe Mode, and the host's keys when they were not given (then the compiled-in release
//! keys are used, as a start without keys uses them, and the text says so).
//!
//! Memory: the start's own bound (the chosen file and its rule set, about 7x the file).

use std::path::Path;

use failsafe_loader::state::machine::{Config, Env};
use failsafe_loader::state::record::{RECORD_LEN, SLOT_LEN, encode_slot};
use failsafe_loader::state::start::start_with_trust;
use failsafe_loader::state::{ContentStore, IoError, State};
use failsafe_loader::trust::Trust;
use serde_json::{Value, json};

use crate::host::{DirStore, MemMedium};

/// The keys a preview verifies with, and where they came from.
pub struct TrustView {
    pub trust: Trust,
    /// The keys are the host's (given on the command line, or the driver's registry
    /// values); `false`: not known here, the compiled-in release keys stand in.
    pub known: bool,
    /// For the responder: whose keys these are.
    pub source: String,
}

/// The record a start would read, and whether it could write it (`Err`: every write fails
/// with that error, as the start's would).
pub struct RecordCopy {
    pub bytes: Result<Option<Box<[u8; RECORD_LEN]>>, IoError>,
    pub write_error: Option<IoError>,
}

impl RecordCopy {
    /// A record holding `state` (a change `recover` is about to make), writable.
    pub fn of_state(state: &State, seq: u64) -> Self {
        let mut rec = Box::new([0u8; RECORD_LEN]);
        rec[..SLOT_LEN].copy_from_slice(&encode_slot(state, seq));
        RecordCopy {
            bytes: Ok(Some(rec)),
            write_error: None,
        }
    }
}

/// The store as a start would find it: the directory, or the directory with one version
/// added (its bytes) and some removed (`stage --dry-run`).
pub struct StoreView<'a> {
    pub dir: DirStore,
    /// The version list, when it is not the directory's.
    pub versions: Option<Vec<u64>>,
    pub added: Option<(u64, &'a [u8])>,
}

impl ContentStore for StoreView<'_> {
    fn versions(&mut self, out: &mut Vec<u64>) -> Result<(), IoError> {
        match &self.versions {
            Some(v) => {
                out.extend(v);
                Ok(())
            }
            None => self.dir.versions(out),
        }
    }
    fn read(&mut self, version: u64, limit: usize, buf: &mut Vec<u8>) -> Result<(), IoError> {
        match self.added {
            Some((v, bytes)) if v == version => {
                buf.clear();
                buf.extend_from_slice(&bytes[..bytes.len().min(limit)]);
                Ok(())
            }
            _ => self.dir.read(version, limit, buf),
        }
    }
}

/// The error codes a different set of keys could turn into a run.
const TRUST_DEPENDENT: [&str; 2] = ["unknown-key", "test-signing-off"];

/// The next start's decision as JSON and as one line of text.
pub fn next_start(
    record: RecordCopy,
    store: &mut StoreView<'_>,
    cfg: &Config,
    trust: &TrustView,
) -> (Value, String) {
    let mut medium = MemMedium::new(record.bytes);
    medium.fail_writes = record.write_error;
    let (before, env) = {
        let (_, d) = failsafe_loader::state::Durable::open(medium.clone());
        let before: Vec<u64> = d
            .state()
            .quarantine
            .iter()
            .flatten()
            .map(|q| q.ver.version)
            .collect();
        // The next start runs the driver build the record last saw (a new build would get
        // fresh tries; a dormant one starts nothing).
        let env = Env {
            build: d.state().driver.map(|b| b.build).unwrap_or_default(),
            ..Env::default()
        };
        (before, env)
    };
    let s = start_with_trust(medium, store, cfg, &env, &trust.trust);
    let st = s.durable.state();
    let version = s.active.as_ref().map(|(v, _)| v.version);
    // Quarantines this start makes: crash loops charged at its beginning (attempts used
    // up) and files refused when read (only a start that wrote the record makes any).
    let refused: Vec<(u64, &'static str)> = s
        .rejected
        .iter()
        .map(|r| (r.ver.version, r.error.code()))
        .collect();
    let crash_loops: Vec<u64> = if s.persist_error.is_some() {
        Vec::new()
    } else {
        st.quarantine
            .iter()
            .flatten()
            .map(|q| q.ver.version)
            .filter(|v| !before.contains(v) && !refused.iter().any(|(r, _)| r == v))
            .collect()
    };
    let mut notes = String::new();
    if !crash_loops.is_empty() {
        notes += &format!(" after quarantining {crash_loops:?} (attempts used up)");
    }
    for (v, code) in &refused {
        notes += &format!(" after refusing v{v} ({code}: quarantined at that start)");
    }
    if !s.unreadable.is_empty() {
        notes += &format!(
            " (could not read {:?} now: skipped, not quarantined)",
            s.unreadable
        );
    }
    if let Some(e) = s.persist_error {
        notes += &format!(
            ": the record cannot be written now ({})",
            crate::fail::os_error(e)
        );
    }
    let conditional = !trust.known && refused.iter().any(|(_, c)| TRUST_DEPENDENT.contains(c));
    if conditional {
        notes += &format!(
            "; signatures checked against {}: a host that trusts those keys runs them instead (pass its --key / --test-key to check)",
            trust.source
        );
    }
    let text = match version {
        Some(v) => format!(
            "{} mode ({}): tries v{v}, start {} of {}{notes}",
            s.choice.mode.name(),
            s.choice.reason.name(),
            u32::from(st.attempts(v)) + 1,
            cfg.threshold()
        ),
        None => format!(
            "{} mode ({}), no content{notes}",
            s.choice.mode.name(),
            s.choice.reason.name()
        ),
    };
    (
        json!({"mode": s.choice.mode.name(), "reason": s.choice.reason.name(), "version": version,
               "quarantines": crash_loops,
               "refused": refused.iter().map(|(v, c)| json!({"version": v, "error": c})).collect::<Vec<_>>(),
               "unreadable": s.unreadable,
               "record_error": s.persist_error.map(crate::fail::os_error),
               "trust": {"source": trust.source, "known": trust.known}}),
        text,
    )
}

/// The store `dir` as it is.
pub fn store_of(dir: &Path) -> StoreView<'static> {
    StoreView {
        dir: DirStore::new(dir),
        versions: None,
        added: None,
    }
}
