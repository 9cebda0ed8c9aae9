//! The health report each machine publishes: one JSON document per machine, the newest
//! replacing the last (an MQTT retained message; any transport that keeps the latest
//! document per key would do — nothing here knows about MQTT). Versioned (`schema`, `v`);
//! readers keep fields they do not know (`extra`) and the raw state object the console
//! printed (`status`), so fields other parts add to `failsafectl status --json` (the
//! driver build's dormancy, for one) reach the fleet without a change here.
//!
//! Facts come from the same place `failsafectl status --json` takes them (the state
//! record, the running host's live state; on Windows the driver's registry values), by
//! running that very command: [`MachineState::from_status`] maps its fields.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};

/// `schema` of a report.
pub const SCHEMA: &str = "failsafe.fleet.report";
/// The layout version this code writes; readers accept it and newer minor additions
/// (unknown fields are kept), and refuse another major layout with a clear message.
pub const VERSION: u32 = 1;

/// A quarantined version, as the record holds it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Quarantined {
    /// Content version.
    pub version: u64,
    /// `crash-loop`, `invalid-content`, `rolled-back`, ... (docs/boot-safety.md).
    pub reason: String,
    /// The record's detail (e.g. "3 unclean starts"), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The machine's state, mapped from `failsafectl status --json`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct MachineState {
    /// The record as read (`ok`, `none (first install)`, `unknown` ...).
    pub record: String,
    /// Whether the host (driver, or `failsafectl serve`) answered.
    pub running: bool,
    /// The content running now (host answered), else the last decision's version.
    #[serde(default)]
    pub active: Option<u64>,
    /// The running content passed its health check (this activation), or is
    /// last-known-good.
    #[serde(default)]
    pub healthy: bool,
    /// Last-known-good.
    #[serde(default)]
    pub last_known_good: Option<u64>,
    /// Quarantined versions with reasons.
    #[serde(default)]
    pub quarantined: Vec<Quarantined>,
    /// Unclean starts charged per version (the record's counts).
    #[serde(default)]
    pub unclean: BTreeMap<u64, u64>,
    /// The record's boot counter.
    #[serde(default)]
    pub boot: u64,
    /// The last decision's mode and reason.
    #[serde(default)]
    pub mode: Option<String>,
    /// See `mode`.
    #[serde(default)]
    pub reason: Option<String>,
    /// Content versions in the store.
    #[serde(default)]
    pub staged: Vec<u64>,
}

impl MachineState {
    /// Maps `failsafectl status --json` (its `json_version` 1 layout).
    pub fn from_status(s: &Value) -> Result<MachineState> {
        if s.get("json_version").and_then(Value::as_u64) != Some(1) {
            return Err(Error::refused(
                "status-invalid",
                format!(
                    "failsafectl status --json: json_version {} (expected 1)",
                    s.get("json_version").unwrap_or(&Value::Null)
                ),
            ));
        }
        let st = s.get("state").unwrap_or(&Value::Null);
        let live = s
            .get("live")
            .filter(|l| l.is_object() && l.get("error").is_none());
        let u = |v: Option<&Value>| v.and_then(Value::as_u64);
        let lkg = u(st.pointer("/last_known_good/version"));
        let active = match live {
            Some(l) => u(l.get("active")),
            None => u(st.pointer("/last_decision/version")),
        };
        let healthy = live.is_some_and(|l| {
            l.get("healthy").and_then(Value::as_bool) == Some(true)
                || (active.is_some() && active == lkg)
        });
        let quarantined = st
            .get("quarantine")
            .and_then(Value::as_array)
            .map(|qs| {
                qs.iter()
                    .filter_map(|q| {
                        Some(Quarantined {
                            version: q.get("version")?.as_u64()?,
                            reason: q.get("reason")?.as_str()?.to_owned(),
                            detail: q.get("detail").and_then(Value::as_str).map(str::to_owned),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let unclean = st
            .get("attempts")
            .and_then(Value::as_array)
            .map(|ts| {
                ts.iter()
                    .filter_map(|t| {
                        Some((t.get("version")?.as_u64()?, t.get("attempts")?.as_u64()?))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let staged = s
            .get("content")
            .and_then(Value::as_array)
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| c.get("version")?.as_u64())
                    .collect()
            })
            .unwrap_or_default();
        let name = |p: &str| st.pointer(p).and_then(Value::as_str).map(str::to_owned);
        Ok(MachineState {
            record: st
                .get("record")
                .and_then(Value::as_str)
                .unwrap_or("unknown")
                .to_owned(),
            running: live.is_some(),
            active,
            healthy,
            last_known_good: lkg,
            quarantined,
            unclean,
            boot: u(st.get("boot")).unwrap_or(0),
            mode: name("/last_decision/mode"),
            reason: name("/last_decision/reason"),
            staged,
        })
    }

    /// The quarantine entry of `version`.
    pub fn quarantine(&self, version: u64) -> Option<&Quarantined> {
        self.quarantined.iter().find(|q| q.version == version)
    }
}

/// The repository as the agent saw it on this pass.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct RepoView {
    /// Loaded and verified.
    pub ok: bool,
    /// Targets metadata version.
    #[serde(default)]
    pub targets_version: Option<u64>,
    /// The timestamp's expiry.
    #[serde(default)]
    pub expires: Option<jiff::Timestamp>,
    /// Why not (code: message).
    #[serde(default)]
    pub error: Option<String>,
}

/// Since when the machine has a release's version (the agent's own ledger).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Took {
    /// Content version.
    pub version: u64,
    /// The release's serial.
    pub serial: u64,
    /// When the agent staged it.
    pub at: jiff::Timestamp,
    /// The record's boot counter then.
    pub boot: u64,
    /// Boots since (record boot now minus then).
    #[serde(default)]
    pub boots: u64,
    /// Unclean ends charged to the version since (highest count seen, or the quarantine's).
    #[serde(default)]
    pub unclean_ends: u64,
}

/// The release the agent acted on this pass.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ReleaseView {
    /// Serial.
    pub serial: u64,
    /// Content version.
    pub content_version: u64,
    /// The machine's ring in it (`None`: outside the plan).
    #[serde(default)]
    pub ring: Option<usize>,
    /// What the agent did or why not (`staged-live`, `waiting-for-ring`, ...).
    pub action: String,
    /// Details in words.
    #[serde(default)]
    pub note: Option<String>,
}

/// One machine's report.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Report {
    /// [`SCHEMA`].
    pub schema: String,
    /// [`VERSION`].
    pub v: u32,
    /// Stable machine id.
    pub machine: String,
    /// When the report was made.
    pub at: jiff::Timestamp,
    /// Increases with every report of this machine.
    pub seq: u64,
    /// The agent's version.
    pub agent: String,
    /// The machine's ring pin, if configured.
    #[serde(default)]
    pub ring_pin: Option<usize>,
    /// The repository this pass.
    pub repo: RepoView,
    /// The state.
    pub machine_state: MachineState,
    /// Since when it has the newest release it took.
    #[serde(default)]
    pub took: Option<Took>,
    /// What the agent did.
    #[serde(default)]
    pub release: Option<ReleaseView>,
    /// `failsafectl status --json`'s `state` and `live` objects as printed (fields the
    /// mapping above does not know travel here).
    #[serde(default)]
    pub status: Value,
    /// Fields of a newer report layout.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl Report {
    /// Reads a report (`machine` is the id its key says, which must match).
    pub fn parse(machine: &str, bytes: &[u8]) -> Result<Report> {
        let r: Report = serde_json::from_slice(bytes).map_err(|e| {
            Error::refused(
                "report-invalid",
                format!("report of {machine}: not a fleet report: {e}"),
            )
        })?;
        if r.schema != SCHEMA || r.v != VERSION {
            return Err(Error::refused(
                "report-invalid",
                format!(
                    "report of {machine}: {} v{} (expected {SCHEMA} v{VERSION})",
                    r.schema, r.v
                ),
            ));
        }
        if r.machine != machine {
            return Err(Error::refused(
                "report-invalid",
                format!(
                    "report under {machine} names machine {} (expected its own id)",
                    r.machine
                ),
            ));
        }
        Ok(r)
    }

    /// The document to publish.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self)
            .map_err(|e| Error::io("report", format!("cannot encode the report: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn status() -> Value {
        json!({"json_version": 1,
            "live": {"active": 2, "healthy": false, "last_known_good": 1},
            "state": {"record": "ok", "boot": 4,
                "last_known_good": {"version": 1, "sha256": "aa"},
                "attempts": [{"version": 1, "attempts": 0}, {"version": 2, "attempts": 2}],
                "quarantine": [{"version": 7, "reason": "invalid-content", "detail": "bad-signature", "boot": 2}],
                "last_decision": {"mode": "normal", "reason": "live-update", "version": 2},
                "driver_build": {"dormant": false, "build": "0.2.0"}},
            "content": [{"version": 1}, {"version": 2}]})
    }

    #[test]
    fn status_fields_map_and_unknown_ones_travel() {
        let m = MachineState::from_status(&status()).unwrap();
        assert!(m.running);
        assert_eq!(m.active, Some(2));
        assert!(!m.healthy);
        assert_eq!(m.last_known_good, Some(1));
        assert_eq!(m.unclean.get(&2), Some(&2));
        assert_eq!(m.quarantine(7).unwrap().reason, "invalid-content");
        assert_eq!(m.staged, vec![1, 2]);
        // No host: the last decision's version, not running, not healthy.
        let mut s = status();
        s["live"] = Value::Null;
        let m = MachineState::from_status(&s).unwrap();
        assert!(!m.running && !m.healthy);
        assert_eq!(m.active, Some(2));
        let e = MachineState::from_status(&json!({"json_version": 2})).unwrap_err();
        assert!(e.msg.contains("json_version 2 (expected 1)"), "{e}");
    }

    #[test]
    fn reports_round_trip_keep_new_fields_and_refuse_strangers() {
        let r = Report {
            schema: SCHEMA.into(),
            v: VERSION,
            machine: "m01".into(),
            at: jiff::Timestamp::UNIX_EPOCH,
            seq: 3,
            agent: "0.1.0".into(),
            ring_pin: None,
            repo: RepoView::default(),
            machine_state: MachineState::from_status(&status()).unwrap(),
            took: None,
            release: None,
            status: status()["state"].clone(),
            extra: BTreeMap::new(),
        };
        let mut v = serde_json::to_value(&r).unwrap();
        v["battery"] = json!("low");
        let bytes = serde_json::to_vec(&v).unwrap();
        let back = Report::parse("m01", &bytes).unwrap();
        assert_eq!(back.extra.get("battery"), Some(&json!("low")));
        assert_eq!(back.status["driver_build"]["build"], "0.2.0");
        let e = Report::parse("m02", &bytes).unwrap_err();
        assert!(e.msg.contains("report under m02 names machine m01"), "{e}");
        v["v"] = json!(2);
        let e = Report::parse("m01", &serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert!(
            e.msg.contains("v2 (expected failsafe.fleet.report v1)"),
            "{e}"
        );
        let e = Report::parse("m01", b"{").unwrap_err();
        assert_eq!(e.code, "report-invalid");
    }
}
