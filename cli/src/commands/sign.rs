//! `failsafectl sign`: signs a content file with a private key (`compile --sign` uses the
//! same code). The file must pass the kernel's validator; any old signature is replaced.

use std::path::Path;

use failsafe_loader::format::prepare_signed;
use failsafe_loader::state::start::file_digest;
use failsafe_loader::trust::{CONTEXT, KeyKind, Trust, verify};
use serde_json::json;

use super::keygen::{SigningKey, read_signing_key};
use crate::fail::Fail;
use crate::report::{hex, out};

/// `bytes` (valid content, signed or not) signed by `key`; checked with the kernel's
/// verifier before it is returned.
pub fn sign_bytes(bytes: &[u8], key: &SigningKey) -> Result<Vec<u8>, Fail> {
    failsafe_loader::check(bytes).map_err(|e| Fail::invalid(format!("not signed: {e}")))?;
    let mut signed = prepare_signed(bytes, key.id).map_err(|e| Fail::invalid(e.to_string()))?;
    let header = signed
        .get(..failsafe_loader::format::HEADER_LEN)
        .ok_or_else(|| Fail::invalid("content shorter than its header".into()))?;
    let sig = key.pair.sk.sign([CONTEXT, header].concat(), None);
    signed.extend_from_slice(&sig[..]);
    let mut trust = Trust::EMPTY;
    trust
        .add(key.public(), KeyKind::Release)
        .map_err(|e| Fail::io(e.to_string()))?;
    verify(&signed, &trust)
        .map_err(|e| Fail::io(format!("the signed file does not verify: {e}")))?;
    Ok(signed)
}

pub fn run(input: &Path, key: &Path, output: &Path, json: bool) -> Result<u8, Fail> {
    let k = read_signing_key(key)?;
    let bytes = crate::read_capped(input)
        .map_err(|e| Fail::io(format!("cannot read {}: {e}", input.display())))?;
    let signed = sign_bytes(&bytes, &k).map_err(|mut f| {
        f.msg = format!("{}: {}", input.display(), f.msg);
        f
    })?;
    crate::host::write_atomic(output, &signed)
        .map_err(|e| Fail::io(format!("cannot write {}: {e}", output.display())))?;
    let h = failsafe_loader::check(&signed).map_err(|e| Fail::io(e.to_string()))?;
    let (id, d) = (hex(&k.id), hex(&file_digest(&signed)));
    out(
        json,
        json!({"input": input, "output": output, "key_id": id, "version": h.version, "bytes": signed.len(), "sha256": d}),
        format!(
            "signed {} -> {}: version {}, key {id}, {} bytes, sha256 {d}",
            input.display(),
            output.display(),
            h.version,
            signed.len()
        ),
    );
    Ok(0)
}
