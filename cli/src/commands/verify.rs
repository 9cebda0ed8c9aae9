//! `failsafectl verify`: the kernel's authenticity check (`trust::verify`: signature by a
//! trusted key, then the digest) on content files; `validate --key` and `inspect --key`
//! use the same code.

use std::path::{Path, PathBuf};

use failsafe_loader::trust::{Trust, Verified, verify};
use failsafe_loader::{ContentError, format::Header};
use serde_json::{Value, json};

use super::keygen::{trust_from, trust_json};
use crate::fail::Fail;
use crate::report::{self, hex};

/// What a file's signature says, as `validate`, `inspect` and `verify` show it. The JSON
/// object always has the same keys (docs/cli.md): `signed`, `key_id` (null: unsigned),
/// `verified` (null: signed, no key given), `key_kind` (null unless verified) and `error`
/// (null unless it does not verify).
pub fn describe(bytes: &[u8], header: &Header, trust: Option<&Trust>) -> (Value, String) {
    let id = hex(&header.key_id);
    if !header.is_signed() {
        return (
            json!({"signed": false, "key_id": null, "verified": false, "key_kind": null, "error": null}),
            "none (unsigned: the driver refuses it)".into(),
        );
    }
    match trust {
        None => (
            json!({"signed": true, "key_id": id, "verified": null, "key_kind": null, "error": null}),
            format!("key {id} (not verified: give --key)"),
        ),
        Some(t) => match verify(bytes, t) {
            Ok(v) => (
                json!({"signed": true, "key_id": id, "verified": true, "key_kind": v.key.kind.name(), "error": null}),
                format!("key {id} ({} key): verified", v.key.kind.name()),
            ),
            Err(e) => (
                json!({"signed": true, "key_id": id, "verified": false, "key_kind": null, "error": report::error_json(&e)}),
                format!("key {id}: DOES NOT VERIFY: {e}"),
            ),
        },
    }
}

/// The keys given on the command line, or `None` when none were.
pub fn cli_trust(
    keys: &[PathBuf],
    test_keys: &[PathBuf],
    test_signing: bool,
) -> Result<Option<Trust>, Fail> {
    if keys.is_empty() && test_keys.is_empty() {
        return Ok(None);
    }
    trust_from(keys, test_keys, test_signing).map(Some)
}

fn one(path: &Path, trust: &Trust) -> (u8, Value, String) {
    let bytes = match crate::read_capped(path) {
        Ok(b) => b,
        Err(e) => {
            return (
                2,
                json!({"file": path, "status": "io-error", "error": e.to_string()}),
                format!("{}: cannot read: {e}", path.display()),
            );
        }
    };
    let r: Result<Verified, ContentError> = verify(&bytes, trust);
    match r {
        Ok(v) => (
            0,
            json!({"file": path, "status": "verified", "key_id": hex(&v.key.id), "key_kind": v.key.kind.name(), "version": v.header.version}),
            format!(
                "{}: signature OK: key {} ({} key), version {}",
                path.display(),
                hex(&v.key.id),
                v.key.kind.name(),
                v.header.version
            ),
        ),
        Err(e) => (
            1,
            json!({"file": path, "status": "refused", "error": report::error_json(&e)}),
            format!("{}: REFUSED: {e}", path.display()),
        ),
    }
}

pub fn run(
    files: &[PathBuf],
    keys: &[PathBuf],
    test_keys: &[PathBuf],
    test_signing: bool,
    json: bool,
) -> Result<u8, Fail> {
    let trust = trust_from(keys, test_keys, test_signing)?;
    if trust.keys().next().is_none() {
        return Err(Fail::usage(
            "no key to verify with: give --key PUB (or --test-key PUB with --test-signing)".into(),
        ));
    }
    let mut worst = 0;
    let mut rows = Vec::new();
    for f in files {
        let (code, v, t) = one(f, &trust);
        worst = worst.max(code);
        if json {
            rows.push(v);
        } else {
            outln!("{t}");
        }
    }
    if json {
        outln!("{}", json!({"trust": trust_json(&trust), "files": rows}));
    }
    Ok(worst)
}

/// The trusted keys a command verifies with (`verify`, `validate`, `inspect`, `boot`).
#[derive(clap::Args, Clone, Default)]
pub struct KeyArgs {
    /// Trusted public key (file or 64 hex digits), as a release key: verifies with or
    /// without test signing. Repeatable.
    #[arg(long = "key", value_name = "PUB", global = true)]
    pub keys: Vec<PathBuf>,
    /// Trusted development (test) key: verifies only with --test-signing. Repeatable.
    #[arg(long = "test-key", value_name = "PUB", global = true)]
    pub test_keys: Vec<PathBuf>,
    /// Test signing on (the driver's TestSigning switch): test keys verify.
    #[arg(long, global = true)]
    pub test_signing: bool,
}

impl KeyArgs {
    /// The trust these keys make (the compiled-in release keys plus them).
    pub fn trust(&self) -> Result<Trust, Fail> {
        trust_from(&self.keys, &self.test_keys, self.test_signing)
    }
    /// The trust, or `None` when no key was given.
    pub fn given(&self) -> Result<Option<Trust>, Fail> {
        cli_trust(&self.keys, &self.test_keys, self.test_signing)
    }
    /// Whether any of the options was given (the trust is then the command line's).
    pub fn any(&self) -> bool {
        !self.keys.is_empty() || !self.test_keys.is_empty() || self.test_signing
    }
}
