//! A release: one content file listed in TUF `targets` metadata, with everything the fleet
//! needs to know about it in the target's `custom` object under the key `failsafe`:
//! content version, the monotonic content serial, the plan and the plan's state. The
//! content's own Ed25519 signature (ADR 0011) is checked separately by the agent and again
//! by the driver. Field by field: docs/fleet.md, "Release metadata".

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::plan::state::RolloutState;

/// The key in a target's `custom` object.
pub const CUSTOM_KEY: &str = "failsafe";
/// The release format this code writes; readers accept it and ignore fields they do not
/// know (a newer publisher may add some).
pub const SCHEMA: u32 = 1;

/// What the custom metadata says about one content file.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Release {
    /// [`SCHEMA`].
    pub schema: u32,
    /// The content version in the file's signed header (checked by the agent).
    pub content_version: u64,
    /// Monotonic per repository: orders releases and seeds membership buckets.
    pub serial: u64,
    /// When it was published.
    pub published_at: jiff::Timestamp,
    /// The rollout plan.
    pub plan: Plan,
    /// Where the rollout is.
    pub state: RolloutState,
}

impl Release {
    /// Reads a target's custom metadata: `Ok(None)` when it carries no `failsafe` key (a
    /// file that is not a release), an error when it does and the release is malformed.
    pub fn from_custom(
        name: &str,
        custom: &std::collections::HashMap<String, serde_json::Value>,
    ) -> Result<Option<Release>> {
        let Some(v) = custom.get(CUSTOM_KEY) else {
            return Ok(None);
        };
        let r: Release = serde_json::from_value(v.clone()).map_err(|e| {
            Error::refused(
                "release-invalid",
                format!("target {name}: custom metadata `{CUSTOM_KEY}` is not a release: {e}"),
            )
        })?;
        if r.schema != SCHEMA {
            return Err(Error::refused(
                "release-invalid",
                format!(
                    "target {name}: release schema {} (expected {SCHEMA}; this agent is older than the publisher)",
                    r.schema
                ),
            ));
        }
        r.plan
            .check()
            .map_err(|e| e.context(format!("target {name}")))?;
        Ok(Some(r))
    }

    /// The custom object to publish.
    pub fn to_custom(&self) -> Result<serde_json::Value> {
        serde_json::to_value(self).map_err(|e| {
            Error::io(
                "release-invalid",
                format!("cannot encode release {}: {e}", self.serial),
            )
        })
    }

    /// The target name this release's file is published under.
    pub fn target_name(content_version: u64) -> String {
        format!("{content_version}.fsc")
    }
}

/// The releases of a repository, ordered by serial (oldest first), with the target name
/// of each; malformed ones are reported, never silently skipped.
#[derive(Debug, Clone, Default)]
pub struct Releases {
    /// (target name, release), by serial.
    pub list: Vec<(String, Release)>,
    /// Targets whose `failsafe` metadata could not be read (name: error).
    pub invalid: Vec<String>,
}

impl Releases {
    /// Collects the releases among `(target name, custom)` pairs.
    pub fn collect<'a>(
        targets: impl Iterator<
            Item = (
                &'a str,
                &'a std::collections::HashMap<String, serde_json::Value>,
            ),
        >,
    ) -> Releases {
        let mut out = Releases::default();
        for (name, custom) in targets {
            match Release::from_custom(name, custom) {
                Ok(Some(r)) => out.list.push((name.to_owned(), r)),
                Ok(None) => {}
                Err(e) => out.invalid.push(e.msg),
            }
        }
        out.list.sort_by_key(|(_, r)| r.serial);
        out
    }

    /// The newest release (highest serial).
    pub fn head(&self) -> Option<&Release> {
        self.list.last().map(|(_, r)| r)
    }

    /// The release with this serial.
    pub fn by_serial(&self, serial: u64) -> Option<&(String, Release)> {
        self.list.iter().find(|(_, r)| r.serial == serial)
    }

    /// The newest release of this content version.
    pub fn by_version(&self, version: u64) -> Option<&(String, Release)> {
        self.list
            .iter()
            .rev()
            .find(|(_, r)| r.content_version == version)
    }
}
