//! `failsafectl recover ...`: the responder's overrides, written through the same state
//! code the driver uses. Every action says exactly what the next start will do; anything
//! that re-enables a version quarantined for crash-looping needs `--yes`; `--dry-run` shows
//! the result without writing.
//!
//! Who writes: while a host runs on the store (the driver on this Windows system's own
//! store, `failsafectl serve` on Linux), `force-safe-mode`, `reset` and `unquarantine` are
//! sent to it through the control channel and the host applies them under its record lock
//! (`control::operator`), so it stays the record's one writer and neither its writes nor
//! the responder's are lost between a re-read and a write. With no host (WinRE, another
//! system's disk, a stopped host) the console writes the record itself under the store
//! lock. `rebuild` is always the console's: it is for a record that cannot be read or is
//! corrupt, which no host writes (every host write re-reads the record first). So is
//! `wake`: a dormant build runs no host, and with a host running it is refused.

use std::path::Path;

use failsafe_loader::control::{Change, Reply};
use failsafe_loader::state::machine::{self, Config};
use failsafe_loader::state::start::file_digest;
use failsafe_loader::state::{Durable, Loaded, Prior, QuarantineReason, State, Ver};
use serde_json::json;

use super::{settings, with_store};
use crate::control::{Endpoint, ask, refusal};
use crate::fail::Fail;
use crate::fail::os_error;
use crate::host::{DirStore, FileMedium};
use crate::report::out;
use crate::store::{self, StoreLock, Use};

#[derive(Clone, Copy)]
pub enum Action {
    ForceSafeMode(bool),
    Reset,
    Unquarantine(u64),
    Wake,
    Rebuild { force_safe: bool },
}

pub struct Args<'a> {
    pub store: &'a Path,
    pub init: bool,
    pub threshold: Option<u8>,
    pub yes: bool,
    pub dry_run: bool,
    pub json: bool,
    /// The host's keys, for the preview (`commands::trust_for`).
    pub keys: &'a super::verify::KeyArgs,
    /// Where a running host answers (its socket on Linux, the driver's device on Windows).
    pub ep: &'a Endpoint,
}

/// A planned change: the new state, what it does in words, and whether it re-enables a
/// crash-looping version (then `--yes` is needed).
struct Plan {
    state: State,
    /// What it does, as done ("state reset") and as to be done ("reset the state").
    what: String,
    would: String,
    detail: Vec<String>,
    needs_yes: Option<String>,
}

pub fn run(action: Action, a: &Args<'_>) -> Result<u8, Fail> {
    let dir = store::open(
        a.store,
        a.init,
        if a.dry_run { Use::Read } else { Use::Write },
    )?;
    let host = match action {
        Action::Rebuild { .. } => None,
        _ => host_of(&dir, a.ep)?,
    };
    // With a host, the console only reads (the host takes the lock for its write).
    let lock = if a.dry_run || host.is_some() {
        StoreLock::shared(&dir)
    } else {
        Some(StoreLock::exclusive(&dir)?)
    };
    let (prior, mut durable) = Durable::open(FileMedium::new(&dir, None));
    let set = settings(&dir, a.threshold);
    let versions = DirStore::new(&dir).list().unwrap_or_default();
    let plan = match action {
        Action::Rebuild { force_safe } => {
            plan_rebuild(&dir, &prior, &versions, &set.cfg, force_safe)?
        }
        _ => {
            let current = match prior {
                Prior::Unreadable(e) => {
                    return Err(Fail::new(
                        super::status::EXIT_UNKNOWN,
                        "state-unknown",
                        format!(
                            "cannot read the state record {}: {}; nothing was changed. If it stays unreadable, replace it: failsafectl recover rebuild (docs/boot-safety.md)",
                            dir.join("state.bin").display(),
                            os_error(e)
                        ),
                    ));
                }
                Prior::Loaded(Loaded::Lost) => {
                    return Err(Fail::new(
                        super::status::EXIT_UNKNOWN,
                        "state-unknown",
                        format!(
                            "the state record {} is corrupt (both slots invalid); nothing was changed. The driver's next start runs without content and writes a fresh record; or replace it now: failsafectl recover rebuild",
                            dir.join("state.bin").display()
                        ),
                    ));
                }
                Prior::Loaded(Loaded::Fresh) => State::default(),
                Prior::Loaded(Loaded::Ok(s)) => s.state,
            };
            plan(action, &current, &versions, &dir, &set.cfg)?
        }
    };
    let trust = super::trust_for(&dir, a.keys)?;
    let next = crate::preview::next_start(
        crate::preview::RecordCopy::of_state(&plan.state, durable.seq().saturating_add(1)),
        &mut crate::preview::store_of(&dir),
        &set.cfg,
        &trust,
    );
    if let Some(why) = &plan.needs_yes
        && !a.yes
        && !a.dry_run
    {
        return Err(Fail::refused(
            "needs-confirmation",
            format!(
                "refused without --yes: {why}\n{}\nnext start would be: {}\n(--dry-run shows this without writing; --yes does it)",
                plan.detail.join("\n"),
                next.1
            ),
        ));
    }
    if a.dry_run {
        let via = host.as_ref().map(Endpoint::describe);
        out(
            a.json,
            with_store(
                json!({"dry_run": true, "would": plan.would, "detail": plan.detail, "needs_yes": plan.needs_yes, "via": via, "next_start": next.0}),
                &dir,
            ),
            format!(
                "store: {}\ndry run: would {}{}\n{}{}next start would be: {}\nnothing was written",
                dir.display(),
                plan.would,
                via.as_ref()
                    .map_or(String::new(), |h| format!(" (through {h}, which runs)")),
                lines(&plan.detail),
                plan.needs_yes
                    .as_ref()
                    .map_or(String::new(), |w| format!("needs --yes: {w}\n")),
                next.1
            ),
        );
        return Ok(0);
    }
    if let (Some(ep), Action::Wake) = (&host, action) {
        // A dormant build sets nothing up, so a host that answers is a build that runs:
        // the record changed under us, and writing beside the host could lose its writes.
        return Err(Fail::refused(
            "host-running",
            format!(
                "{} runs on this store, so its driver build is not dormant now; nothing was changed (stop the host to wake a build offline)",
                ep.describe()
            ),
        ));
    }
    let mut notes: Vec<String> = Vec::new();
    let mut failed = false;
    if let Action::ForceSafeMode(on) = action {
        // The registry value first, then the record; both results are reported.
        match registry_force_safe(&dir, on) {
            Ok(n) => notes.push(n),
            Err(e) => {
                failed = true;
                notes.push(format!("registry NOT written: {e}"));
            }
        }
    }
    if let (Some(ep), Some(change)) = (&host, change_of(action)) {
        drop(lock);
        via_host(ep, change, a.yes, &notes)?;
        notes.push(format!(
            "applied by {} (the record's one writer while it runs)",
            ep.describe()
        ));
        // The record as the host wrote it.
        let rec = {
            let _shared = StoreLock::shared(&dir);
            store::read_record(&dir)
        };
        let next = crate::preview::next_start(
            crate::preview::RecordCopy {
                bytes: rec.bytes,
                write_error: None,
            },
            &mut crate::preview::store_of(&dir),
            &set.cfg,
            &trust,
        );
        return done(a, &dir, &plan, &notes, &next, Some(ep), failed);
    }
    match action {
        Action::Rebuild { .. } => write_rebuilt(&dir, &prior, &plan.state, &mut notes)?,
        _ => durable.persist(&plan.state).map_err(|e| {
            let mut msg = format!(
                "cannot write the state record {}: {}; nothing was changed in it",
                dir.join("state.bin").display(),
                os_error(e)
            );
            for n in &notes {
                msg += &format!("\n{n}");
            }
            Fail::io(msg)
        })?,
    }
    done(a, &dir, &plan, &notes, &next, None, failed)
}

/// Prints what was done.
fn done(
    a: &Args<'_>,
    dir: &Path,
    plan: &Plan,
    notes: &[String],
    next: &(serde_json::Value, String),
    via: Option<&Endpoint>,
    failed: bool,
) -> Result<u8, Fail> {
    out(
        a.json,
        with_store(
            json!({"done": plan.what, "detail": plan.detail, "notes": notes, "via": via.map(Endpoint::describe), "next_start": next.0}),
            dir,
        ),
        format!(
            "store: {}\n{}\n{}{}next start: {}",
            dir.display(),
            plan.what,
            lines(&plan.detail),
            lines(notes),
            next.1
        ),
    );
    Ok(if failed { 2 } else { 0 })
}

/// The host running on store `dir`, if one answers at `ep` (on Windows, the driver, for
/// this system's own store only). A host that is there but cannot be asked is an error:
/// writing the record beside it could lose its writes or ours.
fn host_of(dir: &Path, ep: &Endpoint) -> Result<Option<Endpoint>, Fail> {
    #[cfg(windows)]
    if matches!(ep, Endpoint::Device) && !crate::registry::is_live_store(dir) {
        return Ok(None);
    }
    let _ = dir;
    match super::live::query(ep) {
        Ok(Some(_)) => Ok(Some(ep.clone())),
        Ok(None) => Ok(None),
        Err(f) => Err(Fail::new(
            f.code,
            f.kind,
            format!(
                "a host runs on this store but could not be asked ({}); nothing was changed (the record is written by the running host only)",
                f.msg
            ),
        )),
    }
}

/// The change an action asks a host for (all but `rebuild`).
fn change_of(action: Action) -> Option<Change> {
    match action {
        Action::ForceSafeMode(on) => Some(Change::ForceSafeMode(on)),
        Action::Reset => Some(Change::Reset),
        Action::Unquarantine(v) => Some(Change::Unquarantine(v)),
        Action::Wake | Action::Rebuild { .. } => None,
    }
}

/// Asks the running host to apply `change`; its refusal in the console's terms.
fn via_host(ep: &Endpoint, change: Change, yes: bool, notes: &[String]) -> Result<(), Fail> {
    let req = change.request(yes);
    let tail = |msg: String| notes.iter().fold(msg, |m, n| format!("{m}\n{n}"));
    ask(ep, &req, |reply| match reply {
        Reply::Changed { .. } => Ok(()),
        Reply::Refused { code, message } => Err(match code {
            17 => Fail::refused(
                "needs-confirmation",
                tail(format!(
                    "refused without --yes by {}: {message}",
                    ep.describe()
                )),
            ),
            18 => Fail::refused(
                "not-quarantined",
                tail(format!("refused by {}: {message}", ep.describe())),
            ),
            12 => Fail::io(tail(format!(
                "{} could not write the state record: {message}; nothing was changed in it",
                ep.describe()
            ))),
            _ => refusal(ep, "the change", code, message),
        }),
        other => Err(Fail::io(format!(
            "unexpected answer from {}: {other:?}",
            ep.describe()
        ))),
    })?
}

fn lines(v: &[String]) -> String {
    v.iter().map(|l| format!("{l}\n")).collect()
}

fn crash_loops(s: &State) -> Vec<String> {
    s.quarantine
        .iter()
        .flatten()
        .filter(|q| q.reason == QuarantineReason::CrashLoop)
        .map(|q| format!("v{} ({} unclean starts)", q.ver.version, q.detail))
        .collect()
}

fn plan(
    action: Action,
    s: &State,
    versions: &[u64],
    dir: &Path,
    cfg: &Config,
) -> Result<Plan, Fail> {
    let t = cfg.threshold();
    Ok(match action {
        Action::ForceSafeMode(on) => Plan {
            state: machine::set_force_safe(s, on),
            what: format!("force-safe-mode {}", if on { "on" } else { "off" }),
            would: format!("turn force-safe-mode {}", if on { "on" } else { "off" }),
            detail: vec![if on {
                "while on, every start activates no content; counters and quarantine are untouched"
                    .into()
            } else {
                "starts choose content again; quarantine and counts are as before".into()
            }],
            needs_yes: None,
        },
        Action::Reset => {
            let loops = crash_loops(s);
            let counted: Vec<String> = s
                .tracks
                .iter()
                .flatten()
                .filter(|t| t.attempts > 0)
                .map(|t| format!("v{}: {}", t.ver.version, t.attempts))
                .collect();
            let mut detail = vec![format!(
                "forgets last-known-good ({}), every quarantine ({}), every count ({}){}",
                s.lkg.map_or("none".into(), |l| format!("v{}", l.version)),
                s.quarantine.iter().flatten().count(),
                if counted.is_empty() {
                    "none".into()
                } else {
                    counted.join(", ")
                },
                if s.floor != 0 {
                    format!(" and the floor (v{})", s.floor)
                } else {
                    String::new()
                }
            )];
            if let Some(p) = s.pending() {
                detail.push(format!(
                    "keeps the attempt of v{} still in progress: the next start charges it once",
                    p.ver.version
                ));
            }
            detail.push(
                "the next start tries the newest version as on a first install, with fresh attempts".into(),
            );
            let needs_yes = (!loops.is_empty() || s.floor != 0).then(|| {
                format!(
                    "it re-enables versions quarantined for crash-looping: {}; each gets {t} more tries, that is up to {t} more crashes of the machine each (force-safe-mode on is the safe way to stop a crash loop)",
                    if loops.is_empty() { format!("everything at or below v{}", s.floor) } else { loops.join(", ") }
                )
            });
            Plan {
                state: machine::reset(s),
                what: "state reset".into(),
                would: "reset the state".into(),
                detail,
                needs_yes,
            }
        }
        Action::Unquarantine(v) => {
            let Some(q) = s.quarantined(v).copied() else {
                let q: Vec<_> = s
                    .quarantine
                    .iter()
                    .flatten()
                    .map(|q| q.ver.version)
                    .collect();
                let known = versions.contains(&v)
                    || s.track(v).is_some()
                    || s.lkg.is_some_and(|l| l.version == v)
                    || s.attempt.is_some_and(|a| a.ver.version == v);
                return Err(if known {
                    Fail::refused(
                        "not-quarantined",
                        format!("version {v} is not quarantined (quarantined: {q:?})"),
                    )
                } else {
                    Fail::refused(
                        "no-such-version",
                        format!(
                            "version {v} does not exist: it is not in the store ({}, versions {versions:?}) nor in the record (quarantined: {q:?})",
                            DirStore::new(dir).dir().display()
                        ),
                    )
                });
            };
            let (detail, needs_yes) = match q.reason {
                QuarantineReason::CrashLoop => (
                    format!(
                        "v{v} was quarantined at boot {} after {} unclean starts; it gets fresh attempts: up to {t} more unclean starts before it is quarantined again",
                        q.boot, q.detail
                    ),
                    Some(format!(
                        "v{v} crash-looped; releasing it lets the machine crash up to {t} more times on it"
                    )),
                ),
                QuarantineReason::Invalid => (
                    format!(
                        "v{v} failed validation; if its file is unchanged the next start reads it, rejects it and quarantines it again (it is never activated)"
                    ),
                    None,
                ),
                QuarantineReason::RolledBack => (
                    format!(
                        "v{v} was rolled back to last-known-good by an operator at boot {}; released, it is tried again as new content (fresh attempts)",
                        q.boot
                    ),
                    None,
                ),
            };
            Plan {
                state: machine::unquarantine(s, v).unwrap_or(*s),
                what: format!("version {v} released from quarantine"),
                would: format!("release version {v} from quarantine"),
                detail: vec![detail],
                needs_yes,
            }
        }
        Action::Wake => {
            let Some(woken) = machine::wake(s) else {
                return Err(Fail::refused(
                    "not-dormant",
                    format!(
                        "the driver build is not dormant: {}; nothing was changed",
                        super::status::driver_words(s, t)
                    ),
                ));
            };
            let d = s
                .driver
                .unwrap_or(failsafe_loader::state::DriverTrack::fresh(
                    failsafe_loader::state::BuildId::default(),
                ));
            Plan {
                state: woken,
                what: format!("driver build {} woken", d.build),
                would: format!("wake driver build {}", d.build),
                detail: vec![format!(
                    "it went dormant at boot {} after {} unclean starts without content; it gets fresh tries: up to {t} more unclean starts without content before it is dormant again",
                    d.dormant.unwrap_or(0),
                    d.unclean
                )],
                needs_yes: Some(format!(
                    "driver build {} crashed the machine {} times in a row with no content active; waking it lets it crash up to {t} more times (a new driver build gets fresh tries without this)",
                    d.build, d.unclean
                )),
            }
        }
        Action::Rebuild { .. } => Plan {
            state: *s,
            what: String::new(),
            would: String::new(),
            detail: vec![],
            needs_yes: None,
        },
    })
}

fn plan_rebuild(
    dir: &Path,
    prior: &Prior,
    versions: &[u64],
    cfg: &Config,
    force_safe: bool,
) -> Result<Plan, Fail> {
    let why = match prior {
        Prior::Unreadable(e) => format!("it cannot be read ({})", os_error(*e)),
        Prior::Loaded(Loaded::Lost) => "both of its slots are invalid".to_owned(),
        Prior::Loaded(_) => {
            return Err(Fail::refused(
                "record-readable",
                format!(
                    "the state record {} is readable: rebuild is only for a record that cannot be read or is corrupt (recover reset forgets history in a readable one)",
                    dir.join("state.bin").display()
                ),
            ));
        }
    };
    let store = DirStore::new(dir);
    let mut present = Vec::new();
    let mut detail = Vec::new();
    for &v in versions {
        let digest = match crate::read_capped(&store.path(v)) {
            Ok(b) => file_digest(&b),
            Err(e) => {
                detail.push(format!(
                    "warning: cannot read v{v} ({e}): counted without its digest"
                ));
                [0; 32]
            }
        };
        present.push(Ver { version: v, digest });
    }
    let state = machine::rebuild(&present, cfg, force_safe);
    let t = cfg.threshold();
    detail.insert(
        0,
        format!(
            "writes a fresh record (the old one is kept as state.bin.unreadable-<time>); {why}, so quarantine, counts and last-known-good are unknown"
        ),
    );
    detail.push(format!(
        "every stored version ({}) is assumed to have used {} of its {t} tries: each gets one more try, and one unclean start quarantines it; there is no last-known-good until one proves healthy",
        if versions.is_empty() { "none".to_owned() } else { format!("{versions:?}") },
        t.saturating_sub(1)
    ));
    if state.floor != 0 {
        detail.push(format!(
            "versions at or below v{} do not fit the count table and are not tried automatically",
            state.floor
        ));
    }
    detail.push(format!(
        "force-safe-mode in the new record: {}",
        if force_safe { "on" } else { "off" }
    ));
    Ok(Plan {
        state,
        what: "state record rebuilt".into(),
        would: "rebuild the state record".into(),
        detail,
        needs_yes: Some(
            "a rebuilt record cannot know which versions were quarantined for crash-looping; each stored version may crash the machine once more".into(),
        ),
    })
}

/// Moves the unreadable record aside and writes the rebuilt one in its place.
fn write_rebuilt(
    dir: &Path,
    prior: &Prior,
    s: &State,
    notes: &mut Vec<String>,
) -> Result<(), Fail> {
    let path = dir.join("state.bin");
    if path.exists() || matches!(prior, Prior::Unreadable(_)) {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let aside = dir.join(format!("state.bin.unreadable-{secs}"));
        std::fs::rename(&path, &aside).map_err(|e| {
            Fail::io(format!(
                "cannot move the old record {} aside: {e}; nothing was changed",
                path.display()
            ))
        })?;
        notes.push(format!("old record kept as {}", aside.display()));
    }
    let (_, mut fresh) = Durable::open(FileMedium::new(dir, None));
    fresh.persist(s).map_err(|e| {
        Fail::io(format!(
            "cannot write the new record {}: {}",
            path.display(),
            os_error(e)
        ))
    })
}

#[cfg(not(windows))]
fn registry_force_safe(_dir: &Path, _on: bool) -> Result<String, String> {
    Ok("registry: not on Windows, only the record was written".into())
}

/// On Windows: `ForceSafeMode` in this running system's registry, but only when the store
/// is this system's own; in WinRE the registry is WinRE's own hive (writing there would not
/// reach the installed system), so only the record is written and the note says so.
#[cfg(windows)]
fn registry_force_safe(dir: &Path, on: bool) -> Result<String, String> {
    if crate::registry::in_winre() {
        return Ok("registry not written: this is WinRE, whose HKLM\\SYSTEM is the recovery environment's own hive, not the installed system's; the record (which the driver reads first) was written. To set the value too, load the offline hive (docs/cli.md)".into());
    }
    if !crate::registry::is_live_store(dir) {
        return Ok(format!(
            "registry not written: {} is not this system's store (%SystemRoot%\\Failsafe)",
            dir.display()
        ));
    }
    crate::registry::set_force_safe(on)
        .map(|name| format!("registry written on this system: {name}"))
}
