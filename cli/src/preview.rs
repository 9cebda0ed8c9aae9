//! What the next start would do, from the record as read and the store's versions: the
//! core's own decision functions (`machine::begin`, `machine::choose`) on a copy of the
//! state. The files are not read here, and Windows Safe Mode is not known; `cfg` carries
//! the threshold and the configuration switch (the registry's, on Windows).

use failsafe_loader::state::Prior;
use failsafe_loader::state::machine::{self, Begin, Config, Env};
use serde_json::{Value, json};

/// The next start's decision as JSON and as one line of text.
pub fn next_start(prior: Prior, versions: &[u64], cfg: &Config) -> (Value, String) {
    match machine::begin(prior, cfg, &Env::default()) {
        Begin::Safe { reason, .. } => (
            json!({"mode": "safe", "reason": reason.name(), "version": null}),
            format!("safe mode ({}), no content", reason.name()),
        ),
        Begin::Choose(mut s) => {
            let before: Vec<u64> = s
                .quarantine
                .iter()
                .flatten()
                .map(|q| q.ver.version)
                .collect();
            let c = machine::choose(&mut s, versions, &[], cfg, &Env::default());
            let newly: Vec<u64> = s
                .quarantine
                .iter()
                .flatten()
                .map(|q| q.ver.version)
                .filter(|v| !before.contains(v))
                .collect();
            let q = if newly.is_empty() {
                String::new()
            } else {
                format!(" after quarantining {newly:?} (attempts used up)")
            };
            let text = match c.target {
                Some(v) => format!(
                    "{} mode ({}): tries v{v}, start {} of {}{q}",
                    c.mode.name(),
                    c.reason.name(),
                    u32::from(s.attempts(v)) + 1,
                    cfg.threshold()
                ),
                None => format!(
                    "{} mode ({}): no content{q}",
                    c.mode.name(),
                    c.reason.name()
                ),
            };
            (
                json!({"mode": c.mode.name(), "reason": c.reason.name(), "version": c.target, "quarantines": newly}),
                text,
            )
        }
    }
}
