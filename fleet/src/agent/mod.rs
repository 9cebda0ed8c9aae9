//! The agent: one pass per run (a scheduled task or systemd timer), or a loop (`--follow`,
//! a service). Each pass loads the TUF repository ([`crate::repo::client`]); decides what
//! this machine should have ([`decide`]); fetches, checks and stages it, or rolls back, or
//! does nothing; reads the machine's state as `failsafectl status --json` prints it; and
//! publishes the report. It never turns protection off: when the repository is expired,
//! unreachable or refused, it keeps what the machine has and says why in the report.
//! The machine itself (status, stage, rollback) is behind [`Machine`]: the console runs its
//! own subcommands, the same code an operator runs.

pub mod decide;
pub mod ledger;

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::broker::Broker;
use crate::error::{Error, Result};
use crate::release::Release;
use crate::repo::client::{self, Remote};
use crate::report::{MachineState, ReleaseView, RepoView, Report};
pub use decide::{Action, decide};
use ledger::Ledger;

/// What the agent asks of the machine it runs on.
pub trait Machine {
    /// The machine's state: `failsafectl status --json`'s output.
    fn status(&self) -> Result<Value>;
    /// Checks content as the driver will (signature by a trusted key, then the validator);
    /// returns the version in its signed header.
    fn check_content(&self, bytes: &[u8]) -> Result<u64>;
    /// `failsafectl stage FILE` (and with `live`, `--live`).
    fn stage(&self, file: &Path, live: bool) -> Result<Value>;
    /// `failsafectl stage --live V`: a version already staged.
    fn activate(&self, version: u64) -> Result<Value>;
    /// `failsafectl rollback`.
    fn rollback(&self) -> Result<Value>;
    /// Removes a staged, never-activated version from the store (a rolled-back release
    /// staged for the next boot). `Ok(false)`: it was not there.
    fn unstage(&self, version: u64) -> Result<bool>;
}

/// The agent's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Stable machine id.
    pub machine: String,
    /// The machine's own ring pin (overrides the bucket in every release).
    pub ring_pin: Option<usize>,
    /// The repository.
    pub remote: Remote,
    /// The broker (`None`: reports are printed only).
    pub broker: Option<Broker>,
    /// The agent's own files (ledger; the TUF datastore is `remote.datastore`).
    pub state_dir: PathBuf,
    /// The driver's version (for a plan's `min_driver`).
    pub driver_version: String,
    /// This agent's version.
    pub agent_version: String,
}

/// One pass's result.
#[derive(Debug)]
pub struct Pass {
    /// The report (published or not).
    pub report: Report,
    /// What was done, in words (one line each).
    pub lines: Vec<String>,
    /// The report could not be published (kept for the next pass).
    pub unsent: Option<Error>,
    /// Something the operator must see (a refused target, an expired repository); the
    /// pass itself completed.
    pub problem: Option<Error>,
}

/// Runs one pass.
pub fn pass(cfg: &Config, m: &dyn Machine) -> Result<Pass> {
    crate::plan::check_id(&cfg.machine)?;
    let mut ledger = Ledger::load(&cfg.state_dir)?;
    let mut lines = Vec::new();
    let mut problem = None;
    let before = m.status()?;
    let state = MachineState::from_status(&before)?;
    let (repo_view, view) = match client::load(&cfg.remote) {
        Err(e) => {
            lines.push(format!(
                "repository: {e}; keeping what the machine has ({})",
                state
                    .active
                    .map_or("no content active".to_owned(), |v| format!("v{v}"))
            ));
            let view = RepoView {
                ok: false,
                targets_version: None,
                expires: None,
                error: Some(format!("{}: {}", e.code, e.msg)),
            };
            problem = Some(e);
            (view, None)
        }
        Ok(loaded) => {
            for bad in &loaded.releases.invalid {
                lines.push(format!("ignored: {bad}"));
            }
            let view = RepoView {
                ok: true,
                targets_version: Some(loaded.targets_version()),
                expires: Some(loaded.timestamp_expires()),
                error: None,
            };
            let action = decide(
                &loaded.releases,
                &cfg.machine,
                cfg.ring_pin,
                &state,
                &cfg.driver_version,
                &ledger,
            );
            let (rv, err) = act(cfg, m, &loaded, action, &state, &mut ledger, &mut lines);
            if let Some(e) = err {
                problem = Some(e);
            }
            (view, rv)
        }
    };
    // The report shows the machine after the action.
    let after = m.status()?;
    let now_state = MachineState::from_status(&after)?;
    ledger.observe(&now_state);
    ledger.seq = ledger.seq.saturating_add(1);
    let report = Report {
        schema: crate::report::SCHEMA.into(),
        v: crate::report::VERSION,
        machine: cfg.machine.clone(),
        at: crate::time::now(),
        seq: ledger.seq,
        agent: cfg.agent_version.clone(),
        ring_pin: cfg.ring_pin,
        repo: repo_view,
        machine_state: now_state,
        took: ledger.took.clone(),
        release: view,
        status: serde_json::json!({"state": after.get("state"), "live": after.get("live")}),
        extra: Default::default(),
    };
    let unsent = match &cfg.broker {
        None => None,
        Some(b) => match b.publish(&cfg.machine, report.to_bytes()?) {
            Ok(()) => {
                if ledger.unsent > 0 {
                    lines.push(format!(
                        "report: sent to {} ({} earlier pass(es) could not report; this report carries the state now)",
                        b.describe(),
                        ledger.unsent
                    ));
                }
                ledger.unsent = 0;
                None
            }
            Err(e) => {
                ledger.unsent = ledger.unsent.saturating_add(1);
                lines.push(format!(
                    "report: NOT sent ({e}); the machine keeps working, the next pass reports"
                ));
                Some(e)
            }
        },
    };
    ledger.save(&cfg.state_dir)?;
    Ok(Pass {
        report,
        lines,
        unsent,
        problem,
    })
}

fn view(r: &Release, ring: Option<usize>, action: &str, note: String) -> ReleaseView {
    ReleaseView {
        serial: r.serial,
        content_version: r.content_version,
        ring,
        action: action.to_owned(),
        note: Some(note),
    }
}

/// Carries out an action; returns the report's release view and a problem to surface.
fn act(
    cfg: &Config,
    m: &dyn Machine,
    loaded: &client::Loaded,
    action: Action,
    state: &MachineState,
    ledger: &mut Ledger,
    lines: &mut Vec<String>,
) -> (Option<ReleaseView>, Option<Error>) {
    match action {
        Action::Idle {
            release,
            ring,
            code,
            why,
        } => {
            lines.push(format!("nothing to do: {why}"));
            (release.map(|r| view(&r, ring, code, why)), None)
        }
        Action::Stage {
            release,
            target,
            ring,
            live,
        } => {
            let v = release.content_version;
            let r = fetch_check_stage(cfg, m, loaded, &target, v, live);
            match r {
                Ok(text) => {
                    ledger.took(v, release.serial, state.boot);
                    if live {
                        ledger.tried_live(v);
                    }
                    lines.push(text.clone());
                    let code = if live {
                        "staged-live"
                    } else {
                        "staged-next-boot"
                    };
                    (Some(view(&release, ring, code, text)), None)
                }
                Err(e) => {
                    lines.push(format!("REFUSED v{v}: {e}; nothing was staged"));
                    (Some(view(&release, ring, e.code, e.msg.clone())), Some(e))
                }
            }
        }
        Action::Activate { release, ring } => {
            let v = release.content_version;
            ledger.tried_live(v);
            match m.activate(v) {
                Ok(_) => {
                    ledger.took(v, release.serial, state.boot);
                    let t = format!("v{v} (staged) activated live");
                    lines.push(t.clone());
                    (Some(view(&release, ring, "activated-live", t)), None)
                }
                Err(e) => {
                    let t = format!(
                        "live activation of staged v{v} failed: {e}; the next start decides"
                    );
                    lines.push(t.clone());
                    (Some(view(&release, ring, "activation-failed", t)), None)
                }
            }
        }
        Action::Rollback { release } => {
            let v = release.content_version;
            match m.rollback() {
                Ok(_) => {
                    let t = format!(
                        "v{v} was rolled back by the fleet ({}); the machine returned to its last-known-good",
                        release
                            .state
                            .halt
                            .as_ref()
                            .map_or("", |h| h.reason.as_str())
                    );
                    lines.push(t.clone());
                    (Some(view(&release, None, "rolled-back", t)), None)
                }
                Err(e) => {
                    let t = format!("rollback of v{v} failed: {e}");
                    lines.push(t.clone());
                    (Some(view(&release, None, "rollback-failed", t)), Some(e))
                }
            }
        }
        Action::Unstage { release } => {
            let v = release.content_version;
            match m.unstage(v) {
                Ok(removed) => {
                    let t = if removed {
                        format!(
                            "v{v} was rolled back by the fleet: removed from the store before any start used it"
                        )
                    } else {
                        format!("v{v} was rolled back by the fleet: not in the store")
                    };
                    lines.push(t.clone());
                    (Some(view(&release, None, "unstaged", t)), None)
                }
                Err(e) => {
                    lines.push(format!("cannot remove rolled-back v{v}: {e}"));
                    (
                        Some(view(&release, None, "unstage-failed", e.msg.clone())),
                        Some(e),
                    )
                }
            }
        }
    }
}

/// Fetch through TUF (length and hash), check the content signature and version, stage.
fn fetch_check_stage(
    cfg: &Config,
    m: &dyn Machine,
    loaded: &client::Loaded,
    target: &str,
    version: u64,
    live: bool,
) -> Result<String> {
    let bytes = client::fetch(loaded, target)?;
    let got = m.check_content(&bytes).map_err(|e| {
        Error::refused(
            "content-refused",
            format!(
                "target {target} is listed and its hash matches, but the content check failed: {}",
                e.msg
            ),
        )
    })?;
    if got != version {
        return Err(Error::refused(
            "version-mismatch",
            format!(
                "target {target}: the signed header says version {got}, the release says {version}"
            ),
        ));
    }
    let dir = cfg.state_dir.join("incoming");
    std::fs::create_dir_all(&dir).map_err(|e| crate::error::io_at("agent", "create", &dir, &e))?;
    let file = dir.join(format!("{version}.fsc"));
    crate::repo::write_atomic(&file, &bytes)?;
    let r = m.stage(&file, live);
    let _ = std::fs::remove_file(&file);
    r?;
    Ok(format!(
        "v{version} fetched ({} bytes, TUF length and SHA-256 verified), content signature verified, staged{}",
        bytes.len(),
        if live {
            " and activated live"
        } else {
            " for the next start"
        }
    ))
}
