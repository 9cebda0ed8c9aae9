//! One file per subcommand (`Args` + `run`). The commands that read or change a store —
//! `stage`, `status`, `recover`, `boot` — check the store first (`store::open`), print its
//! absolute path, and take the store lock around any write. The content author's
//! commands: `compile`, `inspect`, `test`, `diff`, `import`; `completions` and `man`.

pub mod boot;
pub mod compile;
pub mod completions;
pub mod diff;
#[cfg(feature = "fleet")]
pub mod fleet;
#[cfg(feature = "fleet")]
pub mod fleet_machine;
pub mod import;
pub mod inspect;
pub mod keygen;
pub mod live;
pub mod recover;
#[cfg(unix)]
pub mod serve;
pub mod sign;
pub mod stage;
pub mod status;
pub mod test;
pub mod verify;

use std::path::Path;

use failsafe_loader::state::Config;
use serde_json::{Value, json};

use crate::fail::Fail;

/// The configuration a preview uses, and where it came from: `--threshold`, else (on
/// Windows, for this system's own store) the driver's registry switches, else defaults.
pub struct Settings {
    pub cfg: Config,
    /// Registry switches as shown to the responder (Windows), or why they are not shown.
    pub registry: Value,
    pub registry_text: Option<String>,
}

#[cfg(not(windows))]
pub fn settings(_dir: &Path, threshold: Option<u8>) -> Settings {
    Settings {
        cfg: Config {
            threshold: threshold.unwrap_or(Config::DEFAULT_THRESHOLD),
            ..Config::default()
        },
        registry: Value::Null,
        registry_text: None,
    }
}

#[cfg(windows)]
pub fn settings(dir: &Path, threshold: Option<u8>) -> Settings {
    let mut cfg = Config {
        threshold: threshold.unwrap_or(Config::DEFAULT_THRESHOLD),
        ..Config::default()
    };
    if !crate::registry::is_live_store(dir) {
        let why = if crate::registry::in_winre() {
            "not read: this is WinRE, whose registry is not the installed system's"
        } else {
            "not read: the store is not this system's own (%SystemRoot%\\Failsafe)"
        };
        return Settings {
            cfg,
            registry: json!({"read": false, "why": why}),
            registry_text: Some(format!("registry switches: {why}")),
        };
    }
    match crate::registry::read() {
        Ok(sw) => {
            if threshold.is_none()
                && let Some(t) = sw.threshold
            {
                cfg.threshold = u8::try_from(t).unwrap_or(u8::MAX);
            }
            if let Some(h) = sw.healthy_after_secs {
                cfg.healthy_after_secs = h.max(10);
            }
            cfg.force_safe_mode = sw.force_safe_mode.is_some_and(|x| x != 0);
            let show = |v: Option<u32>| v.map_or("absent".to_owned(), |v| v.to_string());
            Settings {
                cfg,
                registry: json!({"read": true, "key": format!("HKLM\\{}", crate::registry::KEY),
                    "ForceSafeMode": sw.force_safe_mode, "Threshold": sw.threshold,
                    "HealthyAfterSeconds": sw.healthy_after_secs,
                    "LastStart": sw.last_start.as_ref().map(crate::report::start_report_json)}),
                registry_text: Some(format!(
                    "registry (HKLM\\{}): ForceSafeMode {}, Threshold {}, HealthyAfterSeconds {} (used for the preview: threshold {}, force-safe {})",
                    crate::registry::KEY,
                    show(sw.force_safe_mode),
                    show(sw.threshold),
                    show(sw.healthy_after_secs),
                    cfg.threshold(),
                    if cfg.force_safe_mode { "on" } else { "off" }
                )),
            }
        }
        Err(e) => Settings {
            cfg,
            registry: json!({"read": false, "why": e}),
            registry_text: Some(format!("registry switches: {e}")),
        },
    }
}

/// The keys the host of store `dir` verifies content with, for previews and `stage`: the
/// keys given on the command line; else, on Windows for this system's own store, the
/// driver's (the compiled-in release keys, and `TestSigningKeys` when `TestSigning` is 1
/// and Windows booted with test signing, as the driver reads them); else the compiled-in
/// release keys, which is what a start without keys trusts, marked as not known to be the
/// host's.
pub fn trust_for(dir: &Path, keys: &verify::KeyArgs) -> Result<crate::preview::TrustView, Fail> {
    use failsafe_loader::trust::Trust;
    let release = Trust::builtin().keys().count();
    if keys.any() {
        let trust = keys.trust()?;
        return Ok(crate::preview::TrustView {
            source: format!(
                "the keys given ({} key(s){}, and the {release} compiled-in release key(s))",
                keys.keys.len() + keys.test_keys.len(),
                if keys.test_signing {
                    ", test signing on"
                } else {
                    ""
                }
            ),
            trust,
            known: true,
        });
    }
    #[cfg(windows)]
    if crate::registry::is_live_store(dir)
        && let Ok(t) = crate::registry::driver_trust()
    {
        return Ok(t);
    }
    let _ = dir;
    Ok(crate::preview::TrustView {
        trust: Trust::builtin(),
        known: false,
        source: format!(
            "the {release} compiled-in release key(s) only (the host's keys are not known here)"
        ),
    })
}

/// `json` with the store's absolute path added.
pub fn with_store(mut v: Value, dir: &Path) -> Value {
    v["store"] = json!(dir);
    v
}
