//! `failsafectl keygen`: a new Ed25519 content signing key pair, and the key files every
//! signing command reads (docs/cli.md, "Signing").
//!
//! Private key file (`NAME.key`, mode 0600 on Unix, never overwritten):
//!
//! ```text
//! # Failsafe content signing key: PRIVATE. Whoever has this file can sign content.
//! kind: failsafe-ed25519-secret-key-v1
//! key-id: 0123456789abcdef
//! public: <64 hex digits>
//! seed: <64 hex digits>
//! ```
//!
//! Public key file (`NAME.pub`): the same without `seed`, kind
//! `failsafe-ed25519-public-key-v1`. Where a public key is asked for (`--key`,
//! `--test-key`), a public key file, a private key file (its public half) or the 64 hex
//! digits of the key itself are accepted.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use ed25519_compact::{KeyPair, Seed};
use failsafe_loader::trust::{KeyId, KeyKind, PUBLIC_KEY_LEN, Trust, key_id};
use serde_json::json;

use crate::fail::Fail;
use crate::report::{hex, out};

const SECRET_KIND: &str = "failsafe-ed25519-secret-key-v1";
const PUBLIC_KIND: &str = "failsafe-ed25519-public-key-v1";

/// A signing key read from a private key file.
pub struct SigningKey {
    pub pair: KeyPair,
    pub id: KeyId,
}

impl SigningKey {
    pub fn public(&self) -> [u8; PUBLIC_KEY_LEN] {
        *self.pair.pk
    }
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let s = s.trim();
    if s.len() != 2 * N || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The `name: value` lines of a key file.
fn fields(text: &str) -> Vec<(&str, &str)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect()
}

fn field<'a>(f: &[(&str, &'a str)], name: &str) -> Option<&'a str> {
    f.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
}

/// Checks the `key-id` line, when there is one, against the key.
fn check_id(f: &[(&str, &str)], public: &[u8; 32], what: &str) -> Result<(), Fail> {
    if let Some(id) = field(f, "key-id")
        && unhex::<8>(id) != Some(key_id(public))
    {
        return Err(Fail::usage(format!(
            "{what}: key-id {id} does not belong to its public key (its id is {})",
            hex(&key_id(public))
        )));
    }
    Ok(())
}

/// Reads a private key file.
pub fn read_signing_key(path: &Path) -> Result<SigningKey, Fail> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Fail::io(format!("cannot read key {}: {e}", path.display())))?;
    let f = fields(&text);
    let what = path.display().to_string();
    if field(&f, "kind") != Some(SECRET_KIND) {
        return Err(Fail::usage(format!(
            "{what} is not a Failsafe private key file (kind: {SECRET_KIND}; a public key cannot sign)"
        )));
    }
    let seed = field(&f, "seed")
        .and_then(unhex::<32>)
        .ok_or_else(|| Fail::usage(format!("{what}: no valid `seed:` line (64 hex digits)")))?;
    let pair = KeyPair::from_seed(Seed::new(seed));
    let public = *pair.pk;
    if let Some(p) = field(&f, "public")
        && unhex::<32>(p) != Some(public)
    {
        return Err(Fail::usage(format!(
            "{what}: its `public:` line is not the public key of its seed"
        )));
    }
    check_id(&f, &public, &what)?;
    Ok(SigningKey {
        id: key_id(&public),
        pair,
    })
}

/// A public key: 64 hex digits, or a public or private key file.
pub fn read_public_key(arg: &Path) -> Result<[u8; PUBLIC_KEY_LEN], Fail> {
    if let Some(k) = arg.to_str().and_then(unhex::<32>) {
        return Ok(k);
    }
    let text = std::fs::read_to_string(arg).map_err(|e| {
        Fail::usage(format!(
            "key {}: neither 64 hex digits nor a readable key file ({e})",
            arg.display()
        ))
    })?;
    let f = fields(&text);
    let what = arg.display().to_string();
    match field(&f, "kind") {
        Some(PUBLIC_KIND) => {}
        Some(SECRET_KIND) => return read_signing_key(arg).map(|k| k.public()),
        _ => {
            return Err(Fail::usage(format!(
                "{what} is not a Failsafe key file (kind: {PUBLIC_KIND})"
            )));
        }
    }
    let public = field(&f, "public")
        .and_then(unhex::<32>)
        .ok_or_else(|| Fail::usage(format!("{what}: no valid `public:` line (64 hex digits)")))?;
    check_id(&f, &public, &what)?;
    Ok(public)
}

/// The trust the host commands verify with: `keys` as release keys, `test_keys` as test
/// keys, and the test-signing switch (the driver's compiled-in keys, `TestSigningKeys` and
/// `TestSigning`; docs/boot-safety.md, "Trust").
pub fn trust_from(
    keys: &[PathBuf],
    test_keys: &[PathBuf],
    test_signing: bool,
) -> Result<Trust, Fail> {
    let mut t = Trust::builtin();
    t.set_test_signing(test_signing);
    for (paths, kind) in [(keys, KeyKind::Release), (test_keys, KeyKind::Test)] {
        for p in paths {
            let k = read_public_key(p)?;
            t.add(k, kind)
                .map_err(|e| Fail::usage(format!("key {}: {e}", p.display())))?;
        }
    }
    Ok(t)
}

/// The key ids of a trust, for messages.
pub fn trust_json(t: &Trust) -> serde_json::Value {
    json!({"test_signing": t.test_signing(),
           "keys": t.keys().map(|k| json!({"key_id": hex(&k.id), "kind": k.kind.name()})).collect::<Vec<_>>()})
}

fn secret_text(k: &SigningKey) -> String {
    format!(
        "# Failsafe content signing key: PRIVATE. Whoever has this file can sign content.\n\
         kind: {SECRET_KIND}\nkey-id: {}\npublic: {}\nseed: {}\n",
        hex(&k.id),
        hex(&k.public()),
        hex(&k.pair.sk.seed()[..])
    )
}

fn public_text(public: &[u8; 32]) -> String {
    format!(
        "# Failsafe content signing public key\nkind: {PUBLIC_KIND}\nkey-id: {}\npublic: {}\n",
        hex(&key_id(public)),
        hex(public)
    )
}

/// Creates `path` with `bytes`, refusing to replace an existing file; `private`: readable
/// by the owner only (0600 on Unix; on Windows the directory's ACL applies).
fn create_new(path: &Path, bytes: &[u8], private: bool) -> std::io::Result<()> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        o.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut f = o.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// A fresh key pair from the OS's random number generator.
pub fn generate() -> Result<SigningKey, Fail> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| Fail::io(format!("no randomness from the OS: {e}")))?;
    let pair = KeyPair::from_seed(Seed::new(seed));
    Ok(SigningKey {
        id: key_id(&pair.pk),
        pair,
    })
}

/// Writes a new key pair to `out` (private) and `out` with extension `pub` (public).
pub fn write_pair(out: &Path) -> Result<(SigningKey, PathBuf), Fail> {
    let k = generate()?;
    let public_path = out.with_extension("pub");
    if public_path == out {
        return Err(Fail::usage(format!(
            "{}: the private key file must not end in .pub",
            out.display()
        )));
    }
    for p in [out, public_path.as_path()] {
        if p.exists() {
            return Err(Fail::refused(
                "exists",
                format!("{} exists: keygen never overwrites a key", p.display()),
            ));
        }
    }
    create_new(out, secret_text(&k).as_bytes(), true)
        .map_err(|e| Fail::io(format!("cannot write {}: {e}", out.display())))?;
    create_new(&public_path, public_text(&k.public()).as_bytes(), false)
        .map_err(|e| Fail::io(format!("cannot write {}: {e}", public_path.display())))?;
    Ok((k, public_path))
}

pub fn run(output: &Path, json: bool) -> Result<u8, Fail> {
    let (k, public_path) = write_pair(output)?;
    let id = hex(&k.id);
    let public = hex(&k.public());
    out(
        json,
        json!({"private_key": output, "public_key_file": public_path, "key_id": id, "public_key": public}),
        format!(
            "private key: {} (keep it secret; mode 0600)\npublic key:  {}\nkey id:      {id}\npublic:      {public}",
            output.display(),
            public_path.display()
        ),
    );
    Ok(0)
}
