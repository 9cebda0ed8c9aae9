//! The agent's own small file (`STATE/agent.json`): the report sequence, since when the
//! machine has the version it last took (and the boots and unclean ends since), which
//! versions were already activated live once (never pushed live twice: a crash after a
//! live push is the counter's business, not the agent's), and how many passes could not
//! report.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, io_at};
use crate::report::{MachineState, Took};

/// Most versions remembered as activated live.
const MAX_TRIED: usize = 16;

/// `agent.json`.
#[derive(Serialize, Deserialize, Debug, Default, Clone)]
pub struct Ledger {
    /// Report sequence.
    pub seq: u64,
    /// The newest version the agent staged.
    pub took: Option<Took>,
    /// Versions activated live once.
    #[serde(default)]
    pub live: Vec<u64>,
    /// Passes since the last report that reached the broker.
    #[serde(default)]
    pub unsent: u64,
}

impl Ledger {
    /// Reads it (a missing file is a new agent).
    pub fn load(dir: &Path) -> Result<Ledger> {
        let p = dir.join("agent.json");
        match std::fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                Error::refused(
                    "ledger-invalid",
                    format!(
                        "{}: not the agent's ledger ({e}); remove it to start afresh",
                        p.display()
                    ),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Ledger::default()),
            Err(e) => Err(io_at("ledger", "read", &p, &e)),
        }
    }

    /// Writes it atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| io_at("ledger", "create", dir, &e))?;
        let b = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::io("ledger", format!("cannot encode the ledger: {e}")))?;
        crate::repo::write_atomic(&dir.join("agent.json"), &b)
    }

    /// The machine took `version` (release `serial`) now, at record boot `boot`.
    pub fn took(&mut self, version: u64, serial: u64, boot: u64) {
        if self.took.as_ref().is_some_and(|t| t.version == version) {
            return;
        }
        self.took = Some(Took {
            version,
            serial,
            at: crate::time::now(),
            boot,
            boots: 0,
            unclean_ends: 0,
        });
    }

    /// Remembers a live activation of `version`.
    pub fn tried_live(&mut self, version: u64) {
        if !self.live.contains(&version) {
            self.live.push(version);
        }
        if self.live.len() > MAX_TRIED {
            self.live.remove(0);
        }
    }

    /// Whether `version` was activated live before.
    pub fn was_live(&self, version: u64) -> bool {
        self.live.contains(&version)
    }

    /// Updates boots and unclean ends since the take from the machine's state.
    pub fn observe(&mut self, m: &MachineState) {
        if let Some(t) = &mut self.took {
            t.boots = m.boot.saturating_sub(t.boot);
            let now = m.unclean.get(&t.version).copied().unwrap_or(0);
            let q = m
                .quarantine(t.version)
                .filter(|q| q.reason == "crash-loop")
                .and_then(|q| q.detail.as_deref())
                .and_then(|d| d.split_whitespace().next())
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
            t.unclean_ends = t.unclean_ends.max(now).max(q);
        }
    }
}
