//! Signed content across the built binary: keygen, sign, verify, validate/inspect with
//! keys, compile --sign, and what a simulated driver start does with each kind of refused
//! file (quarantined at once as invalid content, with its reason) and with a replayed
//! older version.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use failsafe_loader::state::record::decode_record;
use failsafe_loader::state::{Loaded, QuarantineReason, State};
use predicates::str::contains;
use serde_json::Value;

fn ctl() -> Command {
    Command::cargo_bin("failsafectl").unwrap()
}

fn json_of(out: &[u8]) -> Value {
    serde_json::from_slice(out)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(out)))
}

fn first_json(out: &[u8]) -> Value {
    let text = String::from_utf8_lossy(out);
    serde_json::from_str(text.lines().next().unwrap_or("")).unwrap()
}

/// `failsafectl keygen -o DIR/NAME.key`: (private, public) paths.
fn keygen(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let key = dir.join(format!("{name}.key"));
    ctl().arg("keygen").arg("-o").arg(&key).assert().success();
    (key.clone(), key.with_extension("pub"))
}

fn sample_toml() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../content/sample.toml")
}

/// The sample compiled as `version`, signed with `key` (or unsigned).
fn compile(out: &Path, version: u64, key: Option<&Path>) {
    let mut c = ctl();
    c.arg("compile")
        .arg(sample_toml())
        .arg("-o")
        .arg(out)
        .args(["--version", &version.to_string()]);
    if let Some(k) = key {
        c.arg("--sign").arg(k);
    }
    c.assert().success();
}

fn verify(file: &Path, args: &[OsString]) -> (i32, Value) {
    let o = ctl()
        .arg("verify")
        .arg(file)
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    let j = json_of(&o.stdout);
    (o.status.code().unwrap(), j["files"][0].clone())
}

fn key_arg(p: &Path) -> Vec<OsString> {
    vec!["--key".into(), p.into()]
}

fn state(dir: &Path) -> State {
    match decode_record(&std::fs::read(dir.join("state.bin")).unwrap()) {
        Loaded::Ok(s) => s.state,
        other => panic!("record not valid: {other:?}"),
    }
}

#[test]
fn keygen_writes_a_private_key_only_its_owner_reads() {
    let d = tempfile::tempdir().unwrap();
    let key = d.path().join("dev.key");
    let a = ctl()
        .arg("keygen")
        .arg("-o")
        .arg(&key)
        .arg("--json")
        .assert()
        .success();
    let j = json_of(&a.get_output().stdout);
    let id = j["key_id"].as_str().unwrap().to_owned();
    let public = j["public_key"].as_str().unwrap().to_owned();
    assert_eq!((id.len(), public.len()), (16, 64));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "private key mode {mode:o}");
    }
    let pub_text = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    assert!(pub_text.contains(&public) && pub_text.contains(&id));
    assert!(!pub_text.contains("seed"));
    let secret = std::fs::read_to_string(&key).unwrap();
    assert!(secret.contains("PRIVATE") && secret.contains("seed:"));
    // Never overwritten.
    ctl()
        .arg("keygen")
        .arg("-o")
        .arg(&key)
        .assert()
        .code(1)
        .stderr(contains("never overwrites"));
    assert_eq!(std::fs::read_to_string(&key).unwrap(), secret);
    // A public key cannot sign.
    let f = d.path().join("s.fsc");
    compile(&f, 1, None);
    ctl()
        .arg("sign")
        .arg(&f)
        .arg("-k")
        .arg(key.with_extension("pub"))
        .arg("-o")
        .arg(d.path().join("x.fsc"))
        .assert()
        .code(2)
        .stderr(contains("a public key cannot sign"));
}

#[test]
fn sign_verify_validate_and_inspect() {
    let d = tempfile::tempdir().unwrap();
    let (key, public) = keygen(d.path(), "dev");
    let unsigned = d.path().join("u.fsc");
    compile(&unsigned, 3, None);
    let signed = d.path().join("s.fsc");
    let a = ctl()
        .arg("sign")
        .arg(&unsigned)
        .arg("-k")
        .arg(&key)
        .arg("-o")
        .arg(&signed)
        .arg("--json")
        .assert()
        .success();
    let id = json_of(&a.get_output().stdout)["key_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // compile --sign makes the same bytes (Ed25519 is deterministic).
    let compiled = d.path().join("c.fsc");
    compile(&compiled, 3, Some(&key));
    assert_eq!(
        std::fs::read(&compiled).unwrap(),
        std::fs::read(&signed).unwrap()
    );

    let (code, j) = verify(&signed, &key_arg(&public));
    assert_eq!(
        (code, j["status"].as_str(), j["key_id"].as_str()),
        (0, Some("verified"), Some(id.as_str()))
    );
    // The key as 64 hex digits works too.
    let hex = std::fs::read_to_string(&public)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("public: ").map(str::to_owned))
        .unwrap();
    assert_eq!(verify(&signed, &key_arg(Path::new(&hex))).0, 0);

    // validate: without keys, structure only (and says the signature is unchecked); with
    // keys, the signature first, as the driver.
    ctl()
        .arg("validate")
        .arg(&signed)
        .arg(&unsigned)
        .assert()
        .success()
        .stdout(contains(format!(
            "signature key {id} (not verified: give --key)"
        )))
        .stdout(contains("signature none (unsigned: the driver refuses it)"));
    let o = ctl()
        .arg("validate")
        .arg(&signed)
        .arg(&unsigned)
        .args(key_arg(&public))
        .arg("--json")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let j = json_of(&o.stdout);
    assert_eq!(j[0]["signature"]["verified"], true);
    assert_eq!(j[1]["error"]["code"], "unsigned");

    // inspect shows the key id and whether the signature verifies.
    ctl()
        .arg("inspect")
        .arg(&signed)
        .assert()
        .success()
        .stdout(contains(format!(
            "signature:     key {id} (not verified: give --key)"
        )));
    ctl()
        .arg("inspect")
        .arg(&signed)
        .args(key_arg(&public))
        .assert()
        .success()
        .stdout(contains(format!(
            "signature:     key {id} (release key): verified"
        )));
    let (other, other_pub) = keygen(d.path(), "other");
    let _ = other;
    let a = ctl()
        .arg("inspect")
        .arg(&signed)
        .args(key_arg(&other_pub))
        .arg("--json")
        .assert()
        .success();
    let j = json_of(&a.get_output().stdout);
    assert_eq!(j["signature"]["key_id"], id.as_str());
    assert_eq!(j["signature"]["verified"], false);
    assert_eq!(j["signature"]["error"]["code"], "unknown-key");

    // sign refuses invalid content.
    let bad = d.path().join("bad.fsc");
    std::fs::write(&bad, b"\x89FSC\r\n\x1a\nrest").unwrap();
    ctl()
        .arg("sign")
        .arg(&bad)
        .arg("-k")
        .arg(&key)
        .arg("-o")
        .arg(d.path().join("x.fsc"))
        .assert()
        .code(1)
        .stderr(contains("not signed: byte 0: truncated header"));
}

/// Every way a file can fail the check, with its reason: `verify` refuses each (exit 1),
/// and a driver start quarantines each at once as invalid content, never activating it.
#[test]
fn refused_files_have_their_reason_and_are_quarantined_at_once() {
    let d = tempfile::tempdir().unwrap();
    let (key, public) = keygen(d.path(), "dev");
    let (other, other_pub) = keygen(d.path(), "other");
    let good = d.path().join("good.fsc");
    compile(&good, 2, Some(&key));
    let bytes = std::fs::read(&good).unwrap();
    let n = bytes.len();
    let variant = |name: &str, f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = bytes.clone();
        f(&mut b);
        let p = d.path().join(name);
        std::fs::write(&p, b).unwrap();
        p
    };
    let flipped_sig = variant("flipped-sig.fsc", &|b| b[n - 7] ^= 0x04);
    let flipped_body = variant("flipped-body.fsc", &|b| b[90] ^= 0x01);
    let truncated = variant("truncated.fsc", &|b| b.truncate(n - 20));
    let unknown_id = variant("unknown-id.fsc", &|b| b[40..48].copy_from_slice(&[9; 8]));
    let wrong_key = d.path().join("wrong-key.fsc");
    compile(&wrong_key, 2, Some(&other));
    let unsigned = d.path().join("unsigned.fsc");
    compile(&unsigned, 2, None);

    let release: Vec<OsString> = key_arg(&public);
    let test_on: Vec<OsString> = vec![
        "--test-key".into(),
        public.clone().into(),
        "--test-signing".into(),
    ];
    let test_off: Vec<OsString> = vec!["--test-key".into(), public.clone().into()];
    let cases: Vec<(&str, &Path, &[OsString], &str)> = vec![
        ("wrong key", &wrong_key, &release, "unknown-key"),
        (
            "flipped signature bit",
            &flipped_sig,
            &release,
            "bad-signature",
        ),
        (
            "flipped body bit",
            &flipped_body,
            &release,
            "digest-mismatch",
        ),
        ("truncated signature", &truncated, &release, "truncated"),
        ("unknown key id", &unknown_id, &release, "unknown-key"),
        (
            "unsigned, test signing off",
            &unsigned,
            &test_off,
            "unsigned",
        ),
        ("unsigned, test signing on", &unsigned, &test_on, "unsigned"),
        (
            "test key, test signing off",
            &good,
            &test_off,
            "test-signing-off",
        ),
    ];
    assert_eq!(
        verify(&good, &test_on).0,
        0,
        "test key with test signing on"
    );
    assert_eq!(verify(&good, &release).0, 0);
    let _ = other_pub;
    for (what, file, trust, code) in cases {
        let (exit, j) = verify(file, trust);
        assert_eq!(exit, 1, "{what}");
        assert_eq!(j["error"]["code"], code, "{what}: {j}");

        // The driver: v1 (good, signed by a release key of its own) healthy, then the
        // refused file as v2.
        let store = d
            .path()
            .join(format!("store-{}", what.replace([' ', ','], "-")));
        let (k1, p1) = keygen(d.path(), &format!("v1-{}", what.replace([' ', ','], "-")));
        let v1 = d.path().join("v1.fsc");
        compile(&v1, 1, Some(&k1));
        ctl()
            .arg("stage")
            .arg(&v1)
            .arg("--init")
            .arg("--store")
            .arg(&store)
            .assert()
            .success();
        let boot = |extra: &[&str]| {
            std::process::Command::new(assert_cmd::cargo::cargo_bin("failsafectl"))
                .args(["boot", "--json", "--healthy-after", "0", "--store"])
                .arg(&store)
                .arg("--key")
                .arg(&p1)
                .args(trust)
                .args(extra)
                .output()
                .unwrap()
        };
        assert!(boot(&["--then", "healthy"]).status.success(), "{what}");
        std::fs::copy(file, store.join("content").join("2.fsc")).unwrap();
        let o = boot(&["--then", "healthy"]);
        assert!(o.status.success(), "{what}");
        let j = first_json(&o.stdout);
        assert_eq!(j["version"], 1, "{what}: v2 never activated: {j}");
        assert_eq!(j["reason"], "newer-quarantined", "{what}");
        assert_eq!(j["rejected"][0]["version"], 2, "{what}");
        assert_eq!(j["rejected"][0]["error"]["code"], code, "{what}");
        assert_eq!(j["quarantined"][0]["detail"], code, "{what}");
        let s = state(&store);
        let q = s.quarantined(2).expect("quarantined");
        assert_eq!(q.reason, QuarantineReason::Invalid, "{what}");
        assert_eq!(s.attempts(2), 0, "{what}: no crash was charged");
        assert_eq!(s.lkg.map(|l| l.version), Some(1));
        // status names the reason.
        ctl()
            .arg("status")
            .arg("--store")
            .arg(&store)
            .assert()
            .success()
            .stdout(contains(format!("v2 (invalid-content: {code}")));
    }
}

#[test]
fn test_signing_is_recorded_and_shown_by_status() {
    let d = tempfile::tempdir().unwrap();
    let (key, public) = keygen(d.path(), "dev");
    let f = d.path().join("s.fsc");
    compile(&f, 1, Some(&key));
    let store = d.path().join("store");
    ctl()
        .arg("stage")
        .arg(&f)
        .arg("--init")
        .arg("--store")
        .arg(&store)
        .assert()
        .success();
    let a = ctl()
        .args([
            "boot",
            "--json",
            "--then",
            "clean-shutdown",
            "--test-signing",
            "--test-key",
        ])
        .arg(&public)
        .arg("--store")
        .arg(&store)
        .assert()
        .success();
    let j = first_json(&a.get_output().stdout);
    assert_eq!(
        (j["version"].as_u64(), j["test_signing"].as_bool()),
        (Some(1), Some(true))
    );
    ctl()
        .arg("status")
        .arg("--store")
        .arg(&store)
        .assert()
        .success()
        .stdout(contains("TEST SIGNING:      ON at the last start"));
    let a = ctl()
        .arg("status")
        .arg("--json")
        .arg("--store")
        .arg(&store)
        .assert()
        .success();
    assert_eq!(
        json_of(&a.get_output().stdout)["state"]["last_decision"]["test_signing"],
        true
    );
    // With it off (and the key as a release key), status no longer says so.
    ctl()
        .args(["boot", "--then", "clean-shutdown", "--key"])
        .arg(&public)
        .arg("--store")
        .arg(&store)
        .assert()
        .success()
        .stdout(contains("boot 2: normal mode (newest-content)"));
    let a = ctl()
        .arg("status")
        .arg("--store")
        .arg(&store)
        .assert()
        .success();
    assert!(!String::from_utf8_lossy(&a.get_output().stdout).contains("TEST SIGNING"));
}

/// Rollback: an older, validly signed version replayed into the store never runs.
#[test]
fn a_replayed_older_signed_version_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let (key, public) = keygen(d.path(), "dev");
    let store = d.path().join("store");
    let boot = |then: &str| {
        std::process::Command::new(assert_cmd::cargo::cargo_bin("failsafectl"))
            .args([
                "boot",
                "--json",
                "--healthy-after",
                "0",
                "--then",
                then,
                "--key",
            ])
            .arg(&public)
            .arg("--store")
            .arg(&store)
            .output()
            .unwrap()
    };
    let content = store.join("content");
    std::fs::create_dir_all(&content).unwrap();
    compile(&content.join("1.fsc"), 1, Some(&key));
    let old = std::fs::read(content.join("1.fsc")).unwrap();
    assert_eq!(first_json(&boot("healthy").stdout)["version"], 1);
    compile(&content.join("2.fsc"), 2, Some(&key));
    assert_eq!(first_json(&boot("healthy").stdout)["version"], 2);
    // v2 is last-known-good. The old signed v1 dropped back in as itself: never chosen.
    std::fs::write(content.join("1.fsc"), &old).unwrap();
    let j = first_json(&boot("clean-shutdown").stdout);
    assert_eq!(
        (j["version"].as_u64(), j["reason"].as_str()),
        (Some(2), Some("newest-content"))
    );
    assert_eq!(j["rejected"], serde_json::json!([]));
    // As a newer number (3.fsc): its signed header says version 1 -> version-mismatch,
    // quarantined at once; v2 runs.
    std::fs::write(content.join("3.fsc"), &old).unwrap();
    let j = first_json(&boot("clean-shutdown").stdout);
    assert_eq!(j["version"], 2);
    assert_eq!(j["rejected"][0]["version"], 3);
    assert_eq!(j["rejected"][0]["error"]["code"], "version-mismatch");
    // With the version in its header rewritten to 4: the signature breaks.
    let mut forged = old.clone();
    forged[16..24].copy_from_slice(&4u64.to_le_bytes());
    std::fs::write(content.join("4.fsc"), &forged).unwrap();
    let j = first_json(&boot("clean-shutdown").stdout);
    assert_eq!(j["version"], 2);
    assert_eq!(j["rejected"][0]["error"]["code"], "bad-signature");
    let s = state(&store);
    assert_eq!(s.lkg.map(|l| l.version), Some(2));
    for v in [3, 4] {
        assert_eq!(s.quarantined(v).unwrap().reason, QuarantineReason::Invalid);
    }
}

/// The keys docs/cli.md lists for `inspect --json`'s `"signature"` object.
fn documented_signature_keys() -> Vec<String> {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/cli.md"))
        .unwrap();
    let flat = doc.split_whitespace().collect::<Vec<_>>().join(" ");
    let at = flat
        .find("\"signature\": {")
        .expect("docs/cli.md lists inspect --json's signature keys");
    let list = &flat[at + "\"signature\": {".len()..];
    let list = &list[..list.find('}').unwrap()];
    list.split(',')
        .map(|k| k.trim().trim_matches('"').to_owned())
        .collect()
}

/// `inspect --json`'s `"signature"` has exactly the keys docs/cli.md lists, in every case
/// (unsigned, signed without a key, verified, refused), and the header's file digest under
/// its documented name.
#[test]
fn inspect_json_signature_has_every_documented_key() {
    let want = documented_signature_keys();
    assert!(want.contains(&"error".to_owned()), "{want:?}");
    let d = tempfile::tempdir().unwrap();
    let (key, public) = keygen(d.path(), "dev");
    let (_, other) = keygen(d.path(), "other");
    let unsigned = d.path().join("u.fsc");
    compile(&unsigned, 3, None);
    let signed = d.path().join("s.fsc");
    compile(&signed, 3, Some(&key));
    let cases: [(&Path, Vec<OsString>, Value); 4] = [
        (&unsigned, vec![], Value::Bool(false)),
        (&signed, vec![], Value::Null),
        (&signed, key_arg(&public), Value::Bool(true)),
        (&signed, key_arg(&other), Value::Bool(false)),
    ];
    for (file, keys, verified) in cases {
        let a = ctl()
            .arg("inspect")
            .arg(file)
            .args(&keys)
            .arg("--json")
            .assert()
            .success();
        let j = json_of(&a.get_output().stdout);
        let sig = j["signature"].as_object().unwrap();
        let mut got: Vec<&String> = sig.keys().collect();
        got.sort();
        let mut w: Vec<&String> = want.iter().collect();
        w.sort();
        assert_eq!(got, w, "{} {keys:?}: {sig:?}", file.display());
        assert_eq!(sig["verified"], verified, "{sig:?}");
        assert_eq!(sig["key_id"].is_null(), file == unsigned.as_path());
        assert_eq!(
            sig["error"].is_null(),
            verified != Value::Bool(false) || file == unsigned.as_path()
        );
        assert_eq!(j["file_digest"], j["body_sha256"]);
        assert_eq!(j["file_digest"].as_str().map(str::len), Some(64));
    }
}

/// `status` predicts what the start does, with the host's keys: a file it cannot read now
/// is skipped (not quarantined), an unsigned one and one signed by a key it does not trust
/// are quarantined at once, and the start falls back. The start then does exactly that.
/// Without the host's keys it checks against the compiled-in release keys (what a start
/// without keys trusts: none here, so nothing runs) and says whose keys those are.
#[test]
fn status_predicts_the_start_with_the_hosts_keys() {
    let d = tempfile::tempdir().unwrap();
    let (key, public) = keygen(d.path(), "dev");
    let (other, _) = keygen(d.path(), "other");
    let store = d.path().join("store");
    let content = store.join("content");
    std::fs::create_dir_all(&content).unwrap();
    compile(&content.join("1.fsc"), 1, Some(&key));
    compile(&content.join("2.fsc"), 2, None);
    compile(&content.join("3.fsc"), 3, Some(&other));
    // v4 cannot be read now (a directory where the file should be: EISDIR).
    std::fs::create_dir_all(content.join("4.fsc")).unwrap();
    let host = [
        "--test-signing".into(),
        "--test-key".into(),
        public.clone().into_os_string(),
    ];
    let a = ctl()
        .args(["status", "--json", "--store"])
        .arg(&store)
        .args(&host)
        .assert()
        .success();
    let next = json_of(&a.get_output().stdout)["next_start"].clone();
    assert_eq!(next["version"], 1, "{next}");
    assert_eq!(next["reason"], "newer-unreadable", "{next}");
    assert_eq!(next["unreadable"], serde_json::json!([4]), "{next}");
    assert_eq!(
        next["refused"],
        serde_json::json!([{"version": 3, "error": "unknown-key"}, {"version": 2, "error": "unsigned"}]),
        "{next}"
    );
    assert_eq!(next["trust"]["known"], true);
    // The start does what status said.
    let o = std::process::Command::new(assert_cmd::cargo::cargo_bin("failsafectl"))
        .args(["boot", "--json", "--then", "clean-shutdown", "--store"])
        .arg(&store)
        .args(&host)
        .output()
        .unwrap();
    let j = first_json(&o.stdout);
    assert_eq!(
        (j["version"].clone(), j["reason"].clone()),
        (next["version"].clone(), next["reason"].clone())
    );
    assert_eq!(j["unreadable"], next["unreadable"]);
    let s = state(&store);
    for (v, code) in [(2, "unsigned"), (3, "unknown-key")] {
        assert_eq!(
            s.quarantined(v).map(|q| q.reason),
            Some(QuarantineReason::Invalid),
            "v{v}"
        );
        assert_eq!(
            failsafe_loader::error::code_of_ordinal(s.quarantined(v).unwrap().detail),
            Some(code)
        );
    }
    assert!(s.quarantined(4).is_none());
    // Without the host's keys: the compiled-in release keys (none), said so.
    std::fs::remove_file(store.join("state.bin")).unwrap();
    let a = ctl()
        .args(["status", "--store"])
        .arg(&store)
        .assert()
        .success();
    let out = String::from_utf8_lossy(&a.get_output().stdout).into_owned();
    assert!(
        out.contains("next start: fallback mode (nothing-usable), no content"),
        "{out}"
    );
    assert!(
        out.contains("signatures checked against the 0 compiled-in release key(s) only"),
        "{out}"
    );
    assert!(
        out.contains("trust: the 0 compiled-in release key(s) only"),
        "{out}"
    );
}

/// `stage` refuses content the host would quarantine at once: unsigned (whatever the keys),
/// or signed by a key the host's keys do not verify; `--allow-untrusted` stages it with a
/// warning. A signed file whose key cannot be checked here is staged with a warning.
#[test]
fn stage_refuses_what_the_start_would_quarantine() {
    let d = tempfile::tempdir().unwrap();
    let (key, public) = keygen(d.path(), "dev");
    let (_, other_pub) = keygen(d.path(), "other");
    let store = d.path().join("store");
    let unsigned = d.path().join("u.fsc");
    compile(&unsigned, 2, None);
    let signed = d.path().join("s.fsc");
    compile(&signed, 3, Some(&key));
    let stage = |file: &Path, extra: &[OsString]| {
        let mut c = ctl();
        c.arg("stage")
            .arg(file)
            .args(["--init", "--json", "--store"])
            .arg(&store)
            .args(extra);
        c.output().unwrap()
    };
    let o = stage(&unsigned, &[]);
    assert_eq!(o.status.code(), Some(1));
    let j = json_of(&o.stdout);
    assert_eq!(j["error"]["code"], "untrusted-content", "{j}");
    assert_eq!(j["error"]["content_error"]["code"], "unsigned", "{j}");
    assert!(!store.join("content/2.fsc").exists());
    // Signed by a key the host does not trust (its keys given).
    let o = stage(&signed, &key_arg(&other_pub));
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        json_of(&o.stdout)["error"]["content_error"]["code"],
        "unknown-key"
    );
    // Trusted: staged, no warning; the preview runs it.
    let o = stage(&signed, &key_arg(&public));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j = json_of(&o.stdout);
    assert_eq!(j["warnings"], serde_json::json!([]));
    assert_eq!(j["next_start"]["version"], 3);
    // Keys not known here: staged with a warning.
    let signed4 = d.path().join("s4.fsc");
    compile(&signed4, 4, Some(&key));
    let o = stage(&signed4, &[]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("warning: "));
    assert_eq!(
        json_of(&o.stdout)["warnings"].as_array().map(Vec::len),
        Some(1)
    );
    // --allow-untrusted: staged, warned, and the preview says the start quarantines it.
    let unsigned5 = d.path().join("u5.fsc");
    compile(&unsigned5, 5, None);
    let mut extra = key_arg(&public);
    extra.push("--allow-untrusted".into());
    let o = stage(&unsigned5, &extra);
    assert!(o.status.success());
    let j = json_of(&o.stdout);
    assert_eq!(
        j["next_start"]["refused"][0],
        serde_json::json!({"version": 5, "error": "unsigned"})
    );
    assert_eq!(j["next_start"]["version"], 4);
}
